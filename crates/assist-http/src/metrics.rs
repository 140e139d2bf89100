//! `/metrics` for Prometheus: requests and their latency by route template (never the raw
//! path, which holds ids) and status, ingest outcomes, projection lag per partition, dead
//! letters and SQLite's heap. Each server has its own recorder (no global one), so servers
//! in one process keep their figures apart.

use crate::problem::Problem;
use crate::App;
use assist_log::{sqlite_memory, PartitionReader};
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use std::sync::Arc;
use std::time::Instant;

/// Requests answered, by `method`, `route` and `status`.
pub const REQUESTS: &str = "assist_http_requests_total";
/// Seconds to answer, by `method`, `route` and `status`.
pub const LATENCY: &str = "assist_http_request_duration_seconds";
/// Events posted, by `outcome` (accepted, duplicate, conflicting, rejected).
pub const INGESTED: &str = "assist_ingest_events_total";
/// Records of a `partition` the active views have not taken yet.
pub const LAG: &str = "assist_projection_lag_records";
/// Log records the projections could not read.
pub const DEAD_LETTERS: &str = "assist_dead_letters";
/// Bytes SQLite holds on the heap in this process (page caches of log, views and keys).
pub const SQLITE_MEMORY: &str = "assist_sqlite_memory_bytes";
/// The bound on that heap (`assist serve --sqlite-memory-mib`; 0: none).
pub const SQLITE_MEMORY_LIMIT: &str = "assist_sqlite_memory_limit_bytes";

/// Latency buckets, in seconds: 1 ms to 30 s (the request timeout).
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

static META: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// The server's figures.
pub struct Metrics {
    recorder: PrometheusRecorder,
}

impl Default for Metrics {
    fn default() -> Self {
        let builder = PrometheusBuilder::new();
        let builder = builder
            .set_buckets(&BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        Self {
            recorder: builder.build_recorder(),
        }
    }
}

fn key(name: &'static str, labels: &[(&'static str, String)]) -> Key {
    Key::from_parts(
        name,
        labels
            .iter()
            .map(|(k, v)| Label::new(*k, v.clone()))
            .collect::<Vec<_>>(),
    )
}

impl Metrics {
    /// Counts one answered request and its latency.
    pub fn request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let labels = [
            ("method", method.to_string()),
            ("route", route.to_string()),
            ("status", status.to_string()),
        ];
        self.recorder
            .register_counter(&key(REQUESTS, &labels), &META)
            .increment(1);
        self.recorder
            .register_histogram(&key(LATENCY, &labels), &META)
            .record(seconds);
    }

    /// Counts `n` posted events of `outcome`.
    pub fn ingested(&self, outcome: &'static str, n: usize) {
        self.recorder
            .register_counter(&key(INGESTED, &[("outcome", outcome.to_string())]), &META)
            .increment(n as u64);
    }

    fn gauge(&self, name: &'static str, labels: &[(&'static str, String)], value: f64) {
        self.recorder
            .register_gauge(&key(name, labels), &META)
            .set(value);
    }

    /// The text exposition of every figure.
    pub fn render(&self) -> String {
        self.recorder.handle().render()
    }
}

/// Counts each request of a matched route by its template, after it is answered.
pub async fn track(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = req.method().to_string();
    let start = Instant::now();
    let response = next.run(req).await;
    app.metrics.request(
        &method,
        &route,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}

/// `GET /metrics`: the figures, the lag and dead letters measured now.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "the Prometheus text exposition", body = String, content_type = "text/plain"),
        (status = 500, description = "the log or the view store failed (`internal`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json")
    )
)]
pub async fn metrics(State(app): State<Arc<App>>) -> Result<Response, Problem> {
    let store = &app.views.store;
    let gen = store
        .active_gen()
        .await
        .map_err(|e| Problem::internal(&e))?;
    let log: &dyn PartitionReader = app.views.recorder.log().as_ref();
    let partitions = log.partitions().await.map_err(|e| Problem::internal(&e))?;
    for p in partitions {
        let (taken, _) = assist_projections::runner::checkpoint(store, gen, p.partition)
            .await
            .map_err(|e| Problem::internal(&e))?;
        app.metrics.gauge(
            LAG,
            &[("partition", p.partition.to_string())],
            p.high_water.saturating_sub(taken) as f64,
        );
    }
    let dead = assist_projections::runner::dead_letters(store, gen)
        .await
        .map_err(|e| Problem::internal(&e))?;
    app.metrics.gauge(DEAD_LETTERS, &[], dead.len() as f64);
    app.metrics
        .gauge(SQLITE_MEMORY, &[], sqlite_memory::memory_used() as f64);
    app.metrics.gauge(
        SQLITE_MEMORY_LIMIT,
        &[],
        sqlite_memory::memory_limit() as f64,
    );
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response())
}
