//! The OpenAPI 3.1 document, generated from the handlers' annotations (utoipa) and checked
//! in as `crates/assist-http/openapi.json`; served at `/openapi.json`, with a docs page at
//! `/docs` rendered from it on the server (no scripts, no assets from the network).

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::RefOr;
use utoipa::{Modify, OpenApi, ToSchema};

/// An RFC 9457 problem: `type` is `urn:assist:problem:<kind>`, stable per kind of error;
/// some kinds add members (`events`, `counts`, `stream`, `actual`, `indexes`, `lag`).
#[derive(Serialize, ToSchema)]
pub struct ProblemDoc {
    /// `urn:assist:problem:<kind>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The kind, for people.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong in this request; never repeats a value the client sent.
    pub detail: String,
}

/// `/healthz`: the process answers.
#[derive(Serialize, ToSchema)]
pub struct HealthDoc {
    /// Always `ok`.
    pub status: String,
}

/// `/readyz`: log and store answer, and the views lag by at most `max_lag` records.
#[derive(Serialize, ToSchema)]
pub struct ReadyDoc {
    /// Always `ready`.
    pub status: String,
    /// `ok`.
    pub log: String,
    /// `ok`.
    pub store: String,
    /// Records in the log.
    pub records: u64,
    /// Records the views have not taken yet.
    pub lag: u64,
    /// The threshold.
    pub max_lag: u64,
}

/// A partition and an offset in the log.
#[derive(Serialize, ToSchema)]
pub struct PositionDoc {
    /// The partition.
    pub partition: u32,
    /// The offset in it.
    pub offset: u64,
}

/// The outcome of one event of a write.
#[derive(Serialize, ToSchema)]
pub struct OutcomeDoc {
    /// Its place in the request (0-based; line N of JSON Lines is index N-1).
    pub index: u64,
    /// Its id, when it has one.
    pub event_id: Option<String>,
    /// `accepted`, `duplicate`, `conflicting`, `rejected` or `not_stored`.
    pub outcome: String,
    /// Where it was stored (`accepted`).
    pub position: Option<PositionDoc>,
    /// Where the same id was stored before (`duplicate`, `conflicting`).
    pub original: Option<PositionDoc>,
    /// Why it was refused (`conflicting`, `rejected`, `not_stored`); never repeats a value.
    pub reason: Option<String>,
}

/// How many events had each outcome.
#[derive(Serialize, ToSchema)]
pub struct CountsDoc {
    /// Stored now.
    pub accepted: u64,
    /// Stored before with the same content (a retry).
    pub duplicate: u64,
    /// Their id is taken by other content; not stored.
    pub conflicting: u64,
    /// Not valid facts; not stored.
    pub rejected: u64,
}

/// The answer to a write: the counts and every event's outcome in the order sent.
#[derive(Serialize, ToSchema)]
pub struct WriteDoc {
    /// How many events had each outcome.
    pub counts: CountsDoc,
    /// Every event's outcome.
    pub events: Vec<OutcomeDoc>,
}

/// The object form of a write: events and the versions their streams must be at.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmissionDoc {
    /// Events in the ingest form (the catalog under `events/schemas/`).
    pub events: Vec<EventDoc>,
    /// Per stream: `"any"`, `"no_stream"` or its number of events (none: no expectation).
    #[serde(default)]
    #[schema(value_type = ExpectedDoc)]
    pub expected: Value,
}

/// The versions streams must be at: `{stream: "any" | "no_stream" | N}`.
#[derive(Serialize)]
pub struct ExpectedDoc;

/// A stream's name: person-<uuid> or household-<uuid>, the uuid in lower-case hyphenated form.
pub const STREAM_PATTERN: &str =
    "^(person|household)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";

impl utoipa::PartialSchema for ExpectedDoc {
    fn schema() -> RefOr<Schema> {
        let name = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(STREAM_PATTERN));
        let named = ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["any", "no_stream"]));
        let count = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
            .maximum(Some(9_007_199_254_740_991_i64));
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "Per stream: \"any\", \"no_stream\" or its number of events.",
            ))
            .property_names(Some(name))
            .additional_properties(Some(Schema::OneOf(
                OneOfBuilder::new().item(named).item(count).build(),
            )))
            .into()
    }
}

impl ToSchema for ExpectedDoc {}

