//! The projection runner: reads each partition of the log in batches, folds the events
//! into the views, and commits the rows and that partition's checkpoint in one SQL
//! transaction, so a crash at any point neither loses nor doubles an effect.

use crate::audit::{chain_hash, finding, next_digest};
use crate::batch::{BatchTx, Checkpoint, Conflict, Table, WriteError, CHECKPOINT_SQL};
use crate::caseload::{self, next_deadline, Case, NextDeadline, Stage};
use crate::sla::{Calendar, Clock, Rules};
use crate::store::{parse_ts, ts, Cols, Store, StoreError, Val};
use crate::subject::{fold_key, fold_key_text, parse_fold_key, FoldKey};
use assist_catalog::{decode, decode_wire_event, Event, EventData, Form, StreamId, WireEvent};
use assist_log::{LogError, ProjectionLog, Record};
use sqlx::Row;
use std::collections::{HashMap, HashSet, VecDeque};

mod fold;
mod rows;
mod write;

pub use fold::rule_findings;
use fold::*;
use rows::*;
pub(crate) use rows::{case_from, clock_from};
use write::*;

/// Why projecting stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The log could not be read.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A thread or task of the runner stopped (a panic or a shut-down runtime).
    #[error("the projection's {0}")]
    Stopped(String),
}

/// Folds the log into one generation of the views.
pub struct Runner<'a> {
    /// The log to read.
    pub log: &'a dyn ProjectionLog,
    /// The views.
    pub store: &'a Store,
    /// SLA policies and calendar.
    pub rules: &'a Rules,
    /// Events per batch (and per transaction).
    pub batch: usize,
    /// How much the runner remembers of a partition before it forgets and reads rows.
    pub memory: MemoryLimits,
}

/// How many subjects and event ids a runner keeps in memory per partition before it
/// forgets them and reads rows again (about 1 KiB a subject, 32 B an id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLimits {
    /// Subjects (case, open clocks, chain head).
    pub subjects: usize,
    /// Event ids applied.
    pub ids: usize,
}

impl Default for MemoryLimits {
    fn default() -> Self {
        MemoryLimits {
            subjects: 2_000_000,
            ids: 20_000_000,
        }
    }
}

/// What one catch-up did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RunStats {
    /// Records read and committed.
    pub records: u64,
    /// Of those, events applied.
    pub applied: u64,
    /// Of those, event ids applied before (skipped).
    pub duplicates: u64,
    /// Of those, records sent to the dead-letter table.
    pub dead_letters: u64,
    /// Records committed before whose partition was started over (a partition of a build
    /// whose run stopped before its end, or whose memory proved wrong: its rows deleted):
    /// they are projected, and counted in `records`, again.
    pub redone: u64,
}

/// Decodes a stored record into an event, or says why it cannot be projected.
pub fn decode_record(r: &Record) -> Result<Event, String> {
    // Straight from the bytes when the event is valid at its current version (almost
    // always); else the precise path, which upcasts and says what is wrong.
    let event = match assist_catalog::decode_stored(&r.payload) {
        Some(event) => event,
        None => decode_precisely(&r.payload)?,
    };
    if !event.meta.stream.is_named(&r.stream) {
        return Err(format!(
            "keyed as {} but the event is on {}",
            r.stream, event.meta.stream
        ));
    }
    Ok(event)
}

/// Every decodable fact of the log, partition by partition, each id once (a Kafka log may
/// hold a repeat): what the as-of caseload and the what-if fold (in fold order, whatever
/// order this is).
pub async fn read_facts(log: &dyn assist_log::PartitionReader) -> Result<Vec<Event>, LogError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for p in 0..log.partition_count() {
        let mut from = 0;
        loop {
            let page = log.read_partition(p, from, 10_000).await?;
            let Some(last) = page.last() else { break };
            from = last.position.offset + 1;
            out.extend(
                page.iter()
                    .filter_map(|r| decode_record(r).ok())
                    .filter(|e| seen.insert(e.meta.event_id)),
            );
        }
    }
    Ok(out)
}

/// A stored record that the fast path did not take: through the wire form when it reads as
/// one, else through a JSON value, which names precisely what is wrong.
fn decode_precisely(payload: &[u8]) -> Result<Event, String> {
    // serde would also read the struct from an array of its fields: objects only.
    let object = payload.trim_ascii_start().first() == Some(&b'{');
    match object.then(|| serde_json::from_slice::<WireEvent>(payload)) {
        Some(Ok(wire)) => decode_wire_event(wire, Form::Stored).map_err(|e| e.to_string()),
        _ => {
            let value: serde_json::Value =
                serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
            decode(value, Form::Stored)
                .map(|d| d.event)
                .map_err(|e| e.to_string())
        }
    }
}

/// What a runner remembers of one partition between its batches, so that it need not read
/// back the rows it wrote itself. It is trusted only under its token: while the partition's
/// checkpoint row still carries it, which the transaction writing the next batch checks.
/// Another runner's commit, a rewind or a rebuild changes the row's token, and the runner
/// reads the rows again.
struct Memory {
    /// Drawn at random when the memory starts; every checkpoint it commits carries it.
    token: String,
    /// The token the checkpoint row must carry for the next batch folded from this memory
    /// to be written: the row's when the memory started, then its own.
    expects: String,
    /// The checkpoint this memory belongs to.
    next_offset: u64,
    /// This runner projected the partition from offset 0: every subject of it, and every
    /// event id applied from it, is here. A subject not here is new unless it has rows from
    /// another partition (checked once per subject); an id not here is new unless the audit
    /// table's unique key says otherwise.
    complete: bool,
    /// Subjects as they stand after `next_offset`.
    subjects: HashMap<StreamId, SubjectState>,
    /// Event ids applied from the partition (kept only while `complete`).
    seen: HashSet<uuid::Uuid>,
    /// The partition's digest after `next_offset`.
    digest: String,
    /// The subjects' rows (cases, open clocks, chain heads) are not written batch by batch
    /// but once, when the partition is caught up ([`flush`]): for a generation nobody
    /// reads yet, projected from offset 0. The memory holds what the rows will.
    deferring: bool,
}

