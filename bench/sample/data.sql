-- Data of the sample database, generated server-side; then foreign keys, secondary indexes,
-- sequence positions and statistics. Row counts are proportional to :scale (default 1; 0.02
-- gives a dump of about 10 MB). The seed makes every run produce the same rows.
--
-- Run after schema.sql:
--   psql -v ON_ERROR_STOP=1 -v scale=0.02 -d DB -f data.sql

\set ON_ERROR_STOP on
\if :{?scale}
\else
\set scale 1
\endif

SELECT greatest(1, round(200000 * :scale))::bigint AS n_customers,
       greatest(1, round(20000 * :scale))::bigint AS n_products,
       greatest(1, round(600000 * :scale))::bigint AS n_orders,
       greatest(1, round(1200000 * :scale))::bigint AS n_events
\gset

-- random() is deterministic after setseed() as long as rows are generated in the same order,
-- which a single-session INSERT ... SELECT over generate_series guarantees. The uuid column's
-- default, gen_random_uuid(), ignores the seed, so the rows here get uuids derived from it.
SELECT setseed(0.42) AS seeded \gset

INSERT INTO customers (id, public_id, name, email, country, note, created_at, profile)
SELECT i,
       md5(random()::text)::uuid,
       (ARRAY['Anna', 'Björn', 'Chloé', 'Dmitri', 'Emeka', 'Fatima', 'Gao', 'Hiroshi', 'Inés',
              'José', 'Kateřina', 'Łukasz', 'Mårten', 'Nguyễn', 'Olúwaseun', 'Priya'])
           [1 + floor(random() * 16)::int]
           || ' ' || (ARRAY['Smith', 'Müller', 'O''Brien', 'García', 'Øster', 'Šimek', '李',
                            'Yılmaz', 'Dubois', 'Kowalski'])[1 + floor(random() * 10)::int],
       'customer' || i || '@example.' || (ARRAY['com', 'org', 'de', 'jp'])[1 + i % 4],
       (ARRAY['DE', 'FR', 'US', 'JP', 'BR', 'NG', 'IN', 'PL'])[1 + floor(random() * 8)::int],
       -- Notes carry what COPY must escape: tabs, newlines, backslashes, a lone "\." and
       -- non-ASCII text; some are empty and some NULL.
       CASE i % 8
           WHEN 0 THEN E'ring twice\tback door\nleave with neighbour if away'
           WHEN 1 THEN E'invoice path C:\\invoices\\' || i || E'\\'
           WHEN 2 THEN 'Grüße aus Zürich — naïve café ✓ №' || i
           WHEN 3 THEN '東京都渋谷区 ' || i || ' 🚚'
           WHEN 4 THEN E'\\.'
           WHEN 5 THEN ''
           WHEN 6 THEN E'line one\r\nline two\n.\nend'
       END,
       timestamptz '2020-01-01 00:00:00+00' + random() * interval '1500 days',
       jsonb_build_object(
           'newsletter', random() < 0.3,
           'language', (ARRAY['de', 'en', 'fr', 'ja', 'pt'])[1 + floor(random() * 5)::int],
           'score', round((random() * 100)::numeric, 3),
           'tags', jsonb_build_array('t' || floor(random() * 50), 't' || floor(random() * 50)))
FROM generate_series(1, :n_customers) AS i;

INSERT INTO products (id, sku, title, description, price, attributes, thumbnail)
SELECT i,
       'SKU-' || lpad(i::text, 8, '0'),
       (ARRAY['Kettle', 'Lamp', 'Chair', 'Rucksack', 'Teekanne', 'Bol à café', '急須'])
           [1 + floor(random() * 7)::int] || ' model ' || i,
       repeat('A sturdy, well-made item. ', 2 + floor(random() * 6)::int)
           || E'\nCare: wipe clean; do not "bleach".',
       round((1 + random() * 500)::numeric, 2),
       jsonb_build_object('colour', (ARRAY['red', 'black', 'oak', 'weiß'])[1 + i % 4],
                          'weight_g', floor(random() * 5000),
                          'dimensions', jsonb_build_object('w', i % 90, 'h', i % 70)),
       decode(repeat(md5(random()::text), 4), 'hex')
