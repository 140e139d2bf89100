//! The envelope every event travels in, its JSON wire form, and the rules that make it a valid fact.

use crate::ids::{StaffId, StreamId};
use crate::personal::Personal;
use crate::region::RegionCode;
use crate::registry::{decode_data, event_type, join, EventData, EventError};
use crate::violation::{Violation, Violations};
use chrono::{DateTime, Duration, TimeZone, Timelike, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// The role an actor acts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A caseworker (帮扶专员) recording work.
    Caseworker,
    /// A supervisor.
    Supervisor,
    /// An integrated system (data-sharing feed, job board).
    Service,
    /// An auditor.
    Auditor,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Caseworker => "caseworker",
            Role::Supervisor => "supervisor",
            Role::Service => "service",
            Role::Auditor => "auditor",
        })
    }
}

/// Who recorded an event: a pseudonymous id, a role and the 6-digit region of their office.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    /// Pseudonymous staff or system id.
    pub id: StaffId,
    /// The role acted in.
    pub role: Role,
    /// The region of the actor's office.
    pub region: RegionCode,
}

/// Everything about an event except its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// UUIDv7; the idempotency key: the same id twice is one fact.
    pub event_id: Uuid,
    /// The case subject.
    pub stream: StreamId,
    /// When it happened (business time).
    pub occurred_at: DateTime<Utc>,
    /// When it was recorded (system time).
    pub recorded_at: DateTime<Utc>,
    /// Who recorded it.
    pub actor: Actor,
    /// The id shared by every event of one piece of work.
    pub correlation_id: Uuid,
    /// The event that caused this one, if any.
    pub causation_id: Option<Uuid>,
}

/// A decoded event: the envelope and its payload at the current schema version.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The envelope fields.
    pub meta: Meta,
    /// The payload.
    pub data: EventData,
}

/// The JSON form of an event, as services send it and as the log stores it. `data` is a
/// JSON value (upcast and checked field by field); a reader that only wants events valid at
/// their current version can leave it as raw text (`WireEvent<&RawValue>`, see
/// [`decode_stored`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireEvent<D = Value> {
    /// UUIDv7.
    #[serde(deserialize_with = "de_uuid")]
    pub event_id: Uuid,
    /// `person-<uuid>` or `household-<uuid>`.
    pub stream: StreamId,
    /// The event type.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The schema version `data` was written in.
    pub schema_version: u32,
    /// Business time.
    #[serde(deserialize_with = "de_time")]
    pub occurred_at: DateTime<Utc>,
    /// System time; set by ingest when a service leaves it out.
    #[serde(
        default,
        deserialize_with = "de_opt_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub recorded_at: Option<DateTime<Utc>>,
    /// Who recorded it.
    pub actor: Actor,
    /// Defaults to the event's own id at ingest.
    #[serde(
        default,
        deserialize_with = "de_opt_uuid",
        skip_serializing_if = "Option::is_none"
    )]
    pub correlation_id: Option<Uuid>,
    /// The causing event, if any.
    #[serde(default, deserialize_with = "de_opt_uuid")]
    pub causation_id: Option<Uuid>,
    /// The payload, checked against the type's schema.
    pub data: D,
}

/// Where an event is being read: sent to ingest (plaintext personal data, times checked
/// against the clock) or read back from the log (personal data sealed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Sent by a service; `now` is the ingest clock.
    Ingest {
        /// The ingest clock.
        now: DateTime<Utc>,
    },
    /// Read back from the log.
    Stored,
}

/// How far a `recorded_at` may lie ahead of the ingest clock (clock skew between services).
pub const CLOCK_SKEW: Duration = Duration::minutes(5);

/// The earliest business time accepted: older "facts" are typing errors.
pub fn earliest_occurred_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// An event decoded from JSON, remembering the version and payload as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The event, upcast to the current version.
    pub event: Event,
    /// The schema version it was written in.
    pub written_version: u32,
    /// `data` as written (kept for older versions: a stored event is never rewritten).
    pub written_data: Value,
}

impl Decoded {
    /// The JSON the log stores: the written version, with the (sealed) current payload
    /// when that is the written version.
    pub fn to_wire(&self) -> WireEvent {
        let current = event_type(self.event.data.type_name()).map(|t| t.version);
        let data = if current == Some(self.written_version) {
            self.event.data.to_data()
        } else {
            self.written_data.clone()
        };
        let mut wire = self.event.to_wire();
        wire.schema_version = self.written_version;
        wire.data = data;
        wire
    }