/// Times in a row a careful batch is redone after another runner committed one of its
/// rows first (each redo reads that row): more means something else is wrong.
const CAREFUL_REDOS: u32 = 5;

/// Events in the first batch a catch-up reads, at most: the write of a batch overlaps the
/// fold of the next, so a small first batch starts the writing sooner (with a full-size
/// one, one core waited for the whole first fold).
const FIRST_BATCH: usize = 4_096;

impl Memory {
    /// The checkpoint row a batch folded from this memory commits, and the token the
    /// stored row must carry for it to be written; the next batch expects this one's.
    fn checkpoint(&mut self, gen: i64, partition: u32) -> (Vec<Vec<Val>>, String) {
        let row = vec![checkpoint_row(gen, partition, self)];
        let expects = std::mem::replace(&mut self.expects, self.token.clone());
        (row, expects)
    }

    fn new(next_offset: u64, complete: bool) -> Memory {
        Memory {
            token: uuid::Uuid::new_v4().simple().to_string(),
            expects: String::new(),
            next_offset,
            complete,
            subjects: HashMap::new(),
            seen: HashSet::new(),
            digest: String::new(),
            deferring: false,
        }
    }
}

/// A subject as it stood before a batch: which of its rows existed, and its open clocks
/// (not taken while its rows are deferred: they are all written once, as new rows).
#[derive(Default)]
struct Before {
    clocks: Vec<Clock>,
    case: bool,
    chain: bool,
}

/// One subject as its rows stand: its case, its open clocks, the head of its chain, and
/// the greatest fold key applied.
#[derive(Clone, Default)]
struct SubjectState {
    case: Option<Case>,
    clocks: Vec<Clock>,
    chain: (i64, String),
    /// The greatest [`FoldKey`] applied; an event below it arrived late and makes the
    /// subject fold again. For rows projected before fold keys were stored, the greatest
    /// key there is: their next fact folds them again, in occurred order.
    last: Option<FoldKey>,
    /// The offsets (in this partition) of the events applied, kept while the memory is
    /// complete: a fold from memory reads them back when a late fact arrives.
    offsets: Vec<u64>,
}

/// The fold key of a subject whose rows were projected before fold keys were stored: the
/// greatest there is, so that any fact folds it again.
const UNKNOWN_FOLD_KEY: FoldKey = (
    chrono::DateTime::<chrono::Utc>::MAX_UTC,
    chrono::DateTime::<chrono::Utc>::MAX_UTC,
    uuid::Uuid::max(),
);

/// What a subject with a late fact is folded again from: the events applied to it before
/// the batch, and the clock rows they made (`None`: their fold says which).
struct History {
    events: Vec<Event>,
    clock_ids: Option<Vec<String>>,
}

/// Why one batch was not committed.
enum BatchError {
    /// The batch failed.
    Failed(ProjectionError),
    /// What the fold took from memory proved wrong (the reason): the batch is redone
    /// reading the rows.
    Wrong(&'static str),
}

impl BatchError {
    /// As an error of the catch-up, where a step outside a batch's fold cannot be redone:
    /// a proof that the memory was wrong there stops it.
    fn into_error(self) -> ProjectionError {
        match self {
            BatchError::Failed(e) => e,
            BatchError::Wrong(why) => ProjectionError::Stopped(why.into()),
        }
    }
}

impl From<StoreError> for BatchError {
    fn from(e: StoreError) -> Self {
        BatchError::Failed(e.into())
    }
}

impl Runner<'_> {
    /// Brings generation `gen` up to the log's current end; `on_batch` hears of every
    /// committed batch with its number of records.
    pub async fn catch_up(
        &self,
        gen: i64,
        on_batch: impl FnMut(u64),
    ) -> Result<RunStats, ProjectionError> {
        let all: Vec<u32> = (0..self.log.partition_count()).collect();
        self.catch_up_partitions(gen, &all, on_batch).await
    }

    /// Brings the given partitions of generation `gen` up to the log's end: what a worker
    /// owning some partitions of a consumer group does.
    ///
    /// A live generation (one queries read) takes one path: each partition is projected
    /// from its checkpoint one batch at a time, each in one transaction with its
    /// checkpoint ([`Runner::project_carefully`]). A generation nobody reads yet (a
    /// rebuild, or a store's first build) takes the rebuild's path
    /// ([`Runner::project_from_memory`]): each partition from offset 0 with the runner's
    /// memory alone, its subjects' rows written once at its end, a batch folded on a
    /// blocking thread while the next is read and the write stage ([`WriteStage`]) writes
    /// the ones before in order. A rebuild's write checks in its transaction what its fold
    /// assumed (nobody else committed since, the generation is still unread, its new
    /// subjects have no rows, its ids are new); where a check fails (facts that cross
    /// partitions), nothing folded after it in its partition is written, and the partition
    /// goes on as a live one does, from its checkpoint (from offset 0 when its subjects'
    /// rows were deferred: see [`Memory::deferring`]). The generation's secondary indexes
    /// are built by the first careful batch that needs them, or once every partition is
    /// caught up.
    pub async fn catch_up_partitions(
        &self,
        gen: i64,
        partitions: &[u32],
        on_batch: impl FnMut(u64),
    ) -> Result<RunStats, ProjectionError> {
        let mut stats = RunStats::default();
        self.catch_up_counting(gen, partitions, &mut stats, on_batch)
            .await?;
        Ok(stats)
    }

