//! `assist bench ingest`: append throughput of the embedded log against a bare sqlx loop.

use crate::outln;
use anyhow::{Context, Result};
use assist_catalog::events::monitoring::{AlertRaised, AlertSource, AlertTrigger};
use assist_catalog::events::response::{
    ContactChannel, ContactMade, Employer, HomeVisitCompleted, JobOfferPushed, Need, WagePeriod,
};
use assist_catalog::{Actor, Event, EventData, RegionCode, Role, StaffId, StreamId};
use assist_ingest::{IngestOptions, Recorder};
use assist_log::{
    partition_for, stream_key, AppendBatch, Appender, EmbeddedLog, LogEvent, DEFAULT_PARTITIONS,
};
use chrono::{Duration, TimeZone, Utc};
use rand::{Rng, SeedableRng};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use uuid::Uuid;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Append generated events to the embedded log in batches; compare with a bare sqlx
    /// loop inserting the same rows, and with the full JSON Lines ingest.
    Ingest(IngestArgs),
    /// Project a simulated log into SQLite (and PostgreSQL when given); compare with
    /// inserting the very same view rows the plain way (prepared inserts in one
    /// transaction on SQLite, COPY on PostgreSQL).
    Project(super::bench_project::Args),
    /// The service over loopback: HTTP ingest from concurrent clients against the command
    /// line's ingest of the same lines, then p50/p99 latency of history, caseload and clock
    /// pages, and a city's and the province's SLA summary.
    Serve(super::bench_serve::Args),
    /// The pages for people against the API reads behind them: the dashboard and a
    /// drill-down list (p50 / p99), and an XLSX export of a long list against the CSV
    /// export of the same rows.
    Pages(super::bench_pages::Args),
    /// Append to a Kafka topic through the log against a bare rdkafka producer sending the
    /// same payloads; then consume and project them into PostgreSQL.
    Kafka(KafkaArgs),
    /// Many writers on Kafka and PostgreSQL (the shared log): appends per second with 1, 2
    /// and 3 writer instances against a bare producer, and the share of conflicts when
    /// writers race for the same streams' versions.
    Writers(super::bench_writers::Args),
}

#[derive(clap::Args)]
pub struct KafkaArgs {
    /// The brokers, host:port.
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    /// How many events.
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Events per append.
    #[arg(long, default_value_t = 10_000)]
    batch: usize,
    /// How many distinct person streams.
    #[arg(long, default_value_t = 5_000)]
    streams: usize,
    /// Records per produce batch for both producers (1 for tansu).
    #[arg(long, env = "ASSIST_KAFKA_BATCH_MESSAGES")]
    batch_messages: Option<u32>,
    /// PostgreSQL for the consume + projection figure (a temporary database is made).
    #[arg(long, env = "ASSIST_BENCH_POSTGRES")]
    postgres: Option<String>,
}

#[derive(clap::Args)]
pub struct IngestArgs {
    /// How many events.
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) events: usize,
    /// Events per append.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) batch: usize,
    /// How many distinct person streams.
    #[arg(long, default_value_t = 50_000)]
    pub(crate) streams: usize,
    /// Where to put the benchmark databases (default: a fresh temporary directory).
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// Run only the embedded log append (for profiling).
    #[arg(long)]
    pub(crate) only_log: bool,
    /// Seed of the generated workload.
    #[arg(long, default_value_t = 7)]
    pub(crate) seed: u64,
}

pub async fn run(cmd: Command) -> Result<ExitCode> {
    match cmd {
        Command::Ingest(args) => ingest(args).await,
        Command::Project(args) => super::bench_project::run(args).await,
        Command::Serve(args) => super::bench_serve::run(args).await,
        Command::Pages(args) => super::bench_pages::run(args).await,
        Command::Kafka(args) => kafka(args).await,
        Command::Writers(args) => super::bench_writers::run(args).await,
    }
}

impl IngestArgs {
    /// The arguments that generate `events` events over `streams` streams from `seed`, for
    /// the benchmarks that need only the workload.
    pub(crate) fn generated(events: usize, batch: usize, streams: usize, seed: u64) -> IngestArgs {
        IngestArgs {
            events,
            batch,
            streams,
            dir: None,
            only_log: false,
            seed,
        }
    }
}

