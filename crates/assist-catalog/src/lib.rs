//! The event catalog of `assist`: the envelope, every event type caseworkers record,
//! the rules that make an event a valid fact, JSON Schemas and upcasters.
//!
//! Services in Rust build [`Event`]s with typed payloads; services in other languages
//! send the JSON described by the schemas under `events/` and are held to the same rules
//! by [`decode`].

pub mod envelope;
pub mod events;
pub mod ids;
pub mod personal;
pub mod region;
pub mod registry;
pub mod schema;
pub mod violation;
pub mod wire;

pub use envelope::{
    decode, decode_stored, decode_wire, decode_wire_event, Actor, Decoded, Event, Form, Meta, Role,
    WireEvent,
};
pub use ids::{StaffId, StreamId, SubjectKind};
pub use personal::{Personal, Sealed};
pub use region::{RegionCode, RegionPrefix};
pub use registry::{
    decode_data, event_type, redact, EventData, EventError, EventType, EVENT_TYPES,
};
pub use violation::Violation;
