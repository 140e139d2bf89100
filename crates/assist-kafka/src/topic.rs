//! One topic of the log: its idempotent producer, its by-offset reader and its creation.
//! Both logs ([`KafkaLog`](crate::KafkaLog) with a local id index, and
//! [`SharedKafkaLog`](crate::SharedKafkaLog) with PostgreSQL as the arbiter) write and read
//! through it.

use crate::{backend, KafkaConfig, EVENT_ID_HEADER};
use assist_log::{partition_for, LogError, LogEvent, Position, Record};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

/// The records a reader of a whole partition range holds in memory at a time.
pub(crate) const READ_PAGE: usize = 10_000;

/// A topic to append to and read from by offset.
pub(crate) struct Topic {
    pub(crate) config: KafkaConfig,
    producer: FutureProducer,
    reader: Arc<Mutex<BaseConsumer>>,
}

/// What became of a produced set of events: the position of each delivered one (by its
/// index in what was given), and the first failure, if any.
pub(crate) struct Delivered {
    pub(crate) positions: HashMap<usize, Position>,
    pub(crate) failure: Option<LogError>,
}

impl Topic {
    /// Connects to the brokers (failing within the configured timeout when none answers)
    /// and creates the topic when missing.
    pub(crate) async fn open(config: KafkaConfig) -> Result<Topic, LogError> {
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
            .set("max.in.flight.requests.per.connection", "5")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "30000")
            .set("socket.timeout.ms", &timeout_ms)
            .create()
            .map_err(|e| backend("cannot create a producer", &b, e))?;
        let reader: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("group.id", format!("assist-reader-{}", Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("fetch.wait.max.ms", "10")
            .set("socket.timeout.ms", &timeout_ms)
            .create()
            .map_err(|e| backend("cannot create a consumer", &b, e))?;
        let reader = Arc::new(Mutex::new(reader));
        ensure_topic(&config, &reader).await?;
        Ok(Topic {
            config,
            producer,
            reader,
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&BaseConsumer, &KafkaConfig) -> Result<T, LogError> + Send + 'static,
    ) -> Result<T, LogError> {
        let reader = self.reader.clone();
        let config = self.config.clone();
        tokio::task::spawn_blocking(move || {
            let c = reader
                .lock()
                .map_err(|_| LogError::Backend("the Kafka reader is poisoned".into()))?;
            f(&c, &config)
        })
        .await
        .map_err(|e| LogError::Backend(format!("the Kafka reader stopped: {e}")))?
    }

    /// The broker-reported end of every partition (`None` where it did not answer).
    pub(crate) async fn watermarks(&self) -> Result<Vec<Option<i64>>, LogError> {
        self.blocking(|c, cfg| {
            Ok((0..cfg.partitions)
                .map(|p| {
                    c.fetch_watermarks(&cfg.topic, p as i32, cfg.timeout)
                        .ok()
                        .map(|(_, h)| h)
                })
                .collect())
        })
        .await
    }

    /// Up to `max` records of partition `p` from `from` to the current high-water mark.
    pub(crate) async fn read_range(
        &self,
        p: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<Record>, LogError> {
        self.blocking(move |c, cfg| read_blocking(c, cfg, p, from, max))
            .await
    }

    /// The offset after the last record of partition `p`, reading from `from` (an offset
    /// known to exist) to the end a page at a time.
    pub(crate) async fn end_from(&self, p: u32, from: u64) -> Result<u64, LogError> {
        let mut end = from;
        loop {
            let records = self.read_range(p, end, READ_PAGE).await?;
            let Some(last) = records.last() else {
                return Ok(end);
            };
            end = last.position.offset + 1;
            if records.len() < READ_PAGE {
                return Ok(end);
            }
        }
    }

    /// Queues every event (in the order given, so one stream's order holds), each to its
    /// stream's partition with its id in a header, then waits for every delivery report.
    pub(crate) async fn produce(&self, events: &[&LogEvent]) -> Result<Delivered, LogError> {
        let mut deliveries = Vec::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            let partition = partition_for(&e.stream, self.config.partitions) as i32;
            let headers = OwnedHeaders::new().insert(Header {
                key: EVENT_ID_HEADER,
                value: Some(e.event_id.as_bytes().as_slice()),
            });
            let mut record = FutureRecord::to(&self.config.topic)
                .partition(partition)
                .key(e.stream.as_bytes())
                .payload(&e.payload)
                .headers(headers);
            loop {
                match self.producer.send_result(record) {
                    Ok(f) => {
                        deliveries.push((i, f));
                        break;
                    }
                    Err((
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull,
                        ),
                        r,
                    )) => {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        record = r;
                    }
                    Err((err, _)) => {
                        return Err(backend("cannot queue a message", &self.config.brokers, err))
                    }
                }
            }
        }
        let mut out = Delivered {
            positions: HashMap::with_capacity(events.len()),
            failure: None,
        };
        for (i, f) in deliveries {
            match f.await {
                Ok(Ok(d)) => {
                    out.positions.insert(
                        i,
                        Position {
                            partition: d.partition as u32,
                            offset: d.offset as u64,
                        },
                    );
                }
                Ok(Err((e, _))) => {
                    out.failure = Some(backend(
                        "a message was not delivered",
                        &self.config.brokers,
                        e,
                    ))
                }
                Err(_) => {
                    out.failure = Some(LogError::Backend(
                        "the producer was dropped before delivery".into(),
                    ))
                }
            }
        }
        Ok(out)
    }
}

/// Reads partition `p` from `from` until the broker says it is at the end (partition EOF,
/// which follows the fetch response's high-water mark) or `max` records were read.
///
/// The end is not taken from `ListOffsets`: some Kafka-protocol brokers (tansu 0.6) answer it
/// with the base offset of the last record batch plus one, not the next offset.
fn read_blocking(
    c: &BaseConsumer,
    cfg: &KafkaConfig,
    p: u32,
    from: u64,
    max: usize,
) -> Result<Vec<Record>, LogError> {
    let b = &cfg.brokers;
    if max == 0 {
        return Ok(Vec::new());
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&cfg.topic, p as i32, Offset::Offset(from as i64))
        .map_err(|e| backend("bad offset", b, e))?;
    c.assign(&tpl)
        .map_err(|e| backend("cannot assign the partition", b, e))?;
    let mut out = Vec::new();
    let mut deadline = std::time::Instant::now() + cfg.timeout;
    let mut last_error = String::from("no answer");
    let result = loop {
        if out.len() >= max {
            break Ok(());
        }
        if std::time::Instant::now() > deadline {
            break Err(LogError::Backend(format!(
                "Kafka at {b}: partition {p} gave no end of data within {} s (last error: {last_error})",
                cfg.timeout.as_secs()
            )));
        }
        match c.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(eof))) if eof == p as i32 => {
                break Ok(())
            }
            // Broker-level errors (all brokers down, a transport failure, a moving leader)
            // are transient: librdkafka reconnects and the fetch goes on.
            Some(Err(e)) => {
                tracing::debug!(partition = p, error = %e, "retrying a read");
                last_error = e.to_string();
            }
            Some(Ok(m)) => {
                deadline = std::time::Instant::now() + cfg.timeout;
                let offset = m.offset() as u64;
                if offset < from || m.partition() != p as i32 {
                    continue;
                }
                let event_id = m
                    .headers()
                    .and_then(|h| {
                        h.iter()
                            .find(|x| x.key == EVENT_ID_HEADER)
                            .and_then(|x| x.value)
                    })
                    .and_then(|v| Uuid::from_slice(v).ok());
                out.push(Record {
                    position: Position {
                        partition: p,
                        offset,
                    },
                    stream: m
                        .key()
                        .map(|k| String::from_utf8_lossy(k).into_owned())
                        .unwrap_or_default(),
                    event_id,
                    payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                });
            }
        }
    };
    c.unassign().map_err(|e| backend("cannot unassign", b, e))?;
    // Drop what the old assignment still queued, so the next read starts clean.
    while c.poll(Duration::ZERO).is_some() {}
    result.map(|()| out)
}

