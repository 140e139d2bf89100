//! `assist serve`: the JSON API over the log and the views, for caseworker systems,
//! caseworkers, supervisors and auditors. HTTP lives here only; the domain crates know
//! nothing of it.
//!
//! Every request is authenticated ([`auth`]) into a [`auth::Caller`] whose role and region
//! prefix go into the queries it runs ([`reads`]); writes take the same path as
//! `assist ingest` ([`events`]); errors are RFC 9457 problems ([`problem`]).

pub mod admin;
pub mod audit;
pub mod auth;
pub mod events;
pub mod health;
pub mod masking;
pub mod metrics;
pub mod notices;
pub mod openapi;
pub mod problem;
pub mod reads;
pub mod views;
pub mod zone;

use axum::extract::DefaultBodyLimit;
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use chrono::FixedOffset;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use views::Views;

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct Config {
    /// The largest request body taken, in bytes.
    pub body_limit: usize,
    /// How long one request may take.
    pub request_timeout: Duration,
    /// The zone times are shown in.
    pub zone: FixedOffset,
    /// `/readyz` fails while the views lag the log by more records than this.
    pub max_lag: u64,
    /// How often the views are brought up to date with the log (besides when a write wakes
    /// the projector, and before each read).
    pub project_every: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            body_limit: 8 << 20,
            request_timeout: Duration::from_secs(30),
            zone: zone::china(),
            max_lag: 10_000,
            project_every: Duration::from_secs(2),
        }
    }
}

/// What every request shares: the views, the token check and the configuration.
pub struct App {
    /// The log, the key table, the view store and the rules.
    pub views: Views,
    /// The token check.
    pub verifier: auth::Verifier,
    /// The configuration.
    pub config: Config,
    /// The figures `/metrics` shows.
    pub metrics: metrics::Metrics,
}

/// The routes, with body limit, timeout, request tracing (method and path only: a query
/// may carry a reason text) and panics turned into problems.
pub fn router(app: Arc<App>) -> Router {
    router_with(app, Router::new())
}

/// [`router`] with `pages` (the pages for people, `assist-pages`) among its routes, under
/// the same limits, metrics and tracing.
pub fn router_with(app: Arc<App>, pages: Router<Arc<App>>) -> Router {
    let limit = app.config.body_limit;
    let timeout = app.config.request_timeout;
    Router::new()
        .merge(pages)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/docs", get(openapi::docs))
        .route("/metrics", get(metrics::metrics))
        .route("/v1/events", post(events::post_events))
        .route("/v1/caseload", get(reads::caseload))
        .route("/v1/sla", get(reads::sla))
        .route("/v1/sla/clocks", get(reads::clocks))
        .route("/v1/sla/trend", get(reads::trend))
        .route("/v1/sla/clocks/{clock}", get(reads::explain))
        .route("/v1/streams/{stream}/history", get(reads::history))
        .route("/v1/access-log", get(reads::access_log))
        .route("/v1/notices", get(notices::notices))
        .route("/v1/audit/findings", get(audit::findings))
        .route("/v1/audit/verify", get(audit::verify))
        .route("/v1/deadletters", get(audit::deadletters))
        .route("/v1/streams/{stream}/erase", post(admin::erase))
        .route("/v1/rebuild", post(admin::rebuild))
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            metrics::track,
        ))
        .fallback(|| async {
            problem::Problem::new(problem::Kind::NotFound, "no such route")
        })
        .layer(DefaultBodyLimit::max(limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(axum::middleware::map_response(
            problem::bare_errors_as_problems,
        ))
        .layer(CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
            tracing::error!("a request handler panicked");
            problem::Problem::new(problem::Kind::Internal, "the server failed; its log says why")
                .into_response()
        }))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<axum::body::Body>| {
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
            }),
        )
        .with_state(app)
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets the requests in flight
/// finish. A background task keeps the views current with the log meanwhile: woken by each
/// write, and every `project_every` for what other writers appended.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, app, Router::new(), shutdown).await
}

/// [`serve`] with `pages` among the routes ([`router_with`]).
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    pages: Router<Arc<App>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let projector = {
        let app = app.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = app.views.catch_up().await {
                    tracing::warn!(error = %e, "projecting the log failed; retrying later");
                }
                // Woken by a write, or after a while for other writers' appends.
                app.views.wait_for_writes(app.config.project_every).await;
            }
        })
    };
    let result = axum::serve(listener, router_with(app, pages))
        .with_graceful_shutdown(shutdown)
        .await;
    projector.abort();
    result
}
