//! Projection workers in a consumer group: each member owns some partitions and projects
//! only those, with checkpoints in SQL next to the views (never in Kafka commits), so a
//! rebalance never loses or doubles an effect: the new owner resumes from the checkpoint
//! the old owner committed with its last batch.

use crate::{backend, KafkaConfig};
use assist_log::LogError;
use assist_log::ProjectionLog;
use assist_projections::outage::Backoff;
use assist_projections::sla::Rules;
use assist_projections::{ProjectionError, RunStats, Runner, Store};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A member of a projection workers' consumer group.
pub struct GroupMember {
    consumer: BaseConsumer,
    brokers: String,
}

impl GroupMember {
    /// Joins `group` on the log's topic.
    pub fn join(config: &KafkaConfig, group: &str) -> Result<GroupMember, LogError> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("group.id", group)
            // Offsets live in SQL with the views; Kafka only says who owns what.
            .set("enable.auto.commit", "false")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "500")
            .create()
            .map_err(|e| backend("cannot create a group member", &config.brokers, e))?;
        consumer
            .subscribe(&[&config.topic])
            .map_err(|e| backend("cannot join the group", &config.brokers, e))?;
        Ok(GroupMember {
            consumer,
            brokers: config.brokers.clone(),
        })
    }

    /// Serves the group protocol (heartbeats, rebalances) and returns the partitions this
    /// member owns now. The assigned partitions are paused: the member reads through the
    /// log by offset, not through this consumer.
    pub fn owned(&self) -> Result<Vec<u32>, LogError> {
        if let Some(Err(e)) = self.consumer.poll(Duration::ZERO) {
            tracing::debug!(error = %e, "group member poll");
        }
        let assignment = self
            .consumer
            .assignment()
            .map_err(|e| backend("cannot read the assignment", &self.brokers, e))?;
        if assignment.count() > 0 {
            let _ = self.consumer.pause(&assignment);
        }
        let mut owned: Vec<u32> = assignment
            .elements()
            .iter()
            .map(|e| e.partition() as u32)
            .collect();
        owned.sort_unstable();
        Ok(owned)
    }
}

/// A projection worker: a group member projecting the partitions it owns.
pub struct Worker<'a> {
    /// The log (either backend).
    pub log: &'a dyn ProjectionLog,
    /// The views.
    pub store: &'a Store,
    /// SLA policies.
    pub rules: &'a Rules,
    /// Its membership.
    pub member: &'a GroupMember,
    /// Events per transaction.
    pub batch: usize,
    /// Pause between rounds.
    pub interval: Duration,
}

impl Worker<'_> {
    /// Projects the owned partitions until `stop` is set; `on_owned` hears of the
    /// partitions owned at each round.
    pub async fn run(
        &self,
        stop: &AtomicBool,
        mut on_owned: impl FnMut(&[u32]),
    ) -> Result<RunStats, ProjectionError> {
        let mut total = RunStats::default();
        let mut backoff = Backoff::default();
        while !stop.load(Ordering::SeqCst) {
            let owned = self.member.owned()?;
            on_owned(&owned);
            // What a failed round committed stays counted in `total`.
            let before = total.records;
            match self.round(&owned, &mut total).await {
                Ok(()) => backoff.reset(),
                // A store restart: the round's open batch was rolled back; try again. A
                // round that got somewhere before it failed starts the tries afresh.
                Err(e) if e.is_connection_lost() => {
                    match backoff.after_failure(total.records > before) {
                        Some(wait) => {
                            tracing::warn!(error = %e, wait_ms = wait.as_millis() as u64, "lost the store's connection; retrying");
                            tokio::time::sleep(wait).await;
                            continue;
                        }
                        None => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
            tokio::time::sleep(self.interval).await;
        }
        Ok(total)
    }

    /// One round: the owned partitions caught up in the live generation (the active one,
    /// or a store's first build), counted into `stats`.
    async fn round(&self, owned: &[u32], stats: &mut RunStats) -> Result<(), ProjectionError> {
        let gen = self.store.live_gen().await?;
        let runner = Runner {
            log: self.log,
            store: self.store,
            rules: self.rules,
            batch: self.batch,
            memory: Default::default(),
        };
        runner.catch_up_counting(gen, owned, stats, |_| {}).await
    }
}
