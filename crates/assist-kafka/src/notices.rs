//! Notices on a Kafka topic: each an idempotent-producer record keyed by its clock (so one
//! clock's notices stay in order in one partition), its JSON as the value and its id in the
//! `notice_id` header, for consumers that drop what they have seen.

use crate::topic::ensure_topic;
use crate::{backend, KafkaConfig};
use assist_log::LogError;
use assist_projections::notices::{Channel, Notice};
use async_trait::async_trait;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// The header carrying a notice's id.
pub const NOTICE_ID_HEADER: &str = "notice_id";

/// The notice channel on a Kafka topic.
pub struct NoticeTopic {
    topic: String,
    producer: FutureProducer,
    timeout: std::time::Duration,
}

impl NoticeTopic {
    /// Connects to `config.brokers` and creates `config.topic` when missing.
    pub async fn open(config: KafkaConfig) -> Result<NoticeTopic, LogError> {
        let b = config.brokers.clone();
        let timeout_ms = config.timeout.as_millis().to_string();
        let mut producer_config = ClientConfig::new();
        if let Some(n) = config.max_batch_messages {
            producer_config.set("batch.num.messages", n.max(1).to_string());
        }
        let producer: FutureProducer = producer_config
            .set("bootstrap.servers", &config.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "30000")
            .set("socket.timeout.ms", &timeout_ms)
            .create()
            .map_err(|e| backend("cannot create a producer", &b, e))?;
        let reader: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("group.id", format!("assist-notices-{}", Uuid::new_v4()))
            .set("socket.timeout.ms", &timeout_ms)
            .create()
            .map_err(|e| backend("cannot create a consumer", &b, e))?;
        ensure_topic(&config, &Arc::new(Mutex::new(reader))).await?;
        Ok(NoticeTopic {
            topic: config.topic,
            producer,
            timeout: config.timeout,
        })
    }
}

#[async_trait]
impl Channel for NoticeTopic {
    fn name(&self) -> &str {
        "kafka"
    }

    async fn send(&self, notice: &Notice) -> Result<(), String> {
        let body = serde_json::to_vec(notice).map_err(|e| format!("cannot encode: {e}"))?;
        let id = notice.notice_id.to_string();
        let headers = OwnedHeaders::new().insert(Header {
            key: NOTICE_ID_HEADER,
            value: Some(id.as_bytes()),
        });
        let record = FutureRecord::to(&self.topic)
            .key(notice.clock_id.as_bytes())
            .payload(&body)
            .headers(headers);
        self.producer
            .send(record, self.timeout)
            .await
            .map(|_| ())
            .map_err(|(e, _)| format!("the broker did not take it: {e}"))
    }
}
