//! The write side of `assist`: every event is validated against the catalog, its
//! personal fields are sealed with the person's key, and it is appended to the log.
//!
//! Two doors lead in: [`Recorder::record`] for caseworker services written in Rust, and
//! [`Recorder::ingest`] for JSON Lines from any other system. Both apply the same rules.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use assist_catalog::events::response::{ContactChannel, ContactMade};
//! use assist_catalog::{Actor, Event, EventData, RegionCode, Role, StaffId, StreamId};
//! use assist_ingest::Recorder;
//! use assist_log::Appended;
//!
//! let data_dir = tempfile::tempdir()?;
//! let recorder = Recorder::open_embedded(data_dir.path()).await?;
//! let caseworker = Actor {
//!     id: StaffId::new("cw-350121-007")?,
//!     role: Role::Caseworker,
//!     region: RegionCode::new("350121")?,
//! };
//! let person = StreamId::person(uuid::Uuid::now_v7());
//! let contact = Event::new(
//!     person,
//!     caseworker,
//!     EventData::ContactMade(ContactMade { alert_id: None, channel: ContactChannel::Phone }),
//! );
//! // Sending the same event again is safe: it is reported as a duplicate, not stored twice.
//! let first = recorder.record(vec![contact.clone()]).await?;
//! let again = recorder.record(vec![contact]).await?;
//! assert!(matches!(first[0], Appended::Stored(_)));
//! assert_eq!(again[0], Appended::Duplicate(first[0].position()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod erasure;
pub mod history;
mod lines;

pub use erasure::{EraseError, ErasureFact};
pub use lines::{Conflict, IngestOptions, IngestReport, Rejection, MAX_LINE_BYTES};

use assist_catalog::envelope::describe;
use assist_catalog::{Decoded, Event, EventData, Form, Personal, StreamId, SubjectKind};
use assist_log::{
    AppendBatch, Appended, EmbeddedLog, EventLog, ExpectedVersion, LogError, LogEvent, Position,
};
use assist_privacy::{Kek, KeyState, KeyStore, PrivacyError};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use uuid::Uuid;

/// The file of the embedded log inside a data dir.
pub const LOG_FILE: &str = "log.db";
/// The file of the key table inside a data dir.
pub const KEYS_FILE: &str = "keys.db";
/// The data dir's own key-encryption key, which wraps the keys of [`KEYS_FILE`] unless
/// another KEK file is given.
pub const KEK_FILE: &str = "kek";