/// Realistic events of the 2473 response, serialized as the log stores them.
pub(crate) fn workload(args: &IngestArgs) -> Result<Vec<LogEvent>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let streams: Vec<StreamId> = (0..args.streams.max(1))
        .map(|_| {
            StreamId::person(Uuid::from_u128(
                rng.gen::<u128>() & !(0xf << 76) | (4 << 76),
            ))
        })
        .collect();
    let actor = Actor {
        id: StaffId::new("cw-350121-007")?,
        role: Role::Caseworker,
        region: RegionCode::new("350121")?,
    };
    let start = Utc
        .with_ymd_and_hms(2026, 3, 1, 1, 0, 0)
        .single()
        .context("start time")?;
    let mut out = Vec::with_capacity(args.events);
    for i in 0..args.events {
        let stream = streams[i % streams.len()];
        let data = match i % 4 {
            0 => EventData::AlertRaised(AlertRaised {
                alert_id: Uuid::now_v7(),
                trigger: AlertTrigger::JobLost,
                source: AlertSource::DataSharing,
            }),
            1 => EventData::ContactMade(ContactMade {
                alert_id: None,
                channel: ContactChannel::Phone,
            }),
            2 => EventData::HomeVisitCompleted(HomeVisitCompleted {
                alert_id: None,
                needs: vec![Need::JobPlacement, Need::Training],
                wants_work: true,
                able_to_work: true,
            }),
            _ => EventData::JobOfferPushed(JobOfferPushed {
                offer_id: Uuid::now_v7(),
                job_id: format!("JB-{i}"),
                job_title: "food packer".into(),
                employer: Employer {
                    id: "91350121MA2XYZ1234".into(),
                    name: "Minhou Food Processing Co.".into(),
                },
                wage: f64::from(rng.gen_range(3000..6000)),
                wage_period: WagePeriod::Month,
                location: actor.region.clone(),
            }),
        };
        let event = Event::new(stream, actor.clone(), data)
            .occurred_at(start + Duration::seconds(i as i64));
        out.push(LogEvent {
            event_id: event.meta.event_id,
            stream: stream.to_string(),
            payload: serde_json::to_vec(&event.to_wire())?,
        });
    }
    Ok(out)
}

/// Rows per INSERT statement of the ingest baseline (5 values each, far under SQLite's
/// 32,766 bound parameters).
const BASELINE_ROWS: usize = 500;

