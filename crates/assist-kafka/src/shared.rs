//! Many writers on one topic: PostgreSQL decides stream versions and event ids, and an
//! outbox in the same transaction is relayed to Kafka.
//!
//! Kafka has no conditional append, so no writer can check a stream's version on the
//! broker. Here an append is two steps:
//!
//! 1. **Commit**, one PostgreSQL transaction: find which of the batch's ids are stored,
//!    create or raise each stream's version in `log_streams` in one statement (which locks
//!    its row until the commit, in name order, so two batches never wait on each other in a
//!    cycle), check the expectations against the versions before, and insert the new events
//!    with their stream versions and payloads into `log_events` (unique by
//!    `(topic, event_id)` and by `(topic, stream, version)`). Once this commits, the facts
//!    are decided: a conflicting append waits for the locks and then sees the new version.
//! 2. **Publish**: lock the rows of the events this append stored, produce them from
//!    memory (the idempotent producer, `acks=all`), record each one's partition and offset
//!    and drop its payload. Only this step and the relays take those rows: writers of the
//!    same streams never wait for them.
//!
//! A writer that dies between the two leaves facts committed but unpublished: every
//! instance runs a relay that publishes (under row locks, skipping rows another relay
//! holds) facts left so for longer than `publish_after`. A writer stopped while it holds
//! locks (a zombie) loses its PostgreSQL session after `hold_timeout`
//! (`idle_in_transaction_session_timeout`); its locks go with it, and when it wakes it
//! cannot commit anything. What it may still send to Kafka is a copy of a fact already
//! decided, which every reader drops as a duplicate of its event id; the table keeps the
//! first position recorded.
//!
//! The topic holds a stream's facts in the order they were published: their version order,
//! except where two writers of one stream published at once or a relay published a dead
//! writer's facts late. [`StreamReader::read_stream`] gives them in version order, and the
//! views fold each subject in occurred order anyway.

use crate::topic::{Topic, READ_PAGE};
use crate::KafkaConfig;
use assist_log::{
    partition_for, AppendBatch, Appended, Appender, IdIndex, LogError, LogEvent, PartitionInfo,
    PartitionReader, Position, Record, StreamReader,
};
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Row, Transaction};
use std::collections::{BTreeMap, HashMap, HashSet};
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

/// Whether an indexer waits for another instance indexing the same partition, or skips it.
#[derive(Debug, Clone, Copy)]
enum Wait {
    Yes,
    No,
}

/// How long a writer may hold its own new facts' rows while the producer waits for the
/// broker: longer than the producer's delivery timeout (30 s), so that a live writer's
/// facts are never published twice; a stopped one's go to the relay after it.
const PUBLISH_HOLD: Duration = Duration::from_secs(45);