    /// The stored bytes: compact JSON of [`Decoded::to_wire`].
    pub fn to_bytes(&self) -> Vec<u8> {
        // A WireEvent has only string keys and finite numbers: serializing it cannot fail.
        serde_json::to_vec(&self.to_wire()).unwrap_or_default()
    }
}

impl Event {
    /// A new event happening now, with a fresh UUIDv7 and its own id as correlation.
    pub fn new(stream: StreamId, actor: Actor, data: EventData) -> Self {
        let now = Utc::now();
        let event_id = Uuid::now_v7();
        Event {
            meta: Meta {
                event_id,
                stream,
                occurred_at: now,
                recorded_at: now,
                actor,
                correlation_id: event_id,
                causation_id: None,
            },
            data,
        }
    }

    /// Sets the business time (when the step really happened).
    pub fn occurred_at(mut self, at: DateTime<Utc>) -> Self {
        self.meta.occurred_at = at;
        self
    }

    /// Marks this event as caused by `cause`, sharing its correlation id.
    pub fn caused_by(mut self, cause: &Event) -> Self {
        self.meta.correlation_id = cause.meta.correlation_id;
        self.meta.causation_id = Some(cause.meta.event_id);
        self
    }

    /// The wire form at the current schema version.
    pub fn to_wire(&self) -> WireEvent {
        let m = &self.meta;
        WireEvent {
            event_id: m.event_id,
            stream: m.stream,
            type_name: self.data.type_name().to_string(),
            schema_version: event_type(self.data.type_name()).map_or(1, |t| t.version),
            occurred_at: m.occurred_at,
            recorded_at: Some(m.recorded_at),
            actor: m.actor.clone(),
            correlation_id: Some(m.correlation_id),
            causation_id: m.causation_id,
            data: self.data.to_data(),
        }
    }

    /// Every rule this event breaks in `form`; empty for a valid fact.
    pub fn violations(&self, form: Form) -> Vec<Violation> {
        let m = &self.meta;
        let mut v = Violations::default();
        let version = m.event_id.get_version_num();
        v.check_with(version == 7, "event_id", || {
            format!("must be a UUIDv7 (time-ordered), got version {version}")
        });
        v.check(
            m.causation_id != Some(m.event_id),
            "causation_id",
            "an event cannot cause itself",
        );
        let name = self.data.type_name();
        if let Some(t) = event_type(name) {
            v.check_with(t.subjects.admits(m.stream.kind), "stream", || {
                format!(
                    "event type {name:?} does not belong on a {} stream",
                    m.stream.kind.prefix()
                )
            });
        }
        v.check_with(m.occurred_at <= m.recorded_at, "occurred_at", || {
            format!(
                "{} is after recorded_at {}",
                m.occurred_at
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                m.recorded_at
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            )
        });
        v.check_with(
            m.occurred_at >= earliest_occurred_at(),
            "occurred_at",
            || {
                format!(
                    "{} is before 2000-01-01",
                    m.occurred_at
                        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                )
            },
        );
        if let Form::Ingest { now } = form {
            // chrono reads `23:59:60` as a leap second; stored events keep what they have.
            for (field, at) in [
                ("occurred_at", m.occurred_at),
                ("recorded_at", m.recorded_at),
            ] {
                v.check(
                    at.nanosecond() < 1_000_000_000,
                    field,
                    "has second 60 (a leap second); times in assist have none, write 23:59:59 or the next minute",
                );
            }
            v.check_with(m.recorded_at <= now + CLOCK_SKEW, "recorded_at", || {
                format!(
                    "{} is in the future (ingest clock {}, 5 minutes of skew allowed)",
                    m.recorded_at
                        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                    now.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                )
            });
        }
        for (field, value) in self.data.personal_fields() {
            match (form, value) {
                (Form::Ingest { .. }, Personal::Sealed(_)) => v.push(
                    format!("data.{field}"),
                    "must be plaintext when sent; assist seals personal data itself",
                ),
                (Form::Stored, Personal::Plain(_)) => v.push(
                    format!("data.{field}"),
                    "is stored unsealed (value not shown)",
                ),
                _ => {}
            }
        }
        let mut found = v.into_vec();
        found.extend(self.data.violations());
        found
    }
}

