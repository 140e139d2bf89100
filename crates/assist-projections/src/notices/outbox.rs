//! Delivery of recorded notices: one outbox row per notice and channel, sent until the
//! receiver takes it, with backoff. A notice is sent before its delivery is recorded, so a
//! crash in between sends it again with the same id: receivers drop what they have seen.

use super::Notice;
use crate::store::{parse_ts, ts, Store, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use sqlx::any::AnyRow;
use sqlx::Row;

/// Deliveries tried per round.
const DELIVERY_PAGE: i64 = 100;

/// Where notices go: a webhook, a Kafka topic.
#[async_trait]
pub trait Channel: Send + Sync {
    /// Its name in the outbox (`webhook`, `kafka`).
    fn name(&self) -> &str;
    /// Sends one notice; `Err` with a short reason (no personal data) when the receiver
    /// did not take it.
    async fn send(&self, notice: &Notice) -> Result<(), String>;
}

/// What one delivery round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryStats {
    /// Deliveries the receiver took.
    pub delivered: u64,
    /// Attempts that failed (each retried later).
    pub failed: u64,
}

/// The wait before attempt `attempts + 1` after `attempts` failures: 30 s, doubling, at most
/// an hour. A receiver that is down delays its notices; none is dropped.
pub fn retry_after(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(7);
    Duration::seconds(30 * (1i64 << doublings)).min(Duration::hours(1))
}

/// The outbox of one store, sending through `channels`.
pub struct Outbox<'a> {
    /// The store holding notices and deliveries.
    pub store: &'a Store,
    /// The channels; a delivery whose channel is not among them waits.
    pub channels: &'a [Box<dyn Channel>],
}

impl Outbox<'_> {
    /// Sends every delivery due by `now`, oldest first, and records each outcome.
    pub async fn deliver_due(&self, now: DateTime<Utc>) -> Result<DeliveryStats, StoreError> {
        let err = |e| self.store.err(e);
        let mut stats = DeliveryStats::default();
        let names: Vec<&str> = self.channels.iter().map(|c| c.name()).collect();
        if names.is_empty() {
            return Ok(stats);
        }
        let list = names
            .iter()
            .map(|n| format!("'{}'", n.replace('\'', "")))
            .collect::<Vec<_>>()
            .join(", ");
        let rows: Vec<AnyRow> = sqlx::query(&format!(
            "SELECT d.channel, d.attempts, n.* FROM notice_deliveries d JOIN notices n ON n.notice_id = d.notice_id \
             WHERE d.delivered_at IS NULL AND d.next_attempt_at <= $1 AND d.channel IN ({list}) \
             ORDER BY d.next_attempt_at, n.moment, n.notice_id LIMIT {DELIVERY_PAGE}"
        ))
        .bind(ts(now))
        .fetch_all(&self.store.pool)
        .await
        .map_err(err)?;
        for row in &rows {
            let channel: String = row.try_get("channel").map_err(err)?;
            let attempts: i64 = row.try_get("attempts").map_err(err)?;
            let notice = notice_from(row).map_err(err)?;
            let Some(c) = self.channels.iter().find(|c| c.name() == channel) else {
                continue;
            };
            let id = notice.notice_id.to_string();
            match c.send(&notice).await {
                Ok(()) => {
                    sqlx::query(
                        "UPDATE notice_deliveries SET delivered_at = $1, attempts = attempts + 1, last_error = NULL WHERE notice_id = $2 AND channel = $3",
                    )
                    .bind(ts(now))
                    .bind(&id)
                    .bind(&channel)
                    .execute(&self.store.pool)
                    .await
                    .map_err(err)?;
                    stats.delivered += 1;
                }
                Err(reason) => {
                    let tried = u32::try_from(attempts + 1).unwrap_or(u32::MAX);
                    tracing::warn!(%channel, notice = %id, attempts = tried, %reason, "a notice was not delivered; it is retried");
                    sqlx::query(
                        "UPDATE notice_deliveries SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2 WHERE notice_id = $3 AND channel = $4",
                    )
                    .bind(ts(now + retry_after(tried)))
                    .bind(reason.chars().take(200).collect::<String>())
                    .bind(&id)
                    .bind(&channel)
                    .execute(&self.store.pool)
                    .await
                    .map_err(err)?;
                    stats.failed += 1;
                }
            }
        }
        Ok(stats)
    }

    /// When the next delivery is due, if one waits.
    pub async fn next_attempt(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let min: Option<String> = sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM notice_deliveries WHERE delivered_at IS NULL",
        )
        .fetch_one(&self.store.pool)
        .await
        .map_err(|e| self.store.err(e))?;
        Ok(min.as_deref().and_then(parse_ts))
    }
}

/// Reads a notice row.
pub(crate) fn notice_from(row: &AnyRow) -> Result<Notice, sqlx::Error> {
    let text = |col: &str| -> Result<String, sqlx::Error> { row.try_get(col) };
    let time = |col: &str| -> Result<DateTime<Utc>, sqlx::Error> {
        let s = text(col)?;
        parse_ts(&s).ok_or_else(|| sqlx::Error::Decode(format!("{col} is not a timestamp").into()))
    };
    Ok(Notice {
        notice_id: uuid::Uuid::parse_str(&text("notice_id")?)
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        kind: text("kind")?,
        audience: text("audience")?,
        recipient: text("recipient")?,
        clock_id: text("clock_id")?,
        subject: text("subject")?,
        policy: text("policy")?,
        step: text("step")?,
        region: text("region")?,
        caseworker: text("caseworker")?,
        deadline: time("deadline")?,
        moment: time("moment")?,
        created_at: time("created_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_thirty_seconds_then_twice_as_long_each_time_up_to_an_hour() {
        let waits: Vec<i64> = (1..=9).map(|a| retry_after(a).num_seconds()).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(retry_after(u32::MAX), Duration::hours(1));
    }
}
