//! The Kafka backend against librdkafka's own mock cluster: the conformance suite every
//! backend passes, and fault injection (request errors, a broker down during a batch, a
//! leader change) after which every event is in the log exactly once.

use assist_kafka::{KafkaConfig, KafkaLog};
use assist_log::conformance::{event, Harness};
use assist_log::{AppendBatch, Appended, Appender, LogEvent, PartitionReader};
use async_trait::async_trait;
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use std::collections::HashSet;
use std::time::Duration;
use tempfile::TempDir;

fn config(servers: String, topic: &str) -> KafkaConfig {
    KafkaConfig {
        brokers: servers,
        topic: topic.into(),
        partitions: 8,
        replication: 1,
        timeout: Duration::from_secs(10),
        max_batch_messages: None,
    }
}

/// A fresh mock cluster per log. The cluster is not `Send`, so it is leaked for the life
/// of the test process and only its address travels.
fn mock_cluster(
    brokers: i32,
    topic: &str,
) -> (
    &'static MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    String,
) {
    let cluster = Box::leak(Box::new(MockCluster::new(brokers).unwrap()));
    cluster.create_topic(topic, 8, brokers.min(3)).unwrap();
    let servers = cluster.bootstrap_servers();
    (cluster, servers)
}

struct Mock {
    dir: TempDir,
}

#[async_trait]
impl Harness for Mock {
    type Log = KafkaLog;

    async fn fresh(&self) -> KafkaLog {
        let servers = {
            let (_, s) = mock_cluster(1, "events");
            s
        };
        KafkaLog::open(config(servers, "events"), &self.dir.path().join("index.db"))
            .await
            .unwrap()
    }

    async fn reopen(&self, log: KafkaLog) -> KafkaLog {
        let cfg = log.config().clone();
        log.close().await;
        KafkaLog::open(cfg, &self.dir.path().join("index.db"))
            .await
            .unwrap()
    }
}

assist_log::conformance_tests!(Mock {
    dir: tempfile::tempdir().unwrap()
});

fn stream(i: usize) -> String {
    format!("person-00000000-0000-4000-8000-{i:012}")
}

async fn all_ids(log: &impl PartitionReader) -> Vec<uuid::Uuid> {
    let mut ids = Vec::new();
    for p in log.partitions().await.unwrap() {
        ids.extend(
            log.read_partition(p.partition, 0, usize::MAX)
                .await
                .unwrap()
                .into_iter()
                .filter_map(|r| r.event_id),
        );
    }
    ids
}