    /// As [`Runner::catch_up_partitions`], adding to `stats` as each write commits: a run
    /// that fails keeps the count of what it did commit (for a caller that retries).
    pub async fn catch_up_counting(
        &self,
        gen: i64,
        partitions: &[u32],
        stats: &mut RunStats,
        on_batch: impl FnMut(u64),
    ) -> Result<(), ProjectionError> {
        self.store
            .record_generation_rules(gen, &self.rules.fingerprint())
            .await?;
        // A generation being rebuilt is read by nobody until it is swapped in: a partition
        // projected into it from offset 0 writes its subjects' rows once, at its end (its
        // writes check in their transaction that it is still not read). A store's first
        // build is one; this catch-up swaps it in at its end if it is then whole.
        let (active, building) = self.store.generations().await?;
        let unread = active != gen && building == Some(gen);
        let first_build = unread && active == 0;
        let mut c = CatchUp {
            gen,
            unread,
            rules: std::sync::Arc::new(self.rules.clone()),
            writes: WriteStage::start(self.store.clone(), gen),
            queue: partitions.iter().map(|&p| (p, unread)).collect(),
            read_size: self.batch.clamp(1, FIRST_BATCH),
            stats,
            on_batch,
            next_analyze: 1_000,
        };
        let run = self.project_queue(&mut c).await;
        // Whatever happened, nothing is still being written when this returns, and what
        // was committed is counted.
        let settled = c.settle(0, None).await;
        c.writes.close().await;
        run?;
        settled?;
        // Built in one pass now rather than entry by entry while the batches went in (a
        // careful batch builds any it needs itself).
        self.store.ensure_indexes(gen).await?;
        self.store.ensure_sla_base(gen).await?;
        if c.stats.records > 0 {
            self.store
                .batch
                .checkpoint_wal()
                .await
                .map_err(|e| self.store.err(e))?;
        }
        if first_build {
            // Every partition holding records must have been caught up once, by this
            // runner or by the runners of other partitions.
            let holding: Vec<u32> = self
                .log
                .partitions()
                .await?
                .iter()
                .filter(|p| p.high_water > 0)
                .map(|p| p.partition)
                .collect();
            if self.store.swap_in_first_build(gen, &holding).await? {
                tracing::info!(gen, "the views' first build is whole: queries read it now");
            }
        }
        Ok(())
    }

    /// Marks partition `p` of a generation nobody reads as caught up ([`CAUGHT_UP`]),
    /// in a batch transaction that finds its checkpoint still at `at` or beyond and not
    /// deferred (a partition started over meanwhile is not caught up). A partition found
    /// empty (`at` 0) is marked by one statement, so that it gets no checkpoint row.
    async fn mark_caught_up(&self, gen: i64, p: u32, at: u64) -> Result<(), ProjectionError> {
        if at == 0 {
            return Ok(self.store.mark_empty_partition_caught_up(gen, p).await?);
        }
        let err = |e| ProjectionError::from(self.store.err(e));
        let (mut tx, now, _) = match open_batch(self.store, gen, p).await {
            // Swapped in and then replaced by a rebuild: nothing left to mark.
            Err(BatchError::Failed(ProjectionError::Store(StoreError::Replaced { .. }))) => {
                return Ok(())
            }
            other => other.map_err(BatchError::into_error)?,
        };
        if now.subjects_deferred || now.next_offset < at {
            tx.rollback().await.map_err(err)?;
            return Ok(());
        }
        let rows = caught_up_row(gen, p);
        if let Err(e) = tx.insert(&CAUGHT_UP, rows).await {
            tx.rollback().await.ok();
            return Err(ProjectionError::Stopped(format!(
                "marking a partition caught up: {e}"
            )));
        }
        tx.commit().await.map_err(err)
    }

    /// Projects every partition of the catch-up's queue, from memory in a generation nobody
    /// reads and else carefully, until the last writes have proved no partition's memory
    /// wrong.
    async fn project_queue<F: FnMut(u64)>(
        &self,
        c: &mut CatchUp<'_, F>,
    ) -> Result<(), ProjectionError> {
        loop {
            let Some((p, trust)) = c.queue.pop_front() else {
                // The last writes: one that proves its partition's memory wrong queues that
                // partition again, to be projected carefully.
                c.settle(0, None).await?;
                if c.queue.is_empty() {
                    return Ok(());
                }
                continue;
            };
            if trust && !self.project_from_memory(c, p).await? {
                continue;
            }
            // Its writes in flight are in (or proved wrong) before its rows are read.
            c.settle(0, Some(p)).await?;
            self.project_carefully(c, p).await?;
        }
    }

