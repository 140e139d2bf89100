//! The Kafka backend against a real Kafka-protocol broker (tansu), started by the test
//! command on `ASSIST_TEST_KAFKA`: the conformance suite every backend passes, plain JSON
//! values any Kafka client can read, and a broker killed and restarted mid-run.

use assist_kafka::{KafkaConfig, KafkaLog};
use assist_log::conformance::Harness;
use async_trait::async_trait;
use std::time::Duration;
use tempfile::TempDir;

fn brokers() -> String {
    std::env::var("ASSIST_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:19092".into())
}

fn config(topic: &str) -> KafkaConfig {
    KafkaConfig {
        brokers: brokers(),
        topic: topic.into(),
        partitions: 8,
        replication: 1,
        timeout: Duration::from_secs(10),
        max_batch_messages: Some(1),
    }
}

struct Tansu {
    dir: TempDir,
}

#[async_trait]
impl Harness for Tansu {
    type Log = KafkaLog;

    async fn fresh(&self) -> KafkaLog {
        let topic = format!("conformance-{}", uuid::Uuid::new_v4().simple());
        KafkaLog::open(config(&topic), &self.dir.path().join("index.db"))
            .await
            .expect("the test command starts tansu")
    }

    async fn reopen(&self, log: KafkaLog) -> KafkaLog {
        let cfg = log.config().clone();
        log.close().await;
        KafkaLog::open(cfg, &self.dir.path().join("index.db"))
            .await
            .unwrap()
    }
}

assist_log::conformance_tests!(Tansu {
    dir: tempfile::tempdir().unwrap()
});

mod common;

/// The shared log (PostgreSQL as the arbiter) on tansu: the same conformance suite, and
/// writers racing for the same stream versions.
mod shared {
    use super::*;
    use assist_kafka::{SharedKafkaLog, SharedSettings};
    use assist_log::conformance::event;
    use assist_log::{
        AppendBatch, Appender, ExpectedVersion, LogError, PartitionReader, StreamReader,
    };
    use std::collections::{HashMap, HashSet};
    use std::sync::Arc;

    async fn open(topic: &str) -> Arc<SharedKafkaLog> {
        let url = super::common::postgres("assist_test_shared_log_tansu").await;
        SharedKafkaLog::open(config(topic), &url, SharedSettings::default())
            .await
            .expect("the test command starts tansu and PostgreSQL")
    }

    struct SharedOnTansu;

    #[async_trait]
    impl Harness for SharedOnTansu {
        type Log = Arc<SharedKafkaLog>;

        async fn fresh(&self) -> Arc<SharedKafkaLog> {
            open(&format!("shared-{}", uuid::Uuid::new_v4().simple())).await
        }

        async fn reopen(&self, log: Arc<SharedKafkaLog>) -> Arc<SharedKafkaLog> {
            let topic = log.config().topic.clone();
            drop(log);
            open(&topic).await
        }
    }

    assist_log::conformance_tests!(SharedOnTansu);

