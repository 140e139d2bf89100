//! One batch's SQL transaction: everything the runner reads and writes for one batch of
//! one partition, on a typed connection, so that rows go in the way each database takes
//! them fastest (SQLite: a prepared statement bound straight from the rows; PostgreSQL:
//! binary `COPY`, and `unnest` arrays for upserts). The query side keeps `sqlx::Any`.

mod postgres;
mod sqlite;

use crate::caseload::Case;
use crate::runner::{case_from, clock_from};
use crate::sla::Clock;
use crate::store::{generation_index, Dialect, Val};
use sqlx::pool::PoolOptions;
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool, Transaction};
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

/// The connections batches run on.
#[derive(Clone)]
pub(crate) enum BatchPool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// What a table does with a row whose key it holds already.
pub(crate) enum Conflict {
    /// Fails the statement (the batch then fails, or is redone: see the runner).
    Fail,
    /// Keeps the stored row (`ON CONFLICT (key) DO NOTHING`).
    Ignore(&'static str),
    /// Overwrites every other column (`ON CONFLICT (key) DO UPDATE`).
    Update(&'static str),
}

/// A view table a batch writes: its columns in the order of the rows' values.
pub(crate) struct Table {
    pub name: &'static str,
    pub columns: &'static [&'static str],
    pub conflict: Conflict,
}

impl Table {
    /// The same table for rows known to be new to it (plain inserts).
    pub(crate) const fn new_rows(&self) -> Table {
        Table {
            name: self.name,
            columns: self.columns,
            conflict: Conflict::Fail,
        }
    }

