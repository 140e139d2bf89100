//! One stream's records checked against the chain hashes the audit trail recorded when it
//! projected them: what `history` warns about when a record was altered afterwards.

use super::chain_hash;
use crate::store::{Dialect, Store, StoreError};
use assist_log::Record;
use sqlx::Row;
use std::collections::HashMap;

/// Whether a record's bytes still hash to what the audit trail recorded for its event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integrity {
    /// Its bytes hash to the recorded chain hash.
    Intact,
    /// Its bytes do not: the record was changed after it was projected.
    Altered,
    /// The audit trail has no row for it (not projected yet, or no readable event id).
    Unrecorded,
}

/// Checks each record (of one stream) against its event's audit row in generation `gen`:
/// `chain_hash(recorded prev_hash, bytes) == recorded hash`. Rows are read by primary key.
pub async fn check_records(
    store: &Store,
    gen: i64,
    records: &[(Option<String>, &Record)],
) -> Result<Vec<Integrity>, StoreError> {
    let ids: Vec<&str> = records.iter().filter_map(|(id, _)| id.as_deref()).collect();
    // event id -> (stream, prev_hash, hash) as the audit trail recorded them
    let mut recorded: HashMap<String, (String, String, String)> = HashMap::new();
    for chunk in ids.chunks(500) {
        let marks: Vec<String> = (0..chunk.len())
            .map(|i| match store.dialect() {
                Dialect::Sqlite => "?".to_string(),
                Dialect::Postgres => format!("${}", i + 2),
            })
            .collect();
        let gen_mark = match store.dialect() {
            Dialect::Sqlite => "?",
            Dialect::Postgres => "$1",
        };
        let sql = format!(
            "SELECT event_id, stream, prev_hash, hash FROM audit_events WHERE gen = {gen_mark} AND event_id IN ({})",
            marks.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(gen);
        for id in chunk {
            q = q.bind(*id);
        }
        for row in q.fetch_all(&store.pool).await.map_err(|e| store.err(e))? {
            let get = |c: &str| row.try_get::<String, _>(c).map_err(|e| store.err(e));
            recorded.insert(
                get("event_id")?,
                (get("stream")?, get("prev_hash")?, get("hash")?),
            );
        }
    }
    Ok(records
        .iter()
        .map(|(id, rec)| {
            let Some((stream, prev, hash)) = id.as_ref().and_then(|id| recorded.get(id)) else {
                return Integrity::Unrecorded;
            };
            // An id this stream reused from another stream: that row is the other's fact.
            if *stream != rec.stream {
                return Integrity::Unrecorded;
            }
            if chain_hash(prev, &rec.payload) == *hash {
                Integrity::Intact
            } else {
                Integrity::Altered
            }
        })
        .collect())
}