/// One event in the ingest form: `event_id`, `stream`, `type`, `schema_version`,
/// `occurred_at`, `recorded_at`, `actor` (`id`, `role`, `region`), `correlation_id`,
/// `causation_id`, `data` (the catalog under `events/schemas/` has each type's payload).
/// Each event is checked on its own: one that breaks the catalog is reported `rejected` in
/// a `200` answer, not refused with the request; only its being an object is part of the
/// request's shape.
#[derive(Serialize)]
pub struct EventDoc;

impl utoipa::PartialSchema for EventDoc {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "One event in the ingest form: event_id, stream, type, schema_version, occurred_at, recorded_at, actor (id, role, region), correlation_id, causation_id, data; the catalog under events/schemas/ has each type. Each event is checked on its own and one that breaks the catalog is reported rejected in a 200 answer; only its being an object is part of the request's shape.",
            ))
            .into()
    }
}

impl ToSchema for EventDoc {}

/// A JSON write: an array of events, or the object form with expected versions.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum EventsBodyDoc {
    /// Events in the ingest form.
    Events(Vec<EventDoc>),
    /// Events and the versions their streams must be at.
    Submission(SubmissionDoc),
}

/// The caseload: figures, and (except for observers) a page of cases, next step due first.
#[derive(Serialize, ToSchema)]
pub struct CaseloadDoc {
    /// The time the figures are for.
    pub at: String,
    /// Cases matching the filters.
    pub total: u64,
    /// Cases by stage.
    #[schema(value_type = Object)]
    pub by_stage: Value,
    /// The page size (not for observers).
    pub limit: Option<u64>,
    /// The page start (not for observers).
    pub offset: Option<u64>,
    /// The cases of the page (not for observers).
    #[schema(value_type = Option<Vec<Object>>)]
    pub cases: Option<Vec<Value>>,
}

/// The SLA figures: totals, by step, by region (province → city → county), and a page of
/// them by caseworker.
#[derive(Serialize, ToSchema)]
pub struct SlaDoc {
    /// The time the figures are for.
    pub at: String,
    /// The at-risk window.
    pub risk_hours: i64,
    /// Clocks by status.
    #[schema(value_type = Object)]
    pub total: Value,
    /// Figures by policy step.
    #[schema(value_type = Vec<Object>)]
    pub by_step: Vec<Value>,
    /// Figures by region, rolled up.
    #[schema(value_type = Vec<Object>)]
    pub by_region: Vec<Value>,
    /// A page of the figures by caseworker: the most breached clocks first, then by id.
    #[schema(value_type = Vec<Object>)]
    pub by_caseworker: Vec<Value>,
    /// Caseworker lines in all (the page is `limit` of them from `offset`).
    pub caseworkers: u64,
    /// The page size of the caseworker lines.
    pub limit: u64,
    /// The page start of the caseworker lines.
    pub offset: u64,
    /// Present when the views were built with other SLA policies than those in force:
    /// the figures follow the old ones until a rebuild.
    pub policies_differ: Option<PoliciesDiffer>,
}

/// The weekly on-time trend, oldest week first.
#[derive(Serialize, ToSchema)]
pub struct TrendDoc {
    /// The end of the last week.
    pub at: String,
    /// Each week's `from` and `to` and its `counts` (`total`, `by_status`, `on_time_rate`).
    #[schema(value_type = Vec<Object>)]
    pub weeks: Vec<Value>,
}

/// A page of clocks, by deadline then id.
#[derive(Serialize, ToSchema)]
pub struct ClocksDoc {
    /// The time statuses are for.
    pub at: String,
    /// Clocks matching the filters.
    pub total: u64,
    /// The page size.
    pub limit: u64,
    /// The page start.
    pub offset: u64,
    /// The clocks of the page.
    #[schema(value_type = Vec<Object>)]
    pub clocks: Vec<Value>,
    /// Present when the views were built with other SLA policies than those in force.
    pub policies_differ: Option<PoliciesDiffer>,
}

/// The SLA policies the views were built with, against those in force.
#[derive(Serialize, ToSchema)]
pub struct PoliciesDiffer {
    /// The fingerprint of the policies the views were built with.
    pub built_with: String,
    /// The fingerprint of the policies in force.
    pub in_force: String,
    /// What to do: rebuild (`POST /v1/rebuild`).
    pub advice: String,
}

/// One clock and the facts that started, counted, paused, met or cancelled it.
#[derive(Serialize, ToSchema)]
pub struct ExplanationDoc {
    /// The clock.
    #[schema(value_type = Object)]
    pub clock: Value,
    /// Facts needed to meet the step.
    pub needed: u32,
    /// Facts counted so far.
    pub counted: u32,
    /// The facts, in time order.
    #[schema(value_type = Vec<Object>)]
    pub facts: Vec<Value>,
}

