//! Who is signed in. The session is the bearer token itself, kept in an `HttpOnly`,
//! `SameSite=Strict` cookie and checked on every request like the API's `Authorization`
//! header; every form carries a CSRF token derived from it. In production a reverse proxy
//! or SSO hands the token over (`POST /signin`); `assist serve --demo` prints one-time
//! sign-in links.

use crate::catalog::Lang;
use crate::render::{page, redirect};
use crate::Pages;
use assist_http::auth::{Caller, Role};
use assist_http::App;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;
use std::sync::Arc;

/// The cookie that holds the session's token.
pub const SESSION_COOKIE: &str = "assist_session";
/// The cookie that holds the language chosen.
pub const LANG_COOKIE: &str = "assist_lang";
/// The cookie that holds the sign-in form's CSRF token (before there is a session).
pub const SIGNIN_COOKIE: &str = "assist_signin";

/// A signed-in person: the caller the API's handlers are given, the language and the
/// session's CSRF token.
#[derive(Debug, Clone)]
pub struct Session {
    /// The caller, as the API would see the same token.
    pub caller: Caller,
    /// The language of the pages.
    pub lang: Lang,
    /// The token every form of this session carries.
    pub csrf: String,
}

/// The value of cookie `name` in `headers`, if sent.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The language a request asks for by cookie (Chinese unless it chose English).
pub fn lang_of(headers: &HeaderMap) -> Lang {
    cookie(headers, LANG_COOKIE)
        .and_then(Lang::parse)
        .unwrap_or_default()
}

fn csrf_of(pages: &Pages, token: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(&pages.csrf_key).expect("HMAC takes keys of any length");
    mac.update(b"csrf:");
    mac.update(token.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
}

/// Whether `given` equals `expected`, in time that does not depend on where they differ.
fn same(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

impl Session {
    /// Whether a form's CSRF token is this session's.
    pub fn csrf_ok(&self, given: &str) -> bool {
        same(given, &self.csrf)
    }
}

/// The page that refuses a form whose CSRF token is not the session's.
pub fn forbidden_form(lang: Lang) -> Response {
    let mut r = page(
        "error.html",
        lang,
        None,
        json!({"status": 403, "kind": "csrf", "detail": ""}),
    );
    *r.status_mut() = StatusCode::FORBIDDEN;
    r
}

impl FromRequestParts<Arc<App>> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Response> {
        let Some(pages) = parts.extensions.get::<Arc<Pages>>().cloned() else {
            return Err(StatusCode::INTERNAL_SERVER_ERROR.into_response());
        };
        let lang = lang_of(&parts.headers);
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(|| redirect("/signin"))?;
        let caller = app.verifier.verify(token).map_err(|_| {
            // Expired or no longer valid: sign in again, and forget the old cookie.
            let mut r = redirect("/signin");
            r.headers_mut()
                .append(header::SET_COOKIE, clear_cookie(SESSION_COOKIE));
            r
        })?;
        Ok(Session {
            csrf: csrf_of(&pages, token),
            caller,
            lang,
        })
    }
}

fn session_cookie(token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
    ))
    .unwrap_or_else(|_| clear_cookie(SESSION_COOKIE))
}

fn clear_cookie(name: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
    ))
    .unwrap_or(HeaderValue::from_static("assist_none=; Max-Age=0"))
}

/// `/`: where each role starts.
pub async fn home(session: Session) -> Response {
    redirect(match session.caller.role {
        Role::Supervisor | Role::Observer => "/dashboard",
        Role::Caseworker => "/worklist",
        Role::Auditor => "/streams",
        Role::Service | Role::Admin => "/signin",
    })
}

/// The sign-in form, with a fresh CSRF token in it and in its cookie (there is no
/// session yet to derive one from); `failed` says the last token was refused.
fn signin_page(lang: Lang, failed: bool) -> Response {
    let csrf = hex::encode(rand::random::<[u8; 16]>());
    let mut r = page(
        "signin.html",
        lang,
        None,
        json!({"csrf": csrf, "failed": failed}),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{SIGNIN_COOKIE}={csrf}; Path=/signin; HttpOnly; SameSite=Strict"
    )) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// `GET /signin`: a form to paste a token into (what an SSO would post).
pub async fn signin_form(headers: HeaderMap) -> Response {
    signin_page(lang_of(&headers), false)
}

/// The sign-in form.
#[derive(Deserialize)]
pub struct SigninForm {
    token: String,
    csrf: String,
}

/// `POST /signin`: checks the token as the API would and keeps it as the session.
pub async fn signin(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(form): Form<SigninForm>,
) -> Response {
    let lang = lang_of(&headers);
    let expected = cookie(&headers, SIGNIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same(&form.csrf, expected) {
        return forbidden_form(lang);
    }
    let token = form.token.trim();
    match app.verifier.verify(token) {
        Ok(caller) => {
            tracing::info!(role = caller.role.name(), "signed in to the pages");
            let mut r = redirect("/");
            r.headers_mut()
                .append(header::SET_COOKIE, session_cookie(token));
            r
        }
        Err(_) => {
            let mut r = signin_page(lang, true);
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            r
        }
    }
}

/// `GET /signin/demo/{code}`: `assist serve --demo`'s printed links.
pub async fn demo_signin(
    Extension(pages): Extension<Arc<Pages>>,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> Response {
    match pages.demo.iter().find(|(c, _)| same(&code, c)) {
        Some((_, token)) => {
            let mut r = redirect("/");
            r.headers_mut()
                .append(header::SET_COOKIE, session_cookie(token));
            r
        }
        None => crate::render::not_found(lang_of(&headers)),
    }
}

/// A form that carries only the CSRF token.
#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

/// `POST /signout`: forgets the session.
pub async fn signout(session: Session, Form(form): Form<CsrfForm>) -> Response {
    if !session.csrf_ok(&form.csrf) {
        return forbidden_form(session.lang);
    }
    let mut r = redirect("/signin");
    r.headers_mut()
        .append(header::SET_COOKIE, clear_cookie(SESSION_COOKIE));
    r
}

/// The language switch.
#[derive(Deserialize)]
pub struct LanguageForm {
    csrf: String,
    lang: String,
    /// The page to go back to (a path of this server).
    back: String,
}

/// `POST /language`: Chinese or English for this browser.
pub async fn language(session: Session, Form(form): Form<LanguageForm>) -> Response {
    if !session.csrf_ok(&form.csrf) {
        return forbidden_form(session.lang);
    }
    let lang = Lang::parse(&form.lang).unwrap_or_default();
    // Only a path of this server, never another site.
    let local = form.back.starts_with('/')
        && !form.back.starts_with("//")
        && form
            .back
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_.-?=&%+:".contains(&b));
    let back = if local { form.back.as_str() } else { "/" };
    let mut r = redirect(back);
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{LANG_COOKIE}={}; Path=/; SameSite=Strict; Max-Age=31536000",
        lang.code()
    )) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}
