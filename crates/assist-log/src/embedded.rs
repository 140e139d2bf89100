//! The embedded log: one SQLite file (WAL, `synchronous=FULL`), one writer at a time.
//!
//! A row's `position` is `partition << 40 | offset`, so reading a partition from an offset
//! is a range scan of the primary key and offsets stay dense per partition.
//!
//! Streams are found through `stream_index (stream_key, position)`, keyed by a 64-bit FNV-1a
//! hash of the stream name (the name itself is checked on read, so a collision costs a row,
//! not a mix-up). That index is written **behind** the events, in sorted bulk: an append
//! stores the events and their id index only; the stream index catches up with one
//! `INSERT … SELECT … ORDER BY` per partition before any stream read or expected-version
//! check, and inside an append once a partition is more than `STREAM_INDEX_LAG` events
//! behind. Random per-event inserts into a stream index would rewrite most of its pages at
//! every batch and halve append throughput (BENCHMARKS.md); sorted catch-up touches each
//! page once. The catch-up runs under the writer's lock in a write transaction, so a
//! reader never sees a stream without its latest events. A stream's version is its number
//! of events.

use crate::{
    partition_for, AppendBatch, Appended, Appender, IdIndex, LogError, OpenLock, PartitionInfo,
    PartitionReader, Position, Record, StreamReader, DEFAULT_PARTITIONS,
};
use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool, Transaction};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::Mutex;
use uuid::Uuid;

const OFFSET_BITS: u32 = 40;
/// How many events a partition may get ahead of its stream index before an append
/// brings the index up to date itself (bounds the work of the next stream read).
const STREAM_INDEX_LAG: u64 = 100_000;
/// Partitions the position encoding (`partition << 40`) leaves room for, with margin.
const MAX_PARTITIONS: u32 = 4096;
/// Rows per INSERT statement (5 parameters each, under SQLite's 32,766).
const INSERT_CHUNK: usize = 1000;
/// Values per `IN (...)` lookup.
const LOOKUP_CHUNK: usize = 2000;

fn encode(p: Position) -> i64 {
    ((u64::from(p.partition) << OFFSET_BITS) | p.offset) as i64
}

fn decode(position: i64) -> Position {
    let raw = position as u64;
    Position {
        partition: (raw >> OFFSET_BITS) as u32,
        offset: raw & ((1 << OFFSET_BITS) - 1),
    }
}

/// The default backend: the whole log in one local SQLite file.
pub struct EmbeddedLog {
    pool: SqlitePool,
    partitions: u32,
    path: PathBuf,
    writer: Mutex<()>,
    /// Opened from a read-only copy: nothing is written, not even the stream index.
    read_only: bool,
}

impl EmbeddedLog {
    /// Opens (or creates) the log at `path`. A new log gets `partitions` (default 8);
    /// an existing one must have been made with the same count when one is given.
    pub async fn open(path: &Path, partitions: Option<u32>) -> Result<Self, LogError> {
        let _opening = OpenLock::acquire(path).await;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            // Stream-index inserts land all over the index: keep it in memory, in big pages
            // (16 KiB pages measured 30% faster than 4 KiB for this write pattern).
            .page_size(16384)
            .pragma("cache_size", "-131072")
            .pragma("wal_autocheckpoint", "4096")
            .pragma("temp_store", "memory");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS log_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS events (
                 position INTEGER PRIMARY KEY,
                 stream_key INTEGER NOT NULL,
                 stream TEXT NOT NULL,
                 event_id BLOB NOT NULL,
                 payload BLOB NOT NULL
             );
             CREATE UNIQUE INDEX IF NOT EXISTS events_by_id ON events (event_id);
             DROP INDEX IF EXISTS events_by_stream;
             CREATE TABLE IF NOT EXISTS stream_index (
                 stream_key INTEGER NOT NULL,
                 position INTEGER NOT NULL,
                 PRIMARY KEY (stream_key, position)
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS stream_index_upto (part INTEGER PRIMARY KEY, upto INTEGER NOT NULL);",
        )
        .execute(&pool)
        .await?;
        let wanted = partitions.unwrap_or(DEFAULT_PARTITIONS).max(1);
        if wanted > MAX_PARTITIONS {
            return Err(LogError::Backend(format!(
                "{wanted} partitions asked for; the embedded log takes at most {MAX_PARTITIONS}"
            )));
        }
        sqlx::query("INSERT OR IGNORE INTO log_meta (key, value) VALUES ('partitions', ?)")
            .bind(wanted.to_string())
            .execute(&pool)
            .await?;
        let found: String =
            sqlx::query_scalar("SELECT value FROM log_meta WHERE key = 'partitions'")
                .fetch_one(&pool)
                .await?;
        let found: u32 = found.parse().map_err(|_| {
            LogError::Backend(format!("log_meta.partitions is {found:?}, not a number"))
        })?;
        if partitions.is_some() && found != wanted {
            return Err(LogError::PartitionCount { found, wanted });
        }
        Ok(Self {
            pool,
            partitions: found,
            path: path.to_path_buf(),
            writer: Mutex::new(()),
            read_only: false,
        })
    }

