//! The SQL store of the views: SQLite or PostgreSQL behind one `sqlx::Any` pool, so the
//! same projection code and SQL run on both. Timestamps are fixed-width RFC 3339 text
//! (`2026-03-02T01:00:00.000Z`), which sorts and compares the same on both.

use crate::batch::BatchPool;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::any::AnyRow;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Connection, Executor};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

static SQLITE: Migrator = sqlx::migrate!("../../projections/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("../../projections/postgres");

/// Every table that holds rows of one view generation.
pub(crate) const GEN_TABLES: &[&str] = &[
    "checkpoints",
    "digests",
    "dead_letters",
    "audit_events",
    "chains",
    "cases",
    "clocks",
    "placements",
    "household_clearings",
    "household_members",
    "job_losses",
    "findings",
];

/// The secondary indexes of one view generation, as (name, table, columns, and a condition
/// on the rows the index holds besides its generation). Generation N's copy is `{name}_gN`,
/// partial on `gen = N`: it is built in one pass once N is caught up
/// (or before a runner first looks N's rows up), not entry by entry while N is projected
/// from offset 0, and it goes with N. A query that needs one says `gen = N` literally, so
/// that the planner (SQLite's above all) can match it; `gen` leads the columns all the same,
/// or SQLite, without statistics, prefers the primary key's `gen` prefix to an `IN` list.
pub(crate) const SECONDARY_INDEXES: &[(&str, &str, &str, &str)] = &[
    // The runner's careful batches: the open clocks of a batch's subjects.
    ("clocks_by_subject", "clocks", "gen, subject, is_open", ""),
    // The SLA figures: the clocks started, due or settled between two times, whose status
    // may differ between them (see `sla_base`), and the clock lists by deadline. The
    // deadline's index holds every column a list or the weekly trend filters and counts
    // on, so that they read the index alone and fetch only the rows they list.
    (
        "clocks_by_start_at",
        "clocks",
        "gen, started_at, clock_id, plain, due_at, settled_at, outcome, region, caseworker, policy, step",
        "",
    ),
    (
        "clocks_by_deadline",
        "clocks",
        "gen, due_at, clock_id, plain, started_at, settled_at, outcome, region, caseworker, policy, step",
        "",
    ),
    (
        "clocks_by_settled_at",
        "clocks",
        "gen, settled_at, clock_id, plain, started_at, due_at, outcome, region, caseworker, policy, step",
        "",
    ),
    // Paused clocks (`plain = 0`): those whose status at a time the SQL gives counted from
    // the index alone (see `sla::report`), the others read one by one; by `settled_at`
    // first, so that a summary skips those its base counted.
    (
        "clocks_paused_settled",
        "clocks",
        "gen, plain, settled_at, pauses_end, outcome, waiting, moved_due, started_at, policy, step, region, caseworker, clock_id",
        "",
    ),
    // A page of paused clocks: those whose deadline stands still, in deadline order; those
    // settled with the outcome asked for. Of paused clocks only (a few percent of them).
    (
        "clocks_paused_by_due",
        "clocks",
        "gen, moved_due, clock_id, settled_at, outcome, waiting, pauses_end, started_at, policy, step, region, caseworker",
        "plain = 0",
    ),
    (
        "clocks_paused_by_outcome",
        "clocks",
        "gen, outcome, settled_at, waiting, pauses_end, started_at, policy, step, region, caseworker, clock_id",
        "plain = 0",
    ),
    // Caseload pages: in next-deadline order (see `caseload::query::caseload_page`), with
    // the filtered columns in the index; a caseworker's cases counted (a region's are
    // counted in `case_counts`).
    (
        "cases_by_next",
        "cases",
        "gen, next_moves, (COALESCE(next_due, '~')), subject, region, caseworker, is_open, stage",
        "",
    ),
    (
        "cases_by_caseworker",
        "cases",
        "gen, caseworker, region, is_open, stage",
        "",
    ),
];

/// The prefixes of retired per-generation indexes, dropped when a store is opened
/// (`clocks_by_due` became `clocks_by_deadline`, which holds the filtered columns too;
/// `clocks_by_start` and `clocks_by_settled` became `…_at`, which hold what the counts
/// read).
const RETIRED_INDEXES: &[&str] = &[
    "audit_by_stream_g",
    "clocks_by_plain_g",
    "clocks_paused_g",
    "clocks_by_due_g",
    "clocks_by_start_g",
    "clocks_by_settled_g",
];

/// `table` for a query of generation `gen` that must walk generation index `index`: on
/// SQLite `table INDEXED BY index_gN` once `named` (see [`Store::names_indexes`]; without
/// statistics its planner prefers any range, however wide, to an index that gives the
/// order asked), otherwise `table`.
pub(crate) fn through(table: &str, index: &str, gen: i64, named: bool) -> String {
    if named {
        format!("{table} INDEXED BY {}", generation_index(index, gen))
    } else {
        table.to_string()
    }
}

/// The name of generation `gen`'s copy of the secondary index `name`.
pub(crate) fn generation_index(name: &str, gen: i64) -> String {
    format!("{name}_g{gen}")
}

impl Dialect {
    /// The names of every index in the store's schema.
    pub(crate) fn index_names_sql(self) -> &'static str {
        match self {
            Dialect::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'index'",
            Dialect::Postgres => {
                "SELECT CAST(indexname AS TEXT) FROM pg_indexes WHERE schemaname = current_schema()"
            }
        }
    }
}

