//! Which columns a COPY block loads, and whether each can take binary values.

use std::sync::Arc;

use tokio_postgres::Client;

use super::{ColumnCodec, RowCodec};
use crate::plan::PlainCopy;
use crate::server::quote_ident;

/// How deep a chain of domains over domains is followed before giving up on it.
const MAX_DOMAIN_DEPTH: usize = 32;

/// The binary form of one COPY block: the statement that loads it and how its rows convert.
#[derive(Debug)]
pub(crate) struct BinaryCopy {
    /// `COPY table (columns) FROM STDIN (FORMAT binary)`, built from the parsed statement.
    pub(crate) sql: String,
    pub(crate) rows: Arc<RowCodec>,
}

/// One column as the catalog describes it.
struct Column {
    name: String,
    generated: bool,
    type_oid: u32,
    type_kind: String,
    base_type: u32,
}

impl BinaryCopy {
    /// Looks up the columns `copy` loads in the staging database, on the control connection;
    /// `None` when the table cannot be found or any of its columns must stay text. A failed
    /// lookup is never an error: the block is then loaded as the dump wrote it.
    pub(crate) async fn lookup(client: &Client, copy: &PlainCopy) -> Option<BinaryCopy> {
        let columns = table_columns(client, &copy.table).await?;
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

        let list = match &copy.columns {
            Some(names) => {
                let quoted: Vec<String> = names.iter().map(|name| quote_ident(name)).collect();
                format!(" ({})", quoted.join(", "))
            }
            None => String::new(),
        };
        let sql = format!("COPY {}{list} FROM STDIN (FORMAT binary)", copy.table);
        Some(BinaryCopy { sql, rows })
    }
}

async fn table_columns(client: &Client, table: &str) -> Option<Vec<Column>> {
    let sql = "SELECT a.attname::text, a.attgenerated <> '', t.oid, t.typtype::text, \
               t.typbasetype FROM pg_catalog.pg_attribute a \
               JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
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
