//! A log opened from a read-only copy reads everything and writes nothing.

use assist_log::conformance::event;
use assist_log::{AppendBatch, Appender, EmbeddedLog, PartitionReader, StreamReader};

const STREAM: &str = "person-00000000-0000-4000-8000-000000000001";

#[tokio::test]
async fn a_read_only_log_reads_a_stream_whose_index_lags_and_refuses_appends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let log = EmbeddedLog::open(&path, None).await.unwrap();
    log.append(AppendBatch::new(vec![event(STREAM, 1), event(STREAM, 2)]))
        .await
        .unwrap();
    // A stream read indexes these two; the next three are appended behind the index.
    assert_eq!(log.read_stream(STREAM).await.unwrap().len(), 2);
    log.append(AppendBatch::new(vec![
        event(STREAM, 3),
        event(STREAM, 4),
        event("person-00000000-0000-4000-8000-000000000002", 5),
    ]))
    .await
    .unwrap();
    log.close().await;
    // Closing folds the WAL into the file before it returns: the file can be copied as is.
    let wal = dir.path().join("log.db-wal");
    assert!(!wal.exists(), "the closed log kept its WAL");
    let before = std::fs::read(&path).unwrap();

    let ro = EmbeddedLog::open_read_only(&path).await.unwrap();
    let stream = ro.read_stream(STREAM).await.unwrap();
    assert_eq!(stream.len(), 4, "indexed and unindexed events alike");
    let offsets: Vec<u64> = stream.iter().map(|r| r.position.offset).collect();
    let mut sorted = offsets.clone();
    sorted.sort();
    assert_eq!(offsets, sorted, "in log order");
    assert_eq!(ro.record_count().await.unwrap(), 5);
    assert!(ro
        .append(AppendBatch::new(vec![event(STREAM, 6)]))
        .await
        .is_err());
    ro.close().await;
    assert!(
        std::fs::read(&path).unwrap() == before,
        "the read-only log wrote to its file"
    );
    assert!(!wal.exists(), "the read-only log made a WAL");
}
