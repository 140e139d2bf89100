//! The embedded SQLite log passes the conformance suite every backend must pass.

use assist_log::conformance::Harness;
use assist_log::EmbeddedLog;
use async_trait::async_trait;
use tempfile::TempDir;

struct Embedded {
    dir: TempDir,
}

impl Embedded {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }
}

#[async_trait]
impl Harness for Embedded {
    type Log = EmbeddedLog;

    async fn fresh(&self) -> EmbeddedLog {
        EmbeddedLog::open(&self.dir.path().join("log.db"), None)
            .await
            .unwrap()
    }

    async fn reopen(&self, log: EmbeddedLog) -> EmbeddedLog {
        let path = log.path().to_path_buf();
        log.close().await;
        EmbeddedLog::open(&path, None).await.unwrap()
    }
}

assist_log::conformance_tests!(Embedded::new());

#[tokio::test]
async fn a_log_refuses_to_open_with_another_partition_count() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    EmbeddedLog::open(&path, Some(8))
        .await
        .unwrap()
        .close()
        .await;
    let err = EmbeddedLog::open(&path, Some(4)).await.err().unwrap();
    assert_eq!(
        err.to_string(),
        "the log has 8 partitions, not the 4 asked for; partitions cannot change without re-keying every stream"
    );
}