/// A page of one stream's events in log order.
#[derive(Serialize, ToSchema)]
pub struct HistoryDoc {
    /// The stream.
    pub stream: String,
    /// `opened` or `masked`.
    pub personal_fields: String,
    /// Events matching `as_of` and `known_on`.
    pub total: u64,
    /// The page size.
    pub limit: u64,
    /// The page start.
    pub offset: u64,
    /// Each with `partition`, `offset`, `written_version` and `event` (or `error`), and
    /// `altered: true` when its bytes no longer match the audit trail's hash.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Value>,
}

/// One read of a history.
#[derive(Serialize, ToSchema)]
pub struct AccessDoc {
    /// When.
    pub at: String,
    /// Who (`sub`).
    pub actor: String,
    /// In which role (`local` for the command line).
    pub role: String,
    /// The stream read.
    pub stream: String,
    /// What was asked.
    pub command: String,
    /// The reason given.
    pub reason: Option<String>,
    /// The region of a list exported (a history's read has none: its subject's case's).
    pub region: Option<String>,
}

/// A page of the access log, oldest first.
#[derive(Serialize, ToSchema)]
pub struct AccessLogDoc {
    /// Reads of histories in the caller's region.
    pub total: u64,
    /// The page size.
    pub limit: u64,
    /// The page start.
    pub offset: u64,
    /// The reads of the page.
    pub entries: Vec<AccessDoc>,
}

/// A page of notices, newest first.
#[derive(Serialize, ToSchema)]
pub struct NoticesDoc {
    /// Notices the caller may see.
    pub total: u64,
    /// The page size.
    pub limit: u64,
    /// The page start.
    pub offset: u64,
    /// The notices of the page.
    pub notices: Vec<NoticeDoc>,
}

/// One reminder or escalation of the SLA timer.
#[derive(Serialize, ToSchema)]
pub struct NoticeDoc {
    /// Derived from the clock and the kind: the receivers' idempotency key.
    pub notice_id: String,
    /// `reminder`, `escalation-1`, `escalation-2`, …
    pub kind: String,
    /// `caseworker` or `supervisor`.
    pub audience: String,
    /// The caseworker's staff id, or the region prefix whose supervisors are told.
    pub recipient: String,
    /// The clock.
    pub clock_id: String,
    /// The subject's stream.
    pub subject: String,
    /// The policy.
    pub policy: String,
    /// The step.
    pub step: String,
    /// The clock's region.
    pub region: String,
    /// The clock's caseworker, or empty.
    pub caseworker: String,
    /// The step's deadline, pauses counted.
    pub deadline: String,
    /// When the notice came due.
    pub moment: String,
    /// When the timer recorded it.
    pub created_at: String,
    /// Its deliveries (webhook, Kafka).
    pub deliveries: Vec<DeliveryDoc>,
}