    /// Opens an existing log for reading only, writing nothing at all (an auditor's copy on
    /// read-only media). Without a `-wal` file beside it the file is opened as immutable:
    /// SQLite could not create the WAL index there, and no WAL means nothing to miss.
    /// Appends fail; stream reads cover the part the stream index lags behind by a scan.
    pub async fn open_read_only(path: &Path) -> Result<Self, LogError> {
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let options = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .immutable(!Path::new(&wal).exists())
            .busy_timeout(Duration::from_secs(30))
            .pragma("cache_size", "-131072");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        let found: String =
            sqlx::query_scalar("SELECT value FROM log_meta WHERE key = 'partitions'")
                .fetch_one(&pool)
                .await?;
        let partitions: u32 = found.parse().map_err(|_| {
            LogError::Backend(format!("log_meta.partitions is {found:?}, not a number"))
        })?;
        Ok(Self {
            pool,
            partitions,
            path: path.to_path_buf(),
            writer: Mutex::new(()),
            read_only: true,
        })
    }

    /// The file the log lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the connections, so the file can be reopened or copied.
    ///
    /// sqlx closes the pool's connections side by side, and SQLite's last connection folds
    /// the WAL into the file only if no other is closing at that moment, so two closing at
    /// once can each leave it to the other. One connection, opened after the pool is
    /// closed, checkpoints and closes alone: the file is then whole without its WAL.
    pub async fn close(self) {
        self.pool.close().await;
        if self.read_only {
            return;
        }
        let options = SqliteConnectOptions::new()
            .filename(&self.path)
            .busy_timeout(Duration::from_secs(30));
        match SqliteConnection::connect_with(&options).await {
            Ok(mut conn) => {
                // Passive: another process may have the log open, and then neither waits
                // for the other; the WAL is folded in by whoever closes last.
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&mut conn)
                    .await
                {
                    tracing::debug!(error = %e, "the closing checkpoint did not run");
                }
                if let Err(e) = conn.close().await {
                    tracing::debug!(error = %e, "the closing connection did not close cleanly");
                }
            }
            Err(e) => tracing::debug!(error = %e, "the closing connection did not open"),
        }
    }

    fn check_partition(&self, partition: u32) -> Result<(), LogError> {
        if partition < self.partitions {
            Ok(())
        } else {
            Err(LogError::NoSuchPartition {
                partition,
                count: self.partitions,
            })
        }
    }

    /// Brings the stream index of every partition up to date (done lazily otherwise: before
    /// stream reads and expectation checks, and when a partition lags too far behind).
    pub async fn index_all_streams(&self) -> Result<(), LogError> {
        let _writer = self.writer.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for p in 0..self.partitions {
            self.index_streams(&mut tx, p).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// How far (offset) the stream index covers `partition`.
    async fn indexed_upto(
        &self,
        tx: &mut Transaction<'_, Sqlite>,
        partition: u32,
    ) -> Result<u64, LogError> {
        let upto: Option<i64> =
            sqlx::query_scalar("SELECT upto FROM stream_index_upto WHERE part = ?")
                .bind(i64::from(partition))
                .fetch_optional(&mut **tx)
                .await?;
        Ok(upto.map_or(0, |u| u as u64))
    }

    /// Brings the stream index of `partition` up to the partition's end, in sorted bulk.
    async fn index_streams(
        &self,
        tx: &mut Transaction<'_, Sqlite>,
        partition: u32,
    ) -> Result<(), LogError> {
        let upto = self.indexed_upto(tx, partition).await?;
        let head = self.high_water(tx, partition).await?;
        if head <= upto {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO stream_index (stream_key, position)
             SELECT stream_key, position FROM events WHERE position >= ? AND position < ?
             ORDER BY stream_key, position",
        )
        .bind(encode(Position {
            partition,
            offset: upto,
        }))
        .bind(encode(Position {
            partition,
            offset: head,
        }))
        .execute(&mut **tx)
        .await?;
        sqlx::query("INSERT INTO stream_index_upto (part, upto) VALUES (?, ?) ON CONFLICT (part) DO UPDATE SET upto = excluded.upto")
            .bind(i64::from(partition))
            .bind(head as i64)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// A stream's version: the number of its events (the stream index caught up first).
    async fn stream_version(
        &self,
        tx: &mut Transaction<'_, Sqlite>,
        stream: &str,
    ) -> Result<u64, LogError> {
        self.index_streams(tx, partition_for(stream, self.partitions))
            .await?;
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM stream_index s JOIN events e ON e.position = s.position
             WHERE s.stream_key = ? AND e.stream = ?",
        )
        .bind(stream_key(stream))
        .bind(stream)
        .fetch_one(&mut **tx)
        .await?;
        Ok(n as u64)
    }

    /// A stream read that writes nothing: the stream index up to where it reaches, then a
    /// scan of the partition's events past that point (a read-only copy cannot catch the
    /// index up).
    async fn read_stream_unindexed_tail(&self, stream: &str) -> Result<Vec<Record>, LogError> {
        let mut tx = self.pool.begin().await?;
        let partition = partition_for(stream, self.partitions);
        let upto = self.indexed_upto(&mut tx, partition).await?;
        let rows = sqlx::query(
            "SELECT e.position, e.stream, e.event_id, e.payload FROM stream_index s
             JOIN events e ON e.position = s.position
             WHERE s.stream_key = ? AND e.stream = ? AND s.position < ?
             UNION ALL
             SELECT position, stream, event_id, payload FROM events
             WHERE position >= ? AND position < ? AND stream_key = ? AND stream = ?
             ORDER BY 1",
        )
        .bind(stream_key(stream))
        .bind(stream)
        .bind(encode(Position {
            partition,
            offset: upto,
        }))
        .bind(encode(Position {
            partition,
            offset: upto,
        }))
        .bind(encode(Position {
            partition: partition + 1,
            offset: 0,
        }))
        .bind(stream_key(stream))
        .bind(stream)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter().map(record).collect()
    }

    async fn high_water(
        &self,
        tx: &mut Transaction<'_, Sqlite>,
        partition: u32,
    ) -> Result<u64, LogError> {
        let lo = encode(Position {
            partition,
            offset: 0,
        });
        let hi = encode(Position {
            partition: partition + 1,
            offset: 0,
        });
        let max: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(position) FROM events WHERE position >= ? AND position < ?",
        )
        .bind(lo)
        .bind(hi)
        .fetch_one(&mut **tx)
        .await?;
        Ok(max.map_or(0, |m| decode(m).offset + 1))
    }
}