    fn conflict_clause(&self) -> String {
        match self.conflict {
            Conflict::Fail => String::new(),
            Conflict::Ignore(key) => format!("ON CONFLICT ({key}) DO NOTHING"),
            Conflict::Update(key) => format!(
                "ON CONFLICT ({key}) DO UPDATE SET {}",
                self.columns
                    .iter()
                    .filter(|c| !key.split(", ").any(|k| k == **c))
                    .map(|c| format!("{c} = excluded.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    fn sqlite_insert(&self) -> String {
        format!(
            "INSERT INTO {} ({}) VALUES ({}) {}",
            self.name,
            self.columns.join(", "),
            vec!["?"; self.columns.len()].join(", "),
            self.conflict_clause()
        )
    }
}

/// Why rows could not be written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error("writing {table}: {message}")]
    Sqlite {
        table: &'static str,
        unique: bool,
        message: String,
    },
    #[error("writing {table}: {message}")]
    Shape {
        table: &'static str,
        message: String,
    },
}

impl WriteError {
    /// A row's key was taken already.
    pub(crate) fn is_unique_violation(&self) -> bool {
        match self {
            WriteError::Sql(e) => e
                .as_database_error()
                .is_some_and(|d| d.is_unique_violation()),
            WriteError::Sqlite { unique, .. } => *unique,
            WriteError::Shape { .. } => false,
        }
    }
}

impl BatchPool {
    /// Opens the batch connections of the store at `url` (already migrated).
    pub(crate) async fn open(dialect: Dialect, url: &str) -> Result<BatchPool, sqlx::Error> {
        Ok(match dialect {
            Dialect::Sqlite => {
                let options = SqliteConnectOptions::from_str(url)?
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    // Another process may hold the write lock for minutes at 10M events:
                    // building a generation's indexes, or dropping an old generation. A
                    // batch waits for it rather than failing.
                    .busy_timeout(Duration::from_secs(600))
                    .pragma("cache_size", "-131072")
                    .pragma("temp_store", "memory")
                    // Two sorter threads for a generation's index builds (10M audit rows:
                    // 37 s with one, 26 s with two).
                    .pragma("threads", "2")
                    .pragma("wal_autocheckpoint", "16384")
                    .pragma("journal_size_limit", "67108864");
                BatchPool::Sqlite(
                    PoolOptions::new()
                        .max_connections(2)
                        .acquire_timeout(Duration::from_secs(10))
                        .connect_with(options)
                        .await?,
                )
            }
            Dialect::Postgres => BatchPool::Postgres(
                PoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(PgConnectOptions::from_str(url)?)
                    .await?,
            ),
        })
    }

    /// Folds the WAL of an SQLite store into its file, as far as readers allow without
    /// waiting: the work the batches deferred (they let the WAL grow to 256 MiB).
    pub(crate) async fn checkpoint_wal(&self) -> Result<(), sqlx::Error> {
        if let BatchPool::Sqlite(p) = self {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(p)
                .await?;
        }
        Ok(())
    }

    pub(crate) async fn close(&self) {
        match self {
            BatchPool::Sqlite(p) => {
                // Batches let the WAL grow to 256 MiB between checkpoints (fewer rewrites of
                // the same pages); leave the file folded in and the WAL empty. A reader
                // holding a snapshot makes this a partial checkpoint, which is fine.
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(p)
                    .await
                {
                    tracing::debug!(error = %e, "no checkpoint of the view store's WAL on close");
                }
                p.close().await
            }
            BatchPool::Postgres(p) => p.close().await,
        }
    }

    /// Starts a batch of `partition` of generation `gen`: takes the partition for this
    /// transaction (SQLite: the write lock up front; PostgreSQL: its checkpoint row locked
    /// FOR UPDATE), so two workers briefly owning one partition take turns.
    pub(crate) async fn begin(&self, gen: i64, partition: u32) -> Result<BatchTx, sqlx::Error> {
        Ok(match self {
            BatchPool::Sqlite(p) => BatchTx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            BatchPool::Postgres(p) => {
                let mut tx = p.begin().await?;
                sqlx::query("INSERT INTO checkpoints (gen, part, next_offset, digest) VALUES ($1, $2, 0, '') ON CONFLICT (gen, part) DO NOTHING")
                    .bind(gen)
                    .bind(i64::from(partition))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "SELECT next_offset FROM checkpoints WHERE gen = $1 AND part = $2 FOR UPDATE",
                )
                .bind(gen)
                .bind(i64::from(partition))
                .execute(&mut *tx)
                .await?;
                BatchTx::Postgres(tx)
            }
        })
    }
}

impl BatchPool {
    /// A transaction for a generation's indexes (SQLite: the write lock up front).
    pub(crate) async fn begin_ddl(&self) -> Result<BatchTx, sqlx::Error> {
        Ok(match self {
            BatchPool::Sqlite(p) => BatchTx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            BatchPool::Postgres(p) => BatchTx::Postgres(p.begin().await?),
        })
    }
}

/// Where a partition of a generation stands.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    /// The next offset to project.
    pub next_offset: u64,
    /// The partition's digest up to there.
    pub digest: String,
    /// Its subjects' rows (cases, open clocks, chain heads) are behind the other rows:
    /// they are written when the partition is caught up.
    pub subjects_deferred: bool,
    /// The token of the runner's memory that committed it last (see migration 0019);
    /// empty after a rewind.
    pub writer: String,
}

/// One partition's checkpoint ($1 the generation, $2 the partition), read inside a batch's
/// transaction or outside one.
pub(crate) const CHECKPOINT_SQL: &str =
    "SELECT next_offset, digest, subjects_deferred, writer FROM checkpoints WHERE gen = $1 AND part = $2";

impl Checkpoint {
    /// From the row [`CHECKPOINT_SQL`] read; a partition without one is at offset 0.
    pub(crate) fn from_row(row: Option<(i64, String, i64, String)>) -> Checkpoint {
        row.map_or_else(Checkpoint::default, |(n, digest, deferred, writer)| {
            Checkpoint {
                next_offset: n as u64,
                digest,
                subjects_deferred: deferred != 0,
                writer,
            }
        })
    }
}

/// One batch's transaction.
pub(crate) enum BatchTx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// The same code on either connection (`$c` is the transaction).
macro_rules! on_tx {
    ($tx:expr, $c:ident => $body:expr) => {
        match $tx {
            BatchTx::Sqlite($c) => $body,
            BatchTx::Postgres($c) => $body,
        }
    };
}

/// A batch's lookup of rows by key: the rows of `table` in generation N whose `key` is
/// one of a list (and that pass `filter`). The generation is written into the SQL, not
/// bound, so that the planner can use the generation's partial indexes (see
/// `SECONDARY_INDEXES` in the store).
struct Lookup {
    /// The columns read, or `*`.
    columns: &'static [&'static str],
    table: &'static str,
    key: &'static str,
    /// A further condition on the row's own columns.
    filter: Option<&'static str>,
    /// A generation's secondary index SQLite must use (`INDEXED BY {index}_gN`): without
    /// statistics its planner prefers walking the primary key's `gen` prefix, the whole
    /// generation, to an `IN` list over a partial index. The runner builds the index before
    /// its first careful batch.
    sqlite_index: Option<&'static str>,
}

impl Lookup {
    /// Keys per statement.
    fn chunk(dialect: Dialect) -> usize {
        match dialect {
            Dialect::Sqlite => 1_000,
            Dialect::Postgres => 10_000,
        }
    }

