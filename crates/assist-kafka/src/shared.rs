//! Many writers on one topic: PostgreSQL decides stream versions and event ids, and an
//! outbox in the same transaction is relayed to Kafka.
//!
//! Kafka has no conditional append, so no writer can check a stream's version on the
//! broker. Here an append is two steps:
//!
//! 1. **Commit**, one PostgreSQL transaction: lock the batch's streams (their rows in
//!    `log_streams`, in name order, so two batches never deadlock), find which ids are
//!    stored, check the expectations against the locked versions, insert the new events
//!    with their stream versions and payloads into `log_events` (unique by
//!    `(topic, event_id)` and by `(topic, stream, version)`), and raise the versions. Once
//!    this commits, the facts are decided: a conflicting append waits for the locks and
//!    then sees the new version.
//! 2. **Publish**: lock the batch's rows that are still unpublished, produce them (the
//!    idempotent producer, `acks=all`), record each one's partition and offset and drop its
//!    payload, commit.
//!
//! A writer that dies between the two leaves facts committed but unpublished: every
//! instance runs a relay that publishes rows left so for longer than `publish_after`, and
//! a client's retry publishes them at once (and gets them back as duplicates). A writer
//! stopped while it holds locks (a zombie) loses its PostgreSQL session after
//! `hold_timeout` (`idle_in_transaction_session_timeout`); its locks go with it, and when it
//! wakes it cannot commit anything. What it may still send to Kafka is a copy of a fact
//! already decided, which every reader drops as a duplicate of its event id.
//!
//! The topic holds a stream's facts in the order they were published: their version order,
//! except where a relay published a dead writer's facts late. [`StreamReader::read_stream`]
//! gives them in version order, and the views fold each subject in occurred order anyway.

use crate::topic::Topic;
use crate::KafkaConfig;
use assist_log::{
    AppendBatch, Appended, Appender, IdIndex, LogError, LogEvent, PartitionInfo, PartitionReader,
    Position, Record, StreamReader,
};
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Row, Transaction};
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use uuid::Uuid;

/// The timing of the shared log's writers and relay.
#[derive(Debug, Clone, Copy)]
pub struct SharedSettings {
    /// How long a writer may sit inside a transaction (holding locks) without a statement
    /// before PostgreSQL ends its session: the time a stopped writer blocks others.
    pub hold_timeout: Duration,
    /// How long a committed fact may stay unpublished before any instance's relay
    /// publishes it: the time a writer's death delays its facts on the topic.
    pub publish_after: Duration,
    /// How often the relay looks for such facts.
    pub relay_every: Duration,
}

impl Default for SharedSettings {
    fn default() -> Self {
        SharedSettings {
            hold_timeout: Duration::from_secs(15),
            publish_after: Duration::from_secs(10),
            relay_every: Duration::from_secs(2),
        }
    }
}

/// How many times an append starts over when another writer stored one of its ids at the
/// same moment (on another stream) before it gives up.
const COMMIT_ATTEMPTS: usize = 8;

/// Facts a relay publishes per transaction.
const RELAY_BATCH: i64 = 1_000;

/// The event log on a Kafka topic for any number of writing instances, with PostgreSQL as
/// the arbiter of stream versions and event ids (see the module's documentation).
pub struct SharedKafkaLog {
    topic: Topic,
    db: PgPool,
    settings: SharedSettings,
    /// The end of each partition at the last look.
    seen_ends: Mutex<HashMap<u32, u64>>,
}

/// A fact committed but not yet on the topic, as the publish step reads it.
struct Unpublished {
    event: LogEvent,
}

impl SharedKafkaLog {
    /// Connects to the brokers and to PostgreSQL at `url`, creates the topic and the tables
    /// when missing, and starts this instance's relay (it stops when the log is dropped).
    pub async fn open(
        config: KafkaConfig,
        url: &str,
        settings: SharedSettings,
    ) -> Result<Arc<SharedKafkaLog>, LogError> {
        let topic = Topic::open(config).await?;
        let options = PgConnectOptions::from_str(url)?
            .application_name(&format!("assist-writer-{}", std::process::id()))
            .options([(
                "idle_in_transaction_session_timeout",
                settings.hold_timeout.as_millis().max(1).to_string(),
            )]);
        let db = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        create_tables(&db).await?;
        let log = Arc::new(SharedKafkaLog {
            topic,
            db,
            settings,
            seen_ends: Mutex::new(HashMap::new()),
        });
        spawn_relay(Arc::downgrade(&log), settings.relay_every);
        Ok(log)
    }

    /// The configuration of its topic.
    pub fn config(&self) -> &KafkaConfig {
        &self.topic.config
    }