/// Why events given through the Rust API were not recorded. Nothing of the call was stored.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// An event breaks the catalog's rules.
    #[error("event {index} ({event_id}) is not a valid fact: {reason}")]
    Invalid {
        /// Its index in the call.
        index: usize,
        /// Its id.
        event_id: Uuid,
        /// Every rule it breaks.
        reason: String,
    },
    /// An event carries personal data for a person whose key was destroyed.
    #[error("event {index} ({event_id}): personal data of {stream} was erased at {at}; it cannot be recorded again")]
    Erased {
        /// Its index in the call.
        index: usize,
        /// Its id.
        event_id: Uuid,
        /// The person.
        stream: StreamId,
        /// When the key was destroyed.
        at: DateTime<Utc>,
    },
    /// The log refused or failed (for example a stream not at the expected version).
    #[error(transparent)]
    Log(#[from] LogError),
    /// The key store failed.
    #[error(transparent)]
    Privacy(#[from] PrivacyError),
}

/// Validates, seals and appends events to one log with one key table.
pub struct Recorder {
    log: Arc<dyn EventLog>,
    keys: Arc<KeyStore>,
}

/// An event ready to seal, with where it came from (line or index) for error reports.
pub(crate) struct Pending {
    pub(crate) origin: usize,
    pub(crate) decoded: Decoded,
    /// Whether the sender gave `recorded_at` (else ingest set it to its clock).
    pub(crate) recorded_at_given: bool,
}

/// What sealing found wrong with one pending event.
pub(crate) struct ErasedSubject {
    pub(crate) origin: usize,
    pub(crate) event_id: Uuid,
    pub(crate) stream: StreamId,
    pub(crate) at: DateTime<Utc>,
    pub(crate) fact: Fact,
}

/// An event as the sender meant it, kept to tell a retry from a reuse of its id.
pub(crate) struct Fact {
    /// The event (personal fields plaintext or sealed).
    pub(crate) event: Event,
    /// Whether the sender gave `recorded_at`; when not, ingest's clock set it and it is no
    /// part of what was sent.
    pub(crate) recorded_at_given: bool,
}

/// What became of one appended event, with the fact it carried.
pub(crate) struct Outcome {
    pub(crate) origin: usize,
    pub(crate) appended: Appended,
    pub(crate) fact: Fact,
}

impl Recorder {
    /// A recorder over a log and a key table.
    pub fn new(log: Arc<dyn EventLog>, keys: Arc<KeyStore>) -> Self {
        Self { log, keys }
    }

    /// A recorder over the embedded log and key table in `data_dir` (created when missing),
    /// the keys wrapped by the data dir's own KEK file ([`KEK_FILE`], made when missing).
    pub async fn open_embedded(data_dir: &Path) -> Result<Self, RecordError> {
        Self::open_embedded_with(data_dir, None).await
    }

    /// As [`Recorder::open_embedded`], the keys wrapped by `kek` when given (a KEK kept
    /// outside the data dir, as production should).
    pub async fn open_embedded_with(
        data_dir: &Path,
        kek: Option<Kek>,
    ) -> Result<Self, RecordError> {
        create_dir(data_dir)?;
        let log = EmbeddedLog::open(&data_dir.join(LOG_FILE), None).await?;
        Self::open_with_log(data_dir, Arc::new(log), kek).await
    }

    /// A recorder over a read-only copy of an embedded data dir: it reads the log and opens
    /// personal fields (with `kek`, else the data dir's own KEK file when there is one),
    /// writing nothing to the copy; recording fails.
    pub async fn open_embedded_read_only(
        data_dir: &Path,
        kek: Option<Kek>,
    ) -> Result<Self, RecordError> {
        let log = EmbeddedLog::open_read_only(&data_dir.join(LOG_FILE)).await?;
        let own = data_dir.join(KEK_FILE);
        let kek = match kek {
            Some(kek) => Some(kek),
            None if own.exists() => Some(Kek::load(&own)?),
            None => None,
        };
        let keys = KeyStore::open_read_only(&data_dir.join(KEYS_FILE), kek).await?;
        Ok(Self::new(Arc::new(log), Arc::new(keys)))
    }

    /// A recorder over another log backend (Kafka), with the key table in `data_dir`, its
    /// keys wrapped by `kek` (else the data dir's own KEK file, made when missing).
    pub async fn open_with_log(
        data_dir: &Path,
        log: Arc<dyn EventLog>,
        kek: Option<Kek>,
    ) -> Result<Self, RecordError> {
        create_dir(data_dir)?;
        let kek = match kek {
            Some(kek) => kek,
            None => Kek::load_or_create(&data_dir.join(KEK_FILE))?,
        };
        let keys = KeyStore::open(&data_dir.join(KEYS_FILE), kek).await?;
        Ok(Self::new(log, Arc::new(keys)))
    }

    /// The log events are appended to.
    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    /// The key table personal fields are sealed with.
    pub fn keys(&self) -> &Arc<KeyStore> {
        &self.keys
    }

    /// Records typed events atomically: each is checked as ingest checks JSON, personal
    /// fields are sealed, and all are appended, or none when any is invalid.
    pub async fn record(&self, events: Vec<Event>) -> Result<Vec<Appended>, RecordError> {
        self.record_expecting(events, HashMap::new()).await
    }

    /// As [`Recorder::record`], failing with a conflict unless each named stream is at the
    /// expected version ("nobody wrote to this case since I read it").
    pub async fn record_expecting(
        &self,
        events: Vec<Event>,
        expected: HashMap<StreamId, ExpectedVersion>,
    ) -> Result<Vec<Appended>, RecordError> {
        let now = Utc::now();
        let mut pending = Vec::with_capacity(events.len());
        for (index, event) in events.into_iter().enumerate() {
            let found = event.violations(Form::Ingest { now });
            if !found.is_empty() {
                return Err(RecordError::Invalid {
                    index,
                    event_id: event.meta.event_id,
                    reason: describe(&found),
                });
            }
            let written_data = event.data.to_data();
            let written_version =
                assist_catalog::event_type(event.data.type_name()).map_or(1, |t| t.version);
            pending.push(Pending {
                origin: index,
                decoded: Decoded {
                    event,
                    written_version,
                    written_data,
                },
                recorded_at_given: true,
            });
        }
        let count = pending.len();
        let SealOutcome {
            ready,
            known,
            erased,
        } = self.seal(pending, now).await?;
        if let Some(e) = erased.into_iter().next() {
            return Err(RecordError::Erased {
                index: e.origin,
                event_id: e.event_id,
                stream: e.stream,
                at: e.at,
            });
        }
        let expected = expected
            .into_iter()
            .map(|(s, e)| (s.to_string(), e))
            .collect();
        let appended = self.append(ready, expected).await?;
        let mut outcomes: Vec<Option<Appended>> = vec![None; count];
        for (origin, pos, _) in known {
            outcomes[origin] = Some(Appended::Duplicate(pos));
        }
        for o in appended {
            outcomes[o.origin] = Some(o.appended);
        }
        Ok(outcomes.into_iter().flatten().collect())
    }

    /// Seals the personal fields of `pending` and turns each into a log event; events for
    /// subjects whose key was destroyed are set apart.
    pub(crate) async fn seal(
        &self,
        pending: Vec<Pending>,
        now: DateTime<Utc>,
    ) -> Result<SealOutcome, RecordError> {
        let mut subjects: Vec<String> = pending
            .iter()
            .filter(|p| has_personal(&p.decoded.event.data))
            .map(|p| p.decoded.event.meta.stream.to_string())
            .collect();
        subjects.sort_unstable();
        subjects.dedup();
        let keys = if subjects.is_empty() {
            HashMap::new()
        } else {
            self.keys.keys_for_sealing(&subjects, now).await?
        };
        let mut ready = Vec::with_capacity(pending.len());
        let mut erased: Vec<ErasedSubject> = Vec::new();
        for mut p in pending {
            let meta = &p.decoded.event.meta;
            let stream = meta.stream;
            if has_personal(&p.decoded.event.data) {
                match keys.get(&stream.to_string()) {
                    Some(KeyState::Present(key)) => {
                        assist_privacy::seal(&mut p.decoded.event.data, key)
                    }
                    Some(KeyState::Erased(at)) => {
                        erased.push(ErasedSubject {
                            origin: p.origin,
                            event_id: meta.event_id,
                            stream,
                            at: *at,
                            fact: Fact {
                                event: p.decoded.event,
                                recorded_at_given: p.recorded_at_given,
                            },
                        });
                        continue;
                    }
                    _ => {
                        return Err(PrivacyError::NoKey {
                            subject: stream.to_string(),
                        }
                        .into())
                    }
                }
            }
            let payload = p.decoded.to_bytes();
            ready.push(Ready {
                origin: p.origin,
                mark: ErasureMark::of(&p.decoded.event),
                event: LogEvent {
                    event_id: p.decoded.event.meta.event_id,
                    stream: stream.to_string(),
                    payload,
                },
                fact: Fact {
                    event: p.decoded.event,
                    recorded_at_given: p.recorded_at_given,
                },
            });
        }
        // A retried event that was stored before its subject was erased is a duplicate, not an error.
        let ids: Vec<Uuid> = erased.iter().map(|e| e.event_id).collect();
        let stored = if ids.is_empty() {
            HashMap::new()
        } else {
            self.log.find_ids(&ids).await?
        };
        let (known, erased): (Vec<_>, Vec<_>) = erased
            .into_iter()
            .partition(|e| stored.contains_key(&e.event_id));
        let known = known
            .into_iter()
            .filter_map(|e| Some((e.origin, *stored.get(&e.event_id)?, e.fact)))
            .collect();
        Ok(SealOutcome {
            ready,
            known,
            erased,
        })
    }

    /// Destroys the keys of the subjects whose `personal_data_erased` facts are in the
    /// batch, then appends it. The key goes first: destruction is the legal duty and the
    /// fact records it; if the append then fails, a retry records the fact (the key
    /// stays destroyed).
    pub(crate) async fn append(
        &self,
        ready: Vec<Ready>,
        expected: HashMap<String, ExpectedVersion>,
    ) -> Result<Vec<Outcome>, RecordError> {
        let mut marks = Vec::new();
        let mut events = Vec::with_capacity(ready.len());
        let mut facts = Vec::with_capacity(ready.len());
        for r in ready {
            marks.push(r.mark);
            events.push(r.event);
            facts.push((r.origin, r.fact));
        }
        for m in marks {
            if let ErasureMark::Erase { stream, at } = m {
                self.keys.erase(&stream.to_string(), at).await?;
            }
        }
        let appended = self.log.append(AppendBatch { events, expected }).await?;
        Ok(facts
            .into_iter()
            .zip(appended)
            .map(|((origin, fact), appended)| Outcome {
                origin,
                appended,
                fact,
            })
            .collect())
    }

    /// Whether `new` is the fact stored at `at` (its id is stored there): a retry, not a
    /// reuse of the id for another fact.
    pub(crate) async fn same_as_stored(
        &self,
        at: Position,
        new: &Fact,
    ) -> Result<bool, RecordError> {
        let record = self
            .log
            .read_partition(at.partition, at.offset, 1)
            .await?
            .into_iter()
            .find(|r| r.position == at)
            .ok_or_else(|| {
                LogError::Backend(format!(
                    "the id index names {at} for event {}, which holds no event",
                    new.event.meta.event_id
                ))
            })?;
        let stored = serde_json::from_slice(&record.payload)
            .ok()
            .and_then(|v| assist_catalog::decode(v, Form::Stored).ok());
        match stored {
            Some(stored) => self.same_fact(stored.event, new).await,
            // A stored event this catalog cannot read as a valid fact is not shown to be
            // the same one.
            None => Ok(false),
        }
    }

    /// Whether two events with one id are one fact, compared on what the sender wrote:
    ///
    /// - both decoded to the current schema version, so the same offer sent as
    ///   `job_offer_pushed` v1 and v2 is one fact, and key order or spacing never matter;
    /// - personal fields compared in plaintext: a sealed field is opened with the person's
    ///   key (sealing the same text twice gives other bytes, a fresh nonce each time); once
    ///   the key is destroyed nothing can be compared there, and both sides count as equal;
    /// - `recorded_at` ignored when the sender left it to ingest's clock.
    pub(crate) async fn same_fact(
        &self,
        mut stored: Event,
        new: &Fact,
    ) -> Result<bool, RecordError> {
        let mut new_event = new.event.clone();
        if !new.recorded_at_given {
            new_event.meta.recorded_at = stored.meta.recorded_at;
        }
        if has_personal(&stored.data) || has_personal(&new_event.data) {
            let subject = stored.meta.stream.to_string();
            match self.keys.key(&subject).await? {
                key @ KeyState::Present(_) => {
                    assist_privacy::reveal(&mut stored.data, &subject, &key)?;
                    assist_privacy::reveal(&mut new_event.data, &subject, &key)?;
                }
                KeyState::Erased(_) | KeyState::Missing => {
                    for data in [&mut stored.data, &mut new_event.data] {
                        for (_, value) in data.personal_fields_mut() {
                            *value = Personal::Plain(String::new());
                        }
                    }
                }
            }
        }
        Ok(stored == new_event)
    }
}

/// The result of sealing a set of pending events.
pub(crate) struct SealOutcome {
    /// Sealed and ready to append.
    pub(crate) ready: Vec<Ready>,
    /// Already stored (their subject has since been erased), by origin, with the new fact
    /// to compare with the stored one.
    pub(crate) known: Vec<(usize, assist_log::Position, Fact)>,
    /// New events with personal data for an erased subject: refused.
    pub(crate) erased: Vec<ErasedSubject>,
}

/// A sealed event ready to append, with where it came from.
pub(crate) struct Ready {
    pub(crate) origin: usize,
    pub(crate) mark: ErasureMark,
    pub(crate) event: LogEvent,
    pub(crate) fact: Fact,
}

/// Whether an appended event asks for a key to be destroyed.
pub(crate) enum ErasureMark {
    /// Nothing to do.
    None,
    /// Destroy the key of `stream`, as of `at`.
    Erase { stream: StreamId, at: DateTime<Utc> },
}

impl ErasureMark {
    fn of(event: &Event) -> Self {
        match (&event.data, event.meta.stream.kind) {
            (EventData::PersonalDataErased(_), SubjectKind::Person) => ErasureMark::Erase {
                stream: event.meta.stream,
                at: event.meta.recorded_at,
            },
            _ => ErasureMark::None,
        }
    }
}

fn create_dir(dir: &Path) -> Result<(), RecordError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        LogError::Backend(format!("cannot create data dir {}: {e}", dir.display())).into()
    })
}

fn has_personal(data: &EventData) -> bool {
    matches!(
        data,
        EventData::PersonRegistered(_) | EventData::PersonalDetailsCorrected(_)
    )
}
