//! Rows into PostgreSQL: binary `COPY` for the tables a batch only adds to, and one
//! `INSERT … SELECT FROM unnest(arrays) ON CONFLICT` per table whose rows a batch may
//! replace. Either way a whole batch of a table is one statement the server neither
//! parses nor plans per row.

use super::{Conflict, Table, WriteError};
use crate::store::Val;
use sqlx::PgConnection;

/// How many bytes of a COPY go out per message.
const COPY_CHUNK: usize = 1 << 20;

/// Inserts `rows` into `table` on `conn` (inside the batch's transaction).
pub(super) async fn insert(
    conn: &mut PgConnection,
    table: &Table,
    rows: Vec<Vec<Val>>,
) -> Result<(), WriteError> {
    if rows.is_empty() {
        return Ok(());
    }
    match table.conflict {
        Conflict::Fail => copy(conn, table, &rows).await,
        Conflict::Ignore(_) | Conflict::Update(..) => upsert(conn, table, rows).await,
    }
}

async fn copy(conn: &mut PgConnection, table: &Table, rows: &[Vec<Val>]) -> Result<(), WriteError> {
    let data = copy_binary(rows);
    let sql = format!(
        "COPY {} ({}) FROM STDIN (FORMAT binary)",
        table.name,
        table.columns.join(", ")
    );
    let mut copy = conn.copy_in_raw(&sql).await?;
    for chunk in data.chunks(COPY_CHUNK) {
        if let Err(e) = copy.send(chunk).await {
            copy.abort("the batch failed").await.ok();
            return Err(e.into());
        }
    }
    copy.finish().await?;
    Ok(())
}

/// The rows in PostgreSQL's binary COPY format: a header, then per row its field count
/// and each field as a length and bytes (-1 for NULL), then a trailer.
pub(super) fn copy_binary(rows: &[Vec<Val>]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(19 + rows.len() * 256 + 2);
    buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    buf.extend_from_slice(&0i32.to_be_bytes()); // flags
    buf.extend_from_slice(&0i32.to_be_bytes()); // header extension
    for row in rows {
        buf.extend_from_slice(&(row.len() as i16).to_be_bytes());
        for value in row {
            let bytes: Option<&[u8]> = match value {
                Val::Int(n) => {
                    buf.extend_from_slice(&8i32.to_be_bytes());
                    buf.extend_from_slice(&n.to_be_bytes());
                    continue;
                }
                Val::Text(s) | Val::OptText(Some(s)) => Some(s.as_bytes()),
                Val::OptText(None) => None,
                Val::Bytes(b) => Some(b),
            };
            match bytes {
                Some(b) => {
                    buf.extend_from_slice(&(b.len() as i32).to_be_bytes());
                    buf.extend_from_slice(b);
                }
                None => buf.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    buf
}

/// One column of a batch, as the array bound for `unnest`.
enum Column {
    Int(Vec<i64>),
    Text(Vec<Option<String>>),
    Bytes(Vec<Vec<u8>>),
}

impl Column {
    fn sql_type(&self) -> &'static str {
        match self {
            Column::Int(_) => "int8[]",
            Column::Text(_) => "text[]",
            Column::Bytes(_) => "bytea[]",
        }
    }
}

async fn upsert(
    conn: &mut PgConnection,
    table: &Table,
    rows: Vec<Vec<Val>>,
) -> Result<(), WriteError> {
    let n = rows.len();
    let mut columns: Vec<Column> = match rows.first() {
        Some(first) => first
            .iter()
            .map(|v| match v {
                Val::Int(_) => Column::Int(Vec::with_capacity(n)),
                Val::Text(_) | Val::OptText(_) => Column::Text(Vec::with_capacity(n)),
                Val::Bytes(_) => Column::Bytes(Vec::with_capacity(n)),
            })
            .collect(),
        None => return Ok(()),
    };
    if columns.len() != table.columns.len() {
        return Err(WriteError::Shape {
            table: table.name,
            message: format!(
                "{} values for {} columns",
                columns.len(),
                table.columns.len()
            ),
        });
    }
    for row in rows {
        for (column, value) in columns.iter_mut().zip(row) {
            match (column, value) {
                (Column::Int(c), Val::Int(v)) => c.push(v),
                (Column::Text(c), Val::Text(v)) => c.push(Some(v)),
                (Column::Text(c), Val::OptText(v)) => c.push(v),
                (Column::Bytes(c), Val::Bytes(v)) => c.push(v),
                (_, v) => {
                    return Err(WriteError::Shape {
                        table: table.name,
                        message: format!("a value {v:?} of another type than its column's"),
                    })
                }
            }
        }
    }
    let arrays: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("${}::{}", i + 1, c.sql_type()))
        .collect();
    let sql = format!(
        "INSERT INTO {} ({}) SELECT * FROM unnest({}) {}",
        table.name,
        table.columns.join(", "),
        arrays.join(", "),
        table.conflict_clause()
    );
    let mut q = sqlx::query(&sql);
    for c in columns {
        q = match c {
            Column::Int(v) => q.bind(v),
            Column::Text(v) => q.bind(v),
            Column::Bytes(v) => q.bind(v),
        };
    }
    q.execute(conn).await?;
    Ok(())
}
