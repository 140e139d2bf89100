//! One module per subcommand.

pub mod bench;
pub mod bench_pages;
pub mod bench_project;
pub mod bench_serve;
pub mod catalog;
pub mod demo;
pub mod erase;
pub mod follow;
pub mod history;
pub mod ingest;
pub mod notify;
pub mod policies;
pub mod serve;
pub mod simulate;
pub mod token;
pub mod views;

use anyhow::{Context, Result};
use assist_ingest::Recorder;
use std::path::Path;

/// Where the Kafka id index of `topic` lives in the data dir.
pub fn kafka_index_path(dir: &Path, topic: &str) -> std::path::PathBuf {
    dir.join(format!("kafka-index-{topic}.db"))
}

/// Opens the log (embedded in `dir`, or `kafka:BROKERS[/TOPIC]`) and the key table in `dir`.
pub async fn open_recorder(dir: &Path, log: Option<&str>) -> Result<Recorder> {
    match log {
        None | Some("embedded") => Recorder::open_embedded(dir)
            .await
            .with_context(|| format!("cannot open the data dir {}", dir.display())),
        Some(spec) => {
            let Some(kafka) = spec.strip_prefix("kafka:") else {
                anyhow::bail!("--log {spec:?} must be `embedded` or kafka:BROKERS[/TOPIC]");
            };
            let config = assist_kafka::KafkaConfig::parse(kafka);
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let index = kafka_index_path(dir, &config.topic);
            let log = assist_kafka::KafkaLog::open(config, &index).await?;
            Recorder::open_with_log(dir, std::sync::Arc::new(log))
                .await
                .with_context(|| format!("cannot open the data dir {}", dir.display()))
        }
    }
}