/// The event log on a Kafka topic for any number of writing instances, with PostgreSQL as
/// the arbiter of stream versions and event ids (see the module's documentation).
pub struct SharedKafkaLog {
    topic: Topic,
    db: PgPool,
    settings: SharedSettings,
    /// Each partition's broker-reported end and its end as read, at the last look.
    seen_ends: Mutex<HashMap<u32, (Option<i64>, u64)>>,
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
            let mut tx = self.publishing().await?;
            let rows = sqlx::query(
                "SELECT event_id, stream, payload FROM log_events
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

    /// Indexes the facts that other producers wrote straight to the topic (any Kafka client
    /// may, with the event id in its header), in every partition no other instance is
    /// indexing now; returns how many it indexed.
    pub async fn index_foreign(&self) -> Result<u64, LogError> {
        let mut indexed = 0;
        for p in 0..self.topic.config.partitions {
            indexed += self.index_partition(p, Wait::No).await?;
        }
        Ok(indexed)
    }

    /// Reads partition `p` from where it was last indexed to its end, a page per
    /// transaction, and gives each fact not stored here (one that a foreign producer wrote)
    /// its stream's next version and its position, as if appended then. The partition's
    /// row in `log_indexed` serializes the instances; `Wait::No` skips a partition another
    /// holds. A writer's own facts are committed before they are produced, so whatever is on
    /// the topic and not in `log_events` is foreign.
    async fn index_partition(&self, p: u32, wait: Wait) -> Result<u64, LogError> {
        let mut indexed = 0;
        let mut attempts = 0;
        loop {
            let mut tx = self.db.begin().await?;
            sqlx::query(
                "INSERT INTO log_indexed (topic, part, next_offset) VALUES ($1, $2, 0)
                 ON CONFLICT DO NOTHING",
            )
            .bind(self.topic_name())
            .bind(p as i32)
            .execute(&mut *tx)
            .await?;
            let from: Option<i64> = sqlx::query_scalar(match wait {
                Wait::Yes => {
                    "SELECT next_offset FROM log_indexed WHERE topic = $1 AND part = $2 FOR UPDATE"
                }
                Wait::No => {
                    "SELECT next_offset FROM log_indexed WHERE topic = $1 AND part = $2
                     FOR UPDATE SKIP LOCKED"
                }
            })
            .bind(self.topic_name())
            .bind(p as i32)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(from) = from else {
                return Ok(indexed); // another instance is indexing it now
            };
            let records = self.topic.read_range(p, from as u64, READ_PAGE).await?;
            let Some(last) = records.last().map(|r| r.position.offset) else {
                return Ok(indexed);
            };
            let outcome = match self.index_records(&mut tx, &records).await {
                // PostgreSQL broke a lock cycle with a writer here: read the page again.
                Err(e) if broke_a_lock_cycle(&e) => None,
                other => other?,
            };
            match outcome {
                Some(n) => {
                    sqlx::query(
                        "UPDATE log_indexed SET next_offset = $3 WHERE topic = $1 AND part = $2",
                    )
                    .bind(self.topic_name())
                    .bind(p as i32)
                    .bind(last as i64 + 1)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    indexed += n;
                    if records.len() < READ_PAGE {
                        return Ok(indexed);
                    }
                }
                None => {
                    // A writer stored one of these ids meanwhile: read the page again.
                    tx.rollback().await?;
                    attempts += 1;
                    if attempts >= COMMIT_ATTEMPTS {
                        return Err(LogError::Backend(
                            "writers kept storing ids of foreign facts while they were indexed"
                                .into(),
                        ));
                    }
                }
            }
        }
    }

    /// Stores in `tx` the facts of `records` (one page of a partition, in offset order)
    /// that are not stored yet, each at its stream's next version; `None` when a writer
    /// stored one of their ids at the same moment.
    async fn index_records(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        records: &[Record],
    ) -> Result<Option<u64>, LogError> {
        let ids: Vec<Uuid> = records.iter().filter_map(|r| r.event_id).collect();
        if ids.is_empty() {
            return Ok(Some(0));
        }
        let mut known: HashSet<Uuid> = sqlx::query_scalar(
            "SELECT event_id FROM log_events WHERE topic = $1 AND event_id = ANY($2)",
        )
        .bind(self.topic_name())
        .bind(&ids)
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .collect();
        // The first record of each id not stored: a later copy is a duplicate.
        let foreign: Vec<(&Record, Uuid)> = records
            .iter()
            .filter_map(|r| r.event_id.map(|id| (r, id)))
            .filter(|(_, id)| known.insert(*id))
            .collect();
        if foreign.is_empty() {
            return Ok(Some(0));
        }
        let mut added: BTreeMap<&str, i64> = BTreeMap::new();
        for (r, _) in &foreign {
            *added.entry(r.stream.as_str()).or_default() += 1;
        }
        let mut next = self.raise_versions(tx, &added).await?;
        let (mut new_ids, mut streams, mut versions, mut parts, mut offsets) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (r, id) in &foreign {
            let v = next.entry(r.stream.clone()).or_insert(0);
            *v += 1;
            new_ids.push(*id);
            streams.push(r.stream.as_str());
            versions.push(*v);
            parts.push(r.position.partition as i32);
            offsets.push(r.position.offset as i64);
        }
        let inserted = sqlx::query(
            "INSERT INTO log_events (topic, event_id, stream, version, part, log_offset)
             SELECT $1, t.id, t.s, t.v, t.p, t.o
             FROM unnest($2::uuid[], $3::text[], $4::int8[], $5::int4[], $6::int8[])
               AS t(id, s, v, p, o)
             ON CONFLICT DO NOTHING",
        )
        .bind(self.topic_name())
        .bind(&new_ids)
        .bind(&streams)
        .bind(&versions)
        .bind(&parts)
        .bind(&offsets)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if inserted != foreign.len() as u64 {
            return Ok(None);
        }
        Ok(Some(inserted))
    }

    fn topic_name(&self) -> &str {
        &self.topic.config.topic
    }

    /// Raises each stream's version by its count of new facts, in one statement that
    /// creates missing streams and locks their rows until the commit in name order (so two
    /// batches never wait on each other in a cycle); returns each stream's version before.
    async fn raise_versions(
        &self,
        conn: &mut sqlx::PgConnection,
        added: &BTreeMap<&str, i64>,
    ) -> Result<HashMap<String, i64>, LogError> {
        let (names, counts): (Vec<&str>, Vec<i64>) = added.iter().map(|(s, n)| (*s, *n)).unzip();
        let mut before = HashMap::with_capacity(names.len());
        for r in sqlx::query(
            "INSERT INTO log_streams (topic, stream, version)
             SELECT $1, t.s, t.n FROM unnest($2::text[], $3::int8[]) AS t(s, n)
             ON CONFLICT (topic, stream) DO UPDATE SET version = log_streams.version + excluded.version
             RETURNING stream, version",
        )
        .bind(self.topic_name())
        .bind(&names)
        .bind(&counts)
        .fetch_all(&mut *conn)
        .await?
        {
            let stream: String = r.try_get(0)?;
            let now: i64 = r.try_get(1)?;
            let n = added.get(stream.as_str()).copied().unwrap_or(0);
            before.insert(stream, now - n);
        }
        Ok(before)
    }

    /// A transaction for publishing: it may sit idle holding its rows while the producer
    /// waits for the broker, up to `PUBLISH_HOLD` rather than `hold_timeout`.
    async fn publishing(&self) -> Result<Transaction<'_, Postgres>, LogError> {
        let mut tx = self.db.begin().await?;
        sqlx::query("SELECT set_config('idle_in_transaction_session_timeout', $1, true)")
            .bind(PUBLISH_HOLD.as_millis().to_string())
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// Step 1: decides the batch in one transaction; returns the indexes of the events it
    /// stored (first occurrences of ids not stored before). `None` when another writer
    /// stored one of its ids at the same moment (the caller starts over and finds it stored).
    async fn commit(&self, batch: &AppendBatch) -> Result<Option<Vec<usize>>, LogError> {
        let ids: Vec<Uuid> = batch.events.iter().map(|e| e.event_id).collect();
        let mut tx = self.db.begin().await?;
        let mut known: HashMap<Uuid, ()> = HashMap::new();
        for r in
            sqlx::query("SELECT event_id FROM log_events WHERE topic = $1 AND event_id = ANY($2)")
                .bind(self.topic_name())
                .bind(&ids)
                .fetch_all(&mut *tx)
                .await?
        {
            known.insert(r.try_get(0)?, ());
        }
        let plan = batch.plan(&known)?;
        // How many new events each stream gets; the streams with an expectation to check
        // take part with none, so that they are locked too.
        let mut added: BTreeMap<&str, i64> = BTreeMap::new();
        for &i in &plan.new {
            *added.entry(batch.events[i].stream.as_str()).or_default() += 1;
        }
        for &(stream, _) in &plan.to_check {
            added.entry(stream).or_default();
        }
        if added.is_empty() {
            return Ok(Some(Vec::new()));
        }
        // A concurrent writer of the same stream waits here, then counts on.
        let mut before = self.raise_versions(&mut tx, &added).await?;
        for &(stream, expected) in &plan.to_check {
            let actual = u64::try_from(before.get(stream).copied().unwrap_or(0)).unwrap_or(0);
            if !expected.admits(actual) {
                // Release the streams' locks now, not when the connection is next used.
                tx.rollback().await?;
                return Err(LogError::WrongExpectedVersion {
                    stream: stream.to_string(),
                    expected,
                    actual,
                });
            }
        }
        if plan.new.is_empty() {
            tx.commit().await?;
            return Ok(Some(Vec::new()));
        }
        let (mut new_ids, mut new_streams, mut new_versions, mut payloads) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for &i in &plan.new {
            let e = &batch.events[i];
            let v = before.entry(e.stream.clone()).or_insert(0);
            *v += 1;
            new_ids.push(ids[i]);
            new_streams.push(e.stream.as_str());
            new_versions.push(*v);
            payloads.push(e.payload.as_slice());
        }
        let inserted = sqlx::query(
            "INSERT INTO log_events (topic, event_id, stream, version, payload)
             SELECT $1, t.id, t.s, t.v, t.p
             FROM unnest($2::uuid[], $3::text[], $4::int8[], $5::bytea[]) AS t(id, s, v, p)
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
        tx.commit().await?;
        Ok(Some(plan.new))
    }

    /// Step 2 for one batch: publishes the events this append stored, from memory, holding
    /// their rows so that no relay publishes them meanwhile. Only this step and the relays
    /// take those rows (writers of the same streams do not wait for them), so the writer may
    /// hold them while the producer waits for the broker, up to `PUBLISH_HOLD`.
    async fn publish_own(
        &self,
        batch: &AppendBatch,
        stored: &[usize],
    ) -> Result<HashMap<Uuid, Position>, LogError> {
        if stored.is_empty() {
            return Ok(HashMap::new());
        }
        let ids: Vec<Uuid> = stored.iter().map(|&i| batch.events[i].event_id).collect();
        let mut tx = self.publishing().await?;
        let unpublished: HashSet<Uuid> = sqlx::query_scalar(
            "SELECT event_id FROM log_events
             WHERE topic = $1 AND event_id = ANY($2) AND log_offset IS NULL FOR UPDATE",
        )
        .bind(self.topic_name())
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        let events: Vec<&LogEvent> = stored
            .iter()
            .map(|&i| &batch.events[i])
            .filter(|e| unpublished.contains(&e.event_id))
            .collect();
        let delivered = self.topic.produce(&events).await?;
        self.record(&mut tx, &events, &delivered.positions).await?;
        tx.commit().await?;
        if let Some(f) = delivered.failure {
            // Delivered facts are recorded; the rest stay for a retry or the relay.
            return Err(f);
        }
        if events.len() < ids.len() {
            // A relay published some first (this writer was slower than `publish_after`).
            return self.positions(&ids).await;
        }
        Ok(delivered
            .positions
            .iter()
            .map(|(&i, &p)| (events[i].event_id, p))
            .collect())
    }

    /// Produces `pending` (rows locked by `tx`) and records where each landed, in `tx`.
    async fn publish(
        &self,
        mut tx: Transaction<'_, Postgres>,
        pending: Vec<LogEvent>,
    ) -> Result<(), LogError> {
        if pending.is_empty() {
            tx.commit().await?;
            return Ok(());
        }
        let events: Vec<&LogEvent> = pending.iter().collect();
        let delivered = self.topic.produce(&events).await?;
        self.record(&mut tx, &events, &delivered.positions).await?;
        tx.commit().await?;
        match delivered.failure {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }

    /// Records in `tx` where the delivered ones of `events` landed (by index), unless a
    /// position is recorded already; drops their payloads.
    async fn record(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        events: &[&LogEvent],
        delivered: &HashMap<usize, Position>,
    ) -> Result<(), LogError> {
        let (mut ids, mut parts, mut offsets) = (Vec::new(), Vec::new(), Vec::new());
        for (&i, pos) in delivered {
            ids.push(events[i].event_id);
            parts.push(pos.partition as i32);
            offsets.push(pos.offset as i64);
        }
        // Losing this record in a database crash costs a copy on the topic (the relay
        // publishes the fact again; readers drop the copy by its id), never a fact: it
        // need not wait for the disk.
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "UPDATE log_events SET part = t.p, log_offset = t.o, payload = NULL
             FROM unnest($2::uuid[], $3::int4[], $4::int8[]) AS t(id, p, o)
             WHERE topic = $1 AND event_id = t.id AND log_offset IS NULL",
        )
        .bind(self.topic_name())
        .bind(&ids)
        .bind(&parts)
        .bind(&offsets)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Where those of `ids` that are on the topic are.
    async fn positions(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Position>, LogError> {
        let mut out = HashMap::with_capacity(ids.len());
        for r in sqlx::query(
            "SELECT event_id, part, log_offset FROM log_events
             WHERE topic = $1 AND event_id = ANY($2) AND log_offset IS NOT NULL",
        )
        .bind(self.topic_name())
        .bind(ids)
        .fetch_all(&self.db)
        .await?
        {
            out.insert(
                r.try_get(0)?,
                Position {
                    partition: r.try_get::<i32, _>(1)? as u32,
                    offset: r.try_get::<i64, _>(2)? as u64,
                },
            );
        }
        Ok(out)
    }
}

/// Whether PostgreSQL chose this transaction to break a lock cycle (nothing of it stands).
fn broke_a_lock_cycle(e: &LogError) -> bool {
    matches!(e, LogError::Storage(sqlx::Error::Database(e)) if e.code().as_deref() == Some("40P01"))
}

/// Facts committed but not yet on the topic, as the relay reads them.
fn unpublished(rows: &[sqlx::postgres::PgRow]) -> Result<Vec<LogEvent>, LogError> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let event_id: Uuid = r.try_get(0)?;
        let payload: Option<Vec<u8>> = r.try_get(2)?;
        out.push(LogEvent {
            event_id,
            stream: r.try_get(1)?,
            payload: payload.unwrap_or_default(),
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
        "CREATE TABLE IF NOT EXISTS log_indexed (
             topic TEXT NOT NULL,
             part INTEGER NOT NULL,
             next_offset BIGINT NOT NULL,
             PRIMARY KEY (topic, part))",
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
            match log.index_foreign().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(indexed = n, "indexed facts other producers wrote"),
                Err(e) => tracing::warn!(error = %e, "the relay could not index the topic"),
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
                Err(e) if broke_a_lock_cycle(&e) => {}
                Err(e) => return Err(e),
            }
            attempts += 1;
            if attempts >= COMMIT_ATTEMPTS {
                return Err(LogError::Backend(
                    "other writers kept storing this batch's ids at the same moment".into(),
                ));
            }
        };
        let mut positions = self.publish_own(&batch, &stored).await?;
        // The rest are duplicates: of facts on the topic, of facts another writer is
        // publishing now, or of facts a writer left unpublished, which the relay publishes
        // once they are `publish_after` old. Wait for them that long, and a little more.
        let waiting = std::time::Instant::now();
        let patience = self.settings.publish_after + 2 * self.settings.relay_every;
        loop {
            let rest: Vec<Uuid> = batch
                .events
                .iter()
                .filter(|e| !positions.contains_key(&e.event_id))
                .map(|e| e.event_id)
                .collect();
            if rest.is_empty() {
                break;
            }
            positions.extend(self.positions(&rest).await?);
            if positions.len() == batch.events.len() || waiting.elapsed() > patience {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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
        self.positions(ids).await
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
                .copied();
            let end = match seen {
                // The broker reports the same end as last time: nothing was added.
                Some((reported, end)) if hint.is_some() && reported == hint => end,
                _ => {
                    // A broker's reported end may stop short of the last batch's records
                    // (tansu 0.6), never beyond the end: the offset before it exists.
                    let known = seen.map(|(_, end)| end).unwrap_or(0);
                    let from = known.max(hint.unwrap_or(0).max(1) as u64 - 1);
                    let end = self.topic.end_from(p, from).await?;
                    self.seen_ends
                        .lock()
                        .map_err(|_| LogError::Backend("poisoned".into()))?
                        .insert(p, (hint, end));
                    end
                }
            };
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
    /// The stream's published facts in version order, each read from the topic at its
    /// offset, after indexing what foreign producers wrote to its partition.
    async fn read_stream(&self, stream: &str) -> Result<Vec<Record>, LogError> {
        self.index_partition(
            partition_for(stream, self.topic.config.partitions),
            Wait::Yes,
        )
        .await?;
        let rows = sqlx::query(
            "SELECT part, log_offset FROM log_events
             WHERE topic = $1 AND stream = $2 AND log_offset IS NOT NULL ORDER BY version",
        )
        .bind(self.topic_name())
        .bind(stream)
        .fetch_all(&self.db)
        .await?;
        let by_version: Vec<Position> = rows
            .iter()
            .map(|r| {
                Ok(Position {
                    partition: r.try_get::<i32, _>(0)? as u32,
                    offset: r.try_get::<i64, _>(1)? as u64,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        // By partition (a foreign producer may have put some elsewhere), offsets sorted.
        let mut by_part: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for p in &by_version {
            by_part.entry(p.partition).or_default().push(p.offset);
        }
        let mut at: HashMap<Position, Record> = HashMap::with_capacity(by_version.len());
        for (p, mut offsets) in by_part {
            offsets.sort_unstable();
            for r in self.topic.read_offsets(stream, p, &offsets).await? {
                at.insert(r.position, r);
            }
        }
        Ok(by_version.iter().filter_map(|p| at.remove(p)).collect())
    }
}
