//! Two projection workers in one consumer group, on librdkafka's mock cluster: a second
//! worker joins mid-stream and the first leaves, forcing rebalances; the views end equal to
//! a projection of the same events from the embedded log.

use assist_ingest::{IngestOptions, Recorder};
use assist_kafka::group::{GroupMember, Worker};
use assist_kafka::{KafkaConfig, KafkaLog};
use assist_projections::sla::Rules;
use assist_projections::{Runner, Store};
use rdkafka::mocking::MockCluster;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Which partitions each worker (named by a letter) owned, in the order seen.
type Ownership = Vec<(char, BTreeSet<u32>)>;

fn jsonl_chunks() -> Vec<Vec<u8>> {
    let events = assist_simulate::simulate(120, 60, 31);
    let third = events.len() / 3;
    events
        .chunks(third + 1)
        .map(assist_simulate::to_jsonl)
        .collect()
}

async fn caught_up(log: &KafkaLog, store: &Store) -> bool {
    use assist_log::PartitionReader;
    for p in log.partitions().await.unwrap() {
        let (next, _) = assist_projections::runner::checkpoint(store, 1, p.partition)
            .await
            .unwrap();
        if next < p.high_water {
            return false;
        }
    }
    true
}

async fn wait_caught_up(log: &KafkaLog, store: &Store) {
    for _ in 0..600 {
        if caught_up(log, store).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the workers never caught up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_mid_stream_neither_loses_nor_doubles_an_effect() {
    let dir = tempfile::tempdir().unwrap();
    let servers = {
        let cluster = Box::leak(Box::new(MockCluster::new(1).unwrap()));
        cluster.create_topic("events", 8, 1).unwrap();
        cluster.bootstrap_servers()
    };
    let config = KafkaConfig {
        brokers: servers,
        topic: "events".into(),
        partitions: 8,
        replication: 1,
        timeout: Duration::from_secs(10),
        max_batch_messages: None,
    };
    let chunks = jsonl_chunks();

    let producer_log = Arc::new(
        KafkaLog::open(config.clone(), &dir.path().join("producer-index.db"))
            .await
            .unwrap(),
    );
    let recorder =
        Recorder::open_with_log(&dir.path().join("producer"), producer_log.clone(), None)
            .await
            .unwrap();
    let views = format!("sqlite:{}", dir.path().join("views.db").display());
    let owned: Arc<Mutex<Ownership>> = Arc::new(Mutex::new(Vec::new()));

    let start_worker = |name: char, stop: Arc<AtomicBool>| {
        let (config, views, owned, dir) = (
            config.clone(),
            views.clone(),
            owned.clone(),
            dir.path().to_path_buf(),
        );
        tokio::spawn(async move {
            let log = KafkaLog::open(config.clone(), &dir.join(format!("worker-{name}.db")))
                .await
                .unwrap();
            let store = Store::open(&views).await.unwrap();
            let rules = Rules::shipped().unwrap();
            let member = GroupMember::join(&config, "projection-workers").unwrap();
            let worker = Worker {
                log: &log,
                store: &store,
                rules: &rules,
                member: &member,
                batch: 25,
                interval: Duration::from_millis(100),
            };
            worker
                .run(&stop, |parts| {
                    let set: BTreeSet<u32> = parts.iter().copied().collect();
                    let mut o = owned.lock().unwrap();
                    if o.iter().rev().find(|(n, _)| *n == name).map(|(_, s)| s) != Some(&set) {
                        o.push((name, set));
                    }
                })
                .await
                .unwrap()
        })
    };

    recorder
        .ingest(chunks[0].as_slice(), IngestOptions::default())
        .await
        .unwrap();
    let stop_a = Arc::new(AtomicBool::new(false));
    let a = start_worker('a', stop_a.clone());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    recorder
        .ingest(chunks[1].as_slice(), IngestOptions::default())
        .await
        .unwrap();
    let stop_b = Arc::new(AtomicBool::new(false));
    let b = start_worker('b', stop_b.clone());
    let store = Store::open(&views).await.unwrap();
    wait_caught_up(&producer_log, &store).await;
    stop_a.store(true, Ordering::SeqCst);
    a.await.unwrap();
    recorder
        .ingest(chunks[2].as_slice(), IngestOptions::default())
        .await
        .unwrap();
    wait_caught_up(&producer_log, &store).await;
    stop_b.store(true, Ordering::SeqCst);
    b.await.unwrap();

    // The reference: one clean projection of the very same records.
    let reference = Store::open(&format!(
        "sqlite:{}",
        dir.path().join("reference.db").display()
    ))
    .await
    .unwrap();
    let rules = Rules::shipped().unwrap();
    Runner {
        log: producer_log.as_ref(),
        store: &reference,
        rules: &rules,
        batch: 1000,
        memory: Default::default(),
    }
    .catch_up(1, |_| {})
    .await
    .unwrap();

    let history = owned.lock().unwrap().clone();
    let shared = history
        .iter()
        .any(|(n, s)| *n == 'b' && !s.is_empty() && s.len() < 8);
    let took_all = history.iter().any(|(n, s)| *n == 'b' && s.len() == 8);
    assert!(shared, "b shared the partitions with a: {history:?}");
    assert!(took_all, "b took every partition once a left: {history:?}");
    let (got, want) = (
        store.dump(1).await.unwrap(),
        reference.dump(1).await.unwrap(),
    );
    let first_difference = got.lines().zip(want.lines()).find(|(a, b)| a != b);
    assert!(
        got == want,
        "views differ from the reference; first difference: {first_difference:?}"
    );
}
