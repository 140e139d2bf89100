//! The server's hold on the log and the views: it brings them up to date itself (after each
//! accepted write and periodically), one catch-up at a time, and measures the lag.

use assist_ingest::Recorder;
use assist_log::ProjectionLog;
use assist_projections::sla::Rules;
use assist_projections::{RunStats, Runner, Store};

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
    /// Records the active views have taken.
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
        }
    }

    /// Projects what the log has beyond the active generation's checkpoints.
    pub async fn catch_up(&self) -> Result<RunStats, ViewsError> {
        let _one_at_a_time = self.projecting.lock().await;
        let gen = self.store.active_gen().await?;
        let log: &dyn ProjectionLog = self.recorder.log().as_ref();
        let runner = Runner {
            log,
            store: &self.store,
            rules: &self.rules,
            batch: self.batch,
            memory: Default::default(),
        };
        Ok(runner.catch_up(gen, |_| {}).await?)
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
            stats.records += runner.catch_up(gen, |_| {}).await?.records;
            self.store.swap_in(gen).await?
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

    /// The projection's lag behind the log.
    pub async fn lag(&self) -> Result<Lag, ViewsError> {
        let records = self.recorder.log().record_count().await?;
        let gen = self.store.active_gen().await?;
        let projected = self.store.projected_records(gen).await?;
        Ok(Lag { records, projected })
    }
}
