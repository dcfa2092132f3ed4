//! Which columns a COPY block loads, and whether each can take binary values.

use std::sync::Arc;

use tokio_postgres::Client;

use super::{ColumnCodec, RowCodec};
use crate::plan::PlainCopy;

/// How deep a chain of domains over domains is followed before giving up on it.
const MAX_DOMAIN_DEPTH: usize = 32;

/// The binary form of one COPY block: the statement that loads it and how its rows convert.
#[derive(Debug)]
pub(crate) struct BinaryCopy {
    /// The dump's own statement with `(FORMAT binary)` added, so the server reads its names as
    /// it reads them in the text COPY.
    pub(crate) sql: String,
    /// The same with `FREEZE` as well, for a block loaded in the transaction that emptied it.
    pub(crate) frozen_sql: String,
    /// The table as the lookup named it, and the relation that name resolved to: a connection
    /// loads binary rows only where the name resolves to the same relation, since binary
    /// values of another table's types would be stored as they are.
    pub(crate) table: String,
    pub(crate) relation: u32,
    pub(crate) rows: Arc<RowCodec>,
}

/// One column as the catalog describes it.
struct Column {
    name: String,
    generated: bool,
    type_oid: u32,
    type_kind: String,
    base_type: u32,
    relation: u32,
    /// `t` for a temporary table, which only the session that made it can load.
    persistence: String,
}

impl BinaryCopy {
    /// Looks up the columns `copy` (the plain form of the statement `sql`) loads in the
    /// staging database, on the control connection; `None` when the table cannot be found, is
    /// temporary, or has a column that must stay text. A failed lookup is never an error: the
    /// block is then loaded as the dump wrote it.
    pub(crate) async fn lookup(client: &Client, sql: &str, copy: &PlainCopy) -> Option<BinaryCopy> {
        let columns = table_columns(client, &copy.table).await?;
        let relation = columns[0].relation;
        if columns[0].persistence == "t" {
            return None;
        }
        let loaded: Vec<&Column> = match &copy.columns {
            Some(names) => names
                .iter()
                .map(|name| columns.iter().find(|c| c.name == *name && !c.generated))
                .collect::<Option<_>>()?,
            None => columns.iter().filter(|c| !c.generated).collect(),
        };
        let mut codecs = Vec::with_capacity(loaded.len());
        for column in &loaded {
            codecs.push(codec_of(client, column).await?);
        }
        let rows = Arc::new(RowCodec::new(codecs)?);

        // The plain form ends in `FROM stdin`, perhaps `;`: options go after it. The newline
        // ends any comment the statement's last line may hold.
        let statement = sql.trim_end().strip_suffix(';').unwrap_or(sql).trim_end();
        Some(BinaryCopy {
            sql: format!("{statement}\n(FORMAT binary)"),
            frozen_sql: format!("{statement}\n(FORMAT binary, FREEZE)"),
            table: copy.table.clone(),
            relation,
            rows,
        })
    }

    /// True when `table` resolves to the looked-up relation in `client`'s session.
    pub(crate) async fn resolves_alike(&self, client: &Client) -> bool {
        let sql = "SELECT to_regclass($1)::oid";
        match client.query_one(sql, &[&self.table]).await {
            Ok(row) => row.get::<_, Option<u32>>(0) == Some(self.relation),
            Err(_) => false,
        }
    }
}

async fn table_columns(client: &Client, table: &str) -> Option<Vec<Column>> {
    let sql = "SELECT a.attname::text, a.attgenerated <> '', t.oid, t.typtype::text, \
               t.typbasetype, c.oid, c.relpersistence::text FROM pg_catalog.pg_attribute a \
               JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
               JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
               WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
               ORDER BY a.attnum";
    let rows = client.query(sql, &[&table]).await.ok()?;
    let columns = rows
        .iter()
        .map(|row| Column {
            name: row.get(0),
            generated: row.get(1),
            type_oid: row.get(2),
            type_kind: row.get(3),
            base_type: row.get(4),
            relation: row.get(5),
            persistence: row.get(6),
        })
        .collect::<Vec<_>>();
    (!columns.is_empty()).then_some(columns)
}

/// The codec of a column's type, following a domain down to its base type.
async fn codec_of(client: &Client, column: &Column) -> Option<ColumnCodec> {
    let (mut oid, mut kind, mut base) =
        (column.type_oid, column.type_kind.clone(), column.base_type);
    for _ in 0..MAX_DOMAIN_DEPTH {
        if kind != "d" {
            return ColumnCodec::for_type(oid, kind == "e");
        }
        let sql = "SELECT oid, typtype::text, typbasetype FROM pg_catalog.pg_type WHERE oid = $1";
        let row = client.query_one(sql, &[&base]).await.ok()?;
        (oid, kind, base) = (row.get(0), row.get(1), row.get(2));
    }
    None
}