    /// Projects partition `p` of a generation nobody reads from offset 0 with the runner's
    /// memory alone, when its checkpoint is at 0 or its subjects' rows are deferred (a
    /// build stopped before its end: the partition starts over, see [`Runner::restart`]).
    /// Each batch is folded on a blocking thread while the next one is read and the ones
    /// before are written by the write stage, in order. Returns whether the rest of the
    /// partition must be projected carefully (a write proved the memory wrong, or the
    /// memory reached its limits and forgot).
    async fn project_from_memory<F: FnMut(u64)>(
        &self,
        c: &mut CatchUp<'_, F>,
        p: u32,
    ) -> Result<bool, ProjectionError> {
        let mut at = stored_checkpoint(self.store, c.gen, p).await?;
        if at.subjects_deferred {
            let Some(taken_back) = self.restart(c.gen, p).await? else {
                return Ok(true);
            };
            c.stats.redone += taken_back;
            // Rewound: at offset 0, with no writer's token.
            at = Checkpoint::default();
        } else if at.next_offset != 0 {
            return Ok(true);
        }
        let (gen, limits) = (c.gen, self.memory);
        let stopped = |e| ProjectionError::Stopped(format!("fold stopped: {e}"));
        let mut mem = Memory {
            deferring: true,
            expects: at.writer,
            ..Memory::new(0, true)
        };
        let mut records = self.log.read_partition(p, 0, c.read_size).await?;
        c.read_size = self.batch.max(1);
        loop {
            let Some(last) = records.last() else {
                // Caught up. Deferred subjects' rows are made and written while the next
                // partition is folded, marked caught up in the same transaction (an empty
                // partition has none, and is marked at once).
                if mem.next_offset == 0 {
                    self.mark_caught_up(gen, p, 0).await?;
                } else {
                    if c.settle(usize::MAX, Some(p)).await? {
                        return Ok(true);
                    }
                    let calendar = self.rules.calendar.clone();
                    let made = async move {
                        tokio::task::spawn_blocking(move || flush(gen, p, &calendar, &mut mem))
                            .await
                            .map_err(|e| BatchError::Failed(stopped(e)))
                    };
                    c.writes.send(p, 0, Box::pin(made)).await?;
                }
                return Ok(false);
            };
            let next_from = last.position.offset + 1;
            let n = records.len() as u64;
            let rules = c.rules.clone();
            let folding = tokio::task::spawn_blocking(move || {
                let folded = fold(&rules, limits, gen, p, &records, &mut mem, &HashMap::new());
                (folded, mem, records)
            });
            let next = self
                .log
                .read_partition(p, next_from, self.batch.max(1))
                .await;
            let (folded, folded_mem, batch) = folding.await.map_err(stopped)?;
            mem = folded_mem;
            let folded = match folded {
                Ok(folded) => folded,
                Err(late) => {
                    // Facts that arrived late: their subjects are folded again from what
                    // the log holds of them.
                    let history = history_from_memory(self.log, p, &late, &mem).await?;
                    let rules = c.rules.clone();
                    let (folded, folded_mem) = tokio::task::spawn_blocking(move || {
                        let folded = fold(&rules, limits, gen, p, &batch, &mut mem, &history);
                        (folded, mem)
                    })
                    .await
                    .map_err(stopped)?;
                    mem = folded_mem;
                    folded.map_err(|_| {
                        ProjectionError::Stopped(
                            "a fold lacked the history of a late fact's subject".into(),
                        )
                    })?
                }
            };
            if c.settle(usize::MAX, Some(p)).await? {
                return Ok(true);
            }
            c.writes
                .send(p, n, Box::pin(std::future::ready(Ok(folded))))
                .await?;
            if !mem.complete {
                // Forgotten (see MemoryLimits): the rest reads the rows it needs.
                return Ok(true);
            }
            records = next?;
        }
    }

    /// Starts partition `p` of a generation being rebuilt over, in one transaction: its
    /// subjects' rows were deferred to its end, which a stopped run never reached, so its
    /// rows are deleted (by generation and partition) and its checkpoint goes back to 0.
    /// Returns the offset it was taken back from; `None` when the checkpoint no longer has
    /// deferred rows (another runner moved it).
    async fn restart(&self, gen: i64, p: u32) -> Result<Option<u64>, ProjectionError> {
        let err = |e| ProjectionError::from(self.store.err(e));
        let (tx, at, _) = open_batch(self.store, gen, p)
            .await
            .map_err(BatchError::into_error)?;
        if !at.subjects_deferred {
            tx.rollback().await.map_err(err)?;
            return Ok(None);
        }
        start_over(tx, gen, p).await.map_err(err)?;
        Ok(Some(at.next_offset))
    }

    /// Projects partition `p` from its checkpoint to the log's end, one careful batch at a
    /// time ([`Runner::apply_batch`]); nothing of it may be in the write stage's hands.
    async fn project_carefully<F: FnMut(u64)>(
        &self,
        c: &mut CatchUp<'_, F>,
        p: u32,
    ) -> Result<(), ProjectionError> {
        let mut memory: Option<Memory> = None;
        // Careful batches of this partition redone in a row (see CAREFUL_REDOS).
        let mut redos = 0;
        loop {
            // A checkpoint whose subjects' rows are deferred (a run that stopped before the
            // partition's last rows were written) is taken back to offset 0 by the careful
            // batch below, even with nothing new to read.
            let (from, deferred) = match &memory {
                Some(m) => (m.next_offset, false),
                None => {
                    let at = stored_checkpoint(self.store, c.gen, p).await?;
                    (at.next_offset, at.subjects_deferred)
                }
            };
            let records = self.log.read_partition(p, from, c.read_size).await?;
            c.read_size = self.batch.max(1);
            if records.is_empty() && !deferred {
                if c.unread {
                    self.mark_caught_up(c.gen, p, from).await?;
                }
                return Ok(());
            }
            let n = records.len() as u64;
            match self
                .apply_batch(c.gen, p, &records, from, memory.take())
                .await
            {
                Ok((s, m)) => {
                    redos = 0;
                    memory = Some(m);
                    c.count(s, n);
                }
                Err(BatchError::Failed(e)) => return Err(e),
                Err(BatchError::Wrong(why)) if redos < CAREFUL_REDOS => {
                    // Another runner (of another partition) committed a row this batch
                    // wrote after the batch had read: read again, from the checkpoint.
                    redos += 1;
                    tracing::info!(partition = p, why, "redoing a careful batch");
                    continue;
                }
                Err(BatchError::Wrong(why)) => {
                    return Err(StoreError::Rows {
                        store: self.store.name().to_string(),
                        reason: format!("{why}, {CAREFUL_REDOS} times in a row"),
                    }
                    .into());
                }
            }
            if c.stats.records >= c.next_analyze {
                // Fresh PostgreSQL tables have no statistics: without them the planner
                // scans whole tables for the per-batch lookups as they grow. (A batch
                // folded from memory looks nothing up.)
                self.store.analyze().await?;
                c.next_analyze = c.stats.records * 4;
            }
        }
    }