async fn ingest(args: IngestArgs) -> Result<ExitCode> {
    let tmp = tempfile_dir(&args.dir)?;
    let dir = tmp.path.clone();
    outln!(
        "generating {} events over {} streams ...",
        args.events,
        args.streams
    )?;
    let events = workload(&args)?;
    let bytes: usize = events.iter().map(|e| e.payload.len()).sum();
    outln!(
        "workload: {} events, batches of {}, {} streams, {} B average payload, dir {}",
        events.len(),
        args.batch,
        args.streams,
        bytes / events.len().max(1),
        dir.display()
    )?;

    // 1. The embedded log (dedup lookups, versions, dense offsets, multi-row inserts).
    let log = EmbeddedLog::open(&dir.join("bench-log.db"), None).await?;
    let t = Instant::now();
    for chunk in events.chunks(args.batch.max(1)) {
        log.append(AppendBatch::new(chunk.to_vec())).await?;
    }
    // The stream index is written behind the events; the figure includes completing it.
    log.index_all_streams().await?;
    let ours = t.elapsed().as_secs_f64();
    log.close().await;
    if args.only_log {
        outln!(
            "embedded log append      {:>10.0} events/s  ({ours:.2} s)",
            events.len() as f64 / ours
        )?;
        return Ok(ExitCode::SUCCESS);
    }

    // 2. Baseline: the strongest plain way to write the same rows with the same settings:
    //    the same table and id index, positions computed in memory, multi-row INSERTs of
    //    `BASELINE_ROWS` rows (one prepared statement, reused), one transaction per batch,
    //    the same pragmas (WAL, synchronous=FULL, page and cache size, WAL checkpoints,
    //    temp store). It skips what the log does besides: dedup lookups, expected
    //    versions and the stream index.
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(dir.join("bench-baseline.db"))
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .page_size(16384)
                .pragma("cache_size", "-131072")
                .pragma("wal_autocheckpoint", "4096")
                .pragma("temp_store", "memory"),
        )
        .await?;
    sqlx::raw_sql(
        "CREATE TABLE events (position INTEGER PRIMARY KEY, stream_key INTEGER NOT NULL, stream TEXT NOT NULL, event_id BLOB NOT NULL, payload BLOB NOT NULL);
         CREATE UNIQUE INDEX events_by_id ON events (event_id);",
    )
    .execute(&pool)
    .await?;
    let mut heads: HashMap<u32, i64> = HashMap::new();
    let t = Instant::now();
    for chunk in events.chunks(args.batch.max(1)) {
        let mut tx = pool.begin().await?;
        for rows in chunk.chunks(BASELINE_ROWS) {
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO events (position, stream_key, stream, event_id, payload) ",
            );
            insert.push_values(rows, |mut row, e| {
                let p = partition_for(&e.stream, DEFAULT_PARTITIONS);
                let head = heads.entry(p).or_default();
                row.push_bind((i64::from(p) << 40) | *head)
                    .push_bind(stream_key(&e.stream))
                    .push_bind(e.stream.as_str())
                    .push_bind(e.event_id.as_bytes().as_slice())
                    .push_bind(e.payload.as_slice());
                *head += 1;
            });
            insert.build().persistent(true).execute(&mut *tx).await?;
        }
        tx.commit().await?;
    }
    let baseline = t.elapsed().as_secs_f64();
    pool.close().await;

    // 3. The whole ingest path: JSON Lines parsed, validated, sealed where personal, appended.
    let mut jsonl = Vec::with_capacity(bytes + events.len());
    for e in &events {
        jsonl.extend_from_slice(&e.payload);
        jsonl.push(b'\n');
    }
    let recorder = Recorder::open_embedded(&dir.join("bench-ingest")).await?;
    let t = Instant::now();
    let report = recorder
        .ingest(
            jsonl.as_slice(),
            IngestOptions {
                atomic: false,
                batch_lines: args.batch.max(1),
            },
        )
        .await?;
    let full = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        report.accepted.len() == events.len(),
        "ingest accepted {} of {}",
        report.accepted.len(),
        events.len()
    );

    let n = events.len() as f64;
    outln!(
        "embedded log append      {:>10.0} events/s  ({ours:.2} s)",
        n / ours
    )?;
    outln!(
        "multi-row INSERTs        {:>10.0} events/s  ({baseline:.2} s)  [baseline]",
        n / baseline
    )?;
    outln!("ratio (ours / baseline)  {:>10.2}", baseline / ours)?;
    outln!(
        "full JSONL ingest        {:>10.0} events/s  ({full:.2} s)  [parse + validate + append]",
        n / full
    )?;
    Ok(ExitCode::SUCCESS)
}

/// A directory for the benchmark: the one given (kept), or a temporary one (removed after).
struct BenchDir {
    path: PathBuf,
    remove: bool,
}

impl Drop for BenchDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn tempfile_dir(given: &Option<PathBuf>) -> Result<BenchDir> {
    match given {
        Some(p) => {
            std::fs::create_dir_all(p)?;
            for f in ["bench-log.db", "bench-baseline.db"] {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(p.join(format!("{f}{suffix}")));
                }
            }
            let _ = std::fs::remove_dir_all(p.join("bench-ingest"));
            Ok(BenchDir {
                path: p.clone(),
                remove: false,
            })
        }
        None => {
            let path = std::env::temp_dir().join(format!("assist-bench-{}", Uuid::now_v7()));
            std::fs::create_dir_all(&path)?;
            Ok(BenchDir { path, remove: true })
        }
    }
}

/// A benchmark's topic on `brokers`: the default partitions, one replica, a 10 s timeout.
pub(crate) fn bench_topic(
    brokers: &str,
    topic: &str,
    batch_messages: Option<u32>,
) -> assist_kafka::KafkaConfig {
    assist_kafka::KafkaConfig {
        brokers: brokers.to_string(),
        topic: topic.to_string(),
        partitions: DEFAULT_PARTITIONS,
        replication: 1,
        timeout: std::time::Duration::from_secs(10),
        max_batch_messages: batch_messages,
    }
}

