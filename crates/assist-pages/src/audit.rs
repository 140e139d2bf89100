//! The auditor's pages besides the timeline: findings with their events, `verify` run
//! there and then, and the access log; each the API's answer for the same auditor.

use crate::answers::json_of;
use crate::drill::pager;
use crate::render::{encode_segment, page};
use crate::session::Session;
use assist_http::audit::{self, FindingParams};
use assist_http::reads::{self, AccessParams};
use assist_http::App;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::Uri;
use axum::response::Response;
use serde_json::{json, Value};
use std::sync::Arc;

/// `GET /audit/findings`: takes the API's `/v1/audit/findings` parameters.
pub async fn findings(
    session: Session,
    State(app): State<Arc<App>>,
    uri: Uri,
    p: Result<Query<FindingParams>, QueryRejection>,
) -> Response {
    let answer = audit::findings(session.caller.clone(), State(app), p).await;
    let doc = match json_of(&session, answer).await {
        Ok(doc) => doc,
        Err(page) => return page,
    };
    let findings: Vec<Value> = doc["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            let subject = encode_segment(f["subject"].as_str().unwrap_or_default());
            let mut f = f.clone();
            f["href"] = json!(format!("/streams/{subject}"));
            f["event_links"] = json!(f["events"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|e| json!({"id": e, "href": format!("/streams/{subject}#e-{e}")}))
                .collect::<Vec<_>>());
            f
        })
        .collect();
    let shown = findings.len();
    page(
        "findings.html",
        session.lang,
        Some(&session),
        json!({
            "here": uri.to_string(),
            "hours": doc["backdated_after_hours"],
            "exports": uri.query().unwrap_or_default(),
            "findings": findings,
            "pager": pager(&uri, &doc, shown),
        }),
    )
}

/// `GET /audit/verify`: re-reads the log and compares it with the audit trail (the API's
/// `/v1/audit/verify`, run when the page is asked for).
pub async fn verify(session: Session, State(app): State<Arc<App>>) -> Response {
    let answer = audit::verify(session.caller.clone(), State(app)).await;
    match json_of(&session, answer).await {
        Ok(doc) => page(
            "verify.html",
            session.lang,
            Some(&session),
            json!({"here": "/audit/verify", "doc": doc}),
        ),
        Err(page) => page,
    }
}

/// `GET /audit/access`: who read which history, when and why.
pub async fn access(
    session: Session,
    State(app): State<Arc<App>>,
    uri: Uri,
    p: Result<Query<AccessParams>, QueryRejection>,
) -> Response {
    let answer = reads::access_log(session.caller.clone(), State(app), p).await;
    let doc = match json_of(&session, answer).await {
        Ok(doc) => doc,
        Err(page) => return page,
    };
    let entries = doc["entries"].as_array().cloned().unwrap_or_default();
    page(
        "access.html",
        session.lang,
        Some(&session),
        json!({
            "here": uri.to_string(),
            "entries": entries,
            "pager": pager(&uri, &doc, entries.len()),
        }),
    )
}
