//! The conformance suite every [`EventLog`](crate::EventLog) backend must pass.
//!
//! A backend's tests implement [`Harness`] and call [`conformance_tests!`](crate::conformance_tests),
//! which expands to one test per property below. These functions are test code: they
//! panic on a broken property.

use crate::{
    partition_for, AppendBatch, Appended, Appender, EventLog, ExpectedVersion, IdIndex, LogError,
    LogEvent, PartitionReader, Position, StreamReader,
};
use async_trait::async_trait;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use uuid::Uuid;

/// Makes logs for the suite.
#[async_trait]
pub trait Harness: Send + Sync {
    /// The backend under test.
    type Log: EventLog + 'static;
    /// A fresh, empty log.
    async fn fresh(&self) -> Self::Log;
    /// Closes `log` and opens the same storage again, as after a process restart.
    async fn reopen(&self, log: Self::Log) -> Self::Log;
}

/// A test event on `stream` whose payload names it (`stream#n`).
pub fn event(stream: &str, n: usize) -> LogEvent {
    LogEvent {
        event_id: Uuid::now_v7(),
        stream: stream.to_string(),
        payload: format!("{{\"stream\":\"{stream}\",\"n\":{n}}}").into_bytes(),
    }
}

fn stream(i: usize) -> String {
    format!("person-00000000-0000-4000-8000-{i:012}")
}

async fn read_all<L: EventLog + ?Sized>(log: &L) -> Vec<crate::Record> {
    let mut all = Vec::new();
    for p in log.partitions().await.unwrap() {
        all.extend(
            log.read_partition(p.partition, 0, usize::MAX)
                .await
                .unwrap(),
        );
    }
    all
}

fn stored(outcomes: &[Appended]) -> usize {
    outcomes
        .iter()
        .filter(|o| matches!(o, Appended::Stored(_)))
        .count()
}

/// One stream's events come back in the order they were appended, across batches.
pub async fn appended_events_are_read_back_in_order_per_stream<H: Harness>(h: &H) {
    let log = h.fresh().await;
    let streams: Vec<String> = (0..3).map(stream).collect();
    let mut sent: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
    for b in 0..4 {
        let mut events = Vec::new();
        for n in 0..5 {
            for s in &streams {
                let e = event(s, b * 5 + n);
                sent.entry(s.clone()).or_default().push(e.payload.clone());
                events.push(e);
            }
        }
        log.append(AppendBatch::new(events)).await.unwrap();
    }
    for s in &streams {
        let got: Vec<Vec<u8>> = log
            .read_stream(s)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.payload)
            .collect();
        assert_eq!(&got, &sent[s], "stream {s}");
    }
}

/// Offsets start at 0 and have no gaps in every partition; high-water marks count the events.
pub async fn offsets_are_dense_per_partition<H: Harness>(h: &H) {
    let log = h.fresh().await;
    let events: Vec<LogEvent> = (0..200).map(|i| event(&stream(i % 37), i)).collect();
    log.append(AppendBatch::new(events)).await.unwrap();
    let mut total = 0;
    for p in log.partitions().await.unwrap() {
        let records = log
            .read_partition(p.partition, 0, usize::MAX)
            .await
            .unwrap();
        let offsets: Vec<u64> = records.iter().map(|r| r.position.offset).collect();
        assert_eq!(
            offsets,
            (0..p.high_water).collect::<Vec<_>>(),
            "partition {}",
            p.partition
        );
        total += p.high_water;
    }
    assert_eq!(total, 200);
}

/// Every event sits in the partition Kafka's murmur2 partitioner gives its stream.
pub async fn the_partition_is_the_murmur2_hash_of_the_stream<H: Harness>(h: &H) {
    let log = h.fresh().await;
    let events: Vec<LogEvent> = (0..64).map(|i| event(&stream(i), i)).collect();
    log.append(AppendBatch::new(events)).await.unwrap();
    let count = log.partition_count();
    let records = read_all(&log).await;
    assert_eq!(records.len(), 64);
    for r in records {
        assert_eq!(
            r.position.partition,
            partition_for(&r.stream, count),
            "{}",
            r.stream
        );
    }
}

/// An id stored in an earlier batch is reported as a duplicate at its original position.
pub async fn a_stored_event_id_is_a_duplicate_at_its_original_position<H: Harness>(h: &H) {
    let log = h.fresh().await;
    let (a, b, c) = (
        event(&stream(1), 0),
        event(&stream(1), 1),
        event(&stream(1), 2),
    );
    let first = log
        .append(AppendBatch::new(vec![a, b.clone()]))
        .await
        .unwrap();
    let second = log.append(AppendBatch::new(vec![b, c])).await.unwrap();
    assert_eq!(second[0], Appended::Duplicate(first[1].position()));
    assert!(matches!(second[1], Appended::Stored(_)));
    assert_eq!(log.read_stream(&stream(1)).await.unwrap().len(), 3);
}