/// An event on a stream of its own, appended before a measurement starts so that the log's
/// connections are made and its producer is ready, as the baseline's is.
pub(crate) fn warm_up_event(n: usize, events: &[LogEvent]) -> LogEvent {
    LogEvent {
        event_id: Uuid::now_v7(),
        stream: format!("warm-up-{n}"),
        payload: events
            .first()
            .map(|e| e.payload.clone())
            .unwrap_or_default(),
    }
}

/// The appends of `batch` events dealt out in turn to `lanes` lanes (clients that each
/// send their appends one after another, all lanes at once).
pub(crate) fn lanes(events: &[LogEvent], batch: usize, lanes: usize) -> Vec<Vec<Vec<LogEvent>>> {
    let chunks: Vec<Vec<LogEvent>> = events
        .chunks(batch.max(1))
        .map(<[LogEvent]>::to_vec)
        .collect();
    let n = lanes.max(1);
    (0..n)
        .map(|j| chunks.iter().skip(j).step_by(n).cloned().collect())
        .collect()
}

/// The baseline of the Kafka benchmarks: a bare idempotent `acks=all` producer sending
/// `events` keyed by stream to their partitions of `topic` (which must exist), in
/// `in_flight` lanes at once (see [`lanes`]), each enqueuing an append of `batch` at once
/// and awaiting every delivery report before its next; its seconds.
pub(crate) async fn bare_producer(
    brokers: &str,
    topic: &str,
    batch_messages: Option<u32>,
    events: &[LogEvent],
    batch: usize,
    in_flight: usize,
) -> Result<f64> {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let mut cfg = rdkafka::ClientConfig::new();
    if let Some(m) = batch_messages {
        cfg.set("batch.num.messages", m.to_string());
    }
    let producer: FutureProducer = cfg
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()?;
    // Connected, its topic's metadata fetched and its producer id given before the clock
    // starts, as the log's producer is after its warm-up append.
    producer
        .send(
            FutureRecord::to(topic)
                .partition(0)
                .key("warm-up")
                .payload(""),
            std::time::Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| anyhow::anyhow!("bare producer: {e}"))?;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for lane in lanes(events, batch, in_flight) {
        let (producer, topic) = (producer.clone(), topic.to_string());
        tasks.push(tokio::spawn(async move {
            for chunk in lane {
                send_append(&producer, &topic, &chunk).await?;
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(t.elapsed().as_secs_f64())
}

/// One append of the baseline: every event enqueued at once (waiting while the producer's
/// queue is full), then every delivery report awaited.
async fn send_append(
    producer: &rdkafka::producer::FutureProducer,
    topic: &str,
    chunk: &[LogEvent],
) -> Result<()> {
    use rdkafka::producer::FutureRecord;
    let mut waits = Vec::with_capacity(chunk.len());
    for e in chunk {
        let mut record = FutureRecord::to(topic)
            .partition(partition_for(&e.stream, DEFAULT_PARTITIONS) as i32)
            .key(e.stream.as_bytes())
            .payload(&e.payload);
        loop {
            match producer.send_result(record) {
                Ok(f) => {
                    waits.push(f);
                    break;
                }
                Err((_, r)) => {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    record = r;
                }
            }
        }
    }
    for w in waits {
        w.await
            .map_err(|_| anyhow::anyhow!("bare producer: dropped"))?
            .map_err(|(e, _)| anyhow::anyhow!("bare producer: {e}"))?;
    }
    Ok(())
}

async fn kafka(args: KafkaArgs) -> Result<ExitCode> {
    let dir = tempfile::tempdir()?;
    let events = workload(&IngestArgs::generated(
        args.events,
        args.batch,
        args.streams,
        7,
    ))?;
    let n = events.len() as f64;
    let run_id = Uuid::now_v7().simple().to_string();
    let config = |topic: &str| bench_topic(&args.brokers, topic, args.batch_messages);
    outln!(
        "workload: {} events in appends of {}, {} streams, broker {}",
        events.len(),
        args.batch,
        args.streams,
        args.brokers
    )?;

    // 1. Through the log: dedup index, explicit partitions, delivery reports awaited per append.
    let ours_topic = format!("bench-log-{run_id}");
    let log =
        assist_kafka::KafkaLog::open(config(&ours_topic), &dir.path().join("index.db")).await?;
    log.append(AppendBatch::new(vec![warm_up_event(0, &events)]))
        .await?;
    let t = Instant::now();
    for chunk in events.chunks(args.batch.max(1)) {
        log.append(AppendBatch::new(chunk.to_vec())).await?;
    }
    let ours = t.elapsed().as_secs_f64();

    // 2. Baseline: a bare idempotent acks=all producer sending the same keyed payloads to
    //    the same partitions, awaiting every delivery report per batch.
    let bare_topic = format!("bench-bare-{run_id}");
    let bare_log =
        assist_kafka::KafkaLog::open(config(&bare_topic), &dir.path().join("bare-index.db"))
            .await?; // creates the topic
    bare_log.close().await;
    let bare = bare_producer(
        &args.brokers,
        &bare_topic,
        args.batch_messages,
        &events,
        args.batch,
        1,
    )
    .await?;
    outln!(
        "Kafka log append         {:>10.0} events/s  ({ours:.2} s)",
        n / ours
    )?;
    outln!(
        "bare rdkafka producer    {:>10.0} events/s  ({bare:.2} s)  [baseline]",
        n / bare
    )?;
    outln!("ratio (ours / baseline)  {:>10.2}", bare / ours)?;

    // 3. Consume the log's topic and project it into PostgreSQL.
    if let Some(url) = &args.postgres {
        use sqlx::{Connection, Executor};
        let db = format!("assist_bench_kafka_{run_id}");
        let mut admin = sqlx::PgConnection::connect(url).await?;
        admin
            .execute(format!("CREATE DATABASE {db}").as_str())
            .await?;
        let base = url
            .rsplit_once('/')
            .map(|(b, _)| b.to_string())
            .context("no database in the URL")?;
        let store = assist_projections::Store::open(&format!("{base}/{db}")).await?;
        let rules = assist_projections::sla::Rules::shipped()?;
        let t = Instant::now();
        let stats = assist_projections::Runner {
            log: &log,
            store: &store,
            rules: &rules,
            batch: 5_000,
            memory: Default::default(),
        }
        .catch_up(1, |_| {})
        .await?;
        let secs = t.elapsed().as_secs_f64();
        outln!(
            "consume + project into PostgreSQL {:>8.0} events/s  ({secs:.2} s, {} events)",
            stats.applied as f64 / secs,
            stats.applied
        )?;
        store.close().await;
        admin
            .execute(format!("DROP DATABASE {db} WITH (FORCE)").as_str())
            .await?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(n: usize) -> Vec<LogEvent> {
        (0..n)
            .map(|i| LogEvent {
                event_id: Uuid::now_v7(),
                stream: format!("s{i}"),
                payload: vec![i as u8],
            })
            .collect()
    }

    #[test]
    fn lanes_deal_the_appends_in_turn_and_hold_every_event_once() {
        let all = events(10);
        // Appends of 2: [0,1] [2,3] [4,5] [6,7] [8,9], dealt to 2 lanes in turn.
        let dealt = lanes(&all, 2, 2);
        let streams = |lane: &Vec<Vec<LogEvent>>| -> Vec<Vec<String>> {
            lane.iter()
                .map(|a| a.iter().map(|e| e.stream.clone()).collect())
                .collect()
        };
        assert_eq!(
            streams(&dealt[0]),
            [vec!["s0", "s1"], vec!["s4", "s5"], vec!["s8", "s9"]]
        );
        assert_eq!(streams(&dealt[1]), [vec!["s2", "s3"], vec!["s6", "s7"]]);
    }

    #[test]
    fn one_lane_is_every_append_in_order() {
        let all = events(5);
        let dealt = lanes(&all, 2, 0);
        assert_eq!(dealt.len(), 1);
        let flat: Vec<&str> = dealt[0]
            .iter()
            .flatten()
            .map(|e| e.stream.as_str())
            .collect();
        assert_eq!(flat, ["s0", "s1", "s2", "s3", "s4"]);
    }
}