    /// Publishes facts committed longer than `publish_after` ago and still not on the topic
    /// (a dead writer's), skipping rows another relay holds; returns how many it published.
    pub async fn publish_stranded(&self) -> Result<u64, LogError> {
        let mut published = 0;
        loop {
            let mut tx = self.db.begin().await?;
            let rows = sqlx::query(
                "SELECT event_id::text, stream, payload FROM log_events
                 WHERE topic = $1 AND log_offset IS NULL
                   AND committed_at < now() - make_interval(secs => $2)
                 ORDER BY seq LIMIT $3 FOR UPDATE SKIP LOCKED",
            )
            .bind(self.topic_name())
            .bind(self.settings.publish_after.as_secs_f64())
            .bind(RELAY_BATCH)
            .fetch_all(&mut *tx)
            .await?;
            let pending = unpublished(&rows)?;
            let n = pending.len();
            self.publish(tx, pending).await?;
            published += n as u64;
            if (n as i64) < RELAY_BATCH {
                return Ok(published);
            }
        }
    }

    fn topic_name(&self) -> &str {
        &self.topic.config.topic
    }

    /// Step 1: decides the batch in one transaction; returns the indexes of the events it
    /// stored (first occurrences of ids not stored before). `None` when another writer
    /// stored one of its ids at the same moment (the caller starts over and finds it stored).
    async fn commit(&self, batch: &AppendBatch) -> Result<Option<Vec<usize>>, LogError> {
        let mut streams: Vec<&str> = batch.events.iter().map(|e| e.stream.as_str()).collect();
        streams.extend(batch.expected.keys().map(String::as_str));
        streams.sort_unstable();
        streams.dedup();
        let ids: Vec<String> = batch
            .events
            .iter()
            .map(|e| e.event_id.to_string())
            .collect();
        let mut tx = self.db.begin().await?;
        sqlx::query(
            "INSERT INTO log_streams (topic, stream, version)
             SELECT $1, s, 0 FROM unnest($2::text[]) AS s ON CONFLICT DO NOTHING",
        )
        .bind(self.topic_name())
        .bind(&streams)
        .execute(&mut *tx)
        .await?;
        let mut versions: HashMap<String, u64> = HashMap::new();
        for r in sqlx::query(
            "SELECT stream, version FROM log_streams WHERE topic = $1 AND stream = ANY($2)
             ORDER BY stream FOR UPDATE",
        )
        .bind(self.topic_name())
        .bind(&streams)
        .fetch_all(&mut *tx)
        .await?
        {
            versions.insert(r.try_get(0)?, r.try_get::<i64, _>(1)? as u64);
        }
        let mut known: HashMap<Uuid, ()> = HashMap::new();
        for r in sqlx::query(
            "SELECT event_id::text FROM log_events WHERE topic = $1 AND event_id = ANY($2::text[]::uuid[])",
        )
        .bind(self.topic_name())
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?
        {
            if let Ok(id) = Uuid::parse_str(r.try_get(0)?) {
                known.insert(id, ());
            }
        }
        let plan = batch.plan(&known)?;
        for &(stream, expected) in &plan.to_check {
            let actual = versions.get(stream).copied().unwrap_or(0);
            if !expected.admits(actual) {
                return Err(LogError::WrongExpectedVersion {
                    stream: stream.to_string(),
                    expected,
                    actual,
                });
            }
        }
        if plan.new.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let (mut new_ids, mut new_streams, mut new_versions, mut payloads) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for &i in &plan.new {
            let e = &batch.events[i];
            let v = versions.entry(e.stream.clone()).or_insert(0);
            *v += 1;
            new_ids.push(e.event_id.to_string());
            new_streams.push(e.stream.as_str());
            new_versions.push(*v as i64);
            payloads.push(e.payload.as_slice());
        }
        let inserted = sqlx::query(
            "INSERT INTO log_events (topic, event_id, stream, version, payload)
             SELECT $1, t.id::uuid, t.s, t.v, t.p
             FROM unnest($2::text[], $3::text[], $4::int8[], $5::bytea[]) AS t(id, s, v, p)
             ON CONFLICT DO NOTHING",
        )
        .bind(self.topic_name())
        .bind(&new_ids)
        .bind(&new_streams)
        .bind(&new_versions)
        .bind(&payloads)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted != plan.new.len() as u64 {
            tx.rollback().await?;
            return Ok(None);
        }
        let (names, tops): (Vec<&str>, Vec<i64>) = versions
            .iter()
            .map(|(s, v)| (s.as_str(), *v as i64))
            .unzip();
        sqlx::query(
            "UPDATE log_streams SET version = t.v FROM unnest($2::text[], $3::int8[]) AS t(s, v)
             WHERE topic = $1 AND stream = t.s AND version <> t.v",
        )
        .bind(self.topic_name())
        .bind(&names)
        .bind(&tops)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(plan.new))
    }

    /// Step 2 for one batch: publishes those of `ids` still unpublished, waiting for a relay
    /// that holds some of them to finish (they are then published and skipped).
    async fn publish_ids(&self, ids: &[String]) -> Result<(), LogError> {
        let mut tx = self.db.begin().await?;
        let rows = sqlx::query(
            "SELECT event_id::text, stream, payload FROM log_events
             WHERE topic = $1 AND event_id = ANY($2::text[]::uuid[]) AND log_offset IS NULL
             ORDER BY seq FOR UPDATE",
        )
        .bind(self.topic_name())
        .bind(ids)
        .fetch_all(&mut *tx)
        .await?;
        let pending = unpublished(&rows)?;
        self.publish(tx, pending).await
    }

    /// Produces `pending` (rows locked by `tx`) and records where each landed, in `tx`.
    async fn publish(
        &self,
        mut tx: Transaction<'_, Postgres>,
        pending: Vec<Unpublished>,
    ) -> Result<(), LogError> {
        if pending.is_empty() {
            tx.commit().await?;
            return Ok(());
        }
        let events: Vec<&LogEvent> = pending.iter().map(|u| &u.event).collect();
        let delivered = self.topic.produce(&events).await?;
        let (mut ids, mut parts, mut offsets) = (Vec::new(), Vec::new(), Vec::new());
        for (i, pos) in &delivered.positions {
            ids.push(pending[*i].event.event_id.to_string());
            parts.push(pos.partition as i32);
            offsets.push(pos.offset as i64);
        }
        sqlx::query(
            "UPDATE log_events SET part = t.p, log_offset = t.o, payload = NULL
             FROM unnest($2::text[], $3::int4[], $4::int8[]) AS t(id, p, o)
             WHERE topic = $1 AND event_id = t.id::uuid",
        )
        .bind(self.topic_name())
        .bind(&ids)
        .bind(&parts)
        .bind(&offsets)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        match delivered.failure {
            // Delivered facts are recorded; the rest stay for a retry or the relay.
            Some(f) => Err(f),
            None => Ok(()),
        }
    }

    /// Where those of `ids` that are on the topic are.
    async fn positions(&self, ids: &[String]) -> Result<HashMap<Uuid, Position>, LogError> {
        let mut out = HashMap::with_capacity(ids.len());
        for r in sqlx::query(
            "SELECT event_id::text, part, log_offset FROM log_events
             WHERE topic = $1 AND event_id = ANY($2::text[]::uuid[]) AND log_offset IS NOT NULL",
        )
        .bind(self.topic_name())
        .bind(ids)
        .fetch_all(&self.db)
        .await?
        {
            if let Ok(id) = Uuid::parse_str(r.try_get(0)?) {
                out.insert(
                    id,
                    Position {
                        partition: r.try_get::<i32, _>(1)? as u32,
                        offset: r.try_get::<i64, _>(2)? as u64,
                    },
                );
            }
        }
        Ok(out)
    }
}