/// Generation `gen`'s secondary indexes not among `existing`, as (name, table, columns,
/// the condition on the rows it holds: `gen = N` and any of its own).
pub(crate) fn missing_indexes(
    existing: &[String],
    gen: i64,
) -> Vec<(String, &'static str, &'static str, String)> {
    SECONDARY_INDEXES
        .iter()
        .map(|(name, table, columns, rows)| {
            let rows = match *rows {
                "" => format!("gen = {gen}"),
                rows => format!("gen = {gen} AND {rows}"),
            };
            (generation_index(name, gen), *table, *columns, rows)
        })
        .filter(|(index, ..)| !existing.contains(index))
        .collect()
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The `--store` text is not `sqlite:PATH` or `postgres:URL`.
    #[error("store {0:?} must be sqlite:PATH or postgres://USER@HOST/DB")]
    Spec(String),
    /// The database failed.
    #[error("store {store}: {source}")]
    Sql {
        /// Which store.
        store: String,
        /// The failure.
        source: sqlx::Error,
    },
    /// The generation a runner writes was replaced by a rebuild.
    #[error(
        "view generation {gen} was replaced (generation {active} is active); run the command again"
    )]
    Replaced {
        /// The generation written.
        gen: i64,
        /// The active one.
        active: i64,
    },
    /// A batch's rows could not be written.
    #[error("store {store}: {reason}")]
    Rows {
        /// Which store.
        store: String,
        /// What failed.
        reason: String,
    },
    /// Its schema could not be migrated.
    #[error("store {store}: migration failed: {source}")]
    Migrate {
        /// Which store.
        store: String,
        /// The failure.
        source: sqlx::migrate::MigrateError,
    },
}

/// Which SQL dialect a store speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite (the embedded default).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A view store.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    /// The runner's connections (typed, for its bulk writes).
    pub(crate) batch: BatchPool,
    dialect: Dialect,
    name: String,
}

/// A value to bind.
#[derive(Debug, Clone)]
pub(crate) enum Val {
    Int(i64),
    Text(String),
    OptText(Option<String>),
    Bytes(Vec<u8>),
}

/// A stored row's columns by name, whichever connection read it.
pub(crate) trait Cols {
    fn text(&self, col: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, col: &str) -> Result<i64, sqlx::Error>;
}

/// [`Cols`] for sqlx row types.
macro_rules! impl_cols {
    ($($row:ty),*) => {$(
        impl $crate::store::Cols for $row {
            fn text(&self, col: &str) -> Result<String, sqlx::Error> {
                sqlx::Row::try_get(self, col)
            }
            fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
                sqlx::Row::try_get(self, col)
            }
            fn int(&self, col: &str) -> Result<i64, sqlx::Error> {
                sqlx::Row::try_get(self, col)
            }
        }
    )*};
}
pub(crate) use impl_cols;

impl_cols!(AnyRow);

/// What [`Store::flip`] did: whether its update matched, how many partitions of the
/// generation had their subjects' rows deferred, and how many of those it was to find
/// caught up were not (any of either: the flip was rolled back).
struct Flip {
    flipped: bool,
    deferred: i64,
    missing: i64,
}