    /// One batch, carefully: in one transaction, the checkpoint read under lock, the rows
    /// of the subjects the memory does not hold read, the batch folded and written.
    /// `records` were read from offset `read_from`.
    async fn apply_batch(
        &self,
        gen: i64,
        partition: u32,
        records: &[Record],
        read_from: u64,
        memory: Option<Memory>,
    ) -> Result<(RunStats, Memory), BatchError> {
        let store = self.store;
        let err = |e| BatchError::Failed(store.err(e).into());
        let (mut tx, at, _) = open_batch(store, gen, partition).await?;
        if at.subjects_deferred {
            // Its subjects' rows are behind: what this batch would read of them is not
            // where the checkpoint is. Back to offset 0, from where they are redone.
            start_over(tx, gen, partition).await.map_err(err)?;
            let stats = RunStats {
                redone: at.next_offset,
                ..RunStats::default()
            };
            return Ok((stats, Memory::new(0, false)));
        }
        let (from, digest) = (at.next_offset, at.digest);
        if from < read_from {
            // The checkpoint went back: a second rebuild of this generation started it over.
            // Nothing from `read_from` on can be applied before what lies under it.
            tx.rollback().await.map_err(err)?;
            return Ok((RunStats::default(), Memory::new(from, false)));
        }
        // The lookups below go through the generation's indexes: built here if missing (a
        // store migrated from before they were per generation, or a second rebuild of the
        // same generation that started it over).
        let built = tx.ensure_indexes(gen).await.map_err(err)?;
        if !built.is_empty() {
            tracing::info!(indexes = %built.join(", "), "built a generation's indexes for a careful batch");
        }
        // What this runner remembers holds only under its token: nobody else committed since.
        let mut mem = match memory {
            Some(m) if m.token == at.writer && m.next_offset == from => m,
            _ => Memory::new(from, false),
        };
        mem.complete = false;
        mem.deferring = false;
        mem.seen.clear();
        mem.digest = digest;
        // Another runner may have committed this range meanwhile: take only what is still new.
        let records: Vec<&Record> = records
            .iter()
            .filter(|r| r.position.offset >= from)
            .collect();
        if records.is_empty() {
            return Ok((RunStats::default(), mem));
        }
        let decoded: Vec<(&Record, Result<Event, String>)> =
            records.into_iter().map(|r| (r, decode_record(r))).collect();
        // The subjects the memory does not hold are read from their rows, and the ids
        // looked up.
        let unseen = unseen_subjects(&decoded, &mem);
        let names: Vec<String> = unseen.iter().map(StreamId::name).collect();
        let ids: Vec<String> = decoded
            .iter()
            .filter_map(|(_, e)| e.as_ref().ok())
            .map(|e| e.meta.event_id.to_string())
            .collect();
        let seen_before = tx.load_seen(gen, &ids).await.map_err(err)?;
        let mut cases = tx.load_cases(gen, &names).await.map_err(err)?;
        let mut clocks = tx.load_open_clocks(gen, &names).await.map_err(err)?;
        let mut chains = tx.load_chains(gen, &names).await.map_err(err)?;
        for (s, name) in unseen.into_iter().zip(names) {
            let (chain, last) = match chains.remove(&name) {
                Some((seq, hash, key)) => {
                    // Rows from before fold keys were stored: folded again by this fact.
                    let last = parse_fold_key(&key).or(Some(UNKNOWN_FOLD_KEY));
                    ((seq, hash), last)
                }
                None => ((0, String::new()), None),
            };
            let state = SubjectState {
                case: cases.remove(&name),
                clocks: clocks.remove(&name).unwrap_or_default(),
                chain,
                last,
                offsets: Vec::new(),
            };
            mem.subjects.insert(s, state);
        }
        let late = late_subjects(&decoded, &mem);
        let history = history_from_rows(self.log, store, &mut tx, gen, &late).await?;
        let folded = fold_decoded(
            self.rules,
            self.memory,
            gen,
            partition,
            decoded,
            &mut mem,
            Some(seen_before),
            &history,
        )
        .map_err(|_| {
            BatchError::Failed(ProjectionError::Stopped(
                "a careful batch lacked the history of a late fact's subject".into(),
            ))
        })?;
        let stats = commit_batch(tx, store, folded).await?;
        Ok((stats, mem))
    }
}

/// Takes a partition whose subjects' rows are deferred back to offset 0 in the open
/// transaction `tx` and commits: every row of that generation and partition deleted
/// ([`BatchTx::rewind`]), its checkpoint at 0.
async fn start_over(mut tx: BatchTx, gen: i64, partition: u32) -> Result<(), sqlx::Error> {
    tx.rewind(gen, partition).await?;
    tx.commit().await?;
    tracing::info!(
        partition,
        "started over a partition whose subjects' rows were deferred"
    );
    Ok(())
}

/// The events of `stream` in the log's stream index that decode as its facts, each with
/// its partition and offset (dead letters and records altered since are not facts).
async fn stream_facts(
    log: &dyn ProjectionLog,
    stream: &StreamId,
) -> Result<Vec<((u32, u64), Event)>, ProjectionError> {
    Ok(log
        .read_stream(&stream.name())
        .await?
        .iter()
        .filter_map(|r| {
            let e = decode_record(r).ok()?;
            (e.meta.stream == *stream).then_some(((r.position.partition, r.position.offset), e))
        })
        .collect())
}