FROM generate_series(1, :n_products) AS i;

INSERT INTO orders (id, customer_id, status, placed_at, total, shipping_address)
SELECT i,
       1 + floor(random() * :n_customers)::bigint,
       (enum_range(NULL::order_status))[1 + floor(random() * 6)::int],
       timestamptz '2021-01-01 00:00:00+00' + random() * interval '1200 days',
       round((5 + random() * 2000)::numeric, 2),
       (1 + floor(random() * 300)) || E' Main Street\n' || lpad((i % 99999)::text, 5, '0')
           || ' ' || (ARRAY['Berlin', 'Kraków', 'São Paulo', 'Lagos', 'Zürich'])
               [1 + floor(random() * 5)::int]
FROM generate_series(1, :n_orders) AS i;

-- Three lines per order.
INSERT INTO order_items (order_id, line, product_id, quantity, unit_price)
SELECT 1 + j / 3,
       1 + j % 3,
       1 + floor(random() * :n_products)::int,
       1 + floor(random() * 5)::int,
       round((1 + random() * 500)::numeric, 2)
FROM generate_series(0, 3 * :n_orders - 1) AS j;

INSERT INTO events (id, customer_id, occurred_at, kind, payload, raw)
SELECT i,
       CASE WHEN random() < 0.9 THEN 1 + floor(random() * :n_customers)::bigint END,
       timestamptz '2022-01-01 00:00:00+00' + random() * interval '900 days',
       (ARRAY['page_view', 'search', 'add_to_cart', 'checkout', 'login', 'support_chat'])
           [1 + floor(random() * 6)::int],
       jsonb_build_object(
           'session', md5(random()::text),
           'path', '/shop/' || floor(random() * 1000) || '/item?ref=' || floor(random() * 100),
           'agent', (ARRAY['Mozilla/5.0 (X11; Linux x86_64)', 'curl/8.5.0',
                           'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)'])
                        [1 + floor(random() * 3)::int],
           'query', (ARRAY['tea "green"', E'back\\slash', 'Grüntee', '緑茶', E'tab\tsep'])
                        [1 + floor(random() * 5)::int],
           'elapsed_ms', round((random() * 2500)::numeric, 1),
           'flags', jsonb_build_array(random() < 0.5, random() < 0.1)),
       decode(md5(random()::text) || md5(random()::text), 'hex')
FROM generate_series(1, :n_events) AS i;

-- The loads above gave explicit ids; move the identity sequences past them.
SELECT setval(pg_get_serial_sequence('customers', 'id'), :n_customers) AS customers_next,
       setval(pg_get_serial_sequence('products', 'id'), :n_products) AS products_next,
       setval(pg_get_serial_sequence('orders', 'id'), :n_orders) AS orders_next,
       setval(pg_get_serial_sequence('events', 'id'), :n_events) AS events_next
\gset

ALTER TABLE customers ADD CONSTRAINT customers_public_id_key UNIQUE (public_id);
ALTER TABLE products ADD CONSTRAINT products_sku_key UNIQUE (sku);
ALTER TABLE orders ADD CONSTRAINT orders_customer_id_fkey
    FOREIGN KEY (customer_id) REFERENCES customers (id);
ALTER TABLE order_items ADD CONSTRAINT order_items_order_id_fkey
    FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE;
ALTER TABLE order_items ADD CONSTRAINT order_items_product_id_fkey
    FOREIGN KEY (product_id) REFERENCES products (id);
ALTER TABLE events ADD CONSTRAINT events_customer_id_fkey
    FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE SET NULL;

CREATE INDEX customers_email_lower_idx ON customers (lower(email));
CREATE INDEX orders_customer_id_idx ON orders (customer_id);
CREATE INDEX orders_placed_at_idx ON orders (placed_at);
CREATE INDEX order_items_product_id_idx ON order_items (product_id);
CREATE INDEX events_customer_id_occurred_at_idx ON events (customer_id, occurred_at);
CREATE INDEX events_kind_idx ON events (kind);

ANALYZE;