fn unpublished(rows: &[sqlx::postgres::PgRow]) -> Result<Vec<Unpublished>, LogError> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id: &str = r.try_get(0)?;
        let event_id = Uuid::parse_str(id)
            .map_err(|e| LogError::Backend(format!("a stored event id is not a UUID: {e}")))?;
        let payload: Option<Vec<u8>> = r.try_get(2)?;
        out.push(Unpublished {
            event: LogEvent {
                event_id,
                stream: r.try_get(1)?,
                payload: payload.unwrap_or_default(),
            },
        });
    }
    Ok(out)
}

async fn create_tables(db: &PgPool) -> Result<(), LogError> {
    let mut tx = db.begin().await?;
    // Instances starting together would race on CREATE TABLE IF NOT EXISTS.
    sqlx::query("SELECT pg_advisory_xact_lock(7311001)")
        .execute(&mut *tx)
        .await?;
    for sql in [
        "CREATE TABLE IF NOT EXISTS log_streams (
             topic TEXT NOT NULL,
             stream TEXT NOT NULL,
             version BIGINT NOT NULL,
             PRIMARY KEY (topic, stream))",
        "CREATE TABLE IF NOT EXISTS log_events (
             topic TEXT NOT NULL,
             event_id UUID NOT NULL,
             stream TEXT NOT NULL,
             version BIGINT NOT NULL,
             seq BIGSERIAL NOT NULL,
             committed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
             part INTEGER,
             log_offset BIGINT,
             payload BYTEA,
             PRIMARY KEY (topic, event_id),
             UNIQUE (topic, stream, version))",
        "CREATE INDEX IF NOT EXISTS log_events_unpublished
             ON log_events (topic, seq) WHERE log_offset IS NULL",
    ] {
        sqlx::query(sql).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

fn spawn_relay(log: Weak<SharedKafkaLog>, every: Duration) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Some(log) = log.upgrade() else {
                return;
            };
            match log.publish_stranded().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(published = n, "relayed facts a writer left unpublished"),
                Err(e) => tracing::warn!(error = %e, "the relay could not publish"),
            }
        }
    });
}

