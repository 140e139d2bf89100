//! SLA timers that act: reminders before a deadline, escalations after a breach.
//!
//! [`rules`] says who is told and when (policy data); [`schedule`] computes a clock's next
//! notice (pure); the [`timer`] keeps the index of open clocks by that moment and records
//! notices as they come due; the [`outbox`] delivers them through channels (webhook, Kafka)
//! until the receiver takes them. Notices are kept across view generations.

pub mod outbox;
pub mod rules;
pub mod schedule;
pub mod timer;

pub use outbox::{retry_after, Channel, DeliveryStats, Outbox};
pub use rules::{NoticeRule, NoticeRuleError, NoticeRules, SHIPPED_NOTICES};
pub use schedule::{next_notice, notice_id, Kind};
pub use timer::{TickStats, Timer, TimerError};

use crate::store::{like_escape, parse_ts, Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use uuid::Uuid;

/// One reminder or escalation: what a receiver gets (as JSON) and what `assist notices`
/// lists. It names the clock and its subject's stream id, never a personal value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    /// Derived from the clock and the kind ([`notice_id`]): the receivers' idempotency key.
    pub notice_id: Uuid,
    /// `reminder`, `escalation-1`, `escalation-2`, ...
    pub kind: String,
    /// `caseworker` or `supervisor`.
    pub audience: String,
    /// The caseworker's staff id, or the region prefix whose supervisors are told.
    pub recipient: String,
    /// The clock (give it to `sla explain`).
    pub clock_id: String,
    /// The subject's stream.
    pub subject: String,
    /// The policy.
    pub policy: String,
    /// The step.
    pub step: String,
    /// The clock's region.
    pub region: String,
    /// The clock's caseworker, or empty.
    pub caseworker: String,
    /// The step's deadline (pauses counted).
    pub deadline: DateTime<Utc>,
    /// When the notice came due.
    pub moment: DateTime<Utc>,
    /// When the timer recorded it.
    pub created_at: DateTime<Utc>,
}

/// One delivery of a notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// `webhook` or `kafka`.
    pub channel: String,
    /// Attempts made.
    pub attempts: i64,
    /// When the receiver took it.
    pub delivered_at: Option<DateTime<Utc>>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// A notice with its deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoticeLine {
    /// The notice.
    #[serde(flatten)]
    pub notice: Notice,
    /// Its deliveries, by channel.
    pub deliveries: Vec<Delivery>,
}

/// Which notices to list.
#[derive(Debug, Clone, Default)]
pub struct NoticeFilter {
    /// Only those addressed to this audience (`caseworker`, `supervisor`).
    pub audience: Option<String>,
    /// Only those addressed to this recipient (staff id or region prefix).
    pub recipient: Option<String>,
    /// Only clocks in regions with this prefix.
    pub region: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
}

/// A page of notices, newest moment first (then by id), and how many match.
pub async fn list_notices(
    store: &Store,
    filter: &NoticeFilter,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<NoticeLine>), StoreError> {
    let err = |e| store.err(e);
    let mut conds = vec!["1 = 1".to_string()];
    let mut binds: Vec<String> = Vec::new();
    let mut cond = |sql: &str, value: String| {
        binds.push(value);
        conds.push(format!("{sql} ${}", binds.len()));
    };
    if let Some(a) = &filter.audience {
        cond("audience =", a.clone());
    }
    if let Some(r) = &filter.recipient {
        cond("recipient =", r.clone());
    }
    if let Some(r) = &filter.region {
        cond("region LIKE", format!("{}%", like_escape(r)));
    }
    if let Some(k) = &filter.kind {
        cond("kind =", k.clone());
    }
    let wher = conds.join(" AND ");
    let count_sql = format!("SELECT COUNT(*) AS n FROM notices WHERE {wher}");
    let mut count = sqlx::query(&count_sql);
    for b in &binds {
        count = count.bind(b);
    }
    let total: i64 = count
        .fetch_one(&store.pool)
        .await
        .map_err(err)?
        .try_get("n")
        .map_err(err)?;
    let n = binds.len();
    let page_sql = format!(
        "SELECT * FROM notices WHERE {wher} ORDER BY moment DESC, notice_id LIMIT ${} OFFSET ${}",
        n + 1,
        n + 2
    );
    let mut page = sqlx::query(&page_sql);
    for b in &binds {
        page = page.bind(b);
    }
    let rows = page
        .bind(limit)
        .bind(offset)
        .fetch_all(&store.pool)
        .await
        .map_err(err)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let notice = outbox::notice_from(row).map_err(err)?;
        let deliveries = sqlx::query(
            "SELECT channel, attempts, delivered_at, last_error FROM notice_deliveries WHERE notice_id = $1 ORDER BY channel",
        )
        .bind(notice.notice_id.to_string())
        .fetch_all(&store.pool)
        .await
        .map_err(err)?
        .iter()
        .map(|d| {
            Ok(Delivery {
                channel: d.try_get("channel")?,
                attempts: d.try_get("attempts")?,
                delivered_at: d
                    .try_get::<Option<String>, _>("delivered_at")?
                    .as_deref()
                    .and_then(parse_ts),
                last_error: d.try_get("last_error")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(err)?;
        out.push(NoticeLine { notice, deliveries });
    }
    Ok((total, out))
}
