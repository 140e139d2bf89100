//! JSON Schemas of the catalog, one per event type and schema version, generated from
//! the Rust types so that services in any language can validate before they send.

use crate::envelope::Actor;
use crate::ids::SubjectKind;
use crate::registry::{Subjects, EVENT_TYPES, LEGACY_VERSIONS};
use schemars::gen::{SchemaGenerator, SchemaSettings};
use schemars::schema::{InstanceType, Metadata, Schema, SchemaObject, StringValidation};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// A string schema with a pattern and a description; used by the validated id types.
pub fn string_pattern(pattern: &str, description: &str) -> Schema {
    SchemaObject {
        instance_type: Some(InstanceType::String.into()),
        string: Some(Box::new(StringValidation {
            pattern: Some(pattern.into()),
            ..Default::default()
        })),
        metadata: Some(Box::new(Metadata {
            description: Some(description.into()),
            ..Default::default()
        })),
        ..Default::default()
    }
    .into()
}

fn stream_schema(subjects: Subjects) -> Value {
    let uuid = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
    let prefix = match subjects {
        Subjects::Person => SubjectKind::Person.prefix().to_string(),
        Subjects::Household => SubjectKind::Household.prefix().to_string(),
        Subjects::Both => "(person|household)".to_string(),
    };
    json!({
        "type": "string",
        "pattern": format!("^{prefix}-{uuid}$"),
        "description": "the case subject this event is about",
    })
}

fn envelope_schema(
    name: &str,
    version: u32,
    subjects: Subjects,
    data: fn(&mut SchemaGenerator) -> Schema,
) -> Value {
    let mut gen = SchemaSettings::draft07().into_generator();
    let data = data(&mut gen);
    let actor = gen.subschema_for::<Actor>();
    let definitions = gen.take_definitions();
    let uuid = json!({"type": "string", "format": "uuid"});
    let time = json!({"type": "string", "format": "date-time"});
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": format!("{name} v{version}"),
        "description": format!("The `{name}` event, schema version {version}, as sent to assist ingest and as stored in the log (personal fields sealed)."),
        "type": "object",
        "additionalProperties": false,
        "required": ["event_id", "stream", "type", "schema_version", "occurred_at", "actor", "data"],
        "properties": {
            "event_id": {"type": "string", "format": "uuid", "description": "UUIDv7; the idempotency key: the same id twice is one fact"},
            "stream": stream_schema(subjects),
            "type": {"const": name},
            "schema_version": {"const": version},
            "occurred_at": merge(&time, "when it happened (business time), RFC 3339 with offset"),
            "recorded_at": merge(&time, "when it was recorded (system time); set by ingest when absent"),
            "actor": actor,
            "correlation_id": merge(&uuid, "shared by every event of one piece of work; defaults to event_id"),
            "causation_id": {"type": ["string", "null"], "format": "uuid", "description": "the event that caused this one"},
            "data": data,
        },
        "definitions": definitions,
    })
}

fn merge(base: &Value, description: &str) -> Value {
    let mut v = base.clone();
    v["description"] = json!(description);
    v
}

/// Every schema of the catalog, keyed by file name (`contact_made.v1.json`).
pub fn all_schemas() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for t in EVENT_TYPES {
        out.insert(
            format!("{}.v{}.json", t.name, t.version),
            envelope_schema(t.name, t.version, t.subjects, t.data_schema),
        );
    }
    for l in LEGACY_VERSIONS {
        let subjects = crate::registry::event_type(l.name).map_or(Subjects::Both, |t| t.subjects);
        out.insert(
            format!("{}.v{}.json", l.name, l.version),
            envelope_schema(l.name, l.version, subjects, l.data_schema),
        );
    }
    out
}

/// The text a schema file holds: pretty JSON and a final newline.
pub fn schema_text(schema: &Value) -> String {
    let mut s = serde_json::to_string_pretty(schema).unwrap_or_default();
    s.push('\n');
    s
}
