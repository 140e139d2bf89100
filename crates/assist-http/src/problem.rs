//! RFC 9457 problem details: every error the API answers is `application/problem+json`
//! with a stable `type` per kind, so clients branch on the kind, not on the text.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

/// The kinds of problem, each with its status and stable `type` URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// No bearer token, or one that is forged, expired, or for another issuer or audience.
    Unauthorized,
    /// The caller's role may not do this.
    Forbidden,
    /// The request names a region (or events of a region) outside the caller's.
    OutOfScope,
    /// Nothing there, or nothing the caller may know of.
    NotFound,
    /// The body is larger than the server takes.
    TooLarge,
    /// The body is not `application/json` or `application/x-ndjson`.
    UnsupportedMediaType,
    /// The body is not JSON of the expected shape.
    MalformedJson,
    /// A query or path parameter is not valid.
    BadParameter,
    /// Some events are not valid facts and `atomic` was asked: nothing was stored.
    InvalidEvents,
    /// A stream was not at the expected version: nothing was stored.
    WrongExpectedVersion,
    /// The route exists, but not for this method.
    MethodNotAllowed,
    /// The request took too long.
    Timeout,
    /// The log or the view store cannot serve now.
    NotReady,
    /// The server failed; the log says why.
    Internal,
}

impl Kind {
    /// The HTTP status of this kind.
    pub fn status(self) -> StatusCode {
        match self {
            Kind::Unauthorized => StatusCode::UNAUTHORIZED,
            Kind::Forbidden | Kind::OutOfScope => StatusCode::FORBIDDEN,
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Kind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Kind::MalformedJson | Kind::BadParameter => StatusCode::BAD_REQUEST,
            Kind::InvalidEvents => StatusCode::UNPROCESSABLE_ENTITY,
            Kind::WrongExpectedVersion => StatusCode::CONFLICT,
            Kind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Kind::Timeout => StatusCode::REQUEST_TIMEOUT,
            Kind::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The last part of the `type` URI.
    pub fn slug(self) -> &'static str {
        match self {
            Kind::Unauthorized => "unauthorized",
            Kind::Forbidden => "forbidden",
            Kind::OutOfScope => "out-of-scope",
            Kind::NotFound => "not-found",
            Kind::TooLarge => "too-large",
            Kind::UnsupportedMediaType => "unsupported-media-type",
            Kind::MalformedJson => "malformed-json",
            Kind::BadParameter => "bad-parameter",
            Kind::InvalidEvents => "invalid-events",
            Kind::WrongExpectedVersion => "wrong-expected-version",
            Kind::MethodNotAllowed => "method-not-allowed",
            Kind::Timeout => "timeout",
            Kind::NotReady => "not-ready",
            Kind::Internal => "internal",
        }
    }

    /// The stable `type` URI, `urn:assist:problem:<slug>`.
    pub fn type_uri(self) -> String {
        format!("urn:assist:problem:{}", self.slug())
    }

    fn title(self) -> &'static str {
        match self {
            Kind::Unauthorized => "missing or invalid bearer token",
            Kind::Forbidden => "the caller's role may not do this",
            Kind::OutOfScope => "outside the caller's region",
            Kind::NotFound => "not found",
            Kind::TooLarge => "request body too large",
            Kind::UnsupportedMediaType => "unsupported content type",
            Kind::MalformedJson => "malformed JSON",
            Kind::BadParameter => "bad parameter",
            Kind::InvalidEvents => "invalid events; nothing was stored",
            Kind::WrongExpectedVersion => "wrong expected version; nothing was stored",
            Kind::MethodNotAllowed => "method not allowed",
            Kind::Timeout => "request timed out",
            Kind::NotReady => "not ready",
            Kind::Internal => "internal error",
        }
    }
}

/// One problem response: a kind, a detail for people, and extension members.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The kind.
    pub kind: Kind,
    /// What went wrong in this request; never repeats a value the client sent.
    pub detail: String,
    /// Extension members (`events`, `actual`, …).
    pub extra: Map<String, Value>,
}

impl Problem {
    /// A problem of `kind` with `detail`.
    pub fn new(kind: Kind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            extra: Map::new(),
        }
    }

    /// Adds an extension member.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_string(), value);
        self
    }

    /// An internal failure: the cause goes to the log, the client hears only the kind.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        Self::new(Kind::Internal, "the server failed; its log says why")
    }

    /// The problem document.
    pub fn body(&self) -> Value {
        let mut doc = json!({
            "type": self.kind.type_uri(),
            "title": self.kind.title(),
            "status": self.kind.status().as_u16(),
            "detail": self.detail,
        });
        if let Value::Object(map) = &mut doc {
            for (k, v) in &self.extra {
                map.insert(k.clone(), v.clone());
            }
        }
        doc
    }
}

/// The media type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut response = (self.kind.status(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if self.kind == Kind::Unauthorized {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"assist\""),
            );
        }
        response
    }
}

/// Turns the bare error answers of the layers below the handlers (a timeout, a method the
/// route does not take, a body refused by a limit) into problems, so every error a client
/// sees is `application/problem+json`.
pub async fn bare_errors_as_problems(response: Response) -> Response {
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
    // A page's own error (HTML, from the pages for people) is already what its reader needs.
    let is_page = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if is_problem
        || is_page
        || !(response.status().is_client_error() || response.status().is_server_error())
    {
        return response;
    }
    let kind = match response.status() {
        StatusCode::METHOD_NOT_ALLOWED => Kind::MethodNotAllowed,
        StatusCode::REQUEST_TIMEOUT => Kind::Timeout,
        StatusCode::PAYLOAD_TOO_LARGE => Kind::TooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Kind::UnsupportedMediaType,
        StatusCode::NOT_FOUND => Kind::NotFound,
        s if s.is_client_error() => Kind::BadParameter,
        _ => Kind::Internal,
    };
    let mut problem = Problem::new(kind, kind.title()).into_response();
    // Keep headers such as `Allow` of a 405.
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            problem.headers_mut().insert(name.clone(), value.clone());
        }
    }
    problem
}
