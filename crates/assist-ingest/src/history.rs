//! Reading one stream back: every record decoded in its stored form (older schema versions
//! upcast) and its personal fields opened with the person's key, or shown as erased.

use crate::{RecordError, Recorder};
use assist_catalog::{decode, Event, Form, StreamId};
use assist_log::{Position, Record};
use serde_json::Value;

/// One event of a history, decoded and revealed, or why it could not be.
pub struct Entry {
    /// Where it is in the log.
    pub position: Position,
    /// The schema version it was written in.
    pub written_version: u32,
    /// The event, or why it cannot be read.
    pub event: Result<Event, String>,
    /// The record as stored (its bytes are checked against the audit trail's hash).
    pub record: Record,
}

impl Recorder {
    /// Reads `stream` from the log, decodes every event and opens its personal fields.
    pub async fn history(&self, stream: &StreamId) -> Result<Vec<Entry>, RecordError> {
        let key = self.keys().key(&stream.to_string()).await?;
        let records = self.log().read_stream(&stream.to_string()).await?;
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            let decoded = serde_json::from_slice::<Value>(&r.payload)
                .map_err(|e| format!("stored bytes are not JSON: {e}"))
                .and_then(|v| decode(v, Form::Stored).map_err(|e| e.to_string()));
            let (written_version, event) = match decoded {
                Ok(d) => {
                    let mut event = d.event;
                    let opened = assist_privacy::reveal(&mut event.data, &stream.to_string(), &key)
                        .map(|()| event)
                        .map_err(|e| e.to_string());
                    (d.written_version, opened)
                }
                Err(reason) => (0, Err(reason)),
            };
            out.push(Entry {
                position: r.position,
                written_version,
                event,
                record: r,
            });
        }
        Ok(out)
    }
}
