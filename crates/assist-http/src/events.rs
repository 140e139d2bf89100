//! `POST /v1/events`: events in the ingest form, as a JSON array, as JSON Lines
//! (`application/x-ndjson`), or as `{"events": [...], "expected": {stream: version}}`;
//! checked, sealed and appended exactly as `assist ingest` does, every event reported.

use crate::auth::{Caller, Role};
use crate::problem::{Kind, Problem};
use crate::App;
use assist_catalog::StreamId;
use assist_ingest::{IngestReport, RecordError};
use assist_log::{ExpectedVersion, LogError, Position};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// `?atomic=true`: store nothing when any event is bad.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WriteParams {
    /// Store nothing when any event is bad.
    #[serde(default)]
    pub atomic: bool,
}

/// The object form of a body: events and the versions their streams must be at.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Submission<'a> {
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
    #[serde(default)]
    expected: HashMap<String, Value>,
}

/// The body's form, told by its content type.
enum Form {
    Json,
    Lines,
}

fn form_of(headers: &HeaderMap) -> Result<Form, Problem> {
    let unsupported = || {
        Problem::new(
            Kind::UnsupportedMediaType,
            "the body must be application/json (an array of events, or {events, expected}) or application/x-ndjson (one event per line)",
        )
    };
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unsupported)?;
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Ok(Form::Json),
        "application/x-ndjson" | "application/jsonl" | "application/json-seq" => Ok(Form::Lines),
        _ => Err(unsupported()),
    }
}

/// Where serde found the body malformed, without repeating any of it.
fn malformed(e: &serde_json::Error) -> Problem {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => "malformed JSON",
        Category::Data => {
            "the body must be an array of events or an object {\"events\": [...], \"expected\": {...}}"
        }
    };
    Problem::new(
        Kind::MalformedJson,
        format!("{what} at line {} column {}", e.line(), e.column()),
    )
}

/// A count of events written as a JSON number: `3`, or `3.0` (JSON Schema's integers
/// include it), up to 2^53 - 1.
fn count(n: &serde_json::Number) -> Option<u64> {
    const MAX: u64 = (1 << 53) - 1;
    if let Some(u) = n.as_u64() {
        return (u <= MAX).then_some(u);
    }
    let f = n.as_f64()?;
    (f >= 0.0 && f.fract() == 0.0 && f <= MAX as f64).then_some(f as u64)
}

fn parse_expected(
    raw: HashMap<String, Value>,
) -> Result<HashMap<StreamId, ExpectedVersion>, Problem> {
    let mut out = HashMap::new();
    for (stream, v) in raw {
        let id: StreamId = stream.parse().map_err(|_| {
            Problem::new(
                Kind::BadParameter,
                format!(
                    "a stream named in `expected` ({} chars) is not person-<uuid> or household-<uuid>",
                    stream.chars().count()
                ),
            )
        })?;
        let version = match &v {
            Value::String(s) if s == "any" => ExpectedVersion::Any,
            Value::String(s) if s == "no_stream" => ExpectedVersion::NoStream,
            Value::Number(n) if count(n).is_some() => {
                ExpectedVersion::Exact(count(n).unwrap_or_default())
            }
            _ => {
                return Err(Problem::new(
                    Kind::BadParameter,
                    format!("the expected version of {id} must be \"any\", \"no_stream\" or a count of events"),
                ))
            }
        };
        out.insert(id, version);
    }
    Ok(out)
}

/// Refuses a JSON body with an element that is no object: not an event of any type, so
/// the body is not of the documented shape (an object that is no valid event is reported
/// per event instead).
fn objects_only(items: &[&RawValue]) -> Result<(), Problem> {
    match items.iter().position(|r| !r.get().starts_with('{')) {
        None => Ok(()),
        Some(index) => Err(Problem::new(
            Kind::MalformedJson,
            format!("event {index} (0-based) is not a JSON object; nothing was stored"),
        )
        .with("index", json!(index))),
    }
}

/// The events' texts of a body and the versions their streams must be at.
type Split<'a> = (Vec<&'a [u8]>, HashMap<StreamId, ExpectedVersion>);

