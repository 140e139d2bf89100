//! The SLA timer: keeps an index of open clocks by the moment of their next notice
//! (`notice_schedule`), follows the log to learn which subjects' clocks changed, and
//! records each notice that came due, once, with one outbox row per delivery channel.
//!
//! It reads the time only from its caller ([`Timer::tick`] takes `now`), so tests move time
//! forward themselves and a restarted timer catches up on everything that came due while
//! it was down: the schedule and the notices are in the store, not in memory.

use super::rules::NoticeRules;
use super::schedule::{next_notice, notice_id, recipient, Kind, Planned};
use super::Notice;
use crate::runner::{checkpoint, clock_from};
use crate::sla::{Clock, Rules};
use crate::store::{parse_ts, ts, Store, StoreError};
use assist_log::PartitionReader;
use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use std::collections::BTreeSet;

/// Records read from the log per step of following it.
const FOLLOW_BATCH: usize = 1000;
/// Clocks scanned per transaction when the schedule is made again from a generation.
const SCAN_PAGE: i64 = 2000;
/// Due schedule rows handled per transaction.
const FIRE_PAGE: i64 = 200;

/// Why the timer could not do its round.
#[derive(Debug, thiserror::Error)]
pub enum TimerError {
    /// The view store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The log could not be read.
    #[error("reading the log: {0}")]
    Log(#[from] assist_log::LogError),
}

/// What one round of the timer did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TickStats {
    /// Subjects whose clocks were looked at again (their facts changed).
    pub subjects: u64,
    /// Notices that came due and were recorded.
    pub notices: u64,
    /// Whether the schedule was made afresh from the active view generation (first run,
    /// or after a rebuild swapped a new generation in).
    pub rescheduled: bool,
}

/// The timer over one view store and its log.
pub struct Timer<'a> {
    /// The log, to learn which subjects changed.
    pub log: &'a dyn PartitionReader,
    /// The views (clocks) and the timer's own tables.
    pub store: &'a Store,
    /// The SLA rules (their calendar measures pauses).
    pub rules: &'a Rules,
    /// Who is told what, and when.
    pub notices: &'a NoticeRules,
    /// The delivery channels each new notice gets an outbox row for (`webhook`, `kafka`).
    pub channels: &'a [String],
}

