//! `verify`: re-read the log and prove that it and the audit store agree.

use super::{chain_hash, next_digest};
use crate::runner::{checkpoint, decode_record};
use crate::store::{ts, Store};
use crate::ProjectionError;
use assist_log::PartitionReader;
use serde::Serialize;
use sqlx::Row;
use std::collections::{HashMap, HashSet};

/// One disagreement between the log and the audit store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    /// The partition.
    pub partition: u32,
    /// The offset in the log, where one is concerned.
    pub offset: Option<u64>,
    /// The stream, where known.
    pub stream: Option<String>,
    /// The event, where known.
    pub event_id: Option<String>,
    /// What disagrees.
    pub problem: String,
}

/// The result of a verification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Log records compared.
    pub records: u64,
    /// Disagreements; empty when all is well.
    pub mismatches: Vec<Mismatch>,
}

struct AuditRow {
    event_id: String,
    stream: String,
    hash: String,
    prev_hash: String,
    /// The columns an auditor reads besides the hash, as stored.
    facts: [String; 5],
}

/// Re-reads every partition up to its checkpoint and checks each event's hash (its bytes
/// and the previous hash of its stream), each stream's chain links, and each partition's
/// digest against the audit store.
pub async fn verify(
    log: &dyn PartitionReader,
    store: &Store,
    gen: i64,
) -> Result<Verification, ProjectionError> {
    let err = |e| store.err(e);
    let mut report = Verification::default();
    for p in 0..log.partition_count() {
        let (upto, stored_digest) = checkpoint(store, gen, p).await?;
        let rows = sqlx::query("SELECT event_id, stream, log_offset, hash, prev_hash, event_type, occurred_at, recorded_at, actor, record_delay_ms FROM audit_events WHERE gen = $1 AND part = $2")
            .bind(gen)
            .bind(i64::from(p))
            .fetch_all(&store.pool)
            .await
            .map_err(err)?;
        let mut by_offset: HashMap<u64, AuditRow> = HashMap::new();
        for r in rows {
            let offset: i64 = r.try_get("log_offset").map_err(err)?;
            by_offset.insert(
                offset as u64,
                AuditRow {
                    event_id: r.try_get("event_id").map_err(err)?,
                    stream: r.try_get("stream").map_err(err)?,
                    hash: r.try_get("hash").map_err(err)?,
                    prev_hash: r.try_get("prev_hash").map_err(err)?,
                    facts: [
                        r.try_get("event_type").map_err(err)?,
                        r.try_get("occurred_at").map_err(err)?,
                        r.try_get("recorded_at").map_err(err)?,
                        r.try_get("actor").map_err(err)?,
                        r.try_get::<i64, _>("record_delay_ms")
                            .map_err(err)?
                            .to_string(),
                    ],
                },
            );
        }
        let mut digest = String::new();
        let mut last_hash: HashMap<String, String> = HashMap::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut from = 0;
        while from < upto {
            let page = log.read_partition(p, from, 5_000).await?;
            if page.is_empty() {
                report.mismatches.push(Mismatch {
                    partition: p,
                    offset: Some(from),
                    stream: None,
                    event_id: None,
                    problem: format!("the audit store has projected up to offset {upto}, but the log ends at {from}"),
                });
                break;
            }
            for rec in page.into_iter().take_while(|r| r.position.offset < upto) {
                let offset = rec.position.offset;
                from = offset + 1;
                report.records += 1;
                digest = next_digest(&digest, &rec.payload);
                let mismatch = |stream: &str, id: &str, problem: String| Mismatch {
                    partition: p,
                    offset: Some(offset),
                    stream: Some(stream.to_string()),
                    event_id: Some(id.to_string()),
                    problem,
                };
                let Ok(event) = decode_record(&rec) else {
                    // A dead letter has no audit row; an unreadable record that has one was
                    // read when it was projected, so it was altered since (or this version
                    // reads it no more). Its audit row is accounted for here, so that it is
                    // not reported as missing from the log, and the stream's chain goes on
                    // from it.
                    if let Some(row) = by_offset.remove(&offset) {
                        let problem = unreadable(&rec.payload, &row);
                        seen.insert(row.event_id.clone());
                        last_hash.insert(row.stream.clone(), row.hash.clone());
                        report
                            .mismatches
                            .push(mismatch(&row.stream, &row.event_id, problem));
                    }
                    continue;
                };
                let id = event.meta.event_id.to_string();
                if !seen.insert(id.clone()) {
                    continue;
                }
                let Some(row) = by_offset.remove(&offset) else {
                    report.mismatches.push(mismatch(
                        &rec.stream,
                        &id,
                        "the event is in the log but not in the audit store".into(),
                    ));
                    continue;
                };
                if row.event_id != id || row.stream != rec.stream {
                    report.mismatches.push(mismatch(
                        &rec.stream,
                        &id,
                        format!(
                            "the audit store has event {} of {} at this offset",
                            row.event_id, row.stream
                        ),
                    ));
                    continue;
                }
                let m = &event.meta;
                let facts = [
                    event.data.type_name().to_string(),
                    ts(m.occurred_at),
                    ts(m.recorded_at),
                    m.actor.id.to_string(),
                    (m.recorded_at - m.occurred_at)
                        .num_milliseconds()
                        .to_string(),
                ];
                if facts != row.facts {
                    report.mismatches.push(mismatch(
                        &rec.stream,
                        &id,
                        "the audit row's type, times or actor differ from the event in the log"
                            .into(),
                    ));
                }
                if chain_hash(&row.prev_hash, &rec.payload) != row.hash {
                    report.mismatches.push(mismatch(
                        &rec.stream,
                        &id,
                        "the event's bytes in the log do not match its hash in the audit store"
                            .into(),
                    ));
                }
                let expected_prev = last_hash.get(&row.stream).cloned().unwrap_or_default();
                if row.prev_hash != expected_prev {
                    report.mismatches.push(mismatch(&rec.stream, &id, "the chain is broken: the previous hash recorded for this event is not the hash of the stream's previous event".into()));
                }
                last_hash.insert(row.stream.clone(), row.hash.clone());
            }
        }
        for (offset, row) in by_offset {
            report.mismatches.push(Mismatch {
                partition: p,
                offset: Some(offset),
                stream: Some(row.stream),
                event_id: Some(row.event_id),
                problem: "the audit store has an event that no log record at this offset carries"
                    .into(),
            });
        }
        if digest != stored_digest {
            report.mismatches.push(Mismatch {
                partition: p,
                offset: None,
                stream: None,
                event_id: None,
                problem: format!("the digest of the log up to offset {upto} is {digest}, the checkpoint says {stored_digest}"),
            });
        }
    }
    Ok(report)
}

/// What is wrong with a log record that cannot be read as an event although the audit
/// store holds an event at its offset. Says why it cannot be read only as "not JSON" or
/// "not a valid event": the decoder's own message may quote the record's values, and a
/// verification report never repeats personal data or raw bytes.
fn unreadable(payload: &[u8], row: &AuditRow) -> String {
    let why = if serde_json::from_slice::<serde::de::IgnoredAny>(payload).is_ok() {
        "it is JSON but not a valid event"
    } else {
        "it is not JSON"
    };
    if chain_hash(&row.prev_hash, payload) == row.hash {
        format!(
            "the log record at this offset is there and matches its hash in the audit store, but cannot be read ({why}) by this version"
        )
    } else {
        format!(
            "the log record at this offset is there but cannot be read ({why}), and its bytes do not match the hash of the event the audit store holds at this offset: it was altered after it was projected"
        )
    }
}