    /// The SQL for `n` keys: on SQLite an `IN` list of `n` placeholders; on PostgreSQL one
    /// array of keys joined to the table, which is one index probe per key whatever the
    /// statistics (with an `IN` list and fresh tables PostgreSQL 15 read every row of the
    /// generation and compared it with the whole list: quadratic as a generation grows).
    fn sql(&self, dialect: Dialect, gen: i64, n: usize) -> String {
        let (table, key) = (self.table, self.key);
        match dialect {
            Dialect::Sqlite => {
                let indexed_by = self
                    .sqlite_index
                    .map(|index| format!(" INDEXED BY {}", generation_index(index, gen)))
                    .unwrap_or_default();
                let filter = self.filter.map(|f| format!(" AND {f}")).unwrap_or_default();
                // Anonymous `?`: sqlx finds every named `$n` by a linear scan.
                format!(
                    "SELECT {} FROM {table}{indexed_by} WHERE gen = {gen}{filter} AND {key} IN ({})",
                    self.columns.join(", "),
                    vec!["?"; n].join(", ")
                )
            }
            Dialect::Postgres => {
                let columns: Vec<String> = self.columns.iter().map(|c| format!("t.{c}")).collect();
                let filter = self
                    .filter
                    .map(|f| format!(" AND t.{f}"))
                    .unwrap_or_default();
                format!(
                    "SELECT {} FROM unnest($1::text[]) AS k(key) JOIN {table} t ON t.gen = {gen} AND t.{key} = k.key{filter}",
                    columns.join(", ")
                )
            }
        }
    }
}

const SEEN_IDS: Lookup = Lookup {
    columns: &["event_id"],
    table: "audit_events",
    key: "event_id",
    filter: None,
    sqlite_index: None,
};
const CASES: Lookup = Lookup {
    columns: &["*"],
    table: "cases",
    key: "subject",
    filter: None,
    sqlite_index: None,
};
/// Sorted by clock id afterwards: an `ORDER BY clock_id` makes the primary key look
/// cheaper to a planner without statistics.
const OPEN_CLOCKS: Lookup = Lookup {
    columns: &["*"],
    table: "clocks",
    key: "subject",
    filter: Some("is_open = 1"),
    sqlite_index: Some("clocks_by_subject"),
};
/// Where each of a list of event ids was applied from.
const APPLIED_AT: Lookup = Lookup {
    columns: &["event_id", "part", "log_offset"],
    table: "audit_events",
    key: "event_id",
    filter: None,
    sqlite_index: None,
};
/// Every clock of a subject, open or not: the rows a subject folded again replaces.
const CLOCK_IDS: Lookup = Lookup {
    columns: &["subject", "clock_id"],
    table: "clocks",
    key: "subject",
    filter: None,
    sqlite_index: Some("clocks_by_subject"),
};
const CHAIN_HEADS: Lookup = Lookup {
    columns: &["stream", "seq", "hash", "fold_key"],
    table: "chains",
    key: "stream",
    filter: None,
    sqlite_index: None,
};

impl BatchTx {
    fn dialect(&self) -> Dialect {
        match self {
            BatchTx::Sqlite(_) => Dialect::Sqlite,
            BatchTx::Postgres(_) => Dialect::Postgres,
        }
    }

    /// The active generation and the one being rebuilt, if any.
    ///
    /// On PostgreSQL the row is share-locked until the batch commits, so a swap (which takes
    /// it for update) waits for the batches in flight, and a batch that starts after it sees
    /// the generation it made active. SQLite's writers are one at a time anyway.
    pub(crate) async fn view_state(&mut self) -> Result<(i64, Option<i64>), sqlx::Error> {
        match self {
            BatchTx::Sqlite(c) => {
                sqlx::query_as("SELECT active_gen, building_gen FROM view_state WHERE id = 1")
                    .fetch_one(&mut **c)
                    .await
            }
            BatchTx::Postgres(c) => {
                sqlx::query_as(
                    "SELECT active_gen, building_gen FROM view_state WHERE id = 1 FOR SHARE",
                )
                .fetch_one(&mut **c)
                .await
            }
        }
    }