/// Decodes one JSON object into a valid event, or says exactly why it is not one.
pub fn decode(value: Value, form: Form) -> Result<Decoded, EventError> {
    if !value.is_object() {
        return Err(invalid(
            "",
            format!("an event must be a JSON object, found {}", kind_of(&value)),
        ));
    }
    let refuse_nul = matches!(form, Form::Ingest { .. });
    let wire: WireEvent =
        crate::wire::from_value(value, "", refuse_nul).map_err(|v| EventError::Invalid(vec![v]))?;
    decode_wire(wire, form)
}

/// Decodes an already parsed wire event (see [`decode`]).
pub fn decode_wire(wire: WireEvent, form: Form) -> Result<Decoded, EventError> {
    let written_version = wire.schema_version;
    let written_data = wire.data.clone();
    Ok(Decoded {
        event: decode_wire_event(wire, form)?,
        written_version,
        written_data,
    })
}

/// Decodes a wire event into the current types without keeping what was written: the
/// path of readers that need only the event (the projections).
pub fn decode_wire_event(wire: WireEvent, form: Form) -> Result<Event, EventError> {
    let (recorded_at, correlation_id) = match form {
        Form::Ingest { now } => (
            wire.recorded_at.unwrap_or(now),
            wire.correlation_id.unwrap_or(wire.event_id),
        ),
        Form::Stored => (
            wire.recorded_at
                .ok_or_else(|| invalid("", "missing field `recorded_at`"))?,
            wire.correlation_id
                .ok_or_else(|| invalid("", "missing field `correlation_id`"))?,
        ),
    };
    let data = decode_data(&wire.type_name, wire.schema_version, wire.data)?;
    let event = Event {
        meta: Meta {
            event_id: wire.event_id,
            stream: wire.stream,
            occurred_at: wire.occurred_at,
            recorded_at,
            actor: wire.actor,
            correlation_id,
            causation_id: wire.causation_id,
        },
        data,
    };
    let found = event.violations(form);
    if !found.is_empty() {
        return Err(EventError::Invalid(found));
    }
    Ok(event)
}

/// An event read back from the log, decoded straight from its bytes with no JSON value in
/// between: `Some` only when it is valid at its type's current version (what the log holds
/// almost always). `None` says nothing about why: ask [`decode_wire_event`] or [`decode`],
/// which upcast older versions and name what is wrong. The projection reads every event of
/// the log, and building a JSON value for each `data` was a fifth of its decoding.
pub fn decode_stored(bytes: &[u8]) -> Option<Event> {
    // serde also reads a struct from an array of its fields: an event is an object.
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return None;
    }
    let wire: WireEvent<&serde_json::value::RawValue> = serde_json::from_slice(bytes).ok()?;
    let data = crate::registry::decode_current_text(
        &wire.type_name,
        wire.schema_version,
        wire.data.get(),
    )?;
    let event = Event {
        meta: Meta {
            event_id: wire.event_id,
            stream: wire.stream,
            occurred_at: wire.occurred_at,
            recorded_at: wire.recorded_at?,
            actor: wire.actor,
            correlation_id: wire.correlation_id?,
            causation_id: wire.causation_id,
        },
        data,
    };
    event.violations(Form::Stored).is_empty().then_some(event)
}

fn invalid(path: &str, message: impl Into<String>) -> EventError {
    EventError::Invalid(vec![Violation {
        path: path.to_string(),
        message: message.into(),
    }])
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn parse_uuid<E: serde::de::Error>(s: &str) -> Result<Uuid, E> {
    Uuid::try_parse(s).map_err(|_| {
        E::custom(format!(
            "text ({}) is not a UUID",
            crate::violation::length(s)
        ))
    })
}

fn de_uuid<'de, D: Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
    parse_uuid(&String::deserialize(d)?)
}

fn de_opt_uuid<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Uuid>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|s| parse_uuid(&s))
        .transpose()
}

fn parse_time<E: serde::de::Error>(s: &str) -> Result<DateTime<Utc>, E> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            E::custom(format!(
                "text ({}) is not an RFC 3339 timestamp with offset (like 2026-03-01T09:30:00+08:00)",
                crate::violation::length(s)
            ))
        })
}

fn de_time<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    parse_time(&String::deserialize(d)?)
}

fn de_opt_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|s| parse_time(&s))
        .transpose()
}

impl std::fmt::Display for Decoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}",
            self.event.meta.event_id,
            self.event.data.type_name()
        )
    }
}

/// Joins violations the way rejections print them: `a: x; b: y`.
pub fn describe(violations: &[Violation]) -> String {
    join(violations)
}