/// One delivery of a notice.
#[derive(Serialize, ToSchema)]
pub struct DeliveryDoc {
    /// `webhook` or `kafka`.
    pub channel: String,
    /// Attempts made.
    pub attempts: u64,
    /// When the receiver took it.
    pub delivered_at: Option<String>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// One audit finding.
#[derive(Serialize, ToSchema)]
pub struct FindingDoc {
    /// What kind (`backdated`, `placement_without_case`, …).
    pub kind: String,
    /// The stream it concerns.
    pub subject: String,
    /// The events involved, the offending one first.
    pub events: Vec<String>,
    /// What was found.
    pub detail: String,
}

/// A page of findings, by subject then events.
#[derive(Serialize, ToSchema)]
pub struct FindingsDoc {
    /// The backdating threshold used.
    pub backdated_after_hours: i64,
    /// Findings in the caller's scope.
    pub total: u64,
    /// The page size.
    pub limit: u64,
    /// The page start.
    pub offset: u64,
    /// The findings of the page.
    pub findings: Vec<FindingDoc>,
}

/// One disagreement between the log and the audit store.
#[derive(Serialize, ToSchema)]
pub struct MismatchDoc {
    /// The partition.
    pub partition: u32,
    /// The offset, where one is concerned.
    pub offset: Option<u64>,
    /// The stream, where known.
    pub stream: Option<String>,
    /// The event, where known.
    pub event_id: Option<String>,
    /// What disagrees.
    pub problem: String,
}

/// A verification of the whole log against the audit store.
#[derive(Serialize, ToSchema)]
pub struct VerifyDoc {
    /// When it started.
    pub started_at: String,
    /// When it finished.
    pub finished_at: String,
    /// Log records compared.
    pub records: u64,
    /// Log and audit store agree everywhere.
    pub agrees: bool,
    /// The mismatches of the caller's region, and those of no stream.
    pub mismatches: Vec<MismatchDoc>,
    /// Mismatches of streams outside the caller's region (counted, not shown).
    pub mismatches_elsewhere: u64,
}

/// A log record the projections could not read.
#[derive(Serialize, ToSchema)]
pub struct DeadLetterDoc {
    /// Its partition.
    pub partition: u32,
    /// Its offset.
    pub offset: u64,
    /// Why it could not be projected.
    pub reason: String,
    /// The size in bytes of what is kept of it.
    pub bytes: u64,
    /// Whether what is kept is redacted: the record held personal values in clear (they
    /// are replaced), was not JSON (nothing is kept), or its person was erased.
    pub redacted: bool,
    /// SHA-256 of the record's bytes, in hex.
    pub sha256: Option<String>,
}

/// A page of dead letters, by position.
#[derive(Serialize, ToSchema)]
pub struct DeadLettersDoc {
    /// Dead letters in all.
    pub total: u64,
    /// The page size.
    pub limit: u64,
    /// The page start.
    pub offset: u64,
    /// The dead letters of the page.
    pub dead_letters: Vec<DeadLetterDoc>,
}

/// The `personal_data_erased` fact of an erasure.
#[derive(Serialize, ToSchema)]
pub struct ErasureDoc {
    /// Its id.
    pub event_id: String,
    /// It was recorded by an earlier erasure.
    pub already_recorded: bool,
    /// Where it was stored now (not when already recorded).
    pub position: Option<PositionDoc>,
}

/// An erasure: the key is destroyed, the fact recorded.
#[derive(Serialize, ToSchema)]
pub struct ErasedDoc {
    /// The person's stream.
    pub stream: String,
    /// Always true.
    pub key_destroyed: bool,
    /// The fact.
    pub erasure: ErasureDoc,
}

/// A rebuild of every view.
#[derive(Serialize, ToSchema)]
pub struct RebuiltDoc {
    /// When it started.
    pub started_at: String,
    /// When the new generation was active.
    pub finished_at: String,
    /// The new generation.
    pub generation: i64,
    /// Log records projected into it.
    pub records: u64,
    /// The generation it replaced, dropped.
    pub dropped: Option<i64>,
}

struct BearerJwt;

impl Modify for BearerJwt {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.bearer_format = Some("JWT".into());
        http.description = Some(
            "A JWT with `sub`, `role` (service, caseworker, supervisor, observer, auditor, admin) and `region` (a 2-, 4- or 6-digit prefix); `iss` and `aud` are `assist`."
                .into(),
        );
        components.add_security_scheme("bearer", SecurityScheme::Http(http));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "assist",
        description = "The JSON API of `assist serve`: events in; caseloads, SLA figures, clocks, histories, findings, verification, dead letters and the access log out; erasure and rebuild for admins; each in the caller's region scope. Errors are RFC 9457 problems (`application/problem+json`).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        crate::health::healthz,
        crate::health::readyz,
        crate::metrics::metrics,
        crate::events::post_events,
        crate::reads::caseload,
        crate::reads::sla,
        crate::reads::clocks,
        crate::reads::trend,
        crate::reads::explain,
        crate::reads::history,
        crate::reads::access_log,
        crate::notices::notices,
        crate::audit::findings,
        crate::audit::verify,
        crate::audit::deadletters,
        crate::admin::erase,
        crate::admin::rebuild,
    ),
    components(schemas(ProblemDoc)),
    modifiers(&BearerJwt),
    security(("bearer" = [])),
)]
struct ApiDoc;

/// The OpenAPI document of the API, as generated from the code.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

/// The document as the checked-in file holds it: pretty JSON with a final newline.
pub fn document_json() -> String {
    let mut text = document()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

/// `GET /openapi.json`.
pub async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
        .into_response()
}

