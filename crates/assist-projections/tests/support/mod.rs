//! Shared set-up of the projection tests: logs filled through the real ingest, view
//! stores on SQLite files and on a fresh database of the PostgreSQL the test command runs.
#![allow(dead_code)]

use assist_ingest::{IngestOptions, Recorder};
use assist_projections::sla::Rules;
use assist_projections::{Runner, Store};
use serde_json::Value;
use std::path::Path;

/// The hand-written scenario: every shipped example (every event type), in the order
/// they happened, plus facts that the auditors should find.
pub fn scenario_jsonl() -> Vec<u8> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/examples");
    let mut events: Vec<Value> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            serde_json::from_str(&std::fs::read_to_string(e.unwrap().path()).unwrap()).unwrap()
        })
        .collect();
    events.sort_by(|a, b| a["occurred_at"].as_str().cmp(&b["occurred_at"].as_str()));
    let mut out = Vec::new();
    for e in events {
        out.extend(serde_json::to_vec(&e).unwrap());
        out.push(b'\n');
    }
    out.extend(include_bytes!("scenario-extra.jsonl"));
    out
}

/// A log in `dir` holding `jsonl`, ingested through the real ingest.
pub async fn log_with(dir: &Path, jsonl: &[u8]) -> Recorder {
    let recorder = Recorder::open_embedded(dir).await.unwrap();
    let report = recorder
        .ingest(jsonl, IngestOptions::default())
        .await
        .unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    recorder
}

/// A fresh SQLite view store in `dir`.
pub async fn sqlite_store(dir: &Path, name: &str) -> Store {
    Store::open(&format!("sqlite:{}", dir.join(name).display()))
        .await
        .unwrap()
}

/// The PostgreSQL the test command provides (`ASSIST_TEST_POSTGRES`).
pub fn postgres_admin_url() -> String {
    std::env::var("ASSIST_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh, empty database on that server, dropped by the returned guard.
pub async fn postgres_store() -> (Store, PgDatabase) {
    use sqlx::Connection;
    let admin = postgres_admin_url();
    let name = format!("assist_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("the test command starts PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
    let store = Store::open(&format!("{base}/{name}")).await.unwrap();
    (store, PgDatabase { admin, name })
}

/// Drops its database when the test ends.
pub struct PgDatabase {
    admin: String,
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut c)
                        .await;
                }
            })
        })
        .join();
    }
}

/// Projects the whole log into the active generation of `store`.
pub async fn project(recorder: &Recorder, store: &Store, batch: usize) -> i64 {
    let gen = store.active_gen().await.unwrap();
    catch_up(recorder.log().as_ref(), store, gen, batch).await;
    gen
}

/// Projects `log` into generation `gen` of `store` under the shipped rules.
pub async fn catch_up(
    log: &dyn assist_log::PartitionReader,
    store: &Store,
    gen: i64,
    batch: usize,
) -> assist_projections::RunStats {
    let rules = Rules::shipped().unwrap();
    Runner {
        log,
        store,
        rules: &rules,
        batch,
    }
    .catch_up(gen, |_| {})
    .await
    .unwrap()
}