/// The events applied to each of `subjects` of partition `partition` before this batch: a
/// fold from memory kept their offsets.
async fn history_from_memory(
    log: &dyn ProjectionLog,
    partition: u32,
    subjects: &[StreamId],
    mem: &Memory,
) -> Result<HashMap<StreamId, History>, ProjectionError> {
    let mut out = HashMap::new();
    for s in subjects {
        let kept: HashSet<u64> = mem
            .subjects
            .get(s)
            .map(|st| st.offsets.iter().copied().collect())
            .unwrap_or_default();
        let events = stream_facts(log, s)
            .await?
            .into_iter()
            .filter(|((p, o), _)| *p == partition && kept.contains(o))
            .map(|(_, e)| e)
            .collect();
        out.insert(
            *s,
            History {
                events,
                clock_ids: None,
            },
        );
    }
    Ok(out)
}

/// The events applied to each of `subjects` before this batch, and their clock rows: the
/// facts of their streams whose audit rows name the same place in the log (an id applied
/// from another stream, or twice, counts where it was applied).
async fn history_from_rows(
    log: &dyn ProjectionLog,
    store: &Store,
    tx: &mut BatchTx,
    gen: i64,
    subjects: &[StreamId],
) -> Result<HashMap<StreamId, History>, BatchError> {
    let mut facts = Vec::new();
    for s in subjects {
        facts.push(stream_facts(log, s).await.map_err(BatchError::Failed)?);
    }
    let ids: Vec<String> = facts
        .iter()
        .flatten()
        .map(|(_, e)| e.meta.event_id.to_string())
        .collect();
    let names: Vec<String> = subjects.iter().map(StreamId::name).collect();
    let failed = |e| BatchError::Failed(store.err(e).into());
    let applied = tx.load_applied(gen, &ids).await.map_err(failed)?;
    let mut clock_ids = tx.load_clock_ids(gen, &names).await.map_err(failed)?;
    let mut out = HashMap::new();
    for ((s, name), facts) in subjects.iter().zip(&names).zip(facts) {
        let events = facts
            .into_iter()
            .filter(|(at, e)| applied.get(&e.meta.event_id.to_string()) == Some(at))
            .map(|(_, e)| e)
            .collect();
        out.insert(
            *s,
            History {
                events,
                clock_ids: Some(clock_ids.remove(name).unwrap_or_default()),
            },
        );
    }
    Ok(out)
}

/// A batch folded into rows, ready to write.
struct Folded {
    /// The generation it goes into.
    gen: i64,
    /// The offset it starts at (the checkpoint it expects).
    from: u64,
    /// The token the checkpoint row must carry: the memory it was folded from is trusted
    /// only under it (see [`Memory`]).
    expects: String,
    /// Whether that checkpoint has its subjects' rows deferred.
    after_deferred: bool,
    /// Whether the checkpoint it writes has them deferred: allowed only while nobody
    /// reads the generation, which its write checks.
    defers: bool,
    /// Its subjects the memory did not hold before it (listed for a fold from memory).
    unseen: Vec<String>,
    stats: RunStats,
    /// Clock rows to delete first (by clock id): those of subjects folded again.
    replaced_clocks: Vec<String>,
    /// Finding rows to delete first (by event id): those of subjects folded again.
    replaced_findings: Vec<String>,
    /// The audit rows, written first: their unique key tells an id applied before.
    audit: Vec<Vec<Val>>,
    /// The other tables' rows, the checkpoint last.
    rest: Vec<(&'static Table, Vec<Vec<Val>>)>,
}

/// One catch-up's state, shared by its partitions.
struct CatchUp<'c, F> {
    gen: i64,
    /// Nobody reads the generation: each partition goes from memory, and one caught up
    /// is marked so ([`CAUGHT_UP`]).
    unread: bool,
    rules: std::sync::Arc<Rules>,
    writes: WriteStage,
    /// Partitions still to project, each with whether its memory may be trusted; one whose
    /// batch folded from memory proved wrong comes back, to be projected carefully.
    queue: VecDeque<(u32, bool)>,
    /// The size of the next read: small for the catch-up's first one (see FIRST_BATCH).
    read_size: usize,
    stats: &'c mut RunStats,
    on_batch: F,
    /// The records after which the store's statistics are made again.
    next_analyze: u64,
}

impl<F: FnMut(u64)> CatchUp<'_, F> {
    /// Counts a committed batch of `n` records.
    fn count(&mut self, s: RunStats, n: u64) {
        self.stats.records += s.records;
        self.stats.applied += s.applied;
        self.stats.duplicates += s.duplicates;
        self.stats.dead_letters += s.dead_letters;
        self.stats.redone += s.redone;
        (self.on_batch)(n);
    }

    /// Takes in what the write stage has written, waiting until at most `keep` batches
    /// are in its hands, and counts what committed. Returns whether a write proved the
    /// memory of partition `current` wrong (then every write is waited for); another
    /// partition a write proves wrong is queued again, to be projected carefully. After a
    /// failed write every batch in flight is waited for, so none is written after the
    /// catch-up has returned its error.
    async fn settle(&mut self, keep: usize, current: Option<u32>) -> Result<bool, ProjectionError> {
        let mut wrong = false;
        let mut failed: Option<ProjectionError> = None;
        loop {
            let wait = self.writes.in_flight > if wrong || failed.is_some() { 0 } else { keep };
            let Some(Outcome {
                partition,
                records,
                written,
            }) = self.writes.next(wait).await?
            else {
                break;
            };
            match written {
                Written::Committed(s) => self.count(s, records),
                Written::Skipped => {}
                Written::Wrong(why) => {
                    tracing::info!(partition, why, "redoing from the stored rows");
                    if current == Some(partition) {
                        wrong = true;
                    } else {
                        self.queue.push_back((partition, false));
                    }
                }
                Written::Failed(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(wrong),
        }
    }
}

/// The next offset to project and the digest so far, for one partition of `gen`.
pub async fn checkpoint(
    store: &Store,
    gen: i64,
    partition: u32,
) -> Result<(u64, String), StoreError> {
    let at = stored_checkpoint(store, gen, partition).await?;
    Ok((at.next_offset, at.digest))
}

/// One partition's checkpoint as stored, outside any batch.
async fn stored_checkpoint(
    store: &Store,
    gen: i64,
    partition: u32,
) -> Result<Checkpoint, StoreError> {
    let row = sqlx::query_as(CHECKPOINT_SQL)
        .bind(gen)
        .bind(i64::from(partition))
        .fetch_optional(&store.pool)
        .await
        .map_err(|e| store.err(e))?;
    Ok(Checkpoint::from_row(row))
}

/// A log record the projections could not read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    /// Its partition.
    pub partition: u32,
    /// Its offset.
    pub offset: u64,
    /// Why it could not be projected.
    pub reason: String,
    /// The size in bytes of what the table keeps of it (see [`crate::dead_letter`]).
    pub bytes: usize,
    /// Whether what is kept is redacted (it held personal values in clear, or was not
    /// JSON), or was cleared when its person was erased.
    pub redacted: bool,
    /// SHA-256 of the record's bytes, in hex (none for rows from before migration 0018).
    pub sha256: Option<String>,
}