    /// Creates generation `gen`'s missing secondary indexes (`SECONDARY_INDEXES`) in this
    /// transaction, and returns their names. Nothing is built for a generation that is no
    /// longer active or being built: that is decided under a lock a swap must wait for
    /// (SQLite's write lock; the `view_state` row on PostgreSQL), so a generation dropped
    /// after its swap never gets its indexes back. A careful batch calls this in its own
    /// transaction, so the index its lookups name cannot vanish before they run.
    pub(crate) async fn ensure_indexes(&mut self, gen: i64) -> Result<Vec<String>, sqlx::Error> {
        if self.missing_indexes(gen).await?.is_empty() {
            return Ok(Vec::new());
        }
        let (active, building) = match self {
            BatchTx::Sqlite(_) => self.view_state().await?,
            BatchTx::Postgres(c) => {
                // One builder at a time: two would race for the index's name in the catalog.
                sqlx::query("SELECT pg_advisory_xact_lock(7340201)")
                    .execute(&mut **c)
                    .await?;
                sqlx::query_as(
                    "SELECT active_gen, building_gen FROM view_state WHERE id = 1 FOR SHARE",
                )
                .fetch_one(&mut **c)
                .await?
            }
        };
        if gen != active && Some(gen) != building {
            return Ok(Vec::new());
        }
        let mut built = Vec::new();
        for (index, table, columns, rows) in self.missing_indexes(gen).await? {
            let sql = format!("CREATE INDEX {index} ON {table} ({columns}) WHERE {rows}");
            on_tx!(self, c => {
                sqlx::query(&sql).execute(&mut **c).await?;
            });
            built.push(index);
        }
        Ok(built)
    }

    /// Whether generation `gen` is active or being built, taking what a new base needs: no
    /// batch writes clocks meanwhile (this transaction holds SQLite's write lock; on
    /// PostgreSQL it locks the `view_state` row for update, which every batch share-locks).
    async fn holds_for_a_base(&mut self, gen: i64) -> Result<bool, sqlx::Error> {
        let (active, building) = match self {
            BatchTx::Sqlite(_) => self.view_state().await?,
            BatchTx::Postgres(c) => {
                sqlx::query_as(
                    "SELECT active_gen, building_gen FROM view_state WHERE id = 1 FOR UPDATE",
                )
                .fetch_one(&mut **c)
                .await?
            }
        };
        Ok(gen == active || Some(gen) == building)
    }

    /// Counts generation `gen`'s clocks at `base` into `sla_counts` (migration 0012: never
    /// paused, or settled by `base`, 0016; its triggers roll them up) and its cases into
    /// `case_counts` (0014), replacing any older base (the base row turns the triggers
    /// on); false when `gen` is no longer active or
    /// being built. No batch writes clocks meanwhile: this holds SQLite's write lock, and
    /// on PostgreSQL the `view_state` row for update, which every batch share-locks, so
    /// the triggers of a batch never count at a base this replaces.
    pub(crate) async fn make_sla_base(
        &mut self,
        gen: i64,
        base: &str,
    ) -> Result<bool, sqlx::Error> {
        if !self.holds_for_a_base(gen).await? {
            return Ok(false);
        }
        for sql in [
            "DELETE FROM sla_base WHERE gen = $1",
            "DELETE FROM sla_counts WHERE gen = $1",
            // Taken down to zero by the counts' triggers: only the empty rows are left.
            "DELETE FROM sla_step_counts WHERE gen = $1",
            "DELETE FROM sla_worker_counts WHERE gen = $1",
            "DELETE FROM case_counts WHERE gen = $1",
            "INSERT INTO case_counts (gen, region, stage, is_open, key_groups, n) \
             SELECT gen, region, stage, is_open, key_groups, COUNT(*) FROM cases WHERE gen = $1 GROUP BY 1, 2, 3, 4, 5",
        ] {
            on_tx!(self, c => {
                sqlx::query(sql).bind(gen).execute(&mut **c).await?;
            });
        }
        // Each clock by its count in a base at `$2`, the one definition a summary's
        // corrections and moving the base forward use too.
        let count = format!(
            "INSERT INTO sla_counts (gen, policy, step, region, caseworker, status, n) \
             SELECT gen, policy, step, region, caseworker, status, COUNT(*) FROM (\
             SELECT gen, policy, step, region, caseworker, {} AS status FROM clocks WHERE gen = $1 AND started_at <= $2) AS counted \
             WHERE status IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6",
            crate::sla::report::counted_at("$2", "$2")
        );
        let statements = [
            "INSERT INTO sla_base (gen, base_at) VALUES ($1, $2)",
            &count,
        ];
        for sql in statements {
            on_tx!(self, c => {
                sqlx::query(sql).bind(gen).bind(base).execute(&mut **c).await?;
            });
        }
        Ok(true)
    }