    /// Writes a message straight to the topic as any Kafka client can: keyed by its stream,
    /// into `partition`, with the event id header when there is an id; its offset.
    async fn produce_foreign(
        topic: &str,
        stream: &str,
        partition: i32,
        id: Option<uuid::Uuid>,
        payload: &[u8],
    ) -> i64 {
        use rdkafka::config::ClientConfig;
        use rdkafka::message::{Header, OwnedHeaders};
        use rdkafka::producer::{FutureProducer, FutureRecord};
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers())
            .create()
            .unwrap();
        let mut record = FutureRecord::to(topic)
            .key(stream)
            .payload(payload)
            .partition(partition);
        if let Some(id) = id {
            record = record.headers(OwnedHeaders::new().insert(Header {
                key: assist_kafka::EVENT_ID_HEADER,
                value: Some(id.as_bytes().as_slice()),
            }));
        }
        producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .unwrap()
            .offset
    }

    fn stream(i: usize) -> String {
        format!("person-00000000-0000-4000-8000-{i:012}")
    }

    /// `writers` instances (each its own producer and PostgreSQL sessions) race `rounds`
    /// times on each of `streams` streams, every one appending an event that expects the
    /// stream at the round's version. Exactly one wins each race; every other gets the
    /// conflict with the version the winner made; the topic holds the winners, once each.
    async fn race(writers: usize, streams: usize, rounds: u64) {
        let topic = format!("race-{}", uuid::Uuid::new_v4().simple());
        let mut logs = Vec::new();
        for _ in 0..writers {
            logs.push(open(&topic).await);
        }
        let mut winners: HashSet<uuid::Uuid> = HashSet::new();
        for round in 0..rounds {
            let mut tasks = Vec::new();
            for s in 0..streams {
                for (w, log) in logs.iter().enumerate() {
                    let log = log.clone();
                    let e = event(&stream(s), (round as usize) * writers + w);
                    let expected = if round == 0 {
                        ExpectedVersion::NoStream
                    } else {
                        ExpectedVersion::Exact(round)
                    };
                    tasks.push(tokio::spawn(async move {
                        let id = e.event_id;
                        let batch = AppendBatch::new(vec![e]).expect(stream(s), expected);
                        (s, id, log.append(batch).await)
                    }));
                }
            }
            let mut won: HashMap<usize, usize> = HashMap::new();
            for t in tasks {
                let (s, id, outcome) = t.await.unwrap();
                match outcome {
                    Ok(_) => {
                        *won.entry(s).or_default() += 1;
                        winners.insert(id);
                    }
                    Err(LogError::WrongExpectedVersion { actual, .. }) => {
                        assert_eq!(actual, round + 1, "a loser is told the winner's version")
                    }
                    Err(e) => panic!("a racer failed otherwise: {e}"),
                }
            }
            assert_eq!(won.len(), streams, "every race has a winner");
            assert!(
                won.values().all(|&n| n == 1),
                "one winner per race: {won:?}"
            );
        }
        let mut on_topic = Vec::new();
        for p in logs[0].partitions().await.unwrap() {
            on_topic.extend(
                logs[0]
                    .read_partition(p.partition, 0, usize::MAX)
                    .await
                    .unwrap()
                    .into_iter()
                    .filter_map(|r| r.event_id),
            );
        }
        let unique: HashSet<uuid::Uuid> = on_topic.iter().copied().collect();
        assert_eq!(
            unique.len(),
            on_topic.len(),
            "no event id is on the topic twice"
        );
        assert_eq!(unique, winners, "the topic holds exactly the winners");
        for s in 0..streams {
            let versions = logs[1].read_stream(&stream(s)).await.unwrap().len();
            assert_eq!(
                versions as u64, rounds,
                "each stream has one event per round"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_writers_racing_for_each_version_one_wins_and_the_other_is_told_the_actual_version()
    {
        race(2, 6, 5).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn three_writers_racing_for_each_version_one_wins_and_the_others_are_told_the_actual_version(
    ) {
        race(3, 6, 5).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_id_sent_through_two_writers_at_once_is_stored_once_on_the_streams_of_the_first() {
        let topic = format!("same-id-{}", uuid::Uuid::new_v4().simple());
        let (a, b) = (open(&topic).await, open(&topic).await);
        for i in 0..20 {
            let e = event(&stream(i), i);
            let (ra, rb) = tokio::join!(
                a.append(AppendBatch::new(vec![e.clone()])),
                b.append(AppendBatch::new(vec![e.clone()]))
            );
            let (ra, rb) = (ra.unwrap()[0], rb.unwrap()[0]);
            assert_eq!(
                ra.position(),
                rb.position(),
                "both name the one stored copy"
            );
            let stored = [ra, rb]
                .iter()
                .filter(|o| matches!(o, assist_log::Appended::Stored(_)))
                .count();
            assert_eq!(
                stored, 1,
                "one stores it, the other is told it is a duplicate"
            );
            assert_eq!(a.read_stream(&stream(i)).await.unwrap().len(), 1);
        }
    }

    /// A fact any Kafka client wrote straight to the topic (the event id in its header,
    /// keyed and partitioned by its stream as the log does) becomes part of the shared
    /// log: the relay indexes it, its stream's history and version count it, and the same
    /// id sent through a writer is its duplicate.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fact_a_foreign_producer_wrote_counts_in_its_streams_history_version_and_ids() {
        use assist_log::{partition_for, Appended, IdIndex};

        let topic = format!("foreign-shared-{}", uuid::Uuid::new_v4().simple());
        let log = open(&topic).await;
        let s = stream(1);
        let mine = event(&s, 1);
        log.append(AppendBatch::new(vec![mine.clone()]))
            .await
            .unwrap();
        let theirs = event(&s, 2);
        // Their fact, a copy of ours, and a message with no event id (not a fact).
        let p = partition_for(&s, 8) as i32;
        let at = produce_foreign(&topic, &s, p, Some(theirs.event_id), &theirs.payload).await;
        produce_foreign(&topic, &s, p, Some(mine.event_id), &mine.payload).await;
        produce_foreign(&topic, &s, p, None, b"{}").await;

        // The relay indexes it within a few of its rounds (every 2 s), without a read.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let found = loop {
            let found = log.find_ids(&[theirs.event_id]).await.unwrap();
            if !found.is_empty() || std::time::Instant::now() > deadline {
                break found;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(
            found.get(&theirs.event_id).map(|p| p.offset),
            Some(at as u64),
            "the relay indexed the foreign fact at its offset"
        );
        let history = log.read_stream(&s).await.unwrap();
        let payloads: Vec<&[u8]> = history.iter().map(|r| r.payload.as_slice()).collect();
        assert_eq!(
            payloads,
            [mine.payload.as_slice(), theirs.payload.as_slice()],
            "ours, then theirs; the copy and the message without an id are not in it"
        );
        // The stream is at version 2: an append expecting 1 is told so, one expecting 2 holds.
        match log
            .append(
                AppendBatch::new(vec![event(&s, 3)]).expect(s.clone(), ExpectedVersion::Exact(1)),
            )
            .await
        {
            Err(LogError::WrongExpectedVersion { actual, .. }) => assert_eq!(actual, 2),
            other => panic!("expected a conflict, got {other:?}"),
        }
        let next = log
            .append(
                AppendBatch::new(vec![event(&s, 3)]).expect(s.clone(), ExpectedVersion::Exact(2)),
            )
            .await
            .unwrap();
        assert!(matches!(next[0], Appended::Stored(_)));
        // Their id sent through a writer is a duplicate at their position.
        let again = log
            .append(AppendBatch::new(vec![theirs.clone()]))
            .await
            .unwrap();
        assert_eq!(again[0], Appended::Duplicate(found[&theirs.event_id]));
        assert_eq!(log.read_stream(&s).await.unwrap().len(), 3);
    }

    /// A stream's history counts what a foreign producer wrote a moment ago, before any
    /// relay round: the read indexes the stream's partition first.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_streams_history_holds_a_foreign_fact_written_a_moment_before_the_read() {
        use assist_log::partition_for;

        let topic = format!("foreign-read-{}", uuid::Uuid::new_v4().simple());
        let url = super::common::postgres("assist_test_shared_log_tansu").await;
        // A relay that does not come round during the test.
        let settings = SharedSettings {
            relay_every: Duration::from_secs(3600),
            ..SharedSettings::default()
        };
        let log = SharedKafkaLog::open(config(&topic), &url, settings)
            .await
            .unwrap();
        let s = stream(2);
        let theirs = event(&s, 1);
        produce_foreign(
            &topic,
            &s,
            partition_for(&s, 8) as i32,
            Some(theirs.event_id),
            &theirs.payload,
        )
        .await;
        let history = log.read_stream(&s).await.unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].event_id, Some(theirs.event_id));
    }

    /// A foreign fact put in another partition than its stream's (a client's own
    /// partitioner) is still read with its stream once the relay has indexed it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_foreign_fact_outside_its_streams_partition_is_still_in_its_history() {
        use assist_log::{partition_for, IdIndex};

        let topic = format!("foreign-elsewhere-{}", uuid::Uuid::new_v4().simple());
        let log = open(&topic).await;
        let s = stream(3);
        let mine = event(&s, 1);
        log.append(AppendBatch::new(vec![mine.clone()]))
            .await
            .unwrap();
        let theirs = event(&s, 2);
        let elsewhere = (partition_for(&s, 8) + 1) % 8;
        produce_foreign(
            &topic,
            &s,
            elsewhere as i32,
            Some(theirs.event_id),
            &theirs.payload,
        )
        .await;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while log.find_ids(&[theirs.event_id]).await.unwrap().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the relay did not index the foreign fact"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let history = log.read_stream(&s).await.unwrap();
        let ids: Vec<Option<uuid::Uuid>> = history.iter().map(|r| r.event_id).collect();
        assert_eq!(ids, [Some(mine.event_id), Some(theirs.event_id)]);
        assert_eq!(history[1].position.partition, elsewhere);
    }
}