#[async_trait]
impl Appender for EmbeddedLog {
    async fn append(&self, batch: AppendBatch) -> Result<Vec<Appended>, LogError> {
        // One writer per process; BEGIN IMMEDIATE makes other processes wait (busy_timeout)
        // instead of racing, so a duplicate is always seen, never silently skipped.
        let _writer = self.writer.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;

        // 1. Ids stored before.
        let ids: Vec<Uuid> = batch.events.iter().map(|e| e.event_id).collect();
        let known = find_ids(&mut tx, &ids).await?;

        // 2. Which events are new, and which expectations to check.
        let plan = batch.plan(&known)?;
        let new_idx = &plan.new;
        for &(stream, expected) in &plan.to_check {
            let actual = self.stream_version(&mut tx, stream).await?;
            if !expected.admits(actual) {
                return Err(LogError::WrongExpectedVersion {
                    stream: stream.to_string(),
                    expected,
                    actual,
                });
            }
        }

        // 4. Positions for the new events, dense per partition.
        let mut heads: HashMap<u32, u64> = HashMap::new();
        let mut assigned: HashMap<usize, Position> = HashMap::new();
        for &i in new_idx {
            let e = &batch.events[i];
            let partition = partition_for(&e.stream, self.partitions);
            if let std::collections::hash_map::Entry::Vacant(slot) = heads.entry(partition) {
                slot.insert(self.high_water(&mut tx, partition).await?);
            }
            let head = heads.entry(partition).or_default();
            assigned.insert(
                i,
                Position {
                    partition,
                    offset: *head,
                },
            );
            *head += 1;
        }

        // 5. Insert, many rows per statement.
        for chunk in new_idx.chunks(INSERT_CHUNK) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO events (position, stream_key, stream, event_id, payload) ",
            );
            q.push_values(chunk, |mut row, &i| {
                let e = &batch.events[i];
                row.push_bind(encode(assigned[&i]))
                    .push_bind(stream_key(&e.stream))
                    .push_bind(e.stream.as_str())
                    .push_bind(e.event_id.as_bytes().as_slice())
                    .push_bind(e.payload.as_slice());
            });
            q.build().execute(&mut *tx).await?;
        }
        for (&partition, &head) in &heads {
            let upto = self.indexed_upto(&mut tx, partition).await?;
            if head.saturating_sub(upto) > STREAM_INDEX_LAG {
                self.index_streams(&mut tx, partition).await?;
            }
        }
        tx.commit().await?;

        Ok(plan.outcomes(&batch, &known, &assigned))
    }
}