/// Splits a body into its events' texts and the expectations.
fn split(form: Form, body: &[u8]) -> Result<Split<'_>, Problem> {
    match form {
        Form::Lines => {
            let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
            let mut lines: Vec<&[u8]> = body
                .split(|b| *b == b'\n')
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
                .collect();
            if lines.last().is_some_and(|l| l.is_empty()) {
                lines.pop();
            }
            Ok((lines, HashMap::new()))
        }
        Form::Json => {
            let first = body.iter().find(|b| !b.is_ascii_whitespace());
            match first {
                Some(b'[') => {
                    let items: Vec<&RawValue> =
                        serde_json::from_slice(body).map_err(|e| malformed(&e))?;
                    objects_only(&items)?;
                    Ok((items.iter().map(|r| r.get().as_bytes()).collect(), HashMap::new()))
                }
                Some(b'{') => {
                    let s: Submission = serde_json::from_slice(body).map_err(|e| malformed(&e))?;
                    objects_only(&s.events)?;
                    let expected = parse_expected(s.expected)?;
                    Ok((s.events.iter().map(|r| r.get().as_bytes()).collect(), expected))
                }
                _ => Err(Problem::new(
                    Kind::MalformedJson,
                    "the body must be a JSON array of events or an object {\"events\": [...], \"expected\": {...}}",
                )),
            }
        }
    }
}

/// The indexes of events whose actor region lies outside the caller's region.
fn outside_region(caller: &Caller, items: &[&[u8]]) -> Vec<usize> {
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| {
            let v: Value = serde_json::from_slice(item).ok()?;
            let region = v.get("actor")?.get("region")?.as_str()?;
            (!caller.region.contains(region)).then_some(i)
        })
        .collect()
}

fn event_id(item: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(item).ok()?;
    Some(v.get("event_id")?.as_str()?.to_string())
}

fn position(p: Position) -> Value {
    json!({"partition": p.partition, "offset": p.offset})
}

/// Every event's outcome, in the order sent (blank lines of JSON Lines have none).
fn outcomes(report: &IngestReport, items: &[&[u8]]) -> Vec<Value> {
    let mut by_index: Vec<Option<Value>> = vec![None; items.len()];
    let mut put = |line: usize, mut v: Value| {
        let index = line.saturating_sub(1);
        if let Some(slot) = by_index.get_mut(index) {
            v["index"] = json!(index);
            if v.get("event_id").is_none() {
                v["event_id"] = json!(items.get(index).and_then(|i| event_id(i)));
            }
            *slot = Some(v);
        }
    };
    for (line, p) in &report.accepted {
        put(
            *line,
            json!({"outcome": "accepted", "position": position(*p)}),
        );
    }
    for (line, p) in &report.duplicates {
        put(
            *line,
            json!({"outcome": "duplicate", "original": position(*p)}),
        );
    }
    for c in &report.conflicts {
        put(
            c.line,
            json!({
                "outcome": "conflicting",
                "event_id": c.event_id,
                "original": c.original.map(position),
                "reason": "this event id is taken by another fact; a new fact needs a new id",
            }),
        );
    }
    for r in &report.rejected {
        put(
            r.line,
            json!({"outcome": "rejected", "event_id": r.event_id, "reason": r.reason}),
        );
    }
    // Under `atomic`, a valid event of a refused request is listed as not stored.
    if report.rolled_back {
        for (index, slot) in by_index.iter_mut().enumerate() {
            let blank = items
                .get(index)
                .is_none_or(|i| i.iter().all(u8::is_ascii_whitespace));
            if slot.is_none() && !blank {
                *slot = Some(json!({
                    "index": index,
                    "event_id": items.get(index).and_then(|i| event_id(i)),
                    "outcome": "not_stored",
                    "reason": "valid, but another event of this atomic request was refused",
                }));
            }
        }
    }
    by_index
        .into_iter()
        .flatten()
        .map(|mut v| {
            // `index` first for people reading it.
            let index = v["index"].take();
            let mut ordered = serde_json::Map::new();
            ordered.insert("index".into(), index);
            if let Value::Object(rest) = v {
                for (k, val) in rest {
                    if k != "index" {
                        ordered.insert(k, val);
                    }
                }
            }
            Value::Object(ordered)
        })
        .collect()
}

