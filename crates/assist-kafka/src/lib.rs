//! The Kafka backend of the `assist` event log.
//!
//! One topic, message key = stream id, partition = the same murmur2 hash as the embedded
//! log (set explicitly, so both backends agree whatever the client's partitioner), plain
//! catalog JSON as the value and the event id in an `event_id` header. The producer is
//! idempotent with `acks=all`.
//!
//! The idempotent producer only protects one producer session. Keeping a fact from being
//! appended twice across restarts, and checking expected versions, needs an index of the
//! ids and streams on the topic. There are two, one per way of running:
//!
//! - [`KafkaLog`], for one writing instance: the id index is a SQLite file next to the
//!   service. Before each append it reads the topic from where the index stopped to the
//!   end of every partition, recording each message's event id and position, then appends
//!   only the ids it has not seen. A crash between delivery and indexing costs nothing: the
//!   next append reads those messages back. Appenders on one machine are serialised by the
//!   index's write lock (`BEGIN IMMEDIATE`), which makes the expected-version check sound.
//! - [`SharedKafkaLog`], for any number of instances on Kafka and PostgreSQL: PostgreSQL
//!   is the arbiter of stream versions and event ids, and an outbox in the same
//!   transaction is relayed to the topic (see its module).

pub mod group;
pub mod notices;
mod shared;
mod topic;

pub use shared::{SharedKafkaLog, SharedSettings};

use assist_log::{
    partition_for, AppendBatch, Appended, Appender, IdIndex, LogError, LogEvent, PartitionInfo,
    PartitionReader, Position, Record, StreamReader,
};
use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;
use topic::{Topic, READ_PAGE};
use uuid::Uuid;

/// The header that carries an event's id.
pub const EVENT_ID_HEADER: &str = "event_id";

/// Where the log lives on Kafka.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `host:port[,host:port]`.
    pub brokers: String,
    /// The topic.
    pub topic: String,
    /// Partitions of a new topic (an existing topic must have as many).
    pub partitions: u32,
    /// Replication factor of a new topic.
    pub replication: i32,
    /// How long a broker may take to answer before the call fails.
    pub timeout: Duration,
    /// Records per produce batch at most (`batch.num.messages`); `Some(1)` for brokers
    /// that serve fetches only from record-batch boundaries (tansu 0.6), `None` to let
    /// librdkafka batch freely (Apache Kafka).
    pub max_batch_messages: Option<u32>,
}

impl KafkaConfig {
    /// Parses `BROKERS[/TOPIC]` (the part after `kafka:` in `--log kafka:…`).
    pub fn parse(spec: &str) -> KafkaConfig {
        let (brokers, topic) = spec.split_once('/').unwrap_or((spec, "assist-events"));
        KafkaConfig {
            brokers: brokers.to_string(),
            topic: if topic.is_empty() {
                "assist-events".into()
            } else {
                topic.to_string()
            },
            partitions: assist_log::DEFAULT_PARTITIONS,
            replication: 1,
            timeout: Duration::from_secs(10),
            max_batch_messages: std::env::var("ASSIST_KAFKA_BATCH_MESSAGES")
                .ok()
                .and_then(|v| v.parse().ok()),
        }
    }
}

fn backend(what: &str, brokers: &str, e: impl std::fmt::Display) -> LogError {
    LogError::Backend(format!("Kafka at {brokers}: {what}: {e}"))
}

/// The event log on a Kafka topic, with its id index in a local SQLite file: for one
/// writing instance (with a SQLite store). Many instances use [`SharedKafkaLog`].
pub struct KafkaLog {
    topic: Topic,
    index: SqlitePool,
    writer: tokio::sync::Mutex<()>,
    /// The broker-reported end of each partition at the last catch-up.
    seen_ends: Mutex<HashMap<u32, i64>>,
    /// The records the id index reads from the topic at a time when it catches up: what
    /// it holds in memory, however far behind it is.
    index_page: usize,
}

impl KafkaLog {
    /// Connects to the brokers (failing within the configured timeout when none answers),
    /// creates the topic when missing, and opens the id index at `index_path`.
    pub async fn open(config: KafkaConfig, index_path: &Path) -> Result<KafkaLog, LogError> {
        let topic = Topic::open(config).await?;
        let index = open_index(index_path).await?;
        Ok(KafkaLog {
            topic,
            index,
            writer: tokio::sync::Mutex::new(()),
            seen_ends: Mutex::new(HashMap::new()),
            index_page: READ_PAGE,
        })
    }

