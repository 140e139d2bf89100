//! The checked-in catalog under `events/` agrees with the Rust types.
//!
//! Regenerate the schemas after changing a type: `UPDATE_SCHEMAS=1 cargo test -p assist-catalog`
//! (or `assist catalog write`), then review the diff.

use assist_catalog::envelope::Form;
use assist_catalog::registry::{EVENT_TYPES, LEGACY_VERSIONS};
use assist_catalog::schema::{all_schemas, schema_text};
use chrono::Utc;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

fn files_in(dir: &str) -> BTreeSet<String> {
    fs::read_dir(events_dir().join(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect()
}

#[test]
fn checked_in_schemas_equal_the_ones_generated_from_the_types() {
    let generated = all_schemas();
    let dir = events_dir().join("schemas");
    if std::env::var_os("UPDATE_SCHEMAS").is_some() {
        for f in files_in("schemas") {
            fs::remove_file(dir.join(f)).unwrap();
        }
        for (name, schema) in &generated {
            fs::write(dir.join(name), schema_text(schema)).unwrap();
        }
    }
    let expected: BTreeSet<String> = generated.keys().cloned().collect();
    assert_eq!(
        files_in("schemas"),
        expected,
        "schema files differ from the catalog; run UPDATE_SCHEMAS=1 cargo test -p assist-catalog"
    );
    for (name, schema) in &generated {
        let on_disk = fs::read_to_string(dir.join(name)).unwrap();
        assert_eq!(
            on_disk,
            schema_text(schema),
            "events/schemas/{name} is stale; run UPDATE_SCHEMAS=1 cargo test -p assist-catalog"
        );
    }
}

#[test]
fn every_type_and_version_has_one_example() {
    let mut expected: BTreeSet<String> = EVENT_TYPES
        .iter()
        .map(|t| format!("{}.v{}.json", t.name, t.version))
        .collect();
    expected.extend(
        LEGACY_VERSIONS
            .iter()
            .map(|l| format!("{}.v{}.json", l.name, l.version)),
    );
    assert_eq!(files_in("examples"), expected);
}

#[test]
fn every_example_validates_against_its_checked_in_schema() {
    for name in files_in("examples") {
        let example: Value = serde_json::from_str(
            &fs::read_to_string(events_dir().join("examples").join(&name)).unwrap(),
        )
        .unwrap();
        let schema: Value = serde_json::from_str(
            &fs::read_to_string(events_dir().join("schemas").join(&name)).unwrap(),
        )
        .unwrap();
        let validator = jsonschema::draft7::new(&schema).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&example)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
    }
}

#[test]
fn a_schema_rejects_what_the_decoder_rejects_for_a_wrong_stream_kind() {
    // The schemas carry the subject rule too, so a Python service learns it before sending.
    let mut example: Value = serde_json::from_str(
        &fs::read_to_string(events_dir().join("examples/household_cleared.v1.json")).unwrap(),
    )
    .unwrap();
    example["stream"] = Value::from("person-0192f0c1-8a3b-7cde-9f00-0123456789ab");
    let schema: Value = serde_json::from_str(
        &fs::read_to_string(events_dir().join("schemas/household_cleared.v1.json")).unwrap(),
    )
    .unwrap();
    assert!(!jsonschema::draft7::new(&schema).unwrap().is_valid(&example));
    let err = assist_catalog::decode(example, Form::Ingest { now: Utc::now() }).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"stream: event type "household_cleared" does not belong on a person stream"#
    );
}

#[test]
fn every_example_decodes_as_a_valid_fact_in_ingest_form() {
    for name in files_in("examples") {
        let example: Value = serde_json::from_str(
            &fs::read_to_string(events_dir().join("examples").join(&name)).unwrap(),
        )
        .unwrap();
        let decoded = assist_catalog::decode(example, Form::Ingest { now: Utc::now() });
        assert!(decoded.is_ok(), "{name}: {}", decoded.unwrap_err());
    }
}
