//! Writing folded batches: the write stage that commits the batches folded from memory
//! in order, and the transaction every batch is written in.

use super::*;

/// Batches folded from memory that the write stage may hold beyond the one it writes: at
/// 10M events a write sometimes takes longer than a fold, and with one write in flight the
/// fold waited.
pub(super) const WRITES_AHEAD: usize = 1;

/// The write stage of a catch-up: one task that writes the batches folded from memory in
/// the order they were folded, each in its own transaction ([`write_from_memory`]). Its
/// queue is bounded, so the folds run at most [`WRITES_AHEAD`] batches ahead of the
/// writes. A batch of a partition after one that proved the memory wrong is not written
/// (it was folded on top of it), nor is anything after a failed write.
pub(super) struct WriteStage {
    pub(super) jobs: Option<tokio::sync::mpsc::Sender<Job>>,
    pub(super) outcomes: tokio::sync::mpsc::UnboundedReceiver<Outcome>,
    pub(super) task: Option<tokio::task::JoinHandle<()>>,
    /// Batches sent whose outcome has not been taken in.
    pub(super) in_flight: usize,
}

/// A batch for the write stage: its rows as they will be made (a partition's last rows
/// are made while the write before them goes on).
pub(super) struct Job {
    pub(super) partition: u32,
    pub(super) records: u64,
    pub(super) made: Made,
}

/// A batch's rows as they will be made: at once for a fold's batch, on a blocking thread
/// for a partition's deferred rows.
pub(super) type Made =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Folded, BatchError>> + Send>>;

/// What the write stage did with a batch of `records` records of `partition`.
pub(super) struct Outcome {
    pub(super) partition: u32,
    pub(super) records: u64,
    pub(super) written: Written,
}

