//! The drill-down below a figure: the clocks behind it, one clock with the facts that
//! started, paused, met or breached it, and the person's or household's timeline, with
//! occurred and recorded times side by side and backdated steps marked.

use crate::answers::{json_of, query};
use crate::render::{encode_segment, page};
use crate::session::Session;
use assist_http::reads::{self, ClockParams, ExplainParams, HistoryParams};
use assist_http::App;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::Uri;
use axum::response::Response;
use axum::Form;
use chrono::DateTime;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// A step recorded this long after it occurred is marked backdated (the audit findings'
/// default).
pub const BACKDATED_AFTER_HOURS: i64 = 72;

/// The page's query with `offset` set to `offset`.
fn with_offset(uri: &Uri, offset: usize) -> String {
    let kept: Vec<&str> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("offset="))
        .collect();
    let mut q = kept.join("&");
    if !q.is_empty() {
        q.push('&');
    }
    format!("{}?{q}offset={offset}", uri.path())
}

/// Previous and next page links of a paged answer.
pub(crate) fn pager(uri: &Uri, doc: &Value, shown: usize) -> Value {
    let total = doc["total"].as_u64().unwrap_or(0) as usize;
    let limit = doc["limit"].as_u64().unwrap_or(50) as usize;
    let offset = doc["offset"].as_u64().unwrap_or(0) as usize;
    json!({
        "from": if shown == 0 { 0 } else { offset + 1 },
        "to": offset + shown,
        "total": total,
        "prev": (offset > 0).then(|| with_offset(uri, offset.saturating_sub(limit))),
        "next": (offset + shown < total).then(|| with_offset(uri, offset + limit)),
    })
}

/// `GET /clocks`: takes the API's `/v1/sla/clocks` parameters.
pub async fn clocks(
    session: Session,
    State(app): State<Arc<App>>,
    uri: Uri,
    p: Result<Query<ClockParams>, QueryRejection>,
) -> Response {
    let answer = reads::clocks(session.caller.clone(), State(app), p).await;
    let doc = match json_of(&session, answer).await {
        Ok(doc) => doc,
        Err(page) => return page,
    };
    let at = doc["at"].as_str().unwrap_or_default().to_string();
    let lines: Vec<Value> = doc["clocks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let mut c = c.clone();
            let id = c["clock_id"].as_str().unwrap_or_default().to_string();
            let subject = c["subject"].as_str().unwrap_or_default().to_string();
            c["href"] = json!(format!(
                "/clocks/{}?{}",
                encode_segment(&id),
                query(&[("at", Some(at.as_str()))])
            ));
            c["subject_href"] = json!(format!("/streams/{}", encode_segment(&subject)));
            c
        })
        .collect();
    let exports = uri.query().unwrap_or_default().to_string();
    page(
        "clocks.html",
        session.lang,
        Some(&session),
        json!({
            "here": uri.to_string(),
            "at": at,
            "filters": filters(&uri),
            "clocks": lines,
            "pager": pager(&uri, &doc, lines.len()),
            "csv": format!("/export/clocks.csv?{exports}"),
            "xlsx": format!("/export/clocks.xlsx?{exports}"),
        }),
    )
}

/// The filters a list was asked with, to show above it.
fn filters(uri: &Uri) -> Vec<Value> {
    #[derive(Deserialize, Default)]
    struct Asked {
        status: Option<String>,
        region: Option<String>,
        policy: Option<String>,
        step: Option<String>,
        caseworker: Option<String>,
    }
    let a = Query::<Asked>::try_from_uri(uri)
        .map(|Query(a)| a)
        .unwrap_or_default();
    [
        ("status", a.status),
        ("region", a.region),
        ("policy", a.policy),
        ("step", a.step),
        ("caseworker", a.caseworker),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| json!({"name": k, "value": v})))
    .collect()
}

/// `GET /clocks/{clock}`: takes the API's `/v1/sla/clocks/{clock}` parameters.
pub async fn clock(
    session: Session,
    State(app): State<Arc<App>>,
    Path(clock): Path<String>,
    uri: Uri,
    p: Result<Query<ExplainParams>, QueryRejection>,
) -> Response {
    let answer = reads::explain(session.caller.clone(), State(app), Path(clock), p).await;
    let doc = match json_of(&session, answer).await {
        Ok(doc) => doc,
        Err(page) => return page,
    };
    let subject = doc["clock"]["subject"].as_str().unwrap_or_default();
    page(
        "clock.html",
        session.lang,
        Some(&session),
        json!({
            "here": uri.to_string(),
            "doc": doc,
            "subject_href": format!("/streams/{}", encode_segment(subject)),
        }),
    )
}

