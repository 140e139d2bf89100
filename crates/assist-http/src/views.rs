//! The server's hold on the log and the views: it brings them up to date itself (woken by
//! each accepted write, and periodically), one catch-up at a time, and measures the lag.
//! A write is answered once it is in the log; a read first makes the views hold what the
//! log held when the read came ([`Views::fresh`]), so a read after a write's answer sees it.

use assist_ingest::Recorder;
use assist_log::ProjectionLog;
use assist_projections::sla::Rules;
use assist_projections::{RunStats, Runner, Store};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The log (with its key table), the view store and the SLA rules.
pub struct Views {
    /// Appends and reads the log, seals and opens personal fields.
    pub recorder: Recorder,
    /// The views.
    pub store: Store,
    /// The SLA policies and the calendar.
    pub rules: Rules,
    /// Events per projection transaction.
    pub batch: usize,
    projecting: tokio::sync::Mutex<()>,
    rebuilding: tokio::sync::Mutex<()>,
    /// The log's record count when the last finished catch-up began: the active views
    /// hold at least that many records.
    caught_up_to: AtomicU64,
    /// Wakes the background projector: the log grew through this server.
    wake: tokio::sync::Notify,
}

/// What a rebuild did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebuilt {
    /// The generation built and swapped in.
    pub generation: i64,
    /// Log records projected into it.
    pub records: u64,
    /// The generation it replaced, now dropped.
    pub dropped: Option<i64>,
}

/// Why the views could not be brought up to date or measured.
#[derive(Debug, thiserror::Error)]
pub enum ViewsError {
    /// The projection failed (it resumes from its checkpoint next time).
    #[error(transparent)]
    Projection(#[from] assist_projections::ProjectionError),
    /// The view store failed.
    #[error(transparent)]
    Store(#[from] assist_projections::StoreError),
    /// The log failed.
    #[error(transparent)]
    Log(#[from] assist_log::LogError),
}

/// How far the views are behind the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lag {
    /// Records in the log.
    pub records: u64,
    /// Records the active views have taken, in catch-ups that have finished.
    pub projected: u64,
}

impl Lag {
    /// Records not projected yet.
    pub fn behind(&self) -> u64 {
        self.records.saturating_sub(self.projected)
    }
}

impl Views {
    /// The server's views over a recorder, a store and rules.
    pub fn new(recorder: Recorder, store: Store, rules: Rules, batch: usize) -> Self {
        Self {
            recorder,
            store,
            rules,
            batch,
            projecting: tokio::sync::Mutex::new(()),
            rebuilding: tokio::sync::Mutex::new(()),
            caught_up_to: AtomicU64::new(0),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// Projects what the log has beyond the active generation's checkpoints.
    pub async fn catch_up(&self) -> Result<RunStats, ViewsError> {
        let _one_at_a_time = self.projecting.lock().await;
        self.catch_up_holding_the_lock().await
    }

    /// Makes the active views hold at least every record the log held when called. Reads
    /// waiting at once share one catch-up: each one after the first finds it done.
    pub async fn fresh(&self) -> Result<(), ViewsError> {
        let wanted = self.recorder.log().record_count().await?;
        if self.caught_up_to.load(Ordering::SeqCst) >= wanted {
            return Ok(());
        }
        let _one_at_a_time = self.projecting.lock().await;
        if self.caught_up_to.load(Ordering::SeqCst) >= wanted {
            return Ok(());
        }
        self.catch_up_holding_the_lock().await.map(|_| ())
    }

    /// Wakes the background projector: a write was stored.
    pub fn nudge(&self) {
        self.wake.notify_one();
    }

    /// Waits until a write wakes the projector, or `at_most` has passed.
    pub async fn wait_for_writes(&self, at_most: Duration) {
        let _ = tokio::time::timeout(at_most, self.wake.notified()).await;
    }

    async fn catch_up_holding_the_lock(&self) -> Result<RunStats, ViewsError> {
        let records = self.recorder.log().record_count().await?;
        let gen = self.store.live_gen().await?;
        let log: &dyn ProjectionLog = self.recorder.log().as_ref();
        let runner = Runner {
            log,
            store: &self.store,
            rules: &self.rules,
            batch: self.batch,
            memory: Default::default(),
        };
        let stats = runner.catch_up(gen, |_| {}).await?;
        self.caught_up_to.fetch_max(records, Ordering::SeqCst);
        Ok(stats)
    }

    /// Builds every view again from offset 0 into a new generation, swaps it in once caught
    /// up and drops the old one, as `assist rebuild` does; queries read the old generation
    /// meanwhile. One rebuild at a time; the catch-ups of writes go on beside it.
    pub async fn rebuild(&self) -> Result<Rebuilt, ViewsError> {
        let _one_at_a_time = self.rebuilding.lock().await;
        let gen = self.store.begin_rebuild().await?;
        let log: &dyn ProjectionLog = self.recorder.log().as_ref();
        let runner = Runner {
            log,
            store: &self.store,
            rules: &self.rules,
            batch: self.batch,
            memory: Default::default(),
        };
        // Twice: events appended during the first pass are taken before the swap.
        let mut stats = runner.catch_up(gen, |_| {}).await?;
        stats.records += runner.catch_up(gen, |_| {}).await?.records;
        let old = {
            // No catch-up of the old generation may commit across the swap.
            let _no_catch_up = self.projecting.lock().await;
            let records = self.recorder.log().record_count().await?;
            stats.records += runner.catch_up(gen, |_| {}).await?.records;
            let old = self.store.swap_in(gen).await?;
            self.caught_up_to.fetch_max(records, Ordering::SeqCst);
            old
        };
        if let Some(old) = old {
            self.store.drop_generation(old).await?;
        }
        Ok(Rebuilt {
            generation: gen,
            records: stats.records,
            dropped: old,
        })
    }

    /// The projection's lag behind the log: records count as projected once a catch-up of
    /// this server's has finished with them, the SLA counts' base included (a batch's
    /// checkpoint alone comes before that base, which a summary reads).
    pub async fn lag(&self) -> Result<Lag, ViewsError> {
        let records = self.recorder.log().record_count().await?;
        let gen = self.store.active_gen().await?;
        let projected = self.store.projected_records(gen).await?;
        let finished = self.caught_up_to.load(Ordering::SeqCst);
        Ok(Lag {
            records,
            projected: projected.min(finished),
        })
    }
}
