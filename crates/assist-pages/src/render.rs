//! Turning an answer into a page: the templates (in the binary, autoescaped), the filters
//! they use, and the headers every page carries (a Content Security Policy that allows
//! nothing but this server's stylesheet, no caching of personal data, no referrer).

use crate::catalog::Lang;
use crate::session::Session;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use minijinja::{Environment, Value as JinjaValue};
use serde_json::{json, Value};
use std::sync::OnceLock;

/// The templates, by name.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("signin.html", include_str!("../templates/signin.html")),
    ("error.html", include_str!("../templates/error.html")),
    (
        "dashboard.html",
        include_str!("../templates/dashboard.html"),
    ),
    ("clocks.html", include_str!("../templates/clocks.html")),
    ("clock.html", include_str!("../templates/clock.html")),
    ("timeline.html", include_str!("../templates/timeline.html")),
    ("streams.html", include_str!("../templates/streams.html")),
    ("worklist.html", include_str!("../templates/worklist.html")),
    ("findings.html", include_str!("../templates/findings.html")),
    ("verify.html", include_str!("../templates/verify.html")),
    ("access.html", include_str!("../templates/access.html")),
];

/// The Content Security Policy of every page: this server's stylesheet and nothing else
/// runs or loads; forms post only here; no framing.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // A message missing from a catalog fails the page (and its test) instead of
        // showing nothing.
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, source) in TEMPLATES {
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(template = name, error = %e, "a template does not parse");
            }
        }
        env.add_filter("when", |t: String, lang: String| {
            Lang::parse(&lang).unwrap_or_default().when(&t)
        });
        env.add_filter("pct", |rate: JinjaValue| -> String {
            match f64::try_from(rate) {
                Ok(r) => format!("{:.1}%", r * 100.0),
                Err(_) => "—".to_string(),
            }
        });
        env.add_filter("urlpart", |s: String| -> String { encode_segment(&s) });
        env
    })
}

/// `s` percent-encoded as one path segment or query value.
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn secure(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Page `template` in `lang` with `context`, for `session`'s person (the header shows who
/// is signed in, the language switch and sign-out).
pub fn page(template: &str, lang: Lang, session: Option<&Session>, context: Value) -> Response {
    let user = session.map(|s| {
        json!({
            "sub": s.caller.sub,
            "role": s.caller.role.name(),
            "region": s.caller.region.as_str(),
            "csrf": s.csrf,
        })
    });
    let mut ctx = json!({
        "m": lang.messages(),
        "lang": lang.code(),
        "html_lang": lang.html(),
        "user": user,
        "here": "/",
    });
    if let (Value::Object(all), Value::Object(more)) = (&mut ctx, context) {
        all.extend(more);
    }
    let rendered = environment()
        .get_template(template)
        .and_then(|t| t.render(JinjaValue::from_serialize(&ctx)));
    match rendered {
        Ok(html) => secure(Html(html).into_response()),
        Err(e) => {
            tracing::error!(template, error = %e, "a page failed to render");
            secure(
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the page failed; the server's log says why",
                )
                    .into_response(),
            )
        }
    }
}

/// A `303 See Other` to `to` (a path of this server).
pub fn redirect(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    secure(r)
}

/// The page of a problem the API answered (`status`, its `type`'s last part as the kind).
pub fn problem_page(
    lang: Lang,
    session: Option<&Session>,
    status: u16,
    kind: &str,
    detail: &str,
) -> Response {
    let mut r = page(
        "error.html",
        lang,
        session,
        json!({"status": status, "kind": kind, "detail": detail}),
    );
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

/// Not found, as a page.
pub fn not_found(lang: Lang) -> Response {
    problem_page(lang, None, 404, "not-found", "")
}

/// `GET /static/style.css`: the one stylesheet, in the binary.
pub async fn style() -> Response {
    let mut r = include_str!("../static/style.css").into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}