/// The 64-bit FNV-1a hash of a stream name, as a signed SQLite integer: the embedded
/// log's stream index key. Stored: never change it.
pub fn stream_key(stream: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in stream.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

async fn find_ids(
    conn: &mut sqlx::SqliteConnection,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Position>, LogError> {
    let mut known = HashMap::new();
    for chunk in ids.chunks(LOOKUP_CHUNK) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT event_id, position FROM events WHERE event_id IN (",
        );
        let mut sep = q.separated(", ");
        for id in chunk {
            sep.push_bind(id.as_bytes().to_vec());
        }
        q.push(")");
        for row in q.build().fetch_all(&mut *conn).await? {
            let id: Vec<u8> = row.try_get(0)?;
            let id = Uuid::from_slice(&id).map_err(|e| LogError::Backend(e.to_string()))?;
            known.insert(id, decode(row.try_get(1)?));
        }
    }
    Ok(known)
}

#[async_trait]
impl IdIndex for EmbeddedLog {
    async fn find_ids(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Position>, LogError> {
        let mut conn = self.pool.acquire().await?;
        find_ids(&mut conn, ids).await
    }
}

fn record(row: &sqlx::sqlite::SqliteRow) -> Result<Record, LogError> {
    let id: Vec<u8> = row.try_get("event_id")?;
    Ok(Record {
        position: decode(row.try_get("position")?),
        stream: row.try_get("stream")?,
        event_id: Uuid::from_slice(&id).ok(),
        payload: row.try_get("payload")?,
    })
}

#[async_trait]
impl PartitionReader for EmbeddedLog {
    fn partition_count(&self) -> u32 {
        self.partitions
    }

    async fn read_partition(
        &self,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<Record>, LogError> {
        self.check_partition(partition)?;
        let from = from.min((1 << OFFSET_BITS) - 1);
        let lo = encode(Position {
            partition,
            offset: from,
        });
        let hi = encode(Position {
            partition: partition + 1,
            offset: 0,
        });
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let mut conn = self.pool.acquire().await?;
        // A large read steps SQLite for a while (and may wait out a writer's lock): on a
        // blocking thread, not on one of the runtime's workers.
        tokio::task::spawn_blocking(move || {
            let runtime = tokio::runtime::Handle::current();
            let mut handle = runtime.block_on(conn.lock_handle())?;
            crate::scan::events(&mut handle, lo, hi, max, decode)
        })
        .await
        .map_err(|e| LogError::Backend(format!("the partition read stopped: {e}")))?
    }

    async fn partitions(&self) -> Result<Vec<PartitionInfo>, LogError> {
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::with_capacity(self.partitions as usize);
        for partition in 0..self.partitions {
            out.push(PartitionInfo {
                partition,
                high_water: self.high_water(&mut tx, partition).await?,
            });
        }
        tx.commit().await?;
        Ok(out)
    }
}

#[async_trait]
impl StreamReader for EmbeddedLog {
    async fn read_stream(&self, stream: &str) -> Result<Vec<Record>, LogError> {
        if self.read_only {
            return self.read_stream_unindexed_tail(stream).await;
        }
        let _writer = self.writer.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let partition = partition_for(stream, self.partitions);
        self.index_streams(&mut tx, partition).await?;
        let rows = sqlx::query(
            "SELECT e.position, e.stream, e.event_id, e.payload FROM stream_index s
             JOIN events e ON e.position = s.position
             WHERE s.stream_key = ? AND e.stream = ? ORDER BY s.position",
        )
        .bind(stream_key(stream))
        .bind(stream)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter().map(record).collect()
    }
}