    /// Moves generation `gen`'s SLA base forward to `to` without counting every clock again:
    /// only the clocks started, due or settled between the base and `to` can count
    /// otherwise at `to` (as [`BatchTx::make_sla_base`] would count them), so their counts
    /// at the old base are taken off and their counts at `to` added (the roll-ups follow
    /// through their triggers). False when `gen` is no longer active or being built, or
    /// has no base at or before `to`. Holds the same locks as a new base.
    pub(crate) async fn advance_sla_base(
        &mut self,
        gen: i64,
        to: &str,
    ) -> Result<bool, sqlx::Error> {
        if !self.holds_for_a_base(gen).await? {
            return Ok(false);
        }
        let from: Option<String> = on_tx!(self, c => {
            sqlx::query_scalar("SELECT base_at FROM sla_base WHERE gen = $1")
                .bind(gen)
                .fetch_optional(&mut **c)
                .await?
        });
        let Some(from) = from.filter(|from| from.as_str() <= to) else {
            return Ok(false);
        };
        if let BatchTx::Postgres(c) = self {
            // The lock every statement that changes counts takes first (migration 0012).
            sqlx::query("SELECT pg_advisory_xact_lock(4242012)")
                .execute(&mut **c)
                .await?;
        }
        // A clock's count in a base at `t`.
        let at = |t: &str| crate::sla::report::counted_at(t, t);
        // The generation's indexes by start, deadline and settling, named on SQLite once it
        // has them all (see `store::through`), with the generation written into the SQL.
        let named =
            matches!(self, BatchTx::Sqlite(_)) && self.missing_indexes(gen).await?.is_empty();
        let sql = format!(
            "WITH moving AS (SELECT clocks.policy, clocks.step, clocks.region, clocks.caseworker, {was} AS was, {now} AS now FROM {changed}) \
             INSERT INTO sla_counts (gen, policy, step, region, caseworker, status, n) \
             SELECT $1, policy, step, region, caseworker, status, SUM(n) FROM (\
             SELECT policy, step, region, caseworker, was AS status, -1 AS n FROM moving WHERE was IS NOT NULL \
             UNION ALL SELECT policy, step, region, caseworker, now AS status, 1 AS n FROM moving WHERE now IS NOT NULL) AS moved \
             GROUP BY policy, step, region, caseworker, status HAVING SUM(n) <> 0 \
             ON CONFLICT (gen, policy, step, region, caseworker, status) DO UPDATE SET n = sla_counts.n + excluded.n",
            was = at("$2"),
            now = at("$3"),
            changed = crate::sla::report::changed_clocks(gen, named, "$2", "$3"),
        );
        on_tx!(self, c => {
            sqlx::query(&sql).bind(gen).bind(&from).bind(to).execute(&mut **c).await?;
            sqlx::query("UPDATE sla_base SET base_at = $2 WHERE gen = $1")
                .bind(gen)
                .bind(to)
                .execute(&mut **c)
                .await?;
        });
        Ok(true)
    }

    /// Generation `gen`'s secondary indexes that do not exist, as (name, table, columns).
    async fn missing_indexes(
        &mut self,
        gen: i64,
    ) -> Result<Vec<(String, &'static str, &'static str, String)>, sqlx::Error> {
        let sql = self.dialect().index_names_sql();
        let existing: Vec<String> =
            on_tx!(self, c => sqlx::query_scalar(sql).fetch_all(&mut **c).await?);
        Ok(crate::store::missing_indexes(&existing, gen))
    }

    /// The partition's checkpoint: next offset, digest so far, and whether its subjects'
    /// rows are still deferred (behind the other rows; see migration 0005).
    pub(crate) async fn checkpoint(
        &mut self,
        gen: i64,
        partition: u32,
    ) -> Result<Checkpoint, sqlx::Error> {
        let row = on_tx!(self, c => sqlx::query_as(CHECKPOINT_SQL)
            .bind(gen)
            .bind(i64::from(partition))
            .fetch_optional(&mut **c)
            .await?);
        Ok(Checkpoint::from_row(row))
    }