/// `GET /streams`: the auditor's start, a form that opens a timeline by stream id.
pub async fn streams(session: Session, uri: Uri) -> Response {
    #[derive(Deserialize, Default)]
    struct Asked {
        stream: Option<String>,
    }
    let asked = Query::<Asked>::try_from_uri(&uri)
        .map(|Query(a)| a)
        .unwrap_or_default();
    if let Some(s) = asked.stream.filter(|s| !s.trim().is_empty()) {
        return crate::render::redirect(&format!("/streams/{}", encode_segment(s.trim())));
    }
    page(
        "streams.html",
        session.lang,
        Some(&session),
        json!({"here": "/streams"}),
    )
}

/// `GET /streams/{stream}`: takes the API's history parameters but `reason`: personal
/// fields are opened only through the form below (a reason is not put in a URL).
pub async fn timeline(
    session: Session,
    State(app): State<Arc<App>>,
    Path(stream): Path<String>,
    uri: Uri,
) -> Response {
    let query = crate::answers::without_empty(uri.query().unwrap_or_default());
    if query.split('&').any(|p| p.starts_with("reason=")) {
        return crate::render::problem_page(
            session.lang,
            Some(&session),
            400,
            "bad-parameter",
            "reason",
        );
    }
    // The date pickers send empty values when left empty: those ask for nothing.
    let p: Result<Query<HistoryParams>, QueryRejection> = crate::answers::params(&query);
    let answer = reads::history(session.caller.clone(), State(app), Path(stream.clone()), p).await;
    timeline_page(&session, &uri, &stream, answer).await
}

/// The form that opens personal fields with a reason.
#[derive(Deserialize)]
pub struct OpenForm {
    csrf: String,
    reason: String,
}

/// `POST /streams/{stream}`: the timeline with personal fields opened for the reason
/// given (an auditor's; the API logs the reason with the read).
pub async fn timeline_opened(
    session: Session,
    State(app): State<Arc<App>>,
    Path(stream): Path<String>,
    uri: Uri,
    Form(form): Form<OpenForm>,
) -> Response {
    if !session.csrf_ok(&form.csrf) {
        return crate::session::forbidden_form(session.lang);
    }
    let q = query(&[("reason", Some(form.reason.as_str()))]);
    let answer = reads::history(
        session.caller.clone(),
        State(app),
        Path(stream.clone()),
        crate::answers::params(&q),
    )
    .await;
    timeline_page(&session, &uri, &stream, answer).await
}

/// The date a picker of the page's query holds (`YYYY-MM-DD`), to show it again.
fn picked(uri: &Uri, name: &str) -> String {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .find_map(|p| p.strip_prefix(&format!("{name}=")))
        .filter(|v| v.len() == 10 && v.bytes().all(|b| b.is_ascii_digit() || b == b'-'))
        .unwrap_or_default()
        .to_string()
}

async fn timeline_page(
    session: &Session,
    uri: &Uri,
    stream: &str,
    answer: Result<Response, assist_http::problem::Problem>,
) -> Response {
    let doc = match json_of(session, answer).await {
        Ok(doc) => doc,
        Err(page) => return page,
    };
    let events: Vec<Value> = doc["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let mut e = e.clone();
            let parse = |k: &str| {
                DateTime::parse_from_rfc3339(e["event"][k].as_str().unwrap_or_default()).ok()
            };
            let late = match (parse("occurred_at"), parse("recorded_at")) {
                (Some(o), Some(r)) => (r - o).num_hours() >= BACKDATED_AFTER_HOURS,
                _ => false,
            };
            e["backdated"] = json!(late);
            e["data_text"] = json!(serde_json::to_string(&e["event"]["data"]).unwrap_or_default());
            e
        })
        .collect();
    let shown = events.len();
    page(
        "timeline.html",
        session.lang,
        Some(session),
        json!({
            "here": uri.path(),
            "stream": stream,
            "action": format!("/streams/{}", encode_segment(stream)),
            "personal": doc["personal_fields"],
            "events": events,
            "pager": pager(uri, &doc, shown),
            "may_open": session.caller.role == assist_http::auth::Role::Auditor,
            "backdated_hours": BACKDATED_AFTER_HOURS,
            "as_of": picked(uri, "as_of"),
            "known_on": picked(uri, "known_on"),
        }),
    )
}