pub(crate) async fn ensure_topic(
    config: &KafkaConfig,
    reader: &Arc<Mutex<BaseConsumer>>,
) -> Result<(), LogError> {
    let b = config.brokers.clone();
    let (topic, timeout) = (config.topic.clone(), config.timeout);
    let reader2 = reader.clone();
    let existing: Option<usize> = tokio::task::spawn_blocking(move || {
        let c = reader2
            .lock()
            .map_err(|_| LogError::Backend("the Kafka reader is poisoned".into()))?;
        let md = c.fetch_metadata(Some(&topic), timeout).map_err(|e| {
            LogError::Backend(format!(
                "cannot reach Kafka at {b} within {} s: {e}",
                timeout.as_secs()
            ))
        })?;
        Ok::<_, LogError>(
            md.topics()
                .first()
                .filter(|t| t.error().is_none())
                .map(|t| t.partitions().len())
                .filter(|n| *n > 0),
        )
    })
    .await
    .map_err(|e| LogError::Backend(format!("metadata lookup stopped: {e}")))??;
    match existing {
        Some(n) if n as u32 == config.partitions => Ok(()),
        Some(n) => Err(LogError::PartitionCount {
            found: n as u32,
            wanted: config.partitions,
        }),
        None => {
            let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
                .set("bootstrap.servers", &config.brokers)
                .create()
                .map_err(|e| backend("cannot create an admin client", &config.brokers, e))?;
            let topic = NewTopic::new(
                &config.topic,
                config.partitions as i32,
                TopicReplication::Fixed(config.replication),
            )
            // The log is the system of record: keep every message forever.
            .set("retention.ms", "-1")
            .set("retention.bytes", "-1");
            let opts = AdminOptions::new()
                .operation_timeout(Some(config.timeout))
                .request_timeout(Some(config.timeout));
            let results = admin
                .create_topics([&topic], &opts)
                .await
                .map_err(|e| backend("cannot create the topic", &config.brokers, e))?;
            for r in results {
                if let Err((name, code)) = r {
                    if code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                        return Err(backend(
                            &format!("cannot create topic {name}"),
                            &config.brokers,
                            code,
                        ));
                    }
                }
            }
            Ok(())
        }
    }
}