mod broker_kill {
    use super::*;
    use assist_log::conformance::event;
    use assist_log::{AppendBatch, Appender, LogEvent, PartitionReader};
    use std::collections::HashSet;
    use std::process::{Child, Command, Stdio};

    fn tansu_binary() -> String {
        std::env::var("ASSIST_TANSU").unwrap_or_else(|_| "tansu".into())
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// A tansu broker whose acknowledged messages survive its own kill -9 (sqlite storage
    /// in `dir`; tansu reads the sqlite URL's path relative to its working directory).
    fn start(port: u16, dir: &std::path::Path) -> Child {
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(tansu_binary())
            .current_dir(dir)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "sqlite://broker.db"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the test command installs tansu");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        child
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_broker_killed_mid_run_loses_no_acknowledged_fact_and_retries_double_none() {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let db = dir.path().to_path_buf();
        let mut broker = start(port, &db);
        let cfg = KafkaConfig {
            brokers: format!("127.0.0.1:{port}"),
            topic: "kill".into(),
            partitions: 8,
            replication: 1,
            timeout: Duration::from_secs(10),
            max_batch_messages: Some(1),
        };
        let index = dir.path().join("index.db");
        let batches: Vec<Vec<LogEvent>> = (0..24)
            .map(|b| {
                (0..10)
                    .map(|i| {
                        event(
                            &format!("person-00000000-0000-4000-8000-{:012}", (b * 10 + i) % 13),
                            b * 10 + i,
                        )
                    })
                    .collect()
            })
            .collect();
        let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let producer = {
            let (cfg, index, batches, acked) =
                (cfg.clone(), index.clone(), batches.clone(), acked.clone());
            tokio::spawn(async move {
                let mut log = KafkaLog::open(cfg.clone(), &index).await.unwrap();
                let mut retries = 0;
                for batch in batches {
                    // A caseworker service: retry the same batch until it is acknowledged,
                    // with a new producer session after a failure.
                    loop {
                        match log.append(AppendBatch::new(batch.clone())).await {
                            Ok(_) => {
                                acked
                                    .lock()
                                    .unwrap()
                                    .extend(batch.iter().map(|e| e.event_id));
                                break;
                            }
                            Err(_) => {
                                retries += 1;
                                tokio::time::sleep(Duration::from_millis(300)).await;
                                log.close().await;
                                log = loop {
                                    match KafkaLog::open(cfg.clone(), &index).await {
                                        Ok(l) => break l,
                                        Err(_) => {
                                            tokio::time::sleep(Duration::from_millis(300)).await
                                        }
                                    }
                                };
                            }
                        }
                    }
                }
                (log, retries)
            })
        };
        let waiting = std::time::Instant::now();
        while acked.lock().unwrap().len() < 80 {
            assert!(
                waiting.elapsed() < Duration::from_secs(120),
                "the broker never acknowledged 80 facts"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        broker.kill().unwrap(); // SIGKILL
        broker.wait().unwrap();
        // The kill landed while the producer was still sending: facts were acknowledged
        // before it, and from shortly after it none is, for as long as the broker is down.
        let at_kill = acked.lock().unwrap().len();
        assert!(
            at_kill < 240,
            "the producer had {at_kill} of 240 facts acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stalled = acked.lock().unwrap().len();
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(
            acked.lock().unwrap().len(),
            stalled,
            "nothing is acknowledged while the broker is down"
        );
        assert!(stalled < 240 && !producer.is_finished());
        let mut broker = start(port, &db);
        let (log, retries) = producer.await.unwrap();
        let mut stored = Vec::new();
        for p in log.partitions().await.unwrap() {
            stored.extend(
                log.read_partition(p.partition, 0, usize::MAX)
                    .await
                    .unwrap()
                    .into_iter()
                    .filter_map(|r| r.event_id),
            );
        }
        broker.kill().unwrap();
        broker.wait().unwrap();
        let unique: HashSet<_> = stored.iter().copied().collect();
        assert_eq!(
            unique.len(),
            stored.len(),
            "a fact is in the log twice ({retries} retries)"
        );
        let acked = acked.lock().unwrap().clone();
        assert_eq!(acked.len(), 240);
        for id in &acked {
            assert!(unique.contains(id), "an acknowledged fact was lost");
        }
        assert_eq!(stored.len(), 240);
    }
}

mod end_to_end {
    use super::*;
    use assist_ingest::{IngestOptions, Recorder};
    use assist_projections::sla::Rules;
    use assist_projections::{Runner, Store};
    use sqlx::Connection;

    async fn postgres(name: &str) -> Store {
        let admin = std::env::var("ASSIST_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("the test command starts PostgreSQL");
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
        Store::open(&format!("{base}/{name}")).await.unwrap()
    }

    /// The views with the hash-bearing columns masked: personal fields are sealed with a
    /// fresh nonce at each ingest, so the two logs hold different ciphertext for the same
    /// facts, and every hash over those bytes differs. All else must be equal.
    fn masked(dump: &str) -> String {
        dump.lines()
            .filter(|l| !l.starts_with("part=") || !l.contains("digest="))
            .map(|l| {
                l.split(" | ")
                    .map(|cell| {
                        if cell.starts_with("hash=") || cell.starts_with("prev_hash=") {
                            "hash=…"
                        } else {
                            cell
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" | ")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_workload_through_kafka_into_postgres_gives_the_views_of_the_embedded_backend() {
        let dir = tempfile::tempdir().unwrap();
        let jsonl = assist_simulate::to_jsonl(&assist_simulate::simulate(80, 60, 41));
        let rules = Rules::shipped().unwrap();

        let embedded = Recorder::open_embedded(&dir.path().join("embedded"))
            .await
            .unwrap();
        embedded
            .ingest(jsonl.as_slice(), IngestOptions::default())
            .await
            .unwrap();
        let a = postgres("assist_e2e_embedded").await;
        Runner {
            log: embedded.log().as_ref(),
            store: &a,
            rules: &rules,
            batch: 200,
            memory: Default::default(),
        }
        .catch_up(1, |_| {})
        .await
        .unwrap();

        let topic = format!("e2e-{}", uuid::Uuid::new_v4().simple());
        let log = KafkaLog::open(config(&topic), &dir.path().join("kafka-index.db"))
            .await
            .unwrap();
        let kafka =
            Recorder::open_with_log(&dir.path().join("kafka"), std::sync::Arc::new(log), None)
                .await
                .unwrap();
        let report = kafka
            .ingest(jsonl.as_slice(), IngestOptions::default())
            .await
            .unwrap();
        assert!(report.rejected.is_empty());
        let b = postgres("assist_e2e_kafka").await;
        Runner {
            log: kafka.log().as_ref(),
            store: &b,
            rules: &rules,
            batch: 200,
            memory: Default::default(),
        }
        .catch_up(1, |_| {})
        .await
        .unwrap();

        let (da, db) = (a.dump(1).await.unwrap(), b.dump(1).await.unwrap());
        assert!(da.lines().count() > 500);
        let (ma, mb) = (masked(&da), masked(&db));
        let first = ma.lines().zip(mb.lines()).find(|(x, y)| x != y);
        assert!(ma == mb, "first difference: {first:?}");
    }
}

mod stream_reads {
    use super::*;
    use assist_log::conformance::event;
    use assist_log::{AppendBatch, Appender, StreamReader};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stream_whose_events_lie_far_apart_in_its_partition_is_read_whole_and_alone() {
        let dir = tempfile::tempdir().unwrap();
        let topic = format!("apart-{}", uuid::Uuid::new_v4().simple());
        // One partition: every stream's records interleave in it.
        let cfg = KafkaConfig {
            partitions: 1,
            ..config(&topic)
        };
        let log = KafkaLog::open(cfg, &dir.path().join("index.db"))
            .await
            .unwrap();
        let mine = "person-00000000-0000-4000-8000-000000000001";
        let other = "person-00000000-0000-4000-8000-000000000002";
        // Mine at 0, forty others, mine at 41, three others, mine at 45.
        let mut n = 0;
        let mut batch = |stream: &str, count: usize| {
            let events: Vec<_> = (0..count)
                .map(|_| {
                    n += 1;
                    event(stream, n)
                })
                .collect();
            AppendBatch::new(events)
        };
        for (stream, count) in [(mine, 1), (other, 40), (mine, 1), (other, 3), (mine, 1)] {
            log.append(batch(stream, count)).await.unwrap();
        }
        let read = log.read_stream(mine).await.unwrap();
        let offsets: Vec<u64> = read.iter().map(|r| r.position.offset).collect();
        assert_eq!(offsets, [0, 41, 45]);
        assert!(read.iter().all(|r| r.stream == mine));
    }
}

mod foreign_producers {
    use super::*;
    use assist_projections::runner::dead_letters;
    use assist_projections::sla::Rules;
    use assist_projections::{Runner, Store};
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{FutureProducer, FutureRecord};

    const NATIONAL_ID: &str = "35012119900307002X";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_registration_in_clear_from_a_bare_producer_is_dead_lettered_without_its_personal_values(
    ) {
        let dir = tempfile::tempdir().unwrap();
        let topic = format!("foreign-{}", uuid::Uuid::new_v4().simple());
        let log = KafkaLog::open(config(&topic), &dir.path().join("kafka-index.db"))
            .await
            .unwrap();
        // Any Kafka client can write to the topic: a registration with its personal
        // fields in clear, as a caseworker service would send it to `ingest`.
        let example: serde_json::Value = serde_json::from_str(include_str!(
            "../../../events/examples/person_registered.v1.json"
        ))
        .unwrap();
        let payload = example.to_string();
        assert!(payload.contains(NATIONAL_ID));
        let stream = example["stream"].as_str().unwrap().to_string();
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers())
            .create()
            .unwrap();
        producer
            .send(
                FutureRecord::to(&topic).key(&stream).payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
        let store = Store::open(&format!("sqlite:{}", dir.path().join("views.db").display()))
            .await
            .unwrap();
        let rules = Rules::shipped().unwrap();
        Runner {
            log: &log,
            store: &store,
            rules: &rules,
            batch: 200,
            memory: Default::default(),
        }
        .catch_up(1, |_| {})
        .await
        .unwrap();
        let dead = dead_letters(&store, 1).await.unwrap();
        assert_eq!(dead.len(), 1, "the record in clear is a dead letter");
        assert!(dead[0].redacted && dead[0].bytes > 0, "{:?}", dead[0]);
        assert!(!dead[0].reason.contains(NATIONAL_ID), "{}", dead[0].reason);
        // Erasing the person clears even the redacted form.
        assert_eq!(store.clear_dead_letters_of(&stream).await.unwrap(), 1);
        assert_eq!(dead_letters(&store, 1).await.unwrap()[0].bytes, 0);
        store.close().await;
        // No file of the view store holds the national ID number or the name.
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if !path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("views.db")
            {
                continue;
            }
            let bytes = match std::fs::read(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                read => read.unwrap(),
            };
            for value in [NATIONAL_ID, "Lin Xiaomei"] {
                assert!(
                    !bytes.windows(value.len()).any(|w| w == value.as_bytes()),
                    "{value} in {}",
                    path.display()
                );
            }
        }
    }
}

mod notice_topic {
    use super::*;
    use assist_kafka::notices::{NoticeTopic, NOTICE_ID_HEADER};
    use assist_projections::notices::{Channel, Notice};
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};

    fn notice(n: u128, clock: &str) -> Notice {
        let t = chrono::DateTime::parse_from_rfc3339("2026-03-03T01:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        Notice {
            notice_id: uuid::Uuid::from_u128(n),
            kind: "reminder".into(),
            audience: "caseworker".into(),
            recipient: "cw-350121-007".into(),
            clock_id: clock.into(),
            subject: "person-x".into(),
            policy: "response-2473".into(),
            step: "contact".into(),
            region: "350121".into(),
            caseworker: "cw-350121-007".into(),
            deadline: t,
            moment: t,
            created_at: t,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn notices_go_to_their_topic_keyed_by_clock_with_their_id_in_a_header() {
        let topic = format!("notices-{}", uuid::Uuid::new_v4().simple());
        let channel = NoticeTopic::open(config(&topic))
            .await
            .expect("the test command starts tansu");
        channel.send(&notice(1, "p/contact/a")).await.unwrap();
        channel.send(&notice(2, "p/visit/a")).await.unwrap();
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers())
            .set("group.id", format!("t-{}", uuid::Uuid::new_v4()))
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        consumer.subscribe(&[&topic]).unwrap();
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while got.len() < 2 && std::time::Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                let id = m
                    .headers()
                    .and_then(|h| h.iter().find(|h| h.key == NOTICE_ID_HEADER))
                    .and_then(|h| h.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned());
                let body: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
                got.push((
                    String::from_utf8_lossy(m.key().unwrap()).into_owned(),
                    id,
                    body["notice_id"].as_str().unwrap().to_string(),
                ));
            }
        }
        got.sort();
        let id = |n: u128| uuid::Uuid::from_u128(n).to_string();
        assert_eq!(
            got,
            [
                ("p/contact/a".to_string(), Some(id(1)), id(1)),
                ("p/visit/a".to_string(), Some(id(2)), id(2)),
            ]
        );
    }
}
