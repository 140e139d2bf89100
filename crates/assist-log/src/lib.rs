//! The partitioned, append-only event log of `assist`.
//!
//! A log holds opaque event payloads keyed by stream. Each stream lives in one partition
//! ([`partition_for`], Kafka's murmur2), so one stream's events are in order; offsets are
//! dense per partition; an `event_id` already stored is reported as a duplicate, never
//! stored twice. [`EmbeddedLog`] keeps it in one SQLite file; the Kafka backend implements
//! the same traits and passes the same [`conformance`] suite.

#[cfg(feature = "conformance")]
pub mod conformance;
mod embedded;
mod open_lock;
mod partition;
mod scan;
pub mod sqlite_memory;

pub use embedded::{stream_key, EmbeddedLog};
pub use open_lock::OpenLock;
pub use partition::{murmur2, partition_for, DEFAULT_PARTITIONS};

use async_trait::async_trait;
use std::collections::HashMap;
use std::fmt;
use uuid::Uuid;

/// One event to append: its id (the idempotency key), its stream and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// The idempotency key: an id already stored is not stored again.
    pub event_id: Uuid,
    /// The stream (`person-<uuid>`, `household-<uuid>`); decides the partition.
    pub stream: String,
    /// The event's bytes (catalog JSON, personal fields sealed).
    pub payload: Vec<u8>,
}

/// Where an event sits in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    /// The partition.
    pub partition: u32,
    /// The dense offset within the partition, from 0.
    pub offset: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "partition {} offset {}", self.partition, self.offset)
    }
}

/// What a service expects of a stream before its batch is written (as EventStoreDB does).
///
/// A stream's version is the number of events in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No expectation.
    Any,
    /// The stream must have no events yet.
    NoStream,
    /// The stream must have exactly this many events.
    Exact(u64),
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any version"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(n) => write!(f, "version {n}"),
        }
    }
}

impl ExpectedVersion {
    /// Whether a stream at `actual` meets the expectation.
    pub fn admits(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(n) => actual == n,
        }
    }
}

/// A batch to append atomically: all of it is stored, or (on a conflict) none of it.
#[derive(Debug, Clone, Default)]
pub struct AppendBatch {
    /// The events, in the order they happened per stream.
    pub events: Vec<LogEvent>,
    /// Expectations per stream; a stream without one is `Any`.
    pub expected: HashMap<String, ExpectedVersion>,
}

impl AppendBatch {
    /// A batch with no expectations.
    pub fn new(events: Vec<LogEvent>) -> Self {
        Self {
            events,
            expected: HashMap::new(),
        }
    }

    /// Adds an expectation for `stream`.
    pub fn expect(mut self, stream: impl Into<String>, expected: ExpectedVersion) -> Self {
        self.expected.insert(stream.into(), expected);
        self
    }
}

/// What a backend must do with a batch, given the ids it has stored already: the same rules
/// for every backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendPlan<'a> {
    /// Indexes of the events to store: first occurrences of ids not stored before.
    pub new: Vec<usize>,
    /// For every id first seen in this batch, the index of that first occurrence.
    pub first_in_batch: HashMap<Uuid, usize>,
    /// The expectations to check. A stream whose events in this batch are all duplicates
    /// is a retry of a stored batch: its expectation is skipped, so retries stay idempotent.
    pub to_check: Vec<(&'a str, ExpectedVersion)>,
}

impl AppendBatch {
    /// Plans this batch against the ids already stored (`known`, with whatever a backend
    /// keeps of them); refuses an event without a stream.
    pub fn plan<V>(&self, known: &HashMap<Uuid, V>) -> Result<AppendPlan<'_>, LogError> {
        if let Some(e) = self.events.iter().find(|e| e.stream.is_empty()) {
            return Err(LogError::EmptyStream(e.event_id));
        }
        let mut first_in_batch: HashMap<Uuid, usize> = HashMap::new();
        let mut new = Vec::new();
        for (i, e) in self.events.iter().enumerate() {
            if known.contains_key(&e.event_id) || first_in_batch.contains_key(&e.event_id) {
                continue;
            }
            first_in_batch.insert(e.event_id, i);
            new.push(i);
        }
        let with_new: std::collections::HashSet<&str> = new
            .iter()
            .map(|&i| self.events[i].stream.as_str())
            .collect();
        let in_batch: std::collections::HashSet<&str> =
            self.events.iter().map(|e| e.stream.as_str()).collect();
        let to_check = self
            .expected
            .iter()
            .filter(|(stream, expected)| {
                let retry =
                    in_batch.contains(stream.as_str()) && !with_new.contains(stream.as_str());
                !retry && **expected != ExpectedVersion::Any
            })
            .map(|(stream, expected)| (stream.as_str(), *expected))
            .collect();
        Ok(AppendPlan {
            new,
            first_in_batch,
            to_check,
        })
    }
}

impl AppendPlan<'_> {
    /// One outcome per event of `batch`, in batch order: stored at the position `stored`
    /// gives its index, or a duplicate of the stored id or of its first occurrence here.
    pub fn outcomes(
        &self,
        batch: &AppendBatch,
        known: &HashMap<Uuid, Position>,
        stored: &HashMap<usize, Position>,
    ) -> Vec<Appended> {
        batch
            .events
            .iter()
            .enumerate()
            .map(|(i, e)| match stored.get(&i) {
                Some(p) => Appended::Stored(*p),
                None => Appended::Duplicate(match known.get(&e.event_id) {
                    Some(p) => *p,
                    None => stored[&self.first_in_batch[&e.event_id]],
                }),
            })
            .collect()
    }
}