impl Topic {
    /// Up to `max` records of `partition` from offset `from`: a partition the topic does not
    /// have is an error.
    pub(crate) async fn read_partition(
        &self,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<Record>, LogError> {
        if partition >= self.config.partitions {
            return Err(LogError::NoSuchPartition {
                partition,
                count: self.config.partitions,
            });
        }
        self.read_range(partition, from, max).await
    }

    /// The records of `stream` at `offsets` (sorted) of partition `p`, fetching runs of
    /// them rather than everything between its first and last.
    pub(crate) async fn read_offsets(
        &self,
        stream: &str,
        p: u32,
        offsets: &[u64],
    ) -> Result<Vec<Record>, LogError> {
        let wanted: HashSet<u64> = offsets.iter().copied().collect();
        let mut out = Vec::with_capacity(offsets.len());
        for (from, count) in fetch_ranges(offsets, STREAM_READ_GAP) {
            let records = self.read_range(p, from, count).await?;
            out.extend(
                records
                    .into_iter()
                    .filter(|r| wanted.contains(&r.position.offset) && r.stream == stream),
            );
        }
        Ok(out)
    }
}

/// How many other records a stream's read reads through between two of its own rather
/// than fetching again from the second.
const STREAM_READ_GAP: u64 = 16;

/// The ranges (first offset, how many records) that hold `offsets` (sorted): a run of
/// offsets at most `gap` apart is one range, so a stream's read fetches its own records
/// and at most `gap` others between two of them, not everything between its first and
/// last.
fn fetch_ranges(offsets: &[u64], gap: u64) -> Vec<(u64, usize)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &o in offsets {
        match out.last_mut() {
            Some((_, end)) if o <= end.saturating_add(gap + 1) => *end = (*end).max(o),
            _ => out.push((o, o)),
        }
    }
    out.into_iter()
        .map(|(from, to)| (from, (to - from + 1) as usize))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streams_read_fetches_runs_of_its_own_offsets_not_everything_between() {
        assert_eq!(fetch_ranges(&[], 16), vec![]);
        assert_eq!(fetch_ranges(&[5], 16), vec![(5, 1)]);
        assert_eq!(fetch_ranges(&[7, 7], 16), vec![(7, 1)]);
        // Sixteen others between two of its own are read through; seventeen are not.
        assert_eq!(fetch_ranges(&[0, 17], 16), vec![(0, 18)]);
        assert_eq!(fetch_ranges(&[0, 18], 16), vec![(0, 1), (18, 1)]);
        // A registration, and the rest of the case a million records later.
        assert_eq!(
            fetch_ranges(&[3, 1_000_000, 1_000_001, 1_000_010], 16),
            vec![(3, 1), (1_000_000, 11)]
        );
    }
}