pub(super) enum Written {
    Committed(RunStats),
    /// Not written: an earlier batch of its partition proved wrong, or a write failed.
    Skipped,
    /// What its fold took from memory proved wrong (the reason).
    Wrong(&'static str),
    Failed(ProjectionError),
}

impl WriteStage {
    pub(super) fn start(store: Store, gen: i64) -> WriteStage {
        let (jobs, mut queued) = tokio::sync::mpsc::channel::<Job>(WRITES_AHEAD);
        let (done, outcomes) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut wrong: HashSet<u32> = HashSet::new();
            let mut failed = false;
            while let Some(Job {
                partition,
                records,
                made,
            }) = queued.recv().await
            {
                let written = if failed || wrong.contains(&partition) {
                    Written::Skipped
                } else {
                    let outcome = match made.await {
                        Ok(folded) => write_from_memory(&store, gen, partition, folded).await,
                        Err(e) => Err(e),
                    };
                    match outcome {
                        Ok(s) => Written::Committed(s),
                        Err(BatchError::Wrong(why)) => {
                            wrong.insert(partition);
                            Written::Wrong(why)
                        }
                        Err(BatchError::Failed(e)) => {
                            failed = true;
                            Written::Failed(e)
                        }
                    }
                };
                let outcome = Outcome {
                    partition,
                    records,
                    written,
                };
                if done.send(outcome).is_err() {
                    break;
                }
            }
        });
        WriteStage {
            jobs: Some(jobs),
            outcomes,
            task: Some(task),
            in_flight: 0,
        }
    }

    /// Hands a batch of `records` records of `partition` to the stage, waiting while its
    /// queue is full.
    pub(super) async fn send(
        &mut self,
        partition: u32,
        records: u64,
        made: Made,
    ) -> Result<(), ProjectionError> {
        let stopped = || ProjectionError::Stopped("write stage stopped".into());
        let jobs = self.jobs.as_ref().ok_or_else(stopped)?;
        let job = Job {
            partition,
            records,
            made,
        };
        jobs.send(job).await.map_err(|_| stopped())?;
        self.in_flight += 1;
        Ok(())
    }

    /// The next outcome: waiting for one when `wait`, else only one already there.
    pub(super) async fn next(&mut self, wait: bool) -> Result<Option<Outcome>, ProjectionError> {
        let outcome = if wait {
            self.outcomes.recv().await
        } else {
            self.outcomes.try_recv().ok()
        };
        match outcome {
            Some(o) => {
                self.in_flight -= 1;
                Ok(Some(o))
            }
            None if wait => Err(ProjectionError::Stopped("write stage stopped".into())),
            None => Ok(None),
        }
    }

    /// Ends the stage's task once it has written what it holds.
    pub(super) async fn close(&mut self) {
        self.jobs = None;
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// Starts a batch's transaction: the partition taken, the generation checked, and the
/// checkpoint read under that lock.
pub(super) async fn open_batch(
    store: &Store,
    gen: i64,
    partition: u32,
) -> Result<(BatchTx, Checkpoint, i64), BatchError> {
    let err = |e| BatchError::Failed(store.err(e).into());
    let mut tx = store.batch.begin(gen, partition).await.map_err(err)?;
    let (active, building) = tx.view_state().await.map_err(err)?;
    if active != gen && building != Some(gen) {
        // A runner left behind by a rebuild's swap stops instead of writing a dropped
        // generation again.
        return Err(BatchError::Failed(
            StoreError::Replaced { gen, active }.into(),
        ));
    }
    let at = tx.checkpoint(gen, partition).await.map_err(err)?;
    Ok((tx, at, active))
}

/// Writes a batch folded from memory, in its own transaction, once it has checked what
/// the fold assumed: the checkpoint row carries the token the memory is trusted under, and
/// is where the fold started (its subjects' rows deferred or not as the memory left them);
/// a batch that defers subjects' rows writes into a generation nobody reads yet; and no
/// subject new to the memory has rows (a stream projected from more than one partition).
pub(super) async fn write_from_memory(
    store: &Store,
    gen: i64,
    partition: u32,
    folded: Folded,
) -> Result<RunStats, BatchError> {
    let err = |e| BatchError::Failed(store.err(e).into());
    let (mut tx, at, active) = open_batch(store, gen, partition).await?;
    let wrong = if at.writer != folded.expects
        || at.next_offset != folded.from
        || at.subjects_deferred != folded.after_deferred
    {
        Some("another runner committed on the partition")
    } else if folded.defers && active == gen {
        // Swapped in by another process since this runner started: queries read it now.
        Some("the generation went live while its subjects' rows were deferred")
    } else if !tx
        .load_chains(gen, &folded.unseen)
        .await
        .map_err(err)?
        .is_empty()
    {
        Some("a stream has rows from another partition")
    } else {
        None
    };
    if let Some(why) = wrong {
        tx.rollback().await.map_err(err)?;
        return Err(BatchError::Wrong(why));
    }
    commit_batch(tx, store, folded).await
}

/// Writes a folded batch's rows and checkpoint into the open transaction and commits it
/// (or rolls it back when a write fails).
pub(super) async fn commit_batch(
    mut tx: BatchTx,
    store: &Store,
    folded: Folded,
) -> Result<RunStats, BatchError> {
    let stats = folded.stats;
    match write_rows(&mut tx, store, folded).await {
        Ok(()) => tx
            .commit()
            .await
            .map_err(|e| BatchError::Failed(store.err(e).into()))?,
        Err(e) => {
            tx.rollback().await.ok();
            return Err(e);
        }
    }
    Ok(stats)
}

pub(super) async fn write_rows(
    tx: &mut BatchTx,
    store: &Store,
    folded: Folded,
) -> Result<(), BatchError> {
    let werr = |e: WriteError| {
        if let WriteError::Sql(source) = &e {
            if crate::outage::conflict(source) {
                // Undone by the store for another writer's sake: redone from the rows.
                return BatchError::Wrong("the store undid the batch to break a deadlock");
            }
        }
        BatchError::Failed(
            match e {
                // Kept typed, so a lost connection is known as one (and retried).
                WriteError::Sql(source) => store.err(source),
                other => StoreError::Rows {
                    store: store.name().to_string(),
                    reason: other.to_string(),
                },
            }
            .into(),
        )
    };
    // An id the fold took for new may have been applied from another stream, and a row
    // it took for new (a subject's first case or chain row) may have been written by a
    // runner of another partition since this batch read: the tables' unique keys say so,
    // and the batch is redone from the rows.
    let unique = |e: WriteError, why: &'static str| {
        if e.is_unique_violation() {
            BatchError::Wrong(why)
        } else {
            werr(e)
        }
    };
    // A subject folded again replaces its clock and finding rows.
    tx.delete_in("clocks", "clock_id", folded.gen, &folded.replaced_clocks)
        .await
        .map_err(|e| werr(WriteError::Sql(e)))?;
    tx.delete_in(
        "findings",
        "event_id",
        folded.gen,
        &folded.replaced_findings,
    )
    .await
    .map_err(|e| werr(WriteError::Sql(e)))?;
    tx.insert(&AUDIT, folded.audit)
        .await
        .map_err(|e| unique(e, "an event id was applied from another stream"))?;
    for (table, rows) in folded.rest {
        tx.insert(table, rows)
            .await
            .map_err(|e| unique(e, "another runner wrote a row of this batch meanwhile"))?;
    }
    Ok(())
}