/// What became of one event of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored now, at this position.
    Stored(Position),
    /// Its id was stored before (or earlier in the same batch), at this position.
    Duplicate(Position),
}

impl Appended {
    /// The position of the event, new or original.
    pub fn position(&self) -> Position {
        match self {
            Appended::Stored(p) | Appended::Duplicate(p) => *p,
        }
    }
}

/// One event read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Where it is.
    pub position: Position,
    /// Its stream.
    pub stream: String,
    /// Its id, when the stored message has one (a foreign Kafka message may not).
    pub event_id: Option<Uuid>,
    /// Its bytes as appended.
    pub payload: Vec<u8>,
}

/// A partition and its high-water mark: the offset the next event will get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The partition.
    pub partition: u32,
    /// The number of events in it, which is the next offset.
    pub high_water: u64,
}

/// Why the log could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// An expectation failed; nothing of the batch was stored.
    #[error("stream {stream} was expected at {expected} but is at version {actual}; nothing of the batch was stored")]
    WrongExpectedVersion {
        /// The stream.
        stream: String,
        /// What was expected.
        expected: ExpectedVersion,
        /// Its version now.
        actual: u64,
    },
    /// A read named a partition the log does not have.
    #[error("partition {partition} does not exist (the log has {count})")]
    NoSuchPartition {
        /// The partition asked for.
        partition: u32,
        /// How many there are.
        count: u32,
    },
    /// The stored log was made with another partition count.
    #[error("the log has {found} partitions, not the {wanted} asked for; partitions cannot change without re-keying every stream")]
    PartitionCount {
        /// Stored count.
        found: u32,
        /// Requested count.
        wanted: u32,
    },
    /// An event without a stream name.
    #[error("event {0} has an empty stream")]
    EmptyStream(Uuid),
    /// The storage failed.
    #[error("log storage failed: {0}")]
    Storage(#[from] sqlx::Error),
    /// A backend-specific failure (broker unreachable, delivery failed).
    #[error("{0}")]
    Backend(String),
}

/// Appends batches atomically and idempotently.
#[async_trait]
pub trait Appender: Send + Sync {
    /// Appends `batch`; returns one outcome per event, in batch order. Durable on return.
    async fn append(&self, batch: AppendBatch) -> Result<Vec<Appended>, LogError>;
}

/// Finds where event ids are stored: the idempotency index.
#[async_trait]
pub trait IdIndex: Send + Sync {
    /// The positions of those of `ids` that are stored; absent ids are left out.
    async fn find_ids(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Position>, LogError>;
}

/// Reads partitions by offset: what a projection runner needs.
#[async_trait]
pub trait PartitionReader: Send + Sync {
    /// The number of partitions.
    fn partition_count(&self) -> u32;

    /// Up to `max` events of `partition` from offset `from` on, in offset order.
    async fn read_partition(
        &self,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<Record>, LogError>;

    /// Every partition with its high-water mark.
    async fn partitions(&self) -> Result<Vec<PartitionInfo>, LogError>;

    /// The number of records in the log: the sum of the high-water marks.
    async fn record_count(&self) -> Result<u64, LogError> {
        Ok(self.partitions().await?.iter().map(|p| p.high_water).sum())
    }
}

/// Reads one stream whole: what `history` needs.
#[async_trait]
pub trait StreamReader: Send + Sync {
    /// All events of `stream`, in order; empty for an unknown stream.
    async fn read_stream(&self, stream: &str) -> Result<Vec<Record>, LogError>;
}

/// What a projection runner reads: partitions by offset, and one stream whole when a fact
/// that arrived late makes it fold its subject again.
pub trait ProjectionLog: PartitionReader + StreamReader {}

impl<T: PartitionReader + StreamReader + ?Sized> ProjectionLog for T {}

/// A whole log backend: append, find ids, read partitions, read streams.
pub trait EventLog: Appender + IdIndex + ProjectionLog {}

impl<T: Appender + IdIndex + PartitionReader + StreamReader> EventLog for T {}

/// A shared log is a log: what one instance holds behind an `Arc` serves as well.
#[async_trait]
impl<T: Appender + ?Sized> Appender for std::sync::Arc<T> {
    async fn append(&self, batch: AppendBatch) -> Result<Vec<Appended>, LogError> {
        (**self).append(batch).await
    }
}

#[async_trait]
impl<T: IdIndex + ?Sized> IdIndex for std::sync::Arc<T> {
    async fn find_ids(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Position>, LogError> {
        (**self).find_ids(ids).await
    }
}

#[async_trait]
impl<T: PartitionReader + ?Sized> PartitionReader for std::sync::Arc<T> {
    fn partition_count(&self) -> u32 {
        (**self).partition_count()
    }

    async fn read_partition(
        &self,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<Record>, LogError> {
        (**self).read_partition(partition, from, max).await
    }

    async fn partitions(&self) -> Result<Vec<PartitionInfo>, LogError> {
        (**self).partitions().await
    }
}

#[async_trait]
impl<T: StreamReader + ?Sized> StreamReader for std::sync::Arc<T> {
    async fn read_stream(&self, stream: &str) -> Result<Vec<Record>, LogError> {
        (**self).read_stream(stream).await
    }
}