/// `GET /docs`: every operation with its parameters, body and answers, as one HTML page.
pub async fn docs() -> Html<String> {
    let doc = serde_json::to_value(document()).unwrap_or(Value::Null);
    Html(render(&doc))
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// A short name of a schema: its `$ref`'s last part, its type, or `object`.
fn schema_name(s: &Value) -> String {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        return r.rsplit('/').next().unwrap_or(r).to_string();
    }
    match s.get("type") {
        Some(Value::String(t)) if t == "array" => {
            format!(
                "array of {}",
                schema_name(s.get("items").unwrap_or(&Value::Null))
            )
        }
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" | "),
        _ if s.get("oneOf").is_some() => "one of several".into(),
        _ => "any".into(),
    }
}

/// The docs page of `doc`: plain HTML, one section per operation, then the schemas.
fn render(doc: &Value) -> String {
    let info = doc.get("info").unwrap_or(&Value::Null);
    let mut page = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>assist API</title>\n<style>body{font-family:sans-serif;max-width:60em;margin:auto;padding:1em}code,pre{background:#f4f4f4}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}h2{border-top:1px solid #999;padding-top:.5em}</style></head><body>\n",
    );
    page.push_str(&format!(
        "<h1>{} {}</h1>\n<p>{}</p>\n<p>The machine-readable document: <a href=\"/openapi.json\">/openapi.json</a> (OpenAPI {}).</p>\n",
        escape(text(info, "title")),
        escape(text(info, "version")),
        escape(text(info, "description")),
        escape(text(doc, "openapi")),
    ));
    let empty = serde_json::Map::new();
    let paths = doc
        .get("paths")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for (path, item) in paths {
        let Some(ops) = item.as_object() else {
            continue;
        };
        for (method, op) in ops {
            page.push_str(&format!(
                "<h2><code>{} {}</code></h2>\n<p><b>{}</b></p>\n<p>{}</p>\n",
                escape(&method.to_uppercase()),
                escape(path),
                escape(text(op, "summary")),
                escape(text(op, "description")),
            ));
            if let Some(params) = op.get("parameters").and_then(Value::as_array) {
                page.push_str("<table><tr><th>parameter</th><th>in</th><th>type</th><th>required</th><th>description</th></tr>\n");
                for p in params {
                    page.push_str(&format!(
                        "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                        escape(text(p, "name")),
                        escape(text(p, "in")),
                        escape(&schema_name(p.get("schema").unwrap_or(&Value::Null))),
                        p.get("required").and_then(Value::as_bool).unwrap_or(false),
                        escape(text(p, "description")),
                    ));
                }
                page.push_str("</table>\n");
            }
            if let Some(body) = op.get("requestBody") {
                page.push_str("<p>Body:</p><ul>\n");
                for (media, m) in body
                    .get("content")
                    .and_then(Value::as_object)
                    .unwrap_or(&empty)
                {
                    page.push_str(&format!(
                        "<li><code>{}</code>: {}</li>\n",
                        escape(media),
                        escape(&schema_name(m.get("schema").unwrap_or(&Value::Null)))
                    ));
                }
                page.push_str("</ul>\n");
            }
            page.push_str("<table><tr><th>status</th><th>meaning</th><th>body</th></tr>\n");
            for (status, r) in op
                .get("responses")
                .and_then(Value::as_object)
                .unwrap_or(&empty)
            {
                let bodies: Vec<String> = r
                    .get("content")
                    .and_then(Value::as_object)
                    .unwrap_or(&empty)
                    .iter()
                    .map(|(media, m)| {
                        format!(
                            "<code>{}</code> {}",
                            escape(media),
                            escape(&schema_name(m.get("schema").unwrap_or(&Value::Null)))
                        )
                    })
                    .collect();
                page.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                    escape(status),
                    escape(text(r, "description")),
                    bodies.join("<br>")
                ));
            }
            page.push_str("</table>\n");
        }
    }
    page.push_str("<h2>Schemas</h2>\n");
    let schemas = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for (name, s) in schemas {
        page.push_str(&format!(
            "<h3 id=\"{0}\">{0}</h3>\n<p>{1}</p>\n",
            escape(name),
            escape(text(s, "description"))
        ));
        if let Some(props) = s.get("properties").and_then(Value::as_object) {
            page.push_str("<table><tr><th>field</th><th>type</th><th>description</th></tr>\n");
            for (field, p) in props {
                page.push_str(&format!(
                    "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>\n",
                    escape(field),
                    escape(&schema_name(p)),
                    escape(text(p, "description"))
                ));
            }
            page.push_str("</table>\n");
        }
    }
    page.push_str("</body></html>\n");
    page
}