    /// The same log with its id index catching up `n` records at a time (10,000 unless
    /// set; at least 1).
    pub fn with_index_page(mut self, n: usize) -> KafkaLog {
        self.index_page = n.max(1);
        self
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic.config.topic
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &KafkaConfig {
        &self.topic.config
    }

    /// Closes the id index.
    pub async fn close(self) {
        self.index.close().await;
    }

    /// Reads every partition from where the index stopped to its end and records the event
    /// ids found there. A partition whose broker-reported end has not moved since the last
    /// catch-up is skipped without a fetch.
    async fn catch_up(&self, conn: &mut sqlx::SqliteConnection) -> Result<(), LogError> {
        let ends = self.topic.watermarks().await?;
        for p in 0..self.topic.config.partitions {
            let end = ends[p as usize];
            let seen = self
                .seen_ends
                .lock()
                .map_err(|_| LogError::Backend("poisoned".into()))?
                .get(&p)
                .copied();
            if end.is_some() && end == seen {
                continue;
            }
            let upto: i64 = sqlx::query_scalar(
                "SELECT COALESCE(MAX(indexed_upto), 0) FROM progress WHERE part = ?",
            )
            .bind(i64::from(p))
            .fetch_one(&mut *conn)
            .await?;
            // A page at a time, so that a fresh index over a long partition holds a page
            // of records in memory, not the partition.
            let mut from = upto as u64;
            loop {
                let records = self.topic.read_range(p, from, self.index_page).await?;
                let Some(last) = records.last().map(|r| r.position.offset) else {
                    break;
                };
                let rows: Vec<(Uuid, Position, &str)> = records
                    .iter()
                    .filter_map(|r| r.event_id.map(|id| (id, r.position, r.stream.as_str())))
                    .collect();
                index_rows(conn, &rows).await?;
                sqlx::query("INSERT INTO progress (part, indexed_upto) VALUES (?, ?) ON CONFLICT (part) DO UPDATE SET indexed_upto = excluded.indexed_upto")
                    .bind(i64::from(p))
                    .bind(last as i64 + 1)
                    .execute(&mut *conn)
                    .await?;
                from = last + 1;
                if records.len() < self.index_page {
                    break;
                }
            }
            if let Some(end) = end {
                self.seen_ends
                    .lock()
                    .map_err(|_| LogError::Backend("poisoned".into()))?
                    .insert(p, end);
            }
        }
        Ok(())
    }
}

async fn open_index(path: &Path) -> Result<SqlitePool, LogError> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(30));
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS ids (event_id BLOB PRIMARY KEY, part INTEGER NOT NULL, log_offset INTEGER NOT NULL, stream_key INTEGER NOT NULL, stream TEXT NOT NULL);
         CREATE INDEX IF NOT EXISTS ids_by_stream ON ids (stream_key);
         CREATE TABLE IF NOT EXISTS progress (part INTEGER PRIMARY KEY, indexed_upto INTEGER NOT NULL);",
    )
    .execute(&pool)
    .await?;
    Ok(pool)
}

async fn lookup(
    conn: &mut sqlx::SqliteConnection,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Position>, LogError> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(500) {
        let sql = format!(
            "SELECT event_id, part, log_offset FROM ids WHERE event_id IN ({})",
            vec!["?"; chunk.len()].join(", ")
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id.as_bytes().to_vec());
        }
        for r in q.fetch_all(&mut *conn).await? {
            let id: Vec<u8> = r.try_get(0)?;
            let Ok(id) = Uuid::from_slice(&id) else {
                continue;
            };
            out.insert(
                id,
                Position {
                    partition: r.try_get::<i64, _>(1)? as u32,
                    offset: r.try_get::<i64, _>(2)? as u64,
                },
            );
        }
    }
    Ok(out)
}

