//! `assist bench writers`: the shared log (Kafka + PostgreSQL) with 1, 2 and 3 writer
//! instances against a bare rdkafka producer, and the share of conflicts when writers race
//! for the same streams' versions.

use super::bench::{bare_producer, bench_topic, lanes, warm_up_event, workload, IngestArgs};
use crate::outln;
use anyhow::{Context, Result};
use assist_kafka::{SharedKafkaLog, SharedSettings};
use assist_log::{AppendBatch, Appender, ExpectedVersion, LogError, LogEvent};
use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

#[derive(clap::Args)]
pub struct Args {
    /// The brokers, host:port.
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    /// PostgreSQL (a temporary database is made in it and dropped).
    #[arg(long, env = "ASSIST_BENCH_POSTGRES")]
    postgres: String,
    /// How many events.
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Events per append (what a caseworker system posts at once).
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// How many distinct person streams.
    #[arg(long, default_value_t = 5_000)]
    streams: usize,
    /// Records per produce batch for every producer (1 for tansu).
    #[arg(long, env = "ASSIST_KAFKA_BATCH_MESSAGES")]
    batch_messages: Option<u32>,
    /// Appends per writer in the race for versions.
    #[arg(long, default_value_t = 200)]
    races: usize,
    /// Streams the writers race on.
    #[arg(long, default_value_t = 10)]
    hot: usize,
    /// Appends each writer (and the baseline) has in flight at once, as a service with
    /// that many concurrent clients.
    #[arg(long, default_value_t = 1)]
    in_flight: usize,
}

pub async fn run(args: Args) -> Result<ExitCode> {
    use sqlx::{Connection, Executor};
    let run_id = Uuid::now_v7().simple().to_string();
    let db = format!("assist_bench_writers_{run_id}");
    let mut admin = sqlx::PgConnection::connect(&args.postgres)
        .await
        .context("cannot reach --postgres")?;
    admin
        .execute(format!("CREATE DATABASE {db}").as_str())
        .await?;
    let base = args
        .postgres
        .rsplit_once('/')
        .map(|(b, _)| b.to_string())
        .context("no database in the --postgres URL")?;
    let url = format!("{base}/{db}");
    let result = measure(&args, &url, &run_id).await;
    admin
        .execute(format!("DROP DATABASE {db} WITH (FORCE)").as_str())
        .await?;
    result?;
    Ok(ExitCode::SUCCESS)
}