#[async_trait]
impl Appender for SharedKafkaLog {
    async fn append(&self, batch: AppendBatch) -> Result<Vec<Appended>, LogError> {
        let mut attempts = 0;
        let stored = loop {
            match self.commit(&batch).await {
                Ok(Some(stored)) => break stored,
                Ok(None) => {}
                // PostgreSQL chose this transaction to break a lock cycle: nothing of it
                // was stored, so it starts over like any other lost race.
                Err(LogError::Storage(sqlx::Error::Database(e)))
                    if e.code().as_deref() == Some("40P01") => {}
                Err(e) => return Err(e),
            }
            attempts += 1;
            if attempts >= COMMIT_ATTEMPTS {
                return Err(LogError::Backend(
                    "other writers kept storing this batch's ids at the same moment".into(),
                ));
            }
        };
        let ids: Vec<String> = batch
            .events
            .iter()
            .map(|e| e.event_id.to_string())
            .collect();
        self.publish_ids(&ids).await?;
        let positions = self.positions(&ids).await?;
        let mut out = Vec::with_capacity(batch.events.len());
        let mut stored = stored.into_iter().peekable();
        for (i, e) in batch.events.iter().enumerate() {
            let Some(&p) = positions.get(&e.event_id) else {
                return Err(LogError::Backend(
                    "the batch is committed but not yet on the topic; a retry reports it".into(),
                ));
            };
            out.push(if stored.next_if_eq(&i).is_some() {
                Appended::Stored(p)
            } else {
                Appended::Duplicate(p)
            });
        }
        Ok(out)
    }
}

#[async_trait]
impl IdIndex for SharedKafkaLog {
    async fn find_ids(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Position>, LogError> {
        let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        self.positions(&ids).await
    }
}

#[async_trait]
impl PartitionReader for SharedKafkaLog {
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

    /// The end of every partition, read from the topic (what any producer wrote counts).
    async fn partitions(&self) -> Result<Vec<PartitionInfo>, LogError> {
        let hints = self.topic.watermarks().await?;
        let mut out = Vec::with_capacity(hints.len());
        for (p, hint) in hints.into_iter().enumerate() {
            let p = p as u32;
            let seen = self
                .seen_ends
                .lock()
                .map_err(|_| LogError::Backend("poisoned".into()))?
                .get(&p)
                .copied()
                .unwrap_or(0);
            // A broker's reported end may stop short of the last batch's records (tansu
            // 0.6), never beyond the end: the offset before it exists.
            let from = seen.max(hint.unwrap_or(0).max(1) as u64 - 1);
            let end = self.topic.end_from(p, from).await?;
            self.seen_ends
                .lock()
                .map_err(|_| LogError::Backend("poisoned".into()))?
                .insert(p, end);
            out.push(PartitionInfo {
                partition: p,
                high_water: end,
            });
        }
        Ok(out)
    }
}

#[async_trait]
impl StreamReader for SharedKafkaLog {
    /// The stream's published facts in version order, each read from the topic at its offset.
    async fn read_stream(&self, stream: &str) -> Result<Vec<Record>, LogError> {
        let rows = sqlx::query(
            "SELECT log_offset FROM log_events
             WHERE topic = $1 AND stream = $2 AND log_offset IS NOT NULL ORDER BY version",
        )
        .bind(self.topic_name())
        .bind(stream)
        .fetch_all(&self.db)
        .await?;
        let by_version: Vec<u64> = rows
            .iter()
            .map(|r| r.try_get::<i64, _>(0).map(|o| o as u64))
            .collect::<Result<_, _>>()?;
        let mut sorted = by_version.clone();
        sorted.sort_unstable();
        let mut at: BTreeMap<u64, Record> = self
            .topic
            .read_offsets(stream, &sorted)
            .await?
            .into_iter()
            .map(|r| (r.position.offset, r))
            .collect();
        Ok(by_version.iter().filter_map(|o| at.remove(o)).collect())
    }
}
