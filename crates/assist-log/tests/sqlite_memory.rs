//! SQLite's heap in this process is bounded by `sqlite_memory::limit_memory`, across
//! connections. One test, in its own process: the bound is process-wide state.

use assist_log::sqlite_memory::{limit_memory, memory_limit, memory_used};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};

const MIB: u64 = 1 << 20;

/// A connection with the page cache the log and the views use (128 MiB).
async fn connect(path: &std::path::Path) -> SqliteConnection {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .pragma("cache_size", "-131072")
        .connect()
        .await
        .expect("open a SQLite file")
}

/// Reads every page of the table, so the connection's cache holds as many as it may.
async fn read_all(conn: &mut SqliteConnection) -> i64 {
    sqlx::query_scalar("SELECT sum(length(b)) FROM t")
        .fetch_one(conn)
        .await
        .expect("read the table")
}

#[tokio::test]
async fn the_soft_heap_limit_bounds_the_page_caches_of_every_connection() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("t.db");
    let mut writer = connect(&path).await;
    sqlx::query("CREATE TABLE t (b BLOB)")
        .execute(&mut writer)
        .await
        .expect("create");
    // 40 MB of rows, written in one transaction: every page passes through the cache.
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) \
         INSERT INTO t SELECT randomblob(2000) FROM n",
    )
    .execute(&mut writer)
    .await
    .expect("insert");
    let mut reader = connect(&path).await;
    assert_eq!(read_all(&mut reader).await, 40_000_000);

    // Without a bound, each connection keeps what it read: the fault this guards against.
    assert_eq!(memory_limit(), 0, "no bound is set by default");
    let unbounded = memory_used();
    assert!(
        unbounded > 60 * MIB,
        "two connections' caches hold the table twice: {unbounded} bytes"
    );

    // Lowering the bound frees cached pages at once, and reading again stays under it.
    assert_eq!(limit_memory(4 * MIB), 0, "the bound before was none");
    assert_eq!(memory_limit(), 4 * MIB);
    let after_limit = memory_used();
    assert!(
        after_limit <= 4 * MIB,
        "{after_limit} bytes after the bound"
    );
    assert_eq!(read_all(&mut reader).await, 40_000_000);
    assert_eq!(read_all(&mut writer).await, 40_000_000);
    let after_reads = memory_used();
    assert!(
        after_reads <= 5 * MIB,
        "{after_reads} bytes after reading 40 MB through two connections"
    );

    // `0` removes the bound.
    assert_eq!(limit_memory(0), 4 * MIB);
    assert_eq!(memory_limit(), 0);
    reader.close().await.expect("close");
    writer.close().await.expect("close");
}
