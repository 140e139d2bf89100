//! Erasing one person's personal data (crypto-shredding): the key is destroyed first (the
//! legal duty), then a `personal_data_erased` fact records it, once. What `assist erase`
//! and the service's admin endpoint both do.

use crate::{RecordError, Recorder};
use assist_catalog::events::person::{ErasureReason, PersonalDataErased};
use assist_catalog::{Actor, Event, EventData, RegionCode, Role, StaffId, StreamId};
use assist_log::Position;
use assist_privacy::PrivacyError;
use chrono::Utc;
use uuid::Uuid;

/// How the erasure is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErasureFact {
    /// Recorded now: the fact's id and position.
    Recorded(Uuid, Position),
    /// An earlier erasure already recorded it (only the key was destroyed again).
    AlreadyRecorded(Uuid),
}

/// Why an erasure did not finish; each step fails in its own way.
#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    /// The stream has no readable events: there is nobody to erase.
    #[error("the stream has no events")]
    NoEvents,
    /// The person's history could not be read.
    #[error(transparent)]
    Read(RecordError),
    /// The key could not be destroyed (or a copy of it may remain: run it again).
    #[error(transparent)]
    DestroyKey(PrivacyError),
    /// The key is destroyed but the fact could not be appended.
    #[error(transparent)]
    Record(RecordError),
}

impl Recorder {
    /// Destroys the key of person `stream` and records the erasure, ordered by `by` for the
    /// office of `region` (default: the person's registration region, else the region of
    /// the last event's actor).
    pub async fn erase_person(
        &self,
        stream: StreamId,
        by: StaffId,
        region: Option<RegionCode>,
        reason: ErasureReason,
    ) -> Result<ErasureFact, EraseError> {
        let history = self.history(&stream).await.map_err(EraseError::Read)?;
        let events: Vec<&Event> = history
            .iter()
            .filter_map(|e| e.event.as_ref().ok())
            .collect();
        let Some(last) = events.last() else {
            return Err(EraseError::NoEvents);
        };
        let region = region.unwrap_or_else(|| {
            events
                .iter()
                .find_map(|e| match &e.data {
                    EventData::PersonRegistered(p) => Some(p.region.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| last.meta.actor.region.clone())
        });
        let already = events
            .iter()
            .find(|e| matches!(e.data, EventData::PersonalDataErased(_)))
            .map(|e| e.meta.event_id);
        let subject = stream.to_string();
        self.keys()
            .erase(&subject, Utc::now())
            .await
            .map_err(EraseError::DestroyKey)?;
        if let Some(id) = already {
            return Ok(ErasureFact::AlreadyRecorded(id));
        }
        let actor = Actor {
            id: by,
            role: Role::Service,
            region,
        };
        let fact = Event::new(
            stream,
            actor,
            EventData::PersonalDataErased(PersonalDataErased { reason }),
        );
        let event_id = fact.meta.event_id;
        let out = self.record(vec![fact]).await.map_err(EraseError::Record)?;
        let position =
            out.first()
                .map(|a| a.position())
                .ok_or(EraseError::Record(RecordError::Log(
                    assist_log::LogError::Backend("the erasure fact was not appended".into()),
                )))?;
        Ok(ErasureFact::Recorded(event_id, position))
    }
}