/// The dead letters of generation `gen`, by position.
pub async fn dead_letters(store: &Store, gen: i64) -> Result<Vec<DeadLetter>, StoreError> {
    let rows = sqlx::query("SELECT part, log_offset, reason, raw, redacted, sha256 FROM dead_letters WHERE gen = $1 ORDER BY part, log_offset")
        .bind(gen)
        .fetch_all(&store.pool)
        .await
        .map_err(|e| store.err(e))?;
    rows.iter()
        .map(|r| {
            Ok(DeadLetter {
                partition: r.try_get::<i64, _>(0)? as u32,
                offset: r.try_get::<i64, _>(1)? as u64,
                reason: r.try_get(2)?,
                bytes: r.try_get::<Vec<u8>, _>(3)?.len(),
                redacted: r.try_get::<i64, _>(4)? != 0,
                sha256: r.try_get(5)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(|e| store.err(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folded batch whose only row is its partition's checkpoint, moved from `from` to
    /// `to` by the memory with token `token`: it commits exactly when the stored
    /// checkpoint is at `from` and carries the token `expects`.
    fn checkpoint_batch(
        gen: i64,
        partition: u32,
        (from, expects): (u64, &str),
        (to, token): (u64, &str),
    ) -> Folded {
        let mem = Memory {
            token: token.to_string(),
            ..Memory::new(to, true)
        };
        Folded {
            gen,
            from,
            expects: expects.to_string(),
            after_deferred: false,
            defers: false,
            unseen: Vec::new(),
            stats: RunStats {
                records: to.saturating_sub(from),
                ..RunStats::default()
            },
            replaced_clocks: Vec::new(),
            replaced_findings: Vec::new(),
            audit: Vec::new(),
            rest: vec![(&CHECKPOINTS, vec![checkpoint_row(gen, partition, &mem)])],
        }
    }

    fn made(folded: Folded) -> Made {
        Box::pin(std::future::ready(Ok(folded)))
    }

    async fn empty_store() -> (tempfile::TempDir, Store, i64) {
        let dir = tempfile::tempdir().unwrap();
        let spec = format!("sqlite:{}", dir.path().join("views.db").display());
        let store = Store::open(&spec).await.unwrap();
        // The write stage writes only generations nobody reads: a fresh store's first build.
        let gen = store.live_gen().await.unwrap();
        (dir, store, gen)
    }

    /// What the stage did with each batch sent, in order: committed, skipped, wrong or
    /// failed.
    async fn outcomes(stage: &mut WriteStage) -> Vec<(u32, &'static str)> {
        let mut out = Vec::new();
        while stage.in_flight > 0 {
            let o = stage.next(true).await.unwrap().unwrap();
            let what = match o.written {
                Written::Committed(_) => "committed",
                Written::Skipped => "skipped",
                Written::Wrong(_) => "wrong",
                Written::Failed(_) => "failed",
            };
            out.push((o.partition, what));
        }
        out
    }

    async fn stored_at(store: &Store, gen: i64, partition: u32) -> u64 {
        stored_checkpoint(store, gen, partition)
            .await
            .unwrap()
            .next_offset
    }

    #[tokio::test]
    async fn the_write_stage_commits_batches_in_the_order_they_were_sent() {
        let (_dir, store, gen) = empty_store().await;
        let mut stage = WriteStage::start(store.clone(), gen);
        // The first batch's rows take a while to be made; the second expects the first's
        // checkpoint, so it holds only when it is written after it.
        let slow: Made = Box::pin(async move {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            Ok(checkpoint_batch(gen, 0, (0, ""), (5, "a")))
        });
        stage.send(0, 5, slow).await.unwrap();
        stage
            .send(0, 4, made(checkpoint_batch(gen, 0, (5, "a"), (9, "a"))))
            .await
            .unwrap();
        assert_eq!(
            outcomes(&mut stage).await,
            [(0, "committed"), (0, "committed")]
        );
        assert_eq!(stored_at(&store, gen, 0).await, 9);
        stage.close().await;
    }

    #[tokio::test]
    async fn the_write_stage_writes_nothing_of_a_partition_after_a_batch_that_proved_its_memory_wrong(
    ) {
        let (_dir, store, gen) = empty_store().await;
        let mut stage = WriteStage::start(store.clone(), gen);
        // Folded as if the checkpoint were at 7: it is at 0.
        stage
            .send(0, 3, made(checkpoint_batch(gen, 0, (7, ""), (10, "a"))))
            .await
            .unwrap();
        // This one alone would commit, but it was folded on top of the wrong one.
        stage
            .send(0, 5, made(checkpoint_batch(gen, 0, (0, ""), (5, "a"))))
            .await
            .unwrap();
        // Another partition's batch is written.
        stage
            .send(1, 4, made(checkpoint_batch(gen, 1, (0, ""), (4, "b"))))
            .await
            .unwrap();
        assert_eq!(
            outcomes(&mut stage).await,
            [(0, "wrong"), (0, "skipped"), (1, "committed")]
        );
        assert_eq!(stored_at(&store, gen, 0).await, 0);
        assert_eq!(stored_at(&store, gen, 1).await, 4);
        stage.close().await;
    }

    #[tokio::test]
    async fn a_memory_is_not_trusted_after_another_runner_committed_its_partition_to_the_same_offset(
    ) {
        let (_dir, store, gen) = empty_store().await;
        let mut stage = WriteStage::start(store.clone(), gen);
        stage
            .send(0, 5, made(checkpoint_batch(gen, 0, (0, ""), (5, "a"))))
            .await
            .unwrap();
        assert_eq!(outcomes(&mut stage).await, [(0, "committed")]);
        // Another runner takes the partition back to 0 and commits it to 5 again: the
        // checkpoint is where runner "a" left it, but no longer under its token.
        let (tx, _, _) = open_batch(&store, gen, 0).await.ok().unwrap();
        start_over(tx, gen, 0).await.unwrap();
        stage
            .send(0, 5, made(checkpoint_batch(gen, 0, (0, ""), (5, "b"))))
            .await
            .unwrap();
        assert_eq!(outcomes(&mut stage).await, [(0, "committed")]);
        stage
            .send(0, 4, made(checkpoint_batch(gen, 0, (5, "a"), (9, "a"))))
            .await
            .unwrap();
        assert_eq!(outcomes(&mut stage).await, [(0, "wrong")]);
        let at = stored_checkpoint(&store, gen, 0).await.unwrap();
        assert_eq!((at.next_offset, at.writer.as_str()), (5, "b"));
        stage.close().await;
    }

    #[tokio::test]
    async fn the_write_stage_writes_nothing_after_a_failed_write() {
        let (_dir, store, gen) = empty_store().await;
        let mut stage = WriteStage::start(store.clone(), gen);
        let failing: Made = Box::pin(std::future::ready(Err(BatchError::Failed(
            ProjectionError::Stopped("a fold failed".into()),
        ))));
        stage.send(0, 3, failing).await.unwrap();
        stage
            .send(1, 4, made(checkpoint_batch(gen, 1, (0, ""), (4, "b"))))
            .await
            .unwrap();
        assert_eq!(outcomes(&mut stage).await, [(0, "failed"), (1, "skipped")]);
        assert_eq!(stored_at(&store, gen, 1).await, 0);
        stage.close().await;
    }

    fn record(payload: &[u8]) -> Record {
        Record {
            position: assist_log::Position {
                partition: 0,
                offset: 0,
            },
            stream: "person-0192f0c1-8a3b-7cde-9f00-0123456789ab".into(),
            event_id: None,
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn a_record_that_is_a_json_array_is_refused_as_not_an_object() {
        // serde reads a struct from an array of its fields too: the direct path must not
        // accept one.
        let payload = br#"["01934a5e-1004-7004-8000-000000000004", "person-0192f0c1-8a3b-7cde-9f00-0123456789ab", "contact_attempt_failed", 1, "2026-03-03T09:04:00+08:00", "2026-03-03T10:04:00+08:00", {"id": "cw-350121-007", "role": "caseworker", "region": "350121"}, "01934a5e-0000-7000-8000-00000000c0c0", null, {"alert_id": "01934a5e-0000-7000-8000-0000000a1e47", "channel": "phone", "reason": "no_answer"}]"#;
        assert!(serde_json::from_slice::<WireEvent>(payload).is_ok());
        assert_eq!(
            decode_record(&record(payload)).unwrap_err(),
            "an event must be a JSON object, found an array"
        );
    }

    #[test]
    fn streams_in_name_order_are_sorted_as_their_names_are() {
        let ids = [
            "person-ffffffff-0000-7000-8000-000000000000",
            "household-00000000-0000-7000-8000-000000000001",
            "person-0192f0c1-8a3b-7cde-9f00-0123456789ab",
            "household-fa000000-0000-7000-8000-000000000000",
            "person-0a92f0c1-8a3b-7cde-9f00-0123456789ab",
        ];
        let mut streams: Vec<StreamId> = ids.iter().map(|s| s.parse().unwrap()).collect();
        streams.sort_unstable_by_key(name_order);
        let mut names: Vec<&str> = ids.to_vec();
        names.sort_unstable();
        assert_eq!(
            streams.iter().map(StreamId::name).collect::<Vec<_>>(),
            names
        );
    }

    #[test]
    fn clock_rows_are_sorted_by_their_clock_id() {
        let row = |id: &str| {
            vec![
                Val::Int(1),
                Val::Text(id.into()),
                Val::Text("person-x".into()),
            ]
        };
        let mut rows = vec![
            row("response-2473/offers/019b"),
            row("household-clearing/clear/0199"),
            row("response-2473/contact/019a"),
        ];
        sort_by_clock_id(&mut rows);
        let ids: Vec<&str> = rows
            .iter()
            .map(|r| match &r[1] {
                Val::Text(id) => id.as_str(),
                _ => "",
            })
            .collect();
        assert_eq!(
            ids,
            [
                "household-clearing/clear/0199",
                "response-2473/contact/019a",
                "response-2473/offers/019b",
            ]
        );
    }

    #[test]
    fn a_record_with_a_bad_field_gets_the_precise_reason_of_the_json_value_path() {
        let payload = br#"{"event_id": "not-a-uuid"}"#;
        assert_eq!(
            decode_record(&record(payload)).unwrap_err(),
            decode(serde_json::from_slice(payload).unwrap(), Form::Stored)
                .unwrap_err()
                .to_string()
        );
    }
}