/// Records `(event id, position, stream)` rows in the index, many per statement.
async fn index_rows(
    conn: &mut sqlx::SqliteConnection,
    rows: &[(Uuid, Position, &str)],
) -> Result<(), LogError> {
    for chunk in rows.chunks(500) {
        let sql = format!(
            "INSERT OR IGNORE INTO ids (event_id, part, log_offset, stream_key, stream) VALUES {}",
            vec!["(?, ?, ?, ?, ?)"; chunk.len()].join(", ")
        );
        let mut q = sqlx::query(&sql);
        for (id, pos, stream) in chunk {
            q = q
                .bind(id.as_bytes().to_vec())
                .bind(i64::from(pos.partition))
                .bind(pos.offset as i64)
                .bind(assist_log::stream_key(stream))
                .bind(*stream);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

async fn stream_version(conn: &mut sqlx::SqliteConnection, stream: &str) -> Result<u64, LogError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ids WHERE stream_key = ? AND stream = ?")
        .bind(assist_log::stream_key(stream))
        .bind(stream)
        .fetch_one(conn)
        .await?;
    Ok(n as u64)
}

#[async_trait]
impl Appender for KafkaLog {
    async fn append(&self, batch: AppendBatch) -> Result<Vec<Appended>, LogError> {
        let _writer = self.writer.lock().await;
        let mut tx = self.index.begin_with("BEGIN IMMEDIATE").await?;
        self.catch_up(&mut tx).await?;
        let ids: Vec<Uuid> = batch.events.iter().map(|e| e.event_id).collect();
        let known = lookup(&mut tx, &ids).await?;
        let plan = batch.plan(&known)?;
        let new_idx = &plan.new;
        for &(stream, expected) in &plan.to_check {
            let actual = stream_version(&mut tx, stream).await?;
            if !expected.admits(actual) {
                return Err(LogError::WrongExpectedVersion {
                    stream: stream.to_string(),
                    expected,
                    actual,
                });
            }
        }
        let new: Vec<&LogEvent> = new_idx.iter().map(|&i| &batch.events[i]).collect();
        let delivered = self.topic.produce(&new).await?;
        let positions: HashMap<usize, Position> = delivered
            .positions
            .iter()
            .map(|(&k, &pos)| (new_idx[k], pos))
            .collect();
        let failure = delivered.failure;
        let rows: Vec<(Uuid, Position, &str)> = positions
            .iter()
            .map(|(&i, pos)| {
                (
                    batch.events[i].event_id,
                    *pos,
                    batch.events[i].stream.as_str(),
                )
            })
            .collect();
        index_rows(&mut tx, &rows).await?;
        // Where our deliveries continue the indexed part of a partition without a gap,
        // nobody else wrote in between: the index is complete up to our last offset and
        // the next catch-up need not read our own messages back.
        let mut by_partition: HashMap<u32, Vec<u64>> = HashMap::new();
        for pos in positions.values() {
            by_partition
                .entry(pos.partition)
                .or_default()
                .push(pos.offset);
        }
        for (p, mut offsets) in by_partition {
            offsets.sort_unstable();
            let upto: i64 = sqlx::query_scalar(
                "SELECT COALESCE(MAX(indexed_upto), 0) FROM progress WHERE part = ?",
            )
            .bind(i64::from(p))
            .fetch_one(&mut *tx)
            .await?;
            let contiguous = offsets.windows(2).all(|w| w[1] == w[0] + 1);
            if contiguous && offsets.first() == Some(&(upto as u64)) {
                let next = offsets[offsets.len() - 1] as i64 + 1;
                sqlx::query("INSERT INTO progress (part, indexed_upto) VALUES (?, ?) ON CONFLICT (part) DO UPDATE SET indexed_upto = excluded.indexed_upto")
                    .bind(i64::from(p))
                    .bind(next)
                    .execute(&mut *tx)
                    .await?;
                self.seen_ends
                    .lock()
                    .map_err(|_| LogError::Backend("poisoned".into()))?
                    .insert(p, next);
            }
        }
        tx.commit().await?;
        if let Some(f) = failure {
            // Delivered messages are indexed; a retry reports them as duplicates.
            return Err(f);
        }
        Ok(plan.outcomes(&batch, &known, &positions))
    }
}

#[async_trait]
impl IdIndex for KafkaLog {
    async fn find_ids(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Position>, LogError> {
        let _writer = self.writer.lock().await;
        let mut tx = self.index.begin_with("BEGIN IMMEDIATE").await?;
        self.catch_up(&mut tx).await?;
        let found = lookup(&mut tx, ids).await?;
        tx.commit().await?;
        Ok(found)
    }
}

#[async_trait]
impl PartitionReader for KafkaLog {
    fn partition_count(&self) -> u32 {
        self.topic.config.partitions
    }

    async fn read_partition(
        &self,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<Record>, LogError> {
        self.topic.read_partition(partition, from, max).await
    }

    /// The high-water marks as the index knows them after reading every partition to its end.
    async fn partitions(&self) -> Result<Vec<PartitionInfo>, LogError> {
        let _writer = self.writer.lock().await;
        let mut tx = self.index.begin_with("BEGIN IMMEDIATE").await?;
        self.catch_up(&mut tx).await?;
        let mut out = Vec::with_capacity(self.topic.config.partitions as usize);
        for p in 0..self.topic.config.partitions {
            let upto: i64 = sqlx::query_scalar(
                "SELECT COALESCE(MAX(indexed_upto), 0) FROM progress WHERE part = ?",
            )
            .bind(i64::from(p))
            .fetch_one(&mut *tx)
            .await?;
            out.push(PartitionInfo {
                partition: p,
                high_water: upto as u64,
            });
        }
        tx.commit().await?;
        Ok(out)
    }
}

#[async_trait]
impl StreamReader for KafkaLog {
    async fn read_stream(&self, stream: &str) -> Result<Vec<Record>, LogError> {
        let offsets: Vec<i64> = {
            let _writer = self.writer.lock().await;
            let mut tx = self.index.begin_with("BEGIN IMMEDIATE").await?;
            self.catch_up(&mut tx).await?;
            let rows = sqlx::query("SELECT log_offset FROM ids WHERE stream_key = ? AND stream = ? ORDER BY log_offset")
                .bind(assist_log::stream_key(stream))
                .bind(stream)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            rows.iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?
        };
        let offsets: Vec<u64> = offsets.iter().map(|o| *o as u64).collect();
        let p = partition_for(stream, self.topic.config.partitions);
        self.topic.read_offsets(stream, p, &offsets).await
    }
}