fn counts(report: &IngestReport) -> Value {
    json!({
        "accepted": report.accepted.len(),
        "duplicate": report.duplicates.len(),
        "conflicting": report.conflicts.len(),
        "rejected": report.rejected.len(),
    })
}

/// Records the events of the body; see the module docs for the forms.
#[utoipa::path(
    post,
    path = "/v1/events",
    tag = "events",
    params(WriteParams),
    request_body(
        description = "Events in the ingest form: a JSON array, an object `{events, expected}`, or JSON Lines.",
        content(
            (crate::openapi::EventsBodyDoc = "application/json"),
            (String = "application/x-ndjson"),
        ),
    ),
    responses(
        (status = 200, description = "every event's outcome", body = crate::openapi::WriteDoc),
        (status = 400, description = "malformed JSON (`malformed-json`) or a bad parameter or expectation (`bad-parameter`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "no valid bearer token (`unauthorized`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "the role may not write (`forbidden`), or events of a region outside the caller's (`out-of-scope`, with `indexes`); nothing was stored", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "a stream is not at its expected version (`wrong-expected-version`, with `stream` and `actual`); nothing was stored", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 413, description = "the body is too large (`too-large`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 415, description = "the content type is neither JSON nor JSON Lines (`unsupported-media-type`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "atomic, and some events are not valid facts (`invalid-events`, with `counts` and `events`); nothing was stored", body = crate::openapi::ProblemDoc, content_type = "application/problem+json")
    )
)]
pub async fn post_events(
    caller: Caller,
    State(app): State<Arc<App>>,
    params: Result<Query<WriteParams>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    if caller.role != Role::Service {
        return Err(Problem::new(
            Kind::Forbidden,
            format!(
                "role {} may not write events; only service may",
                caller.role.name()
            ),
        ));
    }
    let Query(params) = params.map_err(|e| Problem::new(Kind::BadParameter, e.body_text()))?;
    let form = form_of(&headers)?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                Kind::TooLarge,
                format!("the body may have at most {} bytes", app.config.body_limit),
            )
        } else {
            Problem::new(Kind::MalformedJson, "the body could not be read")
        }
    })?;
    let (items, expected) = split(form, &body)?;
    let outside = outside_region(&caller, &items);
    if !outside.is_empty() {
        return Err(Problem::new(
            Kind::OutOfScope,
            format!(
                "{} events have an actor region outside {}; nothing was stored",
                outside.len(),
                caller.region
            ),
        )
        .with("indexes", json!(outside)));
    }
    let report = match app
        .views
        .recorder
        .ingest_items(&items, params.atomic, expected)
        .await
    {
        Ok(r) => r,
        Err(RecordError::Log(LogError::WrongExpectedVersion {
            stream,
            expected,
            actual,
        })) => {
            return Err(Problem::new(
                Kind::WrongExpectedVersion,
                format!("stream {stream} was expected at {expected} but is at version {actual}; nothing was stored"),
            )
            .with("stream", json!(stream))
            .with("actual", json!(actual)));
        }
        Err(e) => return Err(Problem::internal(&e)),
    };
    tracing::info!(
        sub = %caller.sub,
        accepted = report.accepted.len(),
        duplicate = report.duplicates.len(),
        conflicting = report.conflicts.len(),
        rejected = report.rejected.len(),
        rolled_back = report.rolled_back,
        "events posted"
    );
    app.metrics.ingested("accepted", report.accepted.len());
    app.metrics.ingested("duplicate", report.duplicates.len());
    app.metrics.ingested("conflicting", report.conflicts.len());
    app.metrics.ingested("rejected", report.rejected.len());
    let events = outcomes(&report, &items);
    if report.rolled_back {
        return Err(Problem::new(
            Kind::InvalidEvents,
            format!(
                "{} events are not valid facts and {} reuse an id; atomic: nothing was stored",
                report.rejected.len(),
                report.conflicts.len()
            ),
        )
        .with("counts", counts(&report))
        .with("events", json!(events)));
    }
    if !report.accepted.is_empty() {
        // Stored: the projector takes it from here, and a later read waits for it.
        app.views.nudge();
    }
    let mut doc = json!({"counts": counts(&report), "events": events});
    crate::zone::rewrite_times(&mut doc, app.config.zone);
    Ok((StatusCode::OK, Json(doc)).into_response())
}
