//! The pages for people, served by `assist serve` at `/`: the supervisor dashboard and
//! its drill-down, the caseworker worklist, the auditor timeline, and exports to CSV and
//! XLSX. Server-rendered HTML in Simplified Chinese (English by a switch), working
//! without JavaScript.
//!
//! Every page gets its figures by calling the JSON API's own handler with the signed-in
//! person as the caller ([`answers`]), so a page never shows what the API would not show
//! the same person, and the numbers on a page are the API's numbers.

pub mod answers;
pub mod audit;
pub mod catalog;
pub mod chart;
pub mod dashboard;
pub mod drill;
pub mod export;
pub mod rating;
pub mod render;
pub mod session;
pub mod worklist;

use assist_http::App;
use axum::routing::{get, post};
use axum::{Extension, Router};
use std::sync::Arc;

pub use rating::Ratings;

/// What the pages share besides the API's [`App`]: the ratings' thresholds, the key that
/// derives each session's CSRF token, and the demo's one-time sign-in codes.
pub struct Pages {
    /// Red / amber / green thresholds of the on-time rate.
    pub ratings: Ratings,
    /// The rows an export reads and writes at a time (what it holds in memory, whatever
    /// the list's length); 5,000 unless set.
    pub export_page_rows: usize,
    /// Derives each session's CSRF token (random per server start).
    csrf_key: [u8; 32],
    /// `assist serve --demo`: sign-in codes and the tokens they stand for.
    demo: Vec<(String, String)>,
}

impl Pages {
    /// Pages with `ratings` and no demo sign-in links.
    pub fn new(ratings: Ratings) -> Self {
        Self {
            ratings,
            export_page_rows: 5_000,
            csrf_key: rand::random(),
            demo: Vec::new(),
        }
    }

    /// Adds a demo sign-in for `token`; returns the path that signs it in
    /// (`/signin/demo/<code>`, the code random, so no token or name is in the URL).
    pub fn add_demo_signin(&mut self, token: String) -> String {
        let code = hex::encode(rand::random::<[u8; 16]>());
        let path = format!("/signin/demo/{code}");
        self.demo.push((code, token));
        path
    }
}

/// The pages' routes, to be merged into the API's router (`assist_http::router_with`).
pub fn routes(pages: Pages) -> Router<Arc<App>> {
    Router::new()
        .route("/", get(session::home))
        .route("/signin", get(session::signin_form).post(session::signin))
        .route("/signin/demo/{code}", get(session::demo_signin))
        .route("/signout", post(session::signout))
        .route("/language", post(session::language))
        .route("/static/style.css", get(render::style))
        .route("/dashboard", get(dashboard::dashboard))
        .route("/clocks", get(drill::clocks))
        .route("/clocks/{clock}", get(drill::clock))
        .route("/streams", get(drill::streams))
        .route(
            "/streams/{stream}",
            get(drill::timeline).post(drill::timeline_opened),
        )
        .route("/worklist", get(worklist::worklist))
        .route("/audit/findings", get(audit::findings))
        .route("/audit/verify", get(audit::verify))
        .route("/audit/access", get(audit::access))
        .route("/export/clocks.{format}", get(export::clocks))
        .route("/export/summary.{format}", get(export::summary))
        .route("/export/caseload.{format}", get(export::caseload))
        .route("/export/findings.{format}", get(export::findings))
        .route("/export/access.{format}", get(export::access))
        .layer(Extension(Arc::new(pages)))
}
