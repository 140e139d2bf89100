//! Audit findings: facts that break the domain rules, and steps recorded long after they
//! occurred (backdating), each with the events involved.

use super::finding;
use crate::store::{Store, StoreError};
use chrono::Duration;
use serde::Serialize;
use sqlx::Row;

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What kind (see [`finding`]).
    pub kind: String,
    /// The stream it concerns.
    pub subject: String,
    /// The events involved, the offending one first.
    pub events: Vec<String>,
    /// What was found.
    pub detail: String,
}

/// Every finding of generation `gen`; a step counts as backdated when recorded more than
/// `backdated_after` after it occurred.
pub async fn findings(
    store: &Store,
    gen: i64,
    backdated_after: Duration,
) -> Result<Vec<Finding>, StoreError> {
    let err = |e| store.err(e);
    let mut out = Vec::new();
    let rows = sqlx::query("SELECT event_id, kind, subject, detail FROM findings WHERE gen = $1")
        .bind(gen)
        .fetch_all(&store.pool)
        .await
        .map_err(err)?;
    for r in rows {
        out.push(Finding {
            kind: r.try_get("kind").map_err(err)?,
            subject: r.try_get("subject").map_err(err)?,
            events: vec![r.try_get("event_id").map_err(err)?],
            detail: r.try_get("detail").map_err(err)?,
        });
    }
    let rows = sqlx::query(
        "SELECT event_id, stream, event_type, occurred_at, recorded_at, record_delay_ms FROM audit_events
         WHERE gen = $1 AND record_delay_ms > $2",
    )
    .bind(gen)
    .bind(backdated_after.num_milliseconds())
    .fetch_all(&store.pool)
    .await
    .map_err(err)?;
    for r in rows {
        let delay: i64 = r.try_get("record_delay_ms").map_err(err)?;
        let (t, o, rec): (String, String, String) = (
            r.try_get("event_type").map_err(err)?,
            r.try_get("occurred_at").map_err(err)?,
            r.try_get("recorded_at").map_err(err)?,
        );
        out.push(Finding {
            kind: finding::BACKDATED.into(),
            subject: r.try_get("stream").map_err(err)?,
            events: vec![r.try_get("event_id").map_err(err)?],
            detail: format!(
                "{t} occurred {o} but was recorded {rec}, {} hours later",
                delay / 3_600_000
            ),
        });
    }
    let rows = sqlx::query(
        "SELECT h.event_id, h.household, h.member, h.occurred_at FROM household_clearings h
         WHERE h.gen = $1 AND NOT EXISTS (
             SELECT 1 FROM placements p WHERE p.gen = h.gen AND p.subject = h.member AND p.occurred_at <= h.occurred_at)",
    )
    .bind(gen)
    .fetch_all(&store.pool)
    .await
    .map_err(err)?;
    for r in rows {
        let member: String = r.try_get("member").map_err(err)?;
        let at: String = r.try_get("occurred_at").map_err(err)?;
        out.push(Finding {
            kind: finding::CLEARED_WITHOUT_EMPLOYED_MEMBER.into(),
            subject: r.try_get("household").map_err(err)?,
            events: vec![r.try_get("event_id").map_err(err)?],
            detail: format!("cleared at {at} for {member}, who has no placement recorded by then"),
        });
    }
    out.sort_by(|a, b| (&a.subject, &a.events, &a.kind).cmp(&(&b.subject, &b.events, &b.kind)));
    Ok(out)
}