    /// Takes partition `partition` of generation `gen` back to offset 0: deletes every row
    /// its events made (found through their audit rows) and resets its checkpoint. For a
    /// partition whose subjects' rows were deferred, the only state they can be redone from.
    /// Clocks are found by their start event, so a stream's clocks started on another
    /// partition stay.
    pub(crate) async fn rewind(&mut self, gen: i64, partition: u32) -> Result<(), sqlx::Error> {
        let part = i64::from(partition);
        let of_partition = "SELECT event_id FROM audit_events WHERE gen = $1 AND part = $2";
        let statements = [
            format!("DELETE FROM clocks WHERE gen = $1 AND start_event IN ({of_partition})"),
            format!("DELETE FROM placements WHERE gen = $1 AND event_id IN ({of_partition})"),
            format!(
                "DELETE FROM household_clearings WHERE gen = $1 AND event_id IN ({of_partition})"
            ),
            format!(
                "DELETE FROM household_members WHERE gen = $1 AND event_id IN ({of_partition})"
            ),
            format!("DELETE FROM job_losses WHERE gen = $1 AND event_id IN ({of_partition})"),
            format!("DELETE FROM findings WHERE gen = $1 AND event_id IN ({of_partition})"),
            "DELETE FROM audit_events WHERE gen = $1 AND part = $2".to_string(),
            "DELETE FROM dead_letters WHERE gen = $1 AND part = $2".to_string(),
            "DELETE FROM digests WHERE gen = $1 AND part = $2".to_string(),
            "DELETE FROM partitions_caught_up WHERE gen = $1 AND part = $2".to_string(),
            "UPDATE checkpoints SET next_offset = 0, digest = '', subjects_deferred = 0, writer = '' WHERE gen = $1 AND part = $2".to_string(),
        ];
        for sql in &statements {
            on_tx!(self, c => {
                sqlx::query(sql).bind(gen).bind(part).execute(&mut **c).await?;
            });
        }
        Ok(())
    }

