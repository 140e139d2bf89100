//! The API's answers, for a page. A page calls the JSON API's handler with the signed-in
//! person as the caller and reads the JSON it answers, so scope, masking and the access
//! log are the API's, and a page's numbers are the API's numbers. A problem answer
//! becomes an error page with the same status (`404` for anything out of scope).

use crate::render::problem_page;
use crate::session::Session;
use assist_http::problem::Problem;
use axum::extract::Query;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The largest answer a page reads (a page of 1,000 lines is far below it).
const LARGEST: usize = 64 << 20;

/// The JSON document of an API handler's answer, or the page of its problem.
pub async fn json_of(
    session: &Session,
    answer: Result<Response, Problem>,
) -> Result<Value, Response> {
    let response = answer.into_response();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), LARGEST)
        .await
        .map_err(|_| problem_page(session.lang, Some(session), 500, "internal", ""))?;
    let doc: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(doc);
    }
    let kind = doc["type"]
        .as_str()
        .and_then(|t| t.rsplit(':').next())
        .unwrap_or("internal");
    let detail = doc["detail"].as_str().unwrap_or_default();
    Err(error_page(session, status.as_u16(), kind, detail))
}

/// The page of a problem an API read returned without a response (`reads::clock_list`).
pub fn page_of(session: &Session, problem: &Problem) -> Response {
    let type_uri = problem.kind.type_uri();
    let kind = type_uri.rsplit(':').next().unwrap_or("internal");
    error_page(
        session,
        problem.kind.status().as_u16(),
        kind,
        &problem.detail,
    )
}

/// The page of a problem of kind `kind`. A region outside the person's, typed by hand, is
/// not found: as for a subject, the page does not say whether it exists.
fn error_page(session: &Session, status: u16, kind: &str, detail: &str) -> Response {
    if kind == "out-of-scope" {
        return problem_page(session.lang, Some(session), 404, "not-found", "");
    }
    problem_page(session.lang, Some(session), status, kind, detail)
}

/// An API handler's parameters from query `query` (`a=1&b=2`, values percent-encoded),
/// as the handler's own extractor would read them from a request.
pub fn params<T: DeserializeOwned>(
    query: &str,
) -> Result<Query<T>, axum::extract::rejection::QueryRejection> {
    let uri: Uri = format!("/?{query}")
        .parse()
        .unwrap_or_else(|_| Uri::from_static("/"));
    Query::try_from_uri(&uri)
}

/// Query `pairs` as `a=1&b=2`, each value percent-encoded, empty ones left out.
pub fn query(pairs: &[(&str, Option<&str>)]) -> String {
    pairs
        .iter()
        .filter_map(|(k, v)| {
            v.filter(|v| !v.is_empty())
                .map(|v| format!("{k}={}", crate::render::encode_segment(v)))
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Query `query` without its empty values (`a=&b=1` is `b=1`): what a form's empty field
/// sends means "not asked".
pub fn without_empty(query: &str) -> String {
    query
        .split('&')
        .filter(|p| !p.is_empty() && !p.ends_with('='))
        .collect::<Vec<_>>()
        .join("&")
}