impl Timer<'_> {
    /// One round at time `now`: brings the schedule up to the views, then records every
    /// notice due by `now` (each once: its id comes from its clock and kind).
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<TickStats, TimerError> {
        let gen = self.store.active_gen().await?;
        let mut stats = TickStats::default();
        let scheduled_from: Option<i64> =
            sqlx::query_scalar("SELECT gen FROM notice_timer WHERE id = 1")
                .fetch_optional(&self.store.pool)
                .await
                .map_err(|e| self.store.err(e))?;
        if scheduled_from != Some(gen) {
            self.reschedule_all(gen).await?;
            stats.rescheduled = true;
        }
        self.follow(gen, &mut stats).await?;
        self.fire(gen, now, &mut stats).await?;
        Ok(stats)
    }

    /// The earliest moment a notice is due, if any clock has one coming: when to wake.
    pub async fn next_moment(&self) -> Result<Option<DateTime<Utc>>, TimerError> {
        let min: Option<String> = sqlx::query_scalar("SELECT MIN(fire_at) FROM notice_schedule")
            .fetch_one(&self.store.pool)
            .await
            .map_err(|e| self.store.err(e))?;
        Ok(min.as_deref().and_then(parse_ts))
    }

    /// Makes the schedule again from every open clock of generation `gen`. The views'
    /// checkpoints are taken first: what is projected during the scan is followed after
    /// it. The generation is recorded last, so a scan cut short is started over.
    async fn reschedule_all(&self, gen: i64) -> Result<(), TimerError> {
        let err = |e| self.store.err(e);
        let mut ends = Vec::new();
        for p in 0..self.log.partition_count() {
            ends.push((p, checkpoint(self.store, gen, p).await?.0));
        }
        sqlx::query("DELETE FROM notice_schedule")
            .execute(&self.store.pool)
            .await
            .map_err(err)?;
        let mut after = String::new();
        loop {
            let rows: Vec<AnyRow> = sqlx::query(&format!(
                "SELECT * FROM clocks WHERE gen = {gen} AND is_open = 1 AND clock_id > $1 ORDER BY clock_id LIMIT {SCAN_PAGE}"
            ))
            .bind(&after)
            .fetch_all(&self.store.pool)
            .await
            .map_err(err)?;
            let Some(last) = rows.last() else { break };
            after = last.try_get("clock_id").map_err(err)?;
            let mut tx = self.store.pool.begin().await.map_err(err)?;
            for row in &rows {
                let clock = clock_from(row).map_err(err)?;
                self.schedule(&mut tx, &clock).await?;
            }
            tx.commit().await.map_err(err)?;
        }
        let mut tx = self.store.pool.begin().await.map_err(err)?;
        sqlx::query("DELETE FROM notice_checkpoints")
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        for (p, next) in ends {
            sqlx::query("INSERT INTO notice_checkpoints (part, next_offset) VALUES ($1, $2)")
                .bind(i64::from(p))
                .bind(next as i64)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        sqlx::query("DELETE FROM notice_timer")
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        sqlx::query("INSERT INTO notice_timer (id, gen) VALUES (1, $1)")
            .bind(gen)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(())
    }

    /// Follows each partition of the log from the timer's checkpoint up to the views'
    /// (no further: the clocks of later records are not projected yet), and schedules the
    /// clocks of every subject it meets again, in one transaction with the checkpoint.
    async fn follow(&self, gen: i64, stats: &mut TickStats) -> Result<(), TimerError> {
        let err = |e| self.store.err(e);
        for p in 0..self.log.partition_count() {
            let end = checkpoint(self.store, gen, p).await?.0;
            let mut from: u64 = sqlx::query_scalar::<_, i64>(
                "SELECT next_offset FROM notice_checkpoints WHERE part = $1",
            )
            .bind(i64::from(p))
            .fetch_optional(&self.store.pool)
            .await
            .map_err(err)?
            .map_or(0, |n| n.max(0) as u64);
            while from < end {
                let want = FOLLOW_BATCH.min((end - from) as usize);
                let records = self.log.read_partition(p, from, want).await?;
                let records: Vec<_> = records
                    .into_iter()
                    .filter(|r| r.position.offset < end)
                    .collect();
                let Some(last) = records.last().map(|r| r.position.offset) else {
                    break;
                };
                let subjects: BTreeSet<&str> = records.iter().map(|r| r.stream.as_str()).collect();
                let mut tx = self.store.pool.begin().await.map_err(err)?;
                for subject in &subjects {
                    self.schedule_subject(&mut tx, gen, subject).await?;
                }
                upsert_checkpoint(&mut tx, p, last + 1).await.map_err(err)?;
                tx.commit().await.map_err(err)?;
                stats.subjects += subjects.len() as u64;
                from = last + 1;
            }
        }
        Ok(())
    }

    /// Schedules the open clocks of `subject` again (its facts changed).
    async fn schedule_subject(
        &self,
        tx: &mut Transaction<'static, Any>,
        gen: i64,
        subject: &str,
    ) -> Result<(), TimerError> {
        let err = |e| self.store.err(e);
        sqlx::query("DELETE FROM notice_schedule WHERE subject = $1")
            .bind(subject)
            .execute(&mut **tx)
            .await
            .map_err(err)?;
        let rows: Vec<AnyRow> = sqlx::query(&format!(
            "SELECT * FROM clocks WHERE gen = {gen} AND subject = $1 AND is_open = 1"
        ))
        .bind(subject)
        .fetch_all(&mut **tx)
        .await
        .map_err(err)?;
        for row in &rows {
            let clock = clock_from(row).map_err(err)?;
            self.schedule(tx, &clock).await?;
        }
        Ok(())
    }

    /// Writes (or removes) the schedule row of one clock: its next notice not yet sent.
    async fn schedule(
        &self,
        tx: &mut Transaction<'static, Any>,
        clock: &Clock,
    ) -> Result<Option<Planned>, TimerError> {
        let err = |e| self.store.err(e);
        let Some(rule) = self.notices.of(&clock.policy) else {
            return Ok(None);
        };
        let sent = sent_kinds(tx, &clock.clock_id).await.map_err(err)?;
        let plan = next_notice(clock, rule, &self.rules.calendar, &sent);
        write_schedule(tx, clock, plan).await.map_err(err)?;
        Ok(plan)
    }

    /// Records every notice due by `now`, and moves each clock's row to its next notice.
    async fn fire(
        &self,
        gen: i64,
        now: DateTime<Utc>,
        stats: &mut TickStats,
    ) -> Result<(), TimerError> {
        let err = |e| self.store.err(e);
        loop {
            let due: Vec<String> = sqlx::query_scalar(&format!(
                "SELECT clock_id FROM notice_schedule WHERE fire_at <= $1 ORDER BY fire_at, clock_id LIMIT {FIRE_PAGE}"
            ))
            .bind(ts(now))
            .fetch_all(&self.store.pool)
            .await
            .map_err(err)?;
            if due.is_empty() {
                return Ok(());
            }
            let mut tx = self.store.pool.begin().await.map_err(err)?;
            for clock_id in &due {
                let row: Option<AnyRow> = sqlx::query(&format!(
                    "SELECT * FROM clocks WHERE gen = {gen} AND clock_id = $1"
                ))
                .bind(clock_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(err)?;
                let clock = row
                    .as_ref()
                    .map(|r| clock_from(r))
                    .transpose()
                    .map_err(err)?;
                let rule = clock.as_ref().and_then(|c| self.notices.of(&c.policy));
                let (Some(clock), Some(rule)) = (clock, rule) else {
                    sqlx::query("DELETE FROM notice_schedule WHERE clock_id = $1")
                        .bind(clock_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                    continue;
                };
                let mut sent = sent_kinds(&mut tx, clock_id).await.map_err(err)?;
                loop {
                    let plan = next_notice(&clock, rule, &self.rules.calendar, &sent);
                    match plan {
                        Some(p) if p.moment <= now => {
                            let (audience, to) = recipient(&clock, rule, p.kind);
                            let notice = Notice {
                                notice_id: notice_id(&clock.clock_id, p.kind),
                                kind: p.kind.name(),
                                audience: audience.into(),
                                recipient: to,
                                clock_id: clock.clock_id.clone(),
                                subject: clock.subject.clone(),
                                policy: clock.policy.clone(),
                                step: clock.step.clone(),
                                region: clock.region.clone(),
                                caseworker: clock.caseworker.clone(),
                                deadline: p.deadline,
                                moment: p.moment,
                                created_at: now,
                            };
                            if insert_notice(&mut tx, &notice, self.channels, now)
                                .await
                                .map_err(err)?
                            {
                                stats.notices += 1;
                            }
                            sent.push(p.kind);
                        }
                        later => {
                            write_schedule(&mut tx, &clock, later).await.map_err(err)?;
                            break;
                        }
                    }
                }
            }
            tx.commit().await.map_err(err)?;
        }
    }
}

/// The kinds of notice clock `clock_id` has had.
async fn sent_kinds(
    tx: &mut Transaction<'static, Any>,
    clock_id: &str,
) -> Result<Vec<Kind>, sqlx::Error> {
    let names: Vec<String> = sqlx::query_scalar("SELECT kind FROM notices WHERE clock_id = $1")
        .bind(clock_id)
        .fetch_all(&mut **tx)
        .await?;
    Ok(names.iter().filter_map(|n| Kind::parse(n)).collect())
}

async fn write_schedule(
    tx: &mut Transaction<'static, Any>,
    clock: &Clock,
    plan: Option<Planned>,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM notice_schedule WHERE clock_id = $1")
        .bind(&clock.clock_id)
        .execute(&mut **tx)
        .await?;
    if let Some(p) = plan {
        sqlx::query(
            "INSERT INTO notice_schedule (clock_id, subject, kind, fire_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&clock.clock_id)
        .bind(&clock.subject)
        .bind(p.kind.name())
        .bind(ts(p.moment))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn upsert_checkpoint(
    tx: &mut Transaction<'static, Any>,
    part: u32,
    next: u64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO notice_checkpoints (part, next_offset) VALUES ($1, $2) ON CONFLICT (part) DO UPDATE SET next_offset = excluded.next_offset",
    )
    .bind(i64::from(part))
    .bind(next as i64)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Records a notice and its outbox rows; `false` when it was recorded before (by another
/// timer, or before a crash).
async fn insert_notice(
    tx: &mut Transaction<'static, Any>,
    n: &Notice,
    channels: &[String],
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let id = n.notice_id.to_string();
    let done = sqlx::query(
        "INSERT INTO notices (notice_id, clock_id, subject, policy, step, kind, audience, recipient, region, caseworker, deadline, moment, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (notice_id) DO NOTHING",
    )
    .bind(&id)
    .bind(&n.clock_id)
    .bind(&n.subject)
    .bind(&n.policy)
    .bind(&n.step)
    .bind(&n.kind)
    .bind(&n.audience)
    .bind(&n.recipient)
    .bind(&n.region)
    .bind(&n.caseworker)
    .bind(ts(n.deadline))
    .bind(ts(n.moment))
    .bind(ts(n.created_at))
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    for channel in channels {
        sqlx::query(
            "INSERT INTO notice_deliveries (notice_id, channel, attempts, next_attempt_at) VALUES ($1, $2, 0, $3) ON CONFLICT (notice_id, channel) DO NOTHING",
        )
        .bind(&id)
        .bind(channel)
        .bind(ts(now))
        .execute(&mut **tx)
        .await?;
    }
    Ok(true)
}