async fn measure(args: &Args, url: &str, run_id: &str) -> Result<()> {
    let config = |topic: &str| bench_topic(&args.brokers, topic, args.batch_messages);
    let open = |topic: String| async move {
        SharedKafkaLog::open(config(&topic), url, SharedSettings::default()).await
    };
    let events = workload(&IngestArgs::generated(
        args.events,
        args.batch,
        args.streams,
        7,
    ))?;
    let n = events.len() as f64;
    outln!(
        "workload: {} events in appends of {}, {} streams, {} append(s) in flight per writer, broker {}",
        events.len(),
        args.batch,
        args.streams,
        args.in_flight.max(1),
        args.brokers
    )?;

    // The baseline: one bare idempotent acks=all producer, the same payloads and appends.
    let bare_topic = format!("bench-bare-{run_id}");
    drop(open(bare_topic.clone()).await?); // creates the topic
    let bare = bare_producer(
        &args.brokers,
        &bare_topic,
        args.batch_messages,
        &events,
        args.batch,
        args.in_flight,
    )
    .await?;
    outln!(
        "bare rdkafka producer       {:>8.0} events/s  ({bare:.2} s)  [baseline]",
        n / bare
    )?;

    // The shared log: W instances (each its own producer and PostgreSQL sessions), the
    // appends dealt out among them, all writing at once.
    for writers in 1..=3 {
        let topic = format!("bench-writers-{writers}-{run_id}");
        let mut logs = Vec::new();
        for w in 0..writers {
            let log = open(topic.clone()).await?;
            log.append(AppendBatch::new(vec![warm_up_event(w, &events)]))
                .await?;
            logs.push(log);
        }
        let t = Instant::now();
        let mut tasks = Vec::new();
        // Each writer's share of the appends, in `in_flight` lanes at once.
        for (j, lane) in lanes(&events, args.batch, writers * args.in_flight.max(1))
            .into_iter()
            .enumerate()
        {
            let log = logs[j % writers].clone();
            tasks.push(tokio::spawn(async move {
                for chunk in lane {
                    log.append(AppendBatch::new(chunk)).await?;
                }
                Ok::<(), LogError>(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        let secs = t.elapsed().as_secs_f64();
        outln!(
            "shared log, {writers} writer{}        {:>8.0} events/s  ({secs:.2} s)  ratio {:.2}",
            if writers == 1 { " " } else { "s" },
            n / secs,
            bare / secs
        )?;
    }

    // The race: writers append one event at a time to a few hot streams, each expecting
    // the version it last knew; a conflict tells it the actual version and it tries again.
    for writers in 2..=3 {
        let topic = format!("bench-race-{writers}-{run_id}");
        let mut logs = Vec::new();
        for _ in 0..writers {
            logs.push(open(topic.clone()).await?);
        }
        let hot = workload(&IngestArgs::generated(
            args.races * writers,
            1,
            args.hot,
            11,
        ))?;
        let t = Instant::now();
        let mut tasks = Vec::new();
        for (w, log) in logs.iter().enumerate() {
            // A run of consecutive events: every hot stream in turn, as every writer's are.
            let mine: Vec<LogEvent> = hot[w * args.races..(w + 1) * args.races].to_vec();
            let log: Arc<SharedKafkaLog> = log.clone();
            tasks.push(tokio::spawn(race(log, mine)));
        }
        let (mut won, mut lost) = (0u64, 0u64);
        for task in tasks {
            let (w, l) = task.await??;
            won += w;
            lost += l;
        }
        let secs = t.elapsed().as_secs_f64();
        outln!(
            "race, {writers} writers on {} streams: {won} appends, {lost} conflicts ({:.1}% of attempts), {:.0} appends/s",
            args.hot,
            100.0 * lost as f64 / (won + lost) as f64,
            won as f64 / secs
        )?;
    }
    takeover(&open(format!("bench-takeover-{run_id}")).await?, url).await?;
    Ok(())
}

/// The time from a writer's death to the next append of a stream it held locked: a
/// connection of its own holds the stream's row as a writer does mid-append, an append
/// waits for it, then the connection goes as it does when its process is killed.
async fn takeover(log: &Arc<SharedKafkaLog>, url: &str) -> Result<()> {
    use sqlx::Connection;
    let mut rows = Vec::new();
    for _ in 0..5 {
        let event = workload(&IngestArgs::generated(1, 1, 1, rand_seed()))?.remove(0);
        log.append(AppendBatch::new(vec![event.clone()])).await?;
        let mut dying = sqlx::PgConnection::connect(url).await?;
        sqlx::query("BEGIN").execute(&mut dying).await?;
        sqlx::query("SELECT version FROM log_streams WHERE topic = $1 AND stream = $2 FOR UPDATE")
            .bind(&log.config().topic)
            .bind(&event.stream)
            .execute(&mut dying)
            .await?;
        let mut next = event.clone();
        next.event_id = Uuid::now_v7();
        let waiting = {
            let log = log.clone();
            tokio::spawn(async move { log.append(AppendBatch::new(vec![next])).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        anyhow::ensure!(
            !waiting.is_finished(),
            "the append did not wait for the lock"
        );
        let died = Instant::now();
        drop(dying);
        waiting.await??;
        rows.push(died.elapsed().as_secs_f64() * 1000.0);
    }
    rows.sort_by(f64::total_cmp);
    outln!(
        "takeover after a writer dies holding a stream's lock: median {:.1} ms, max {:.1} ms (5 trials)",
        rows[2],
        rows[4]
    )?;
    Ok(())
}

fn rand_seed() -> u64 {
    Uuid::now_v7().as_u128() as u64
}

/// Appends each event expecting its stream at the version this writer last knew; on a
/// conflict, learns the actual version and tries again. Returns (appends, conflicts).
async fn race(log: Arc<SharedKafkaLog>, events: Vec<LogEvent>) -> Result<(u64, u64), LogError> {
    let mut known: HashMap<String, u64> = HashMap::new();
    let (mut won, mut lost) = (0, 0);
    for e in events {
        loop {
            let version = known.get(&e.stream).copied().unwrap_or(0);
            let expected = match version {
                0 => ExpectedVersion::NoStream,
                v => ExpectedVersion::Exact(v),
            };
            let batch = AppendBatch::new(vec![e.clone()]).expect(e.stream.clone(), expected);
            match log.append(batch).await {
                Ok(_) => {
                    known.insert(e.stream.clone(), version + 1);
                    won += 1;
                    break;
                }
                Err(LogError::WrongExpectedVersion { actual, .. }) => {
                    known.insert(e.stream.clone(), actual);
                    lost += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok((won, lost))
}
