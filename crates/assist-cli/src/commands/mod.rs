//! One module per subcommand.

pub mod bench;
pub mod bench_pages;
pub mod bench_project;
pub mod bench_serve;
pub mod bench_writers;
pub mod catalog;
pub mod demo;
pub mod erase;
pub mod follow;
pub mod history;
pub mod ingest;
pub mod keys;
pub mod notify;
pub mod policies;
pub mod serve;
pub mod simulate;
pub mod token;
pub mod views;

use anyhow::{Context, Result};
use assist_ingest::Recorder;
use assist_log::EventLog;
use assist_privacy::{Kek, KeyStore};
use std::path::Path;

/// Where the Kafka id index of `topic` lives in the data dir.
pub fn kafka_index_path(dir: &Path, topic: &str) -> std::path::PathBuf {
    dir.join(format!("kafka-index-{topic}.db"))
}

/// The log on Kafka as `--log kafka:…` and `--store` ask: with a PostgreSQL store, the
/// shared log (PostgreSQL decides versions and ids, so any number of instances may write);
/// otherwise the single-instance log with its id index in `dir`.
pub async fn open_kafka_log(
    dir: &Path,
    opts: &views::ViewOptions,
    config: assist_kafka::KafkaConfig,
) -> Result<std::sync::Arc<dyn EventLog>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(match opts.store.as_deref().and_then(postgres_url) {
        // The store's own error never repeats its URL (it may hold a password).
        Some(url) => assist_kafka::SharedKafkaLog::open(config, url, shared_settings()?)
            .await
            .context("cannot open the shared log on Kafka and PostgreSQL")?,
        None => {
            let index = kafka_index_path(dir, &config.topic);
            std::sync::Arc::new(assist_kafka::KafkaLog::open(config, &index).await?)
        }
    })
}

/// The shared log's timing, from `ASSIST_WRITER_HOLD_TIMEOUT_MS`, `ASSIST_PUBLISH_AFTER_MS`
/// and `ASSIST_RELAY_EVERY_MS` where set (see README, "Many instances").
fn shared_settings() -> Result<assist_kafka::SharedSettings> {
    let mut s = assist_kafka::SharedSettings::default();
    for (name, field) in [
        ("ASSIST_WRITER_HOLD_TIMEOUT_MS", &mut s.hold_timeout),
        ("ASSIST_PUBLISH_AFTER_MS", &mut s.publish_after),
        ("ASSIST_RELAY_EVERY_MS", &mut s.relay_every),
    ] {
        if let Ok(v) = std::env::var(name) {
            let ms: u64 = v
                .parse()
                .with_context(|| format!("{name} must be a number of milliseconds"))?;
            *field = std::time::Duration::from_millis(ms.max(1));
        }
    }
    Ok(s)
}

/// Opens the log (embedded in `dir`, or `kafka:BROKERS[/TOPIC]`) and the key table. On
/// Kafka with a PostgreSQL store the keys live in that database, shared by every instance;
/// otherwise in `dir`'s keys.db. They are wrapped by the KEK of `--kek-file` (else the
/// data dir's own `kek` file, made when missing).
pub async fn open_recorder(dir: &Path, opts: &views::ViewOptions) -> Result<Recorder> {
    let kek = match &opts.kek_file {
        Some(path) => Some(Kek::load(path).context("cannot read --kek-file")?),
        None => None,
    };
    let opening = || format!("cannot open the data dir {}", dir.display());
    match opts.log.as_deref() {
        None | Some("embedded") => Recorder::open_embedded_with(dir, kek)
            .await
            .with_context(opening),
        Some(spec) => {
            let Some(kafka) = spec.strip_prefix("kafka:") else {
                anyhow::bail!("--log {spec:?} must be `embedded` or kafka:BROKERS[/TOPIC]");
            };
            let config = assist_kafka::KafkaConfig::parse(kafka);
            let log = open_kafka_log(dir, opts, config).await?;
            match opts.store.as_deref().and_then(postgres_url) {
                Some(url) => {
                    let kek = match kek {
                        Some(kek) => kek,
                        None => Kek::load_or_create(&dir.join(assist_ingest::KEK_FILE))
                            .context("cannot make the data dir's key-encryption key")?,
                    };
                    let keys = KeyStore::open_postgres(url, kek)
                        .await
                        .context("cannot open the key table in the PostgreSQL store")?;
                    Ok(Recorder::new(log, std::sync::Arc::new(keys)))
                }
                None => Recorder::open_with_log(dir, log, kek)
                    .await
                    .with_context(opening),
            }
        }
    }
}

/// The URL of a PostgreSQL `--store` (`postgres://…`, or `postgres:` before one).
fn postgres_url(spec: &str) -> Option<&str> {
    if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
        Some(spec)
    } else {
        spec.strip_prefix("postgres:")
            .filter(|url| url.starts_with("postgres"))
    }
}