    /// [`Lookup`] over `keys`, rows decoded by `decode`.
    async fn select_in<T>(
        &mut self,
        lookup: &Lookup,
        gen: i64,
        keys: &[String],
        decode: impl Fn(&dyn crate::store::Cols) -> Result<T, sqlx::Error>,
    ) -> Result<Vec<T>, sqlx::Error> {
        let dialect = self.dialect();
        let mut out = Vec::new();
        for chunk in keys.chunks(Lookup::chunk(dialect)) {
            let sql = lookup.sql(dialect, gen, chunk.len());
            match self {
                BatchTx::Sqlite(c) => {
                    let mut q = sqlx::query(&sql);
                    for k in chunk {
                        q = q.bind(k.as_str());
                    }
                    for row in q.fetch_all(&mut **c).await? {
                        out.push(decode(&row)?);
                    }
                }
                BatchTx::Postgres(c) => {
                    for row in sqlx::query(&sql).bind(chunk).fetch_all(&mut **c).await? {
                        out.push(decode(&row)?);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Which of `ids` generation `gen` has applied.
    pub(crate) async fn load_seen(
        &mut self,
        gen: i64,
        ids: &[String],
    ) -> Result<HashSet<String>, sqlx::Error> {
        let ids = self
            .select_in(&SEEN_IDS, gen, ids, |r| r.text("event_id"))
            .await?;
        Ok(ids.into_iter().collect())
    }

    /// The cases of `subjects` that have one.
    pub(crate) async fn load_cases(
        &mut self,
        gen: i64,
        subjects: &[String],
    ) -> Result<HashMap<String, Case>, sqlx::Error> {
        let cases = self
            .select_in(&CASES, gen, subjects, |r| case_from(r))
            .await?;
        Ok(cases.into_iter().map(|c| (c.subject.clone(), c)).collect())
    }

    /// The open clocks of `subjects`, by subject, in clock id order.
    pub(crate) async fn load_open_clocks(
        &mut self,
        gen: i64,
        subjects: &[String],
    ) -> Result<HashMap<String, Vec<Clock>>, sqlx::Error> {
        let clocks = self
            .select_in(&OPEN_CLOCKS, gen, subjects, |r| clock_from(r))
            .await?;
        let mut out: HashMap<String, Vec<Clock>> = HashMap::new();
        for c in clocks {
            out.entry(c.subject.clone()).or_default().push(c);
        }
        for clocks in out.values_mut() {
            clocks.sort_by(|a, b| a.clock_id.cmp(&b.clock_id));
        }
        Ok(out)
    }

    /// The chain heads (seq, hash, greatest fold key) of `subjects` that have one.
    pub(crate) async fn load_chains(
        &mut self,
        gen: i64,
        subjects: &[String],
    ) -> Result<HashMap<String, (i64, String, String)>, sqlx::Error> {
        let heads = self
            .select_in(&CHAIN_HEADS, gen, subjects, |r| {
                Ok((
                    r.text("stream")?,
                    (r.int("seq")?, r.text("hash")?, r.text("fold_key")?),
                ))
            })
            .await?;
        Ok(heads.into_iter().collect())
    }

    /// Where generation `gen` applied each of `ids` it applied: partition and offset.
    pub(crate) async fn load_applied(
        &mut self,
        gen: i64,
        ids: &[String],
    ) -> Result<HashMap<String, (u32, u64)>, sqlx::Error> {
        let at = self
            .select_in(&APPLIED_AT, gen, ids, |r| {
                let (part, offset) = (r.int("part")?, r.int("log_offset")?);
                Ok((r.text("event_id")?, (part as u32, offset as u64)))
            })
            .await?;
        Ok(at.into_iter().collect())
    }

    /// The ids of every clock of `subjects`, by subject.
    pub(crate) async fn load_clock_ids(
        &mut self,
        gen: i64,
        subjects: &[String],
    ) -> Result<HashMap<String, Vec<String>>, sqlx::Error> {
        let ids = self
            .select_in(&CLOCK_IDS, gen, subjects, |r| {
                Ok((r.text("subject")?, r.text("clock_id")?))
            })
            .await?;
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for (subject, id) in ids {
            out.entry(subject).or_default().push(id);
        }
        Ok(out)
    }

    /// Deletes the rows of generation `gen` of `table` whose `key` is one of `keys`.
    pub(crate) async fn delete_in(
        &mut self,
        table: &str,
        key: &str,
        gen: i64,
        keys: &[String],
    ) -> Result<(), sqlx::Error> {
        for chunk in keys.chunks(Lookup::chunk(self.dialect())) {
            match self {
                BatchTx::Sqlite(c) => {
                    let sql = format!(
                        "DELETE FROM {table} WHERE gen = {gen} AND {key} IN ({})",
                        vec!["?"; chunk.len()].join(", ")
                    );
                    let mut q = sqlx::query(&sql);
                    for k in chunk {
                        q = q.bind(k.as_str());
                    }
                    q.execute(&mut **c).await?;
                }
                BatchTx::Postgres(c) => {
                    let sql = format!(
                        "DELETE FROM {table} WHERE gen = {gen} AND {key} = ANY($1::text[])"
                    );
                    sqlx::query(&sql).bind(chunk).execute(&mut **c).await?;
                }
            }
        }
        Ok(())
    }

    /// Writes `rows` (values in the order of `table.columns`) into `table`. On SQLite this
    /// runs the inserts on the calling thread, as sqlx's own worker thread would have.
    pub(crate) async fn insert(
        &mut self,
        table: &Table,
        rows: Vec<Vec<Val>>,
    ) -> Result<(), WriteError> {
        match self {
            BatchTx::Sqlite(tx) => {
                let mut handle = tx.lock_handle().await?;
                sqlite::insert(&mut handle, table, &rows)
            }
            BatchTx::Postgres(tx) => postgres::insert(tx, table, rows).await,
        }
    }

    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        on_tx!(self, tx => tx.commit().await)
    }

    pub(crate) async fn rollback(self) -> Result<(), sqlx::Error> {
        on_tx!(self, tx => tx.rollback().await)
    }
}

crate::store::impl_cols!(sqlx::sqlite::SqliteRow, sqlx::postgres::PgRow);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{sqlite_plan, sqlite_store_indexed};

    #[tokio::test]
    async fn a_careful_batch_finds_open_clocks_through_the_generations_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store_indexed(dir.path(), 1).await;
        let sql = OPEN_CLOCKS.sql(Dialect::Sqlite, 1, 2);
        let plan = sqlite_plan(&store, &sql, &["person-1", "person-2"]).await;
        assert!(plan.contains("USING INDEX clocks_by_subject_g1"), "{plan}");
    }
}
