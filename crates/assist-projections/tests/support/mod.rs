//! Shared set-up of the projection tests: logs filled through the real ingest, view
//! stores on SQLite files and on a fresh database of the PostgreSQL the test command runs.
#![allow(dead_code)]

pub mod reference;

use assist_ingest::{IngestOptions, Recorder};
use assist_log::{PartitionInfo, PartitionReader, Record, StreamReader};
use assist_projections::sla::Rules;
use assist_projections::{Runner, Store};
use async_trait::async_trait;
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

impl PgDatabase {
    /// The database's URL, for opening it again.
    pub fn url(&self) -> String {
        let base = self
            .admin
            .rsplit_once('/')
            .map(|(b, _)| b)
            .unwrap_or_default();
        format!("{base}/{}", self.name)
    }
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

/// Projects the whole log into the live generation of `store` (a fresh store's first
/// build, swapped in once caught up) and returns it.
pub async fn project(recorder: &Recorder, store: &Store, batch: usize) -> i64 {
    let gen = store.live_gen().await.unwrap();
    catch_up(recorder.log().as_ref(), store, gen, batch).await;
    assert_eq!(
        store.active_gen().await.unwrap(),
        gen,
        "caught up, it is read"
    );
    gen
}

/// Projects `log` into generation `gen` of `store` under the shipped rules.
pub async fn catch_up(
    log: &dyn assist_log::ProjectionLog,
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
        memory: Default::default(),
    }
    .catch_up(gen, |_| {})
    .await
    .unwrap()
}

/// A log served from memory, partition by partition, so a test can hold what the embedded
/// log never would: repeated ids (a Kafka producer retrying across sessions), an id
/// reused by another stream, a stream on a partition not its own (foreign producers).
pub struct Served {
    /// The records of each partition.
    pub parts: Vec<Vec<Record>>,
}

impl Served {
    /// Every record on partition 0, offsets renumbered.
    pub fn one(records: Vec<Record>) -> Served {
        Served::placed(vec![records])
    }

    /// `parts[p]` on partition `p`, offsets renumbered densely.
    pub fn placed(mut parts: Vec<Vec<Record>>) -> Served {
        for (p, records) in parts.iter_mut().enumerate() {
            for (i, r) in records.iter_mut().enumerate() {
                r.position = assist_log::Position {
                    partition: p as u32,
                    offset: i as u64,
                };
            }
        }
        Served { parts }
    }

    /// Each record on the partition its stream hashes to, in the order given.
    pub fn by_stream(records: Vec<Record>, partitions: u32) -> Served {
        let mut parts = vec![Vec::new(); partitions as usize];
        for r in records {
            parts[assist_log::partition_for(&r.stream, partitions) as usize].push(r);
        }
        Served::placed(parts)
    }
}

impl Served {
    /// Up to `max` records of partition `p` from offset `from` on.
    pub fn read(&self, p: u32, from: u64, max: usize) -> Vec<Record> {
        self.parts[p as usize]
            .iter()
            .filter(|r| r.position.offset >= from)
            .take(max)
            .cloned()
            .collect()
    }

    /// Every partition with its high-water mark.
    pub fn infos(&self) -> Vec<PartitionInfo> {
        (0..self.parts.len())
            .map(|p| PartitionInfo {
                partition: p as u32,
                high_water: self.parts[p].len() as u64,
            })
            .collect()
    }
}

#[async_trait]
impl PartitionReader for Served {
    fn partition_count(&self) -> u32 {
        self.parts.len() as u32
    }

    async fn read_partition(
        &self,
        p: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<Record>, assist_log::LogError> {
        Ok(self.read(p, from, max))
    }

    async fn partitions(&self) -> Result<Vec<PartitionInfo>, assist_log::LogError> {
        Ok(self.infos())
    }
}

#[async_trait]
impl StreamReader for Served {
    async fn read_stream(&self, stream: &str) -> Result<Vec<Record>, assist_log::LogError> {
        Ok(self.stream(stream))
    }
}

impl Served {
    /// Every record keyed by `stream`, partition by partition, in offset order.
    pub fn stream(&self, stream: &str) -> Vec<Record> {
        self.parts
            .iter()
            .flatten()
            .filter(|r| r.stream == stream)
            .cloned()
            .collect()
    }
}

/// Every record of the log, partition by partition.
pub async fn all_records(recorder: &assist_ingest::Recorder) -> Vec<Record> {
    let log = recorder.log();
    let mut out = Vec::new();
    for p in log.partitions().await.unwrap() {
        out.extend(
            log.read_partition(p.partition, 0, usize::MAX)
                .await
                .unwrap(),
        );
    }
    out
}
