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

mod lines;

pub use lines::{IngestOptions, IngestReport, Rejection, MAX_LINE_BYTES};

use assist_catalog::envelope::describe;
use assist_catalog::{Decoded, Event, EventData, Form, StreamId, SubjectKind};
use assist_log::{
    AppendBatch, Appended, EmbeddedLog, EventLog, ExpectedVersion, LogError, LogEvent,
};
use assist_privacy::{KeyState, KeyStore, PrivacyError};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use uuid::Uuid;

/// The file of the embedded log inside a data dir.
pub const LOG_FILE: &str = "log.db";
/// The file of the key table inside a data dir.
pub const KEYS_FILE: &str = "keys.db";

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
}

/// What sealing found wrong with one pending event.
pub(crate) struct ErasedSubject {
    pub(crate) origin: usize,
    pub(crate) event_id: Uuid,
    pub(crate) stream: StreamId,
    pub(crate) at: DateTime<Utc>,
}

impl Recorder {
    /// A recorder over a log and a key table.
    pub fn new(log: Arc<dyn EventLog>, keys: Arc<KeyStore>) -> Self {
        Self { log, keys }
    }

    /// A recorder over the embedded log and key table in `data_dir` (created when missing).
    pub async fn open_embedded(data_dir: &Path) -> Result<Self, RecordError> {
        create_dir(data_dir)?;
        let log = EmbeddedLog::open(&data_dir.join(LOG_FILE), None).await?;
        Self::open_with_log(data_dir, Arc::new(log)).await
    }

    /// A recorder over another log backend (Kafka), with the key table in `data_dir`.
    pub async fn open_with_log(
        data_dir: &Path,
        log: Arc<dyn EventLog>,
    ) -> Result<Self, RecordError> {
        create_dir(data_dir)?;
        let keys = KeyStore::open(&data_dir.join(KEYS_FILE)).await?;
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
        let origins: Vec<usize> = ready.iter().map(|r| r.origin).collect();
        let appended = self.append(ready, expected).await?;
        let mut outcomes: Vec<Option<Appended>> = vec![None; count];
        for (origin, pos) in known {
            outcomes[origin] = Some(Appended::Duplicate(pos));
        }
        for (origin, outcome) in origins.into_iter().zip(appended) {
            outcomes[origin] = Some(outcome);
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
            ready.push(Ready {
                origin: p.origin,
                mark: ErasureMark::of(&p.decoded.event),
                event: LogEvent {
                    event_id: p.decoded.event.meta.event_id,
                    stream: stream.to_string(),
                    payload: p.decoded.to_bytes(),
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
            .map(|e| (e.origin, stored[&e.event_id]))
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
    ) -> Result<Vec<Appended>, RecordError> {
        let mut marks = Vec::new();
        let mut events = Vec::with_capacity(ready.len());
        for r in ready {
            marks.push(r.mark);
            events.push(r.event);
        }
        for m in marks {
            if let ErasureMark::Erase { stream, at } = m {
                self.keys.erase(&stream.to_string(), at).await?;
            }
        }
        Ok(self.log.append(AppendBatch { events, expected }).await?)
    }
}

/// The result of sealing a set of pending events.
pub(crate) struct SealOutcome {
    /// Sealed and ready to append.
    pub(crate) ready: Vec<Ready>,
    /// Already stored (duplicates whose subject has since been erased), by origin.
    pub(crate) known: Vec<(usize, assist_log::Position)>,
    /// New events with personal data for an erased subject: refused.
    pub(crate) erased: Vec<ErasedSubject>,
}

/// A sealed event ready to append, with where it came from.
pub(crate) struct Ready {
    pub(crate) origin: usize,
    pub(crate) mark: ErasureMark,
    pub(crate) event: LogEvent,
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
