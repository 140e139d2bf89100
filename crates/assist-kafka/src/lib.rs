//! The Kafka backend of the `assist` event log.
//!
//! One topic, message key = stream id, partition = the same murmur2 hash as the embedded
//! log (set explicitly, so both backends agree whatever the client's partitioner), plain
//! catalog JSON as the value and the event id in an `event_id` header. The producer is
//! idempotent with `acks=all`.
//!
//! The idempotent producer only protects one producer session. To keep a fact from being
//! appended twice when a service retries a batch after a restart, the backend keeps an
//! **id index** (a SQLite file next to the service): before each append it reads the
//! topic from where the index stopped up to the high-water mark of every partition,
//! recording each message's event id and position, then appends only the ids it has not
//! seen. A crash between delivery and indexing costs nothing: the next append reads those
//! messages back from the topic. Appenders on one machine are serialised by the index's
//! write lock (`BEGIN IMMEDIATE`), which also makes the expected-version check sound.

pub mod group;
pub mod notices;

use assist_log::{
    partition_for, AppendBatch, Appended, Appender, IdIndex, LogError, PartitionInfo,
    PartitionReader, Position, Record, StreamReader,
};
use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
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

/// The event log on a Kafka topic.
pub struct KafkaLog {
    config: KafkaConfig,
    producer: FutureProducer,
    reader: Arc<Mutex<BaseConsumer>>,
    index: SqlitePool,
    writer: tokio::sync::Mutex<()>,
    /// The broker-reported end of each partition at the last catch-up.
    seen_ends: Mutex<HashMap<u32, i64>>,
    /// The records the id index reads from the topic at a time when it catches up: what
    /// it holds in memory, however far behind it is.
    index_page: usize,
}

/// The records the id index reads at a time by default.
const INDEX_PAGE: usize = 10_000;