fn assert_exactly_once(sent: &[LogEvent], stored: &[uuid::Uuid]) {
    let unique: HashSet<_> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "an event is in the log twice");
    for e in sent {
        assert!(unique.contains(&e.event_id), "an event is missing");
    }
    assert_eq!(stored.len(), sent.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_request_errors_are_retried_into_exactly_one_copy() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, servers) = mock_cluster(3, "faults");
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        ],
    );
    let log = KafkaLog::open(config(servers, "faults"), &dir.path().join("index.db"))
        .await
        .unwrap();
    let events: Vec<LogEvent> = (0..300).map(|i| event(&stream(i % 17), i)).collect();
    let out = log.append(AppendBatch::new(events.clone())).await.unwrap();
    assert!(out.iter().all(|o| matches!(o, Appended::Stored(_))));
    assert_exactly_once(&events, &all_ids(&log).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_going_down_while_a_producer_sends_delays_the_rest_and_loses_nothing() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let (cluster, servers) = mock_cluster(1, "down");
    let log = KafkaLog::open(config(servers, "down"), &dir.path().join("index.db"))
        .await
        .unwrap();
    const BATCHES: usize = 40;
    let events: Vec<LogEvent> = (0..BATCHES * 50)
        .map(|i| event(&stream(i % 11), i))
        .collect();
    let log = std::sync::Arc::new(log);
    let done = std::sync::Arc::new(AtomicUsize::new(0));
    let appending = {
        let (log, events, done) = (log.clone(), events.clone(), done.clone());
        tokio::spawn(async move {
            for batch in events.chunks(50) {
                log.append(AppendBatch::new(batch.to_vec())).await?;
                done.fetch_add(1, Ordering::SeqCst);
            }
            Ok::<_, assist_log::LogError>(())
        })
    };
    while done.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    cluster.broker_down(1).unwrap();
    // The fault landed while the producer was still sending: batches were acknowledged
    // before it, and from shortly after it none is, for as long as the broker is down.
    let at_kill = done.load(Ordering::SeqCst);
    assert!(
        at_kill < BATCHES,
        "the producer had {at_kill} of {BATCHES} batches acknowledged"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stalled = done.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        done.load(Ordering::SeqCst),
        stalled,
        "nothing is acknowledged while the broker is down"
    );
    assert!(stalled < BATCHES && !appending.is_finished());
    cluster.broker_up(1).unwrap();
    appending.await.unwrap().unwrap();
    assert_eq!(done.load(Ordering::SeqCst), BATCHES);
    assert_exactly_once(&events, &all_ids(&log).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_change_mid_stream_keeps_order_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, servers) = mock_cluster(3, "leaders");
    let log = KafkaLog::open(config(servers, "leaders"), &dir.path().join("index.db"))
        .await
        .unwrap();
    let s = stream(1);
    let mut sent = Vec::new();
    for b in 0..4 {
        let events: Vec<LogEvent> = (0..50).map(|i| event(&s, b * 50 + i)).collect();
        sent.extend(events.clone());
        log.append(AppendBatch::new(events)).await.unwrap();
        let p = assist_log::partition_for(&s, 8) as i32;
        cluster
            .partition_leader("leaders", p, Some(1 + (b as i32 % 3)))
            .unwrap();
    }
    let got: Vec<Vec<u8>> = assist_log::StreamReader::read_stream(&log, &s)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.payload)
        .collect();
    let want: Vec<Vec<u8>> = sent.iter().map(|e| e.payload.clone()).collect();
    assert_eq!(got, want, "one stream's order holds");
    assert_exactly_once(&sent, &all_ids(&log).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_index_read_a_few_records_at_a_time_finds_every_id_of_the_topic() {
    // The index catches up a page of records at a time (what it holds in memory): with
    // pages of 4, 120 records over the partitions take many pages, and every id is found.
    resent_after_losing_the_index("paged", Some(4)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_resent_after_a_restart_that_lost_the_index_is_not_stored_again() {
    // The worst case of a producer restart: the batch was delivered, then the process died
    // before it recorded anything. The next producer session has a new producer id, so
    // Kafka's idempotence cannot help; the id index, rebuilt from the topic, does.
    resent_after_losing_the_index("restart", None).await;
}

/// Appends 120 events, deletes the id index, and appends them again through a log with
/// a fresh index (catching up `page` records at a time when given): every one is a
/// duplicate at its first position, and the topic holds each once.
async fn resent_after_losing_the_index(topic: &str, page: Option<usize>) {
    let dir = tempfile::tempdir().unwrap();
    let (_cluster, servers) = mock_cluster(1, topic);
    let cfg = config(servers, topic);
    let events: Vec<LogEvent> = (0..120).map(|i| event(&stream(i % 7), i)).collect();
    let log = KafkaLog::open(cfg.clone(), &dir.path().join("index.db"))
        .await
        .unwrap();
    let first = log.append(AppendBatch::new(events.clone())).await.unwrap();
    log.close().await;
    for f in ["index.db", "index.db-wal", "index.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(f));
    }
    let log = KafkaLog::open(cfg, &dir.path().join("index.db"))
        .await
        .unwrap();
    let log = match page {
        Some(n) => log.with_index_page(n),
        None => log,
    };
    let again = log.append(AppendBatch::new(events.clone())).await.unwrap();
    let expected: Vec<Appended> = first
        .iter()
        .map(|o| Appended::Duplicate(o.position()))
        .collect();
    assert_eq!(again, expected);
    assert_exactly_once(&events, &all_ids(&log).await);
}

mod common;

/// The shared log (PostgreSQL as the arbiter) on the mock cluster: the conformance suite,
/// and a writer that commits facts but cannot publish them.
mod shared {
    use super::*;
    use assist_kafka::{SharedKafkaLog, SharedSettings};
    use assist_log::{ExpectedVersion, IdIndex, LogError, StreamReader};
    use std::sync::Arc;

    async fn open(servers: String, topic: &str, settings: SharedSettings) -> Arc<SharedKafkaLog> {
        let url = super::common::postgres("assist_test_shared_log_mock").await;
        SharedKafkaLog::open(config(servers, topic), &url, settings)
            .await
            .expect("the test command starts PostgreSQL")
    }

    struct SharedOnMock;

    #[async_trait]
    impl Harness for SharedOnMock {
        type Log = Arc<SharedKafkaLog>;

        async fn fresh(&self) -> Arc<SharedKafkaLog> {
            // A fresh cluster holds a topic of the same name as the last: the table rows
            // are told apart by a topic name of their own.
            let topic = format!("events-{}", uuid::Uuid::new_v4().simple());
            let (_, servers) = mock_cluster(1, &topic);
            open(servers, &topic, SharedSettings::default()).await
        }

        async fn reopen(&self, log: Arc<SharedKafkaLog>) -> Arc<SharedKafkaLog> {
            let cfg = log.config().clone();
            drop(log);
            open(cfg.brokers, &cfg.topic, SharedSettings::default()).await
        }
    }

    assist_log::conformance_tests!(SharedOnMock);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_slower_to_publish_than_the_relays_wait_still_has_its_facts_published_once() {
        let topic = format!("slow-{}", uuid::Uuid::new_v4().simple());
        let (cluster, servers) = mock_cluster(1, &topic);
        let eager = SharedSettings {
            publish_after: Duration::from_millis(300),
            relay_every: Duration::from_millis(50),
            ..SharedSettings::default()
        };
        let log = open(servers, &topic, eager).await;
        // Every request to the broker now takes a second: the produce outlasts the relay's
        // wait several times over, while the relay looks every 50 ms.
        cluster
            .broker_round_trip_time(1, Duration::from_secs(1))
            .unwrap();
        let events: Vec<LogEvent> = (0..50).map(|i| event(&stream(i % 7), i)).collect();
        let started = std::time::Instant::now();
        let out = log.append(AppendBatch::new(events.clone())).await.unwrap();
        assert!(
            started.elapsed() > eager.publish_after,
            "the append was not slower than the relay's wait"
        );
        assert!(out.iter().all(|o| matches!(o, Appended::Stored(_))));
        cluster.broker_round_trip_time(1, Duration::ZERO).unwrap();
        assert_exactly_once(&events, &all_ids(&log).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn facts_a_writer_committed_but_could_not_publish_are_relayed_and_a_retry_gets_them_as_duplicates(
    ) {
        let topic = format!("stranded-{}", uuid::Uuid::new_v4().simple());
        let (cluster, servers) = mock_cluster(1, &topic);
        let quick = SharedSettings {
            publish_after: Duration::from_millis(500),
            relay_every: Duration::from_millis(200),
            ..SharedSettings::default()
        };
        let log = open(servers, &topic, quick).await;
        let s = stream(1);
        let events: Vec<LogEvent> = (0..5).map(|i| event(&s, i)).collect();
        let ids: Vec<uuid::Uuid> = events.iter().map(|e| e.event_id).collect();
        cluster.request_errors(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED],
        );
        let failed = log.append(AppendBatch::new(events.clone())).await;
        assert!(
            matches!(failed, Err(LogError::Backend(_))),
            "the broker refused the batch: {failed:?}"
        );
        // The facts are decided: the stream's version counts them before the topic does.
        let conflict = log
            .append(
                AppendBatch::new(vec![event(&s, 9)]).expect(s.clone(), ExpectedVersion::NoStream),
            )
            .await;
        assert!(
            matches!(
                conflict,
                Err(LogError::WrongExpectedVersion { actual: 5, .. })
            ),
            "{conflict:?}"
        );
        // The relay publishes them once they are older than `publish_after`.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while log.find_ids(&ids).await.unwrap().len() < ids.len() {
            assert!(
                std::time::Instant::now() < deadline,
                "the relay never published them"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let published = log.find_ids(&ids).await.unwrap();
        let retry = log.append(AppendBatch::new(events.clone())).await.unwrap();
        for (e, o) in events.iter().zip(&retry) {
            assert_eq!(*o, Appended::Duplicate(published[&e.event_id]));
        }
        let stored: Vec<uuid::Uuid> = log
            .read_stream(&s)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|r| r.event_id)
            .collect();
        assert_eq!(stored, ids, "the stream holds the batch once, in order");
        let all = all_ids(&log).await;
        assert_exactly_once(&events, &all);
    }
}