/// A timestamp as stored.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A stored timestamp read back (`None` for a malformed one).
pub fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl Store {
    /// Opens `sqlite:PATH` (created when missing) or `postgres://…`, and migrates it.
    pub async fn open(spec: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (dialect, url) = if let Some(path) = spec.strip_prefix("sqlite:") {
            (Dialect::Sqlite, format!("sqlite://{path}?mode=rwc"))
        } else if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
            (Dialect::Postgres, spec.to_string())
        } else if let Some(url) = spec.strip_prefix("postgres:") {
            (Dialect::Postgres, url.to_string())
        } else {
            return Err(StoreError::Spec(spec.to_string()));
        };
        let name = match dialect {
            Dialect::Sqlite => spec.to_string(),
            // Never print a password.
            Dialect::Postgres => url
                .split('@')
                .next_back()
                .map(|h| format!("postgres://…@{h}"))
                .unwrap_or_default(),
        };
        let sql = |source| StoreError::Sql {
            store: name.clone(),
            source,
        };
        // Two commands opening a fresh SQLite store at once would both run its migrations
        // (sqlx takes no lock on SQLite): the second waits here for the first instead.
        let _migrating = match dialect {
            Dialect::Sqlite => match spec.strip_prefix("sqlite:") {
                Some(path) => Some(assist_log::OpenLock::acquire(Path::new(path)).await),
                None => None,
            },
            Dialect::Postgres => None,
        };
        let options = AnyConnectOptions::from_str(&url).map_err(sql)?;
        // One plain connection first: a pool that cannot connect reports only that it timed
        // out, and hides the cause (connection refused, authentication failed).
        if dialect == Dialect::Postgres {
            let probe = sqlx::AnyConnection::connect_with(&options)
                .await
                .map_err(sql)?;
            probe.close().await.map_err(sql)?;
        }
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        // busy_timeout first: switching a fresh file to WAL needs its lock too.
                        conn.execute("PRAGMA busy_timeout = 30000; PRAGMA page_size = 16384; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -131072; PRAGMA temp_store = MEMORY;")
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(sql)?;
        let migrator = match dialect {
            Dialect::Sqlite => &SQLITE,
            Dialect::Postgres => &POSTGRES,
        };
        migrator
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                store: name.clone(),
                source,
            })?;
        let batch = BatchPool::open(dialect, &url).await.map_err(sql)?;
        let store = Store {
            pool,
            batch,
            dialect,
            name,
        };
        store.drop_retired_indexes().await?;
        Ok(store)
    }

    /// Drops the per-generation indexes no query uses any more ([`RETIRED_INDEXES`]), such
    /// as `audit_by_stream_gN` (`sla explain` finds a subject's events through the log's
    /// stream index).
    async fn drop_retired_indexes(&self) -> Result<(), StoreError> {
        for name in self.index_names().await? {
            let retired = RETIRED_INDEXES.iter().any(|prefix| {
                name.strip_prefix(prefix)
                    .is_some_and(|gen| gen.parse::<i64>().is_ok())
            });
            if retired {
                sqlx::query(&format!("DROP INDEX IF EXISTS {name}"))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| self.err(e))?;
            }
        }
        Ok(())
    }

    /// The dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The store's name for messages (no password).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.batch.close().await;
        self.pool.close().await;
    }

    pub(crate) fn err(&self, source: sqlx::Error) -> StoreError {
        StoreError::Sql {
            store: self.name.clone(),
            source,
        }
    }

    /// The fingerprint of the rules generation `gen` was first projected with, if any.
    pub async fn generation_rules(&self, gen: i64) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT fingerprint FROM generation_rules WHERE gen = $1")
            .bind(gen)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e))
    }

    /// Records that generation `gen` is projected with the rules of `fingerprint`, unless
    /// it was projected with some before (the first rules are what it holds).
    pub async fn record_generation_rules(
        &self,
        gen: i64,
        fingerprint: &str,
    ) -> Result<(), StoreError> {
        if self.generation_rules(gen).await?.is_some() {
            return Ok(());
        }
        sqlx::query("INSERT INTO generation_rules (gen, fingerprint) VALUES ($1, $2) ON CONFLICT (gen) DO NOTHING")
            .bind(gen)
            .bind(fingerprint)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The generation queries read.
    pub async fn active_gen(&self) -> Result<i64, StoreError> {
        Ok(self.generations().await?.0)
    }

    /// The generation queries read, and the one being rebuilt, if any.
    pub(crate) async fn generations(&self) -> Result<(i64, Option<i64>), StoreError> {
        sqlx::query_as("SELECT active_gen, building_gen FROM view_state WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.err(e))
    }

    /// The generation live projection writes: the active one, or on a store whose views
    /// were never built (active generation 0, migration 0020) the first one, which nobody
    /// reads until it is whole ([`Store::swap_in_first_build`]).
    pub async fn live_gen(&self) -> Result<i64, StoreError> {
        Ok(match self.generations().await? {
            (0, Some(building)) => building,
            (active, _) => active,
        })
    }

    /// Starts building a new generation: returns its number, emptied of any earlier attempt.
    pub async fn begin_rebuild(&self) -> Result<i64, StoreError> {
        let (active, building) = self.generations().await?;
        if let (0, Some(first)) = (active, building) {
            // The views were never built: their first build is a rebuild already, and
            // runners may be writing it. This one joins it rather than empty it under them.
            return Ok(first);
        }
        let gen = active + 1;
        self.delete_gen(gen).await?;
        sqlx::query("UPDATE view_state SET building_gen = $1 WHERE id = 1")
            .bind(gen)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(gen)
    }

    /// Makes `gen` the generation queries read, in one statement, then drops the old one.
    /// Only the rebuild that owns `gen` can flip it: a second, concurrent rebuild of the
    /// same number finds nothing to flip and deletes nothing.
    pub async fn finish_rebuild(&self, gen: i64) -> Result<(), StoreError> {
        if let Some(old) = self.swap_in(gen).await? {
            self.drop_generation(old).await?;
        }
        Ok(())
    }

    /// The first half of [`Store::finish_rebuild`]: makes `gen` the generation queries
    /// read, and returns the one it replaced, which nothing reads any more (`None` when
    /// this call did not flip it).
    pub async fn swap_in(&self, gen: i64) -> Result<Option<i64>, StoreError> {
        let old = self.active_gen().await?;
        let flip = self.flip(gen, "building_gen = $2", &[]).await?;
        if flip.deferred > 0 {
            return Err(StoreError::Rows {
                store: self.name.clone(),
                reason: format!(
                    "generation {gen} is not whole: {} partition(s) still lack their subjects' rows; project it again",
                    flip.deferred
                ),
            });
        }
        Ok((flip.flipped && old != gen).then_some(old))
    }

    /// Makes `gen` the generation queries read if it is the first build of a store whose
    /// views were never built (active generation 0), every partition in `holding` (those
    /// of the log that hold records) has been caught up in it once, and none has its
    /// subjects' rows deferred. False otherwise: a runner of other partitions is still at
    /// work (it swaps the generation in when it is done), or it was swapped in already.
    pub(crate) async fn swap_in_first_build(
        &self,
        gen: i64,
        holding: &[u32],
    ) -> Result<bool, StoreError> {
        let flip = self
            .flip(gen, "building_gen = $2 AND active_gen = 0", holding)
            .await?;
        Ok(flip.flipped && flip.deferred == 0 && flip.missing == 0)
    }

    /// Marks partition `part` of `gen`, found empty, as caught up (see
    /// `Runner::mark_caught_up`), unless a runner has started projecting it since.
    pub(crate) async fn mark_empty_partition_caught_up(
        &self,
        gen: i64,
        part: u32,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO partitions_caught_up (gen, part) SELECT $1, $2
              WHERE NOT EXISTS (SELECT 1 FROM checkpoints WHERE gen = $1 AND part = $2
                                AND (next_offset > 0 OR subjects_deferred <> 0))
             ON CONFLICT (gen, part) DO NOTHING",
        )
        .bind(gen)
        .bind(i64::from(part))
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Flips `view_state` to `gen` where `condition` holds of it (`$2` is `gen`), in one
    /// transaction that it rolls back when a partition of `gen` has its subjects' rows
    /// deferred or a partition of `caught_up` has not been caught up in it. The flip
    /// first, then the checks: the flip takes SQLite's write lock, or on PostgreSQL the
    /// `view_state` row, which every batch share-locks (and a batch never defers rows into
    /// an active generation); so no batch can defer a partition's rows, or start one over,
    /// between the checks and the flip.
    async fn flip(&self, gen: i64, condition: &str, caught_up: &[u32]) -> Result<Flip, StoreError> {
        let err = |e| self.err(e);
        let mut tx = self.pool.begin().await.map_err(err)?;
        let flipped = sqlx::query(&format!(
            "UPDATE view_state SET active_gen = $1, building_gen = NULL WHERE id = 1 AND {condition}"
        ))
        .bind(gen)
        .bind(gen)
        .execute(&mut *tx)
        .await
        .map_err(err)?
        .rows_affected()
            == 1;
        let deferred: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM checkpoints WHERE gen = $1 AND subjects_deferred <> 0",
        )
        .bind(gen)
        .fetch_one(&mut *tx)
        .await
        .map_err(err)?;
        let mut missing = 0;
        for &part in caught_up {
            let marked: Option<i64> = sqlx::query_scalar(
                "SELECT part FROM partitions_caught_up WHERE gen = $1 AND part = $2",
            )
            .bind(gen)
            .bind(i64::from(part))
            .fetch_optional(&mut *tx)
            .await
            .map_err(err)?;
            missing += i64::from(marked.is_none());
        }
        if deferred > 0 || missing > 0 {
            tx.rollback().await.map_err(err)?;
        } else {
            tx.commit().await.map_err(err)?;
        }
        Ok(Flip {
            flipped,
            deferred,
            missing,
        })
    }

    /// The second half: deletes a replaced generation's rows and indexes. The active
    /// generation and the one being rebuilt are refused.
    pub async fn drop_generation(&self, gen: i64) -> Result<(), StoreError> {
        let (active, building) = self.generations().await?;
        let role = if gen == active {
            Some("the active one")
        } else if Some(gen) == building {
            Some("being rebuilt")
        } else {
            None
        };
        if let Some(role) = role {
            return Err(StoreError::Rows {
                store: self.name.clone(),
                reason: format!("generation {gen} is {role} and cannot be dropped"),
            });
        }
        self.delete_gen(gen).await
    }

    /// Creates generation `gen`'s secondary indexes ([`SECONDARY_INDEXES`]) where missing,
    /// unless `gen` is no longer active or being built.
    pub(crate) async fn ensure_indexes(&self, gen: i64) -> Result<(), StoreError> {
        // Read first: every command catches up before it queries, and should not take the
        // write lock for indexes that are there.
        if missing_indexes(&self.index_names().await?, gen).is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let err = |e| self.err(e);
        let mut tx = self.batch.begin_ddl().await.map_err(err)?;
        let built = match tx.ensure_indexes(gen).await {
            Ok(built) => built,
            Err(e) => {
                tx.rollback().await.ok();
                return Err(err(e));
            }
        };
        tx.commit().await.map_err(err)?;
        if !built.is_empty() {
            tracing::info!(
                indexes = %built.join(", "),
                seconds = started.elapsed().as_secs_f64(),
                "built a generation's indexes"
            );
        }
        Ok(())
    }

    /// Makes generation `gen`'s SLA counts (migration 0012) in one pass where it has none,
    /// and moves their base forward to its latest clock's start once that is more than an
    /// hour after the base, counting again only the clocks started, due or settled in
    /// between (in one pass again when it is more than a day after): a summary reads the
    /// counts and corrects them by the clocks started, due or settled between the base and
    /// its time, so the base follows the data and a summary of the present corrects
    /// little. The first pass counts its cases too (`case_counts`). Nothing for a
    /// generation no longer active or being built.
    pub(crate) async fn ensure_sla_base(&self, gen: i64) -> Result<(), StoreError> {
        let err = |e| self.err(e);
        let latest: Option<String> = sqlx::query_scalar(&format!(
            "SELECT MAX(started_at) FROM clocks WHERE gen = {gen}"
        ))
        .fetch_one(&self.pool)
        .await
        .map_err(err)?;
        let base = self.sla_base(gen).await?;
        // Without clocks yet, a base before any: the cases are counted all the same.
        let latest = latest.unwrap_or_default();
        let after = |base: &str, by: chrono::Duration| {
            let later = chrono::DateTime::parse_from_rfc3339(base)
                .map(|b| ts((b + by).to_utc()))
                .unwrap_or_default();
            latest > later
        };
        // Moved forward by up to a day's clocks; from further behind (a catch-up of a long
        // stretch) counting every clock again costs less than looking each changed one up.
        let advance = match base.as_deref() {
            Some(b) if !after(b, chrono::Duration::hours(1)) => return Ok(()),
            Some(b) => !after(b, chrono::Duration::days(1)),
            None => false,
        };
        let started = std::time::Instant::now();
        let mut tx = self.batch.begin_ddl().await.map_err(err)?;
        let made = if advance {
            tx.advance_sla_base(gen, &latest).await
        } else {
            tx.make_sla_base(gen, &latest).await
        };
        let made = match made {
            Ok(made) => made,
            Err(e) => {
                tx.rollback().await.ok();
                return Err(err(e));
            }
        };
        tx.commit().await.map_err(err)?;
        if made {
            tracing::info!(
                gen,
                advanced = advance,
                seconds = started.elapsed().as_secs_f64(),
                "counted a generation's SLA figures at a new base"
            );
        }
        Ok(())
    }

    /// The time generation `gen`'s SLA counts stand at (migration 0012), if it has them.
    pub async fn sla_base(&self, gen: i64) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT base_at FROM sla_base WHERE gen = $1")
            .bind(gen)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e))
    }

    /// Drops generation `gen`'s secondary indexes (before its rows go: fewer to update).
    async fn drop_indexes(&self, gen: i64) -> Result<(), StoreError> {
        for (name, ..) in SECONDARY_INDEXES {
            sqlx::query(&format!(
                "DROP INDEX IF EXISTS {}",
                generation_index(name, gen)
            ))
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// The per-generation secondary indexes the store holds, by name, sorted
    /// (`clocks_by_subject_g1`, …): which generations are ready for their queries.
    pub async fn generation_indexes(&self) -> Result<Vec<String>, StoreError> {
        let mut ours: Vec<String> = self
            .index_names()
            .await?
            .into_iter()
            .filter(|n| {
                SECONDARY_INDEXES.iter().any(|(base, ..)| {
                    n.strip_prefix(base)
                        .and_then(|rest| rest.strip_prefix("_g"))
                        .is_some_and(|g| g.parse::<i64>().is_ok())
                })
            })
            .collect();
        ours.sort();
        Ok(ours)
    }

    /// Every index in the store's schema, by name.
    /// Whether a query of generation `gen` should name its secondary indexes ([`through`]):
    /// on SQLite once they all exist (a generation projected from offset 0 gets them when
    /// caught up, and a query naming a missing index fails); never on PostgreSQL.
    pub(crate) async fn names_indexes(&self, gen: i64) -> Result<bool, StoreError> {
        Ok(self.dialect == Dialect::Sqlite
            && missing_indexes(&self.index_names().await?, gen).is_empty())
    }

    pub(crate) async fn index_names(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(self.dialect.index_names_sql())
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))
    }

    async fn delete_gen(&self, gen: i64) -> Result<(), StoreError> {
        self.drop_indexes(gen).await?;
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        // The base first: its clocks then go uncounted, one by one no longer. The counts
        // before their roll-ups, which their triggers take down to zero.
        for t in [
            "sla_base",
            "sla_counts",
            "sla_step_counts",
            "sla_worker_counts",
            "case_counts",
        ]
        .iter()
        .chain(GEN_TABLES)
        .chain(&["generation_rules", "partitions_caught_up"])
        {
            sqlx::query(&format!("DELETE FROM {t} WHERE gen = $1"))
                .bind(gen)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Refreshes the planner's statistics of the view tables (PostgreSQL; a no-op on SQLite).
    pub async fn analyze(&self) -> Result<(), StoreError> {
        if self.dialect == Dialect::Postgres {
            sqlx::query("ANALYZE")
                .execute(&self.pool)
                .await
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Records that `actor` read `stream` with `command` on this machine's command line
    /// (the access log auditors keep; role `local`).
    pub async fn log_access(
        &self,
        actor: &str,
        stream: &str,
        command: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.record_access(&Access {
            at: ts(at),
            actor: actor.to_string(),
            role: "local".to_string(),
            stream: stream.to_string(),
            command: command.to_string(),
            reason: None,
            region: None,
        })
        .await
    }

    /// Clears what the dead letters of every generation keep of the records keyed by
    /// `stream` (their bytes; position, reason and hash stay): part of erasing a person.
    /// Returns how many it cleared.
    pub async fn clear_dead_letters_of(&self, stream: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE dead_letters SET raw = $1, redacted = 1 WHERE stream = $2 AND (redacted = 0 OR LENGTH(raw) > 0)",
        )
        .bind(Vec::<u8>::new())
        .bind(stream)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(done.rows_affected())
    }

    /// Records one read in the access log.
    pub async fn record_access(&self, a: &Access) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO access_log (at, actor, role, stream, command, reason, region) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&a.at)
        .bind(&a.actor)
        .bind(&a.role)
        .bind(&a.stream)
        .bind(&a.command)
        .bind(a.reason.clone())
        .bind(a.region.clone())
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The access log, oldest first: up to `limit` entries after skipping `offset`, and
    /// how many there are in all.
    pub async fn access_log(
        &self,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Access>, i64), StoreError> {
        use sqlx::Row;
        let err = |e| self.err(e);
        let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM access_log")
            .fetch_one(&self.pool)
            .await
            .map_err(err)?
            .try_get("n")
            .map_err(err)?;
        let rows = sqlx::query(
            "SELECT at, actor, role, stream, command, reason, region FROM access_log ORDER BY id LIMIT $1 OFFSET $2",
        )
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        let list = rows
            .iter()
            .map(|r| {
                Ok(Access {
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    role: r.try_get("role")?,
                    stream: r.try_get("stream")?,
                    command: r.try_get("command")?,
                    reason: r.try_get("reason")?,
                    region: r.try_get("region")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(err)?;
        Ok((list, total))
    }

    /// The access log entries about subjects whose case (in generation `gen`) lies in
    /// regions starting with `region`, and exports of lists within it, oldest first, a
    /// page at a time, with their total: an auditor's view of who read its region.
    pub async fn access_log_in(
        &self,
        gen: i64,
        region: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Access>, i64), StoreError> {
        use sqlx::Row;
        let err = |e| self.err(e);
        let region = format!("{}%", like_escape(region));
        let from = "FROM access_log a LEFT JOIN cases c ON c.gen = $1 AND c.subject = a.stream WHERE COALESCE(a.region, c.region) LIKE $2";
        let total: i64 = sqlx::query(&format!("SELECT COUNT(*) AS n {from}"))
            .bind(gen)
            .bind(&region)
            .fetch_one(&self.pool)
            .await
            .map_err(err)?
            .try_get("n")
            .map_err(err)?;
        let rows = sqlx::query(&format!(
            "SELECT a.at, a.actor, a.role, a.stream, a.command, a.reason, a.region {from} ORDER BY a.id LIMIT $3 OFFSET $4"
        ))
        .bind(gen)
        .bind(&region)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        let list = rows
            .iter()
            .map(|r| {
                Ok(Access {
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    role: r.try_get("role")?,
                    stream: r.try_get("stream")?,
                    command: r.try_get("command")?,
                    reason: r.try_get("reason")?,
                    region: r.try_get("region")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(err)?;
        Ok((list, total))
    }

    /// The offsets generation `gen` has projected, summed over the partitions: the log's
    /// record count minus this is the projection's lag.
    pub async fn projected_records(&self, gen: i64) -> Result<u64, StoreError> {
        use sqlx::Row;
        let err = |e| self.err(e);
        let n: i64 = sqlx::query(
            "SELECT CAST(COALESCE(SUM(next_offset), 0) AS BIGINT) AS n FROM checkpoints WHERE gen = $1",
        )
        .bind(gen)
        .fetch_one(&self.pool)
        .await
        .map_err(err)?
        .try_get("n")
        .map_err(err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Whether `subject` has a case in generation `gen` whose region starts with `region`
    /// and, when `caseworker` is given, that is assigned to that caseworker: a caller's
    /// scope, decided in the query.
    pub async fn case_in_scope(
        &self,
        gen: i64,
        subject: &str,
        region: &str,
        caseworker: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.row_in_scope("cases", "subject", gen, subject, region, caseworker)
            .await
    }

    /// Whether clock `clock_id` of generation `gen` has a region starting with `region`
    /// and, when `caseworker` is given, is that caseworker's: a caller's scope, decided in
    /// the query.
    pub async fn clock_in_scope(
        &self,
        gen: i64,
        clock_id: &str,
        region: &str,
        caseworker: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.row_in_scope("clocks", "clock_id", gen, clock_id, region, caseworker)
            .await
    }

    /// Whether the row of `table` whose `key` column is `value` lies in the scope.
    async fn row_in_scope(
        &self,
        table: &str,
        key: &str,
        gen: i64,
        value: &str,
        region: &str,
        caseworker: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut sql =
            format!("SELECT {key} FROM {table} WHERE gen = $1 AND {key} = $2 AND region LIKE $3");
        if caseworker.is_some() {
            sql.push_str(" AND caseworker = $4");
        }
        let mut q = sqlx::query(&sql)
            .bind(gen)
            .bind(value)
            .bind(format!("{}%", like_escape(region)));
        if let Some(w) = caseworker {
            q = q.bind(w);
        }
        let row = q
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(row.is_some())
    }
}

/// A region prefix is digits only; anything else is dropped so it cannot widen a `LIKE`.
pub(crate) fn like_escape(prefix: &str) -> String {
    prefix.chars().filter(char::is_ascii_digit).collect()
}

/// One entry of the access log: who read which stream, how, when and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Access {
    /// When (stored time).
    pub at: String,
    /// Who: the token's `sub`, or the local user.
    pub actor: String,
    /// In which role (`local` on the command line).
    pub role: String,
    /// The stream read.
    pub stream: String,
    /// What was asked.
    pub command: String,
    /// The reason given (auditors opening personal fields).
    pub reason: Option<String>,
    /// The region a list read covers (an export); none for a stream's history, whose
    /// region is its subject's case's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// The dumped tables whose rows record the log's order, which differs by design between
/// two logs of the same facts.
const LOG_ORDER_TABLES: [&str; 4] = ["checkpoints", "dead_letters", "audit_events", "chains"];

/// The tables compared by [`Store::dump`]: every view table but the digest history,
/// whose rows follow batch boundaries (the final digest is in `checkpoints`).
const DUMPED: &[(&str, &str)] = &[
    ("checkpoints", "part"),
    ("dead_letters", "part, log_offset"),
    ("audit_events", "event_id"),
    ("chains", "stream"),
    ("cases", "subject"),
    ("clocks", "clock_id"),
    ("placements", "event_id"),
    ("household_clearings", "event_id"),
    ("household_members", "event_id, person"),
    ("job_losses", "event_id"),
    ("findings", "event_id, kind"),
];

impl Store {
    /// Every row of generation `gen` as text, table by table in key order: two stores (or
    /// two rebuilds) hold the same views exactly when their dumps are equal.
    pub async fn dump(&self, gen: i64) -> Result<String, StoreError> {
        self.dump_tables(gen, DUMPED).await
    }

    /// The rows of the view tables of generation `gen` as [`Store::dump`] gives them, without
    /// the tables that record the log's order (checkpoints, dead letters, the audit rows and
    /// chains): the same facts in any arrival order give the same text.
    pub async fn dump_views(&self, gen: i64) -> Result<String, StoreError> {
        let views: Vec<(&str, &str)> = DUMPED
            .iter()
            .filter(|(t, _)| !LOG_ORDER_TABLES.contains(t))
            .copied()
            .collect();
        self.dump_tables(gen, &views).await
    }

    async fn dump_tables(&self, gen: i64, tables: &[(&str, &str)]) -> Result<String, StoreError> {
        use sqlx::{Column, Row, TypeInfo, ValueRef};
        let mut out = String::new();
        for (table, order) in tables {
            out.push_str(&format!("## {table}\n"));
            let order = match self.dialect {
                // Byte order on both dialects, whatever the database's collation.
                Dialect::Postgres => order
                    .split(", ")
                    .map(|c| {
                        if matches!(c, "part" | "log_offset" | "seq") {
                            c.to_string()
                        } else {
                            format!("{c} COLLATE \"C\"")
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                Dialect::Sqlite => order.to_string(),
            };
            let sql = format!("SELECT * FROM {table} WHERE gen = $1 ORDER BY {order}");
            let rows = sqlx::query(&sql)
                .bind(gen)
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.err(e))?;
            for row in rows {
                let mut cells = Vec::new();
                for (i, col) in row.columns().iter().enumerate() {
                    // The checkpoint's writer is a token drawn by each run: not a view.
                    if col.name() == "gen" || col.name() == "writer" {
                        continue;
                    }
                    let raw = row.try_get_raw(i).map_err(|e| self.err(e))?;
                    let cell = if raw.is_null() {
                        "NULL".to_string()
                    } else if let Ok(v) = row.try_get::<i64, _>(i) {
                        v.to_string()
                    } else if let Ok(v) = row.try_get::<String, _>(i) {
                        v
                    } else if let Ok(v) = row.try_get::<Vec<u8>, _>(i) {
                        format!("bytes:{}", hex::encode(v))
                    } else {
                        format!("<{}>", raw.type_info().name())
                    };
                    cells.push(format!("{}={cell}", col.name()));
                }
                out.push_str(&cells.join(" | "));
                out.push('\n');
            }
        }
        Ok(out)
    }
}

/// One cell of an exported row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// An integer.
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
}

/// The rows of one table of one generation, for copying elsewhere (benchmarks, exports).
#[derive(Debug, Clone)]
pub struct TableRows {
    /// The table.
    pub table: String,
    /// Its columns, in order.
    pub columns: Vec<String>,
    /// Its rows.
    pub rows: Vec<Vec<Cell>>,
}

impl Store {
    /// Every row of generation `gen`, table by table (the digest history included).
    pub async fn export(&self, gen: i64) -> Result<Vec<TableRows>, StoreError> {
        use sqlx::{Column, Row, ValueRef};
        let mut out = Vec::new();
        for table in GEN_TABLES {
            let rows = sqlx::query(&format!("SELECT * FROM {table} WHERE gen = $1"))
                .bind(gen)
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.err(e))?;
            let columns: Vec<String> = rows
                .first()
                .map(|r| r.columns().iter().map(|c| c.name().to_string()).collect())
                .unwrap_or_default();
            let mut cells_rows = Vec::with_capacity(rows.len());
            for row in &rows {
                let mut cells = Vec::with_capacity(columns.len());
                for i in 0..columns.len() {
                    let raw = row.try_get_raw(i).map_err(|e| self.err(e))?;
                    cells.push(if raw.is_null() {
                        Cell::Null
                    } else if let Ok(v) = row.try_get::<i64, _>(i) {
                        Cell::Int(v)
                    } else if let Ok(v) = row.try_get::<String, _>(i) {
                        Cell::Text(v)
                    } else {
                        Cell::Bytes(row.try_get::<Vec<u8>, _>(i).map_err(|e| self.err(e))?)
                    });
                }
                cells_rows.push(cells);
            }
            out.push(TableRows {
                table: table.to_string(),
                columns,
                rows: cells_rows,
            });
        }
        Ok(out)
    }
}

/// Helpers for the crate's own tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::Store;

    /// A fresh SQLite store in `dir` with its active generation's (`gen`, 1) secondary
    /// indexes built.
    pub(crate) async fn sqlite_store_indexed(dir: &std::path::Path, gen: i64) -> Store {
        let store = Store::open(&format!("sqlite:{}", dir.join("v.db").display()))
            .await
            .unwrap();
        store.ensure_indexes(gen).await.unwrap();
        store
    }

    /// The plan SQLite makes for `sql`, its `?`/`$n` bound to `binds`, one line a step.
    pub(crate) async fn sqlite_plan(store: &Store, sql: &str, binds: &[&str]) -> String {
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let mut q = sqlx::query_as::<_, (i64, i64, i64, String)>(&explain);
        for b in binds {
            q = q.bind(*b);
        }
        let rows = q.fetch_all(&store.pool).await.unwrap();
        rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opening_a_store_drops_the_retired_indexes_and_keeps_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let spec = format!("sqlite:{}", dir.path().join("v.db").display());
        let store = Store::open(&spec).await.unwrap();
        store.ensure_indexes(1).await.unwrap();
        // As a store from before left them: one per generation.
        for gen in [1, 2] {
            sqlx::query(&format!(
                "CREATE INDEX audit_by_stream_g{gen} ON audit_events (gen, stream, seq) WHERE gen = {gen}"
            ))
            .execute(&store.pool)
            .await
            .unwrap();
            sqlx::query(&format!(
                "CREATE INDEX clocks_by_due_g{gen} ON clocks (gen, due_at, clock_id) WHERE gen = {gen}"
            ))
            .execute(&store.pool)
            .await
            .unwrap();
        }
        store.close().await;
        let store = Store::open(&spec).await.unwrap();
        let ours: Vec<String> = store
            .index_names()
            .await
            .unwrap()
            .into_iter()
            // The per-generation ones: `{name}_g{N}`.
            .filter(|n| {
                n.rsplit_once("_g")
                    .is_some_and(|(_, g)| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()))
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(
            ours,
            [
                "cases_by_caseworker_g1",
                "cases_by_next_g1",
                "clocks_by_deadline_g1",
                "clocks_by_settled_at_g1",
                "clocks_by_start_at_g1",
                "clocks_by_subject_g1",
                "clocks_paused_by_due_g1",
                "clocks_paused_by_outcome_g1",
                "clocks_paused_settled_g1"
            ]
        );
    }
}