impl KafkaLog {
    /// Connects to the brokers (failing within the configured timeout when none answers),
    /// creates the topic when missing, and opens the id index at `index_path`.
    pub async fn open(config: KafkaConfig, index_path: &Path) -> Result<KafkaLog, LogError> {
        let b = config.brokers.clone();
        let timeout_ms = config.timeout.as_millis().to_string();
        let mut producer_config = ClientConfig::new();
        if let Some(n) = config.max_batch_messages {
            producer_config.set("batch.num.messages", n.max(1).to_string());
        }
        let producer: FutureProducer = producer_config
            .set("bootstrap.servers", &config.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("max.in.flight.requests.per.connection", "5")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "30000")
            .set("socket.timeout.ms", &timeout_ms)
            .create()
            .map_err(|e| backend("cannot create a producer", &b, e))?;
        let reader: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("group.id", format!("assist-reader-{}", Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("fetch.wait.max.ms", "10")
            .set("socket.timeout.ms", &timeout_ms)
            .create()
            .map_err(|e| backend("cannot create a consumer", &b, e))?;
        let reader = Arc::new(Mutex::new(reader));
        ensure_topic(&config, &reader).await?;
        let index = open_index(index_path).await?;
        Ok(KafkaLog {
            config,
            producer,
            reader,
            index,
            writer: tokio::sync::Mutex::new(()),
            seen_ends: Mutex::new(HashMap::new()),
            index_page: INDEX_PAGE,
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
        &self.config.topic
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    /// Closes the id index.
    pub async fn close(self) {
        self.index.close().await;
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&BaseConsumer, &KafkaConfig) -> Result<T, LogError> + Send + 'static,
    ) -> Result<T, LogError> {
        let reader = self.reader.clone();
        let config = self.config.clone();
        tokio::task::spawn_blocking(move || {
            let c = reader
                .lock()
                .map_err(|_| LogError::Backend("the Kafka reader is poisoned".into()))?;
            f(&c, &config)
        })
        .await
        .map_err(|e| LogError::Backend(format!("the Kafka reader stopped: {e}")))?
    }

    /// Reads every partition from where the index stopped to its end and records the event
    /// ids found there. A partition whose broker-reported end has not moved since the last
    /// catch-up is skipped without a fetch.
    async fn catch_up(&self, conn: &mut sqlx::SqliteConnection) -> Result<(), LogError> {
        let ends: Vec<Option<i64>> = self
            .blocking(|c, cfg| {
                Ok((0..cfg.partitions)
                    .map(|p| {
                        c.fetch_watermarks(&cfg.topic, p as i32, cfg.timeout)
                            .ok()
                            .map(|(_, h)| h)
                    })
                    .collect())
            })
            .await?;
        for p in 0..self.config.partitions {
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
                let records = self.read_range(p, from, self.index_page).await?;
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

    /// Up to `max` records of partition `p` from `from` to the current high-water mark.
    async fn read_range(&self, p: u32, from: u64, max: usize) -> Result<Vec<Record>, LogError> {
        self.blocking(move |c, cfg| read_blocking(c, cfg, p, from, max))
            .await
    }
}

/// Reads partition `p` from `from` until the broker says it is at the end (partition EOF,
/// which follows the fetch response's high-water mark) or `max` records were read.
///
/// The end is not taken from `ListOffsets`: some Kafka-protocol brokers (tansu 0.6) answer it
/// with the base offset of the last record batch plus one, not the next offset.
fn read_blocking(
    c: &BaseConsumer,
    cfg: &KafkaConfig,
    p: u32,
    from: u64,
    max: usize,
) -> Result<Vec<Record>, LogError> {
    let b = &cfg.brokers;
    if max == 0 {
        return Ok(Vec::new());
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&cfg.topic, p as i32, Offset::Offset(from as i64))
        .map_err(|e| backend("bad offset", b, e))?;
    c.assign(&tpl)
        .map_err(|e| backend("cannot assign the partition", b, e))?;
    let mut out = Vec::new();
    let mut deadline = std::time::Instant::now() + cfg.timeout;
    let mut last_error = String::from("no answer");
    let result = loop {
        if out.len() >= max {
            break Ok(());
        }
        if std::time::Instant::now() > deadline {
            break Err(LogError::Backend(format!(
                "Kafka at {b}: partition {p} gave no end of data within {} s (last error: {last_error})",
                cfg.timeout.as_secs()
            )));
        }
        match c.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(eof))) if eof == p as i32 => {
                break Ok(())
            }
            // Broker-level errors (all brokers down, a transport failure, a moving leader)
            // are transient: librdkafka reconnects and the fetch goes on.
            Some(Err(e)) => {
                tracing::debug!(partition = p, error = %e, "retrying a read");
                last_error = e.to_string();
            }
            Some(Ok(m)) => {
                deadline = std::time::Instant::now() + cfg.timeout;
                let offset = m.offset() as u64;
                if offset < from || m.partition() != p as i32 {
                    continue;
                }
                let event_id = m
                    .headers()
                    .and_then(|h| {
                        h.iter()
                            .find(|x| x.key == EVENT_ID_HEADER)
                            .and_then(|x| x.value)
                    })
                    .and_then(|v| Uuid::from_slice(v).ok());
                out.push(Record {
                    position: Position {
                        partition: p,
                        offset,
                    },
                    stream: m
                        .key()
                        .map(|k| String::from_utf8_lossy(k).into_owned())
                        .unwrap_or_default(),
                    event_id,
                    payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                });
            }
        }
    };
    c.unassign().map_err(|e| backend("cannot unassign", b, e))?;
    // Drop what the old assignment still queued, so the next read starts clean.
    while c.poll(Duration::ZERO).is_some() {}
    result.map(|()| out)
}

async fn ensure_topic(
    config: &KafkaConfig,
    reader: &Arc<Mutex<BaseConsumer>>,
) -> Result<(), LogError> {
    let b = config.brokers.clone();
    let (topic, timeout) = (config.topic.clone(), config.timeout);
    let reader2 = reader.clone();
    let existing: Option<usize> = tokio::task::spawn_blocking(move || {
        let c = reader2
            .lock()
            .map_err(|_| LogError::Backend("the Kafka reader is poisoned".into()))?;
        let md = c.fetch_metadata(Some(&topic), timeout).map_err(|e| {
            LogError::Backend(format!(
                "cannot reach Kafka at {b} within {} s: {e}",
                timeout.as_secs()
            ))
        })?;
        Ok::<_, LogError>(
            md.topics()
                .first()
                .filter(|t| t.error().is_none())
                .map(|t| t.partitions().len())
                .filter(|n| *n > 0),
        )
    })
    .await
    .map_err(|e| LogError::Backend(format!("metadata lookup stopped: {e}")))??;
    match existing {
        Some(n) if n as u32 == config.partitions => Ok(()),
        Some(n) => Err(LogError::PartitionCount {
            found: n as u32,
            wanted: config.partitions,
        }),
        None => {
            let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
                .set("bootstrap.servers", &config.brokers)
                .create()
                .map_err(|e| backend("cannot create an admin client", &config.brokers, e))?;
            let topic = NewTopic::new(
                &config.topic,
                config.partitions as i32,
                TopicReplication::Fixed(config.replication),
            )
            // The log is the system of record: keep every message forever.
            .set("retention.ms", "-1")
            .set("retention.bytes", "-1");
            let opts = AdminOptions::new()
                .operation_timeout(Some(config.timeout))
                .request_timeout(Some(config.timeout));
            let results = admin
                .create_topics([&topic], &opts)
                .await
                .map_err(|e| backend("cannot create the topic", &config.brokers, e))?;
            for r in results {
                if let Err((name, code)) = r {
                    if code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                        return Err(backend(
                            &format!("cannot create topic {name}"),
                            &config.brokers,
                            code,
                        ));
                    }
                }
            }
            Ok(())
        }
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
        // Queue every new event (in batch order, so one stream's order holds), then wait
        // for every delivery report.
        let mut deliveries = Vec::with_capacity(new_idx.len());
        for &i in new_idx {
            let e = &batch.events[i];
            let partition = partition_for(&e.stream, self.config.partitions) as i32;
            let headers = OwnedHeaders::new().insert(Header {
                key: EVENT_ID_HEADER,
                value: Some(e.event_id.as_bytes().as_slice()),
            });
            let record = FutureRecord::to(&self.config.topic)
                .partition(partition)
                .key(e.stream.as_bytes())
                .payload(&e.payload)
                .headers(headers);
            let mut record = record;
            loop {
                match self.producer.send_result(record) {
                    Ok(f) => {
                        deliveries.push((i, f));
                        break;
                    }
                    Err((err, r)) => {
                        if matches!(
                            err,
                            rdkafka::error::KafkaError::MessageProduction(
                                rdkafka::types::RDKafkaErrorCode::QueueFull
                            )
                        ) {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            record = r;
                        } else {
                            return Err(backend(
                                "cannot queue a message",
                                &self.config.brokers,
                                err,
                            ));
                        }
                    }
                }
            }
        }
        let mut positions: HashMap<usize, Position> = HashMap::new();
        let mut failure = None;
        for (i, f) in deliveries {
            match f.await {
                Ok(Ok(d)) => {
                    positions.insert(
                        i,
                        Position {
                            partition: d.partition as u32,
                            offset: d.offset as u64,
                        },
                    );
                }
                Ok(Err((e, _))) => {
                    failure = Some(backend(
                        "a message was not delivered",
                        &self.config.brokers,
                        e,
                    ))
                }
                Err(_) => {
                    failure = Some(LogError::Backend(
                        "the producer was dropped before delivery".into(),
                    ))
                }
            }
        }
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
        self.config.partitions
    }

    async fn read_partition(
        &self,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<Record>, LogError> {
        if partition >= self.config.partitions {
            return Err(LogError::NoSuchPartition {
                partition,
                count: self.config.partitions,
            });
        }
        self.read_range(partition, from, max).await
    }

    /// The high-water marks as the index knows them after reading every partition to its end.
    async fn partitions(&self) -> Result<Vec<PartitionInfo>, LogError> {
        let _writer = self.writer.lock().await;
        let mut tx = self.index.begin_with("BEGIN IMMEDIATE").await?;
        self.catch_up(&mut tx).await?;
        let mut out = Vec::with_capacity(self.config.partitions as usize);
        for p in 0..self.config.partitions {
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
        let p = partition_for(stream, self.config.partitions);
        let offsets: Vec<u64> = offsets.iter().map(|o| *o as u64).collect();
        let wanted: HashSet<u64> = offsets.iter().copied().collect();
        let mut out = Vec::with_capacity(offsets.len());
        for (from, count) in fetch_ranges(&offsets, STREAM_READ_GAP) {
            let records = self.read_range(p, from, count).await?;
            out.extend(
                records
                    .into_iter()
                    .filter(|r| wanted.contains(&r.position.offset) && r.stream == stream),
            );
        }
        Ok(out)
    }
}

/// How many other records a stream's read reads through between two of its own rather
/// than fetching again from the second.
const STREAM_READ_GAP: u64 = 16;

/// The ranges (first offset, how many records) that hold `offsets` (sorted): a run of
/// offsets at most `gap` apart is one range, so a stream's read fetches its own records
/// and at most `gap` others between two of them, not everything between its first and
/// last.
fn fetch_ranges(offsets: &[u64], gap: u64) -> Vec<(u64, usize)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &o in offsets {
        match out.last_mut() {
            Some((_, end)) if o <= end.saturating_add(gap + 1) => *end = (*end).max(o),
            _ => out.push((o, o)),
        }
    }
    out.into_iter()
        .map(|(from, to)| (from, (to - from + 1) as usize))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streams_read_fetches_runs_of_its_own_offsets_not_everything_between() {
        assert_eq!(fetch_ranges(&[], 16), vec![]);
        assert_eq!(fetch_ranges(&[5], 16), vec![(5, 1)]);
        assert_eq!(fetch_ranges(&[7, 7], 16), vec![(7, 1)]);
        // Sixteen others between two of its own are read through; seventeen are not.
        assert_eq!(fetch_ranges(&[0, 17], 16), vec![(0, 18)]);
        assert_eq!(fetch_ranges(&[0, 18], 16), vec![(0, 1), (18, 1)]);
        // A registration, and the rest of the case a million records later.
        assert_eq!(
            fetch_ranges(&[3, 1_000_000, 1_000_001, 1_000_010], 16),
            vec![(3, 1), (1_000_000, 11)]
        );
    }
}
