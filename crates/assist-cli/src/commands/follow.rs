//! `assist follow --group NAME`: a projection worker in a Kafka consumer group.

use super::views::{load_rules, ViewOptions};
use crate::outln;
use anyhow::{bail, Result};
use assist_kafka::group::{GroupMember, Worker};
use assist_kafka::KafkaConfig;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Join a consumer group of projection workers and keep the views of the partitions this
/// worker owns up to date until Ctrl-C. Needs --log kafka:…; checkpoints stay in the store.
#[derive(clap::Args)]
pub struct Args {
    /// The consumer group of the projection workers.
    #[arg(long, default_value = "assist-projections")]
    group: String,
    /// Milliseconds between catch-up rounds.
    #[arg(long, default_value_t = 500)]
    interval_ms: u64,
}

pub async fn run(dir: &Path, opts: &ViewOptions, args: Args) -> Result<ExitCode> {
    let Some(spec) = opts.log.as_deref().and_then(|l| l.strip_prefix("kafka:")) else {
        bail!("follow needs the Kafka log: --log kafka:BROKERS[/TOPIC] (or ASSIST_EVENT_LOG)");
    };
    let config = KafkaConfig::parse(spec);
    let log = super::open_kafka_log(dir, opts, config.clone()).await?;
    let store = opts.open_store(dir).await?;
    let rules = load_rules(opts.policies.as_deref())?;
    let member = GroupMember::join(&config, &args.group)?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            stop.store(true, Ordering::SeqCst);
        });
    }
    let worker = Worker {
        log: &*log,
        store: &store,
        rules: &rules,
        member: &member,
        batch: opts.projection_batch,
        interval: Duration::from_millis(args.interval_ms),
    };
    let mut last: Vec<u32> = Vec::new();
    let stats = worker
        .run(&stop, |owned| {
            if owned != last.as_slice() {
                eprintln!("owning partitions {owned:?}");
                last = owned.to_vec();
            }
        })
        .await?;
    outln!(
        "stopped after projecting {} records ({} applied){}",
        stats.records,
        stats.applied,
        super::views::redone_note(&stats)
    )?;
    Ok(ExitCode::SUCCESS)
}