/// The same id twice in one batch is stored once; the second is a duplicate of the first.
pub async fn a_repeated_id_within_one_batch_is_stored_once<H: Harness>(h: &H) {
    let log = h.fresh().await;
    let a = event(&stream(2), 0);
    let mut again = a.clone();
    again.payload = b"{\"different\":true}".to_vec();
    let b = event(&stream(2), 1);
    let out = log
        .append(AppendBatch::new(vec![a.clone(), again, b]))
        .await
        .unwrap();
    assert!(matches!(out[0], Appended::Stored(_)));
    assert_eq!(out[1], Appended::Duplicate(out[0].position()));
    let records = log.read_stream(&stream(2)).await.unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(
        records[0].payload, a.payload,
        "the first occurrence is the one kept"
    );
}

/// The id index finds stored ids at their positions and leaves unknown ids out.
pub async fn the_id_index_finds_stored_ids<H: Harness>(h: &H) {
    let log = h.fresh().await;
    let (a, b) = (event(&stream(11), 0), event(&stream(12), 0));
    let out = log.append(AppendBatch::new(vec![a.clone()])).await.unwrap();
    let found = log.find_ids(&[a.event_id, b.event_id]).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[&a.event_id], out[0].position());
}

/// Reading from an offset returns that offset onwards, at most `max` of them.
pub async fn reading_from_an_offset_starts_there<H: Harness>(h: &H) {
    let log = h.fresh().await;
    let s = stream(3);
    let events: Vec<LogEvent> = (0..50).map(|i| event(&s, i)).collect();
    log.append(AppendBatch::new(events)).await.unwrap();
    let p = partition_for(&s, log.partition_count());
    let page = log.read_partition(p, 20, 10).await.unwrap();
    let offsets: Vec<u64> = page.iter().map(|r| r.position.offset).collect();
    assert_eq!(offsets, (20..30).collect::<Vec<_>>());
    assert!(log.read_partition(p, 50, 10).await.unwrap().is_empty());
}

/// A fresh log lists every partition with a high-water mark of 0.
pub async fn a_fresh_log_has_empty_partitions<H: Harness>(h: &H) {
    let log = h.fresh().await;
    let parts = log.partitions().await.unwrap();
    assert_eq!(parts.len() as u32, log.partition_count());
    assert!(parts.iter().all(|p| p.high_water == 0));
    assert!(log.read_stream(&stream(9)).await.unwrap().is_empty());
}

/// A partition the log does not have is an error naming the count.
pub async fn an_unknown_partition_is_an_error<H: Harness>(h: &H) {
    let log = h.fresh().await;
    let count = log.partition_count();
    let err = log.read_partition(count, 0, 1).await.unwrap_err();
    assert!(
        matches!(err, LogError::NoSuchPartition { partition, .. } if partition == count),
        "{err}"
    );
}

/// Appenders racing with overlapping ids lose nothing and store nothing twice.
pub async fn concurrent_appenders_lose_and_double_nothing<H: Harness>(h: &H) {
    let log = Arc::new(h.fresh().await);
    let shared: Arc<Vec<LogEvent>> =
        Arc::new((0..100).map(|i| event(&stream(1000 + i % 10), i)).collect());
    let mut tasks = Vec::new();
    for t in 0..4usize {
        let log = log.clone();
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let mut stored_shared = 0;
            let mut own = Vec::new();
            for b in 0..25 {
                let mut events: Vec<LogEvent> = (0..20)
                    .map(|n| event(&stream(t * 100 + n % 5), b * 20 + n))
                    .collect();
                own.extend(events.iter().map(|e| e.event_id));
                let from = (b * 4) % 100;
                events.extend(shared[from..from + 4].iter().cloned());
                let out = log.append(AppendBatch::new(events)).await.unwrap();
                stored_shared += stored(&out[20..]);
            }
            (own, stored_shared)
        }));
    }
    let mut own_ids = Vec::new();
    let mut shared_stored = 0;
    for t in tasks {
        let (own, s) = t.await.unwrap();
        own_ids.extend(own);
        shared_stored += s;
    }
    assert_eq!(
        shared_stored, 100,
        "each shared id is reported stored exactly once"
    );
    let records = read_all(log.as_ref()).await;
    let ids: Vec<Uuid> = records.iter().filter_map(|r| r.event_id).collect();
    let unique: HashSet<Uuid> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "no id stored twice");
    assert_eq!(ids.len(), 4 * 25 * 20 + 100);
    assert!(own_ids.iter().all(|id| unique.contains(id)), "nothing lost");
}

/// A batch of 20,000 events is stored whole.
pub async fn a_large_batch_is_stored_whole<H: Harness>(h: &H) {
    let log = h.fresh().await;
    let events: Vec<LogEvent> = (0..20_000).map(|i| event(&stream(i % 1000), i)).collect();
    let out = log.append(AppendBatch::new(events)).await.unwrap();
    assert_eq!(stored(&out), 20_000);
    assert_eq!(log.record_count().await.unwrap(), 20_000);
}

/// After a restart the events are there, their ids are still known, and offsets continue.
pub async fn the_log_survives_a_restart<H: Harness>(h: &H) {
    let log = h.fresh().await;
    let s = stream(4);
    let batch: Vec<LogEvent> = (0..10).map(|i| event(&s, i)).collect();
    let first = log.append(AppendBatch::new(batch.clone())).await.unwrap();
    let log = h.reopen(log).await;
    assert_eq!(log.read_stream(&s).await.unwrap().len(), 10);
    let again = log.append(AppendBatch::new(batch)).await.unwrap();
    let expected: Vec<Appended> = first
        .iter()
        .map(|o| Appended::Duplicate(o.position()))
        .collect();
    assert_eq!(again, expected);
    let next = log
        .append(AppendBatch::new(vec![event(&s, 10)]))
        .await
        .unwrap();
    assert_eq!(
        next[0],
        Appended::Stored(Position {
            partition: first[9].position().partition,
            offset: first[9].position().offset + 1
        })
    );
}

/// A failed expectation stores nothing of the batch and reports the actual version.
pub async fn a_failed_expectation_stores_nothing_and_names_the_version<H: Harness>(h: &H) {
    let log = h.fresh().await;
    let (s, other) = (stream(5), stream(6));
    log.append(AppendBatch::new(vec![event(&s, 0), event(&s, 1)]))
        .await
        .unwrap();
    let batch = AppendBatch::new(vec![event(&s, 2), event(&other, 0)])
        .expect(s.clone(), ExpectedVersion::Exact(1));
    match log.append(batch).await {
        Err(LogError::WrongExpectedVersion {
            stream,
            expected,
            actual,
        }) => {
            assert_eq!(
                (stream, expected, actual),
                (s.clone(), ExpectedVersion::Exact(1), 2)
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(log.read_stream(&s).await.unwrap().len(), 2);
    assert!(
        log.read_stream(&other).await.unwrap().is_empty(),
        "nothing of the batch was stored"
    );
}

/// `NoStream` holds for a new stream and fails once it has events.
pub async fn no_stream_holds_only_for_a_new_stream<H: Harness>(h: &H) {
    let log = h.fresh().await;
    let s = stream(7);
    log.append(AppendBatch::new(vec![event(&s, 0)]).expect(s.clone(), ExpectedVersion::NoStream))
        .await
        .unwrap();
    let err = log
        .append(AppendBatch::new(vec![event(&s, 1)]).expect(s.clone(), ExpectedVersion::NoStream))
        .await
        .unwrap_err();
    assert!(
        matches!(err, LogError::WrongExpectedVersion { actual: 1, .. }),
        "{err}"
    );
}

/// `Exact(n)` holds when the stream has n events.
pub async fn an_exact_version_holds_at_the_current_version<H: Harness>(h: &H) {
    let log = h.fresh().await;
    let s = stream(8);
    log.append(AppendBatch::new(vec![event(&s, 0), event(&s, 1)]))
        .await
        .unwrap();
    let out = log
        .append(AppendBatch::new(vec![event(&s, 2)]).expect(s.clone(), ExpectedVersion::Exact(2)))
        .await
        .unwrap();
    assert!(matches!(out[0], Appended::Stored(_)));
}

/// Retrying a stored batch with its original expectation succeeds as duplicates.
pub async fn a_retried_batch_passes_its_expectation_as_duplicates<H: Harness>(h: &H) {
    let log = h.fresh().await;
    let s = stream(10);
    let batch = AppendBatch::new(vec![event(&s, 0), event(&s, 1)])
        .expect(s.clone(), ExpectedVersion::NoStream);
    let first = log.append(batch.clone()).await.unwrap();
    let retry = log.append(batch).await.unwrap();
    assert!(retry
        .iter()
        .zip(&first)
        .all(|(r, f)| *r == Appended::Duplicate(f.position())));
    assert_eq!(log.read_stream(&s).await.unwrap().len(), 2);
}

/// Expands to one `#[tokio::test]` per conformance property, for a harness expression.
#[macro_export]
macro_rules! conformance_tests {
    ($harness:expr) => {
        $crate::conformance_tests!(@each $harness;
            appended_events_are_read_back_in_order_per_stream,
            offsets_are_dense_per_partition,
            the_partition_is_the_murmur2_hash_of_the_stream,
            a_stored_event_id_is_a_duplicate_at_its_original_position,
            a_repeated_id_within_one_batch_is_stored_once,
            the_id_index_finds_stored_ids,
            reading_from_an_offset_starts_there,
            a_fresh_log_has_empty_partitions,
            an_unknown_partition_is_an_error,
            concurrent_appenders_lose_and_double_nothing,
            a_large_batch_is_stored_whole,
            the_log_survives_a_restart,
            a_failed_expectation_stores_nothing_and_names_the_version,
            no_stream_holds_only_for_a_new_stream,
            an_exact_version_holds_at_the_current_version,
            a_retried_batch_passes_its_expectation_as_duplicates,
        );
    };
    (@each $harness:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let harness = $harness;
                $crate::conformance::$name(&harness).await;
            }
        )*
    };
}
