//! `/healthz` (the process answers) and `/readyz` (log and store reachable, the views
//! within the lag threshold; the lag is reported either way).

use crate::problem::{Kind, Problem};
use crate::App;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::sync::Arc;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()), responses((status = 200, description = "the process answers", body = crate::openapi::HealthDoc)))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Ready to serve: log and store answer, and the views lag by at most the threshold.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "ready, with the lag", body = crate::openapi::ReadyDoc),
        (status = 503, description = "the log or store does not answer, or the views lag too far (`not-ready`, with `lag`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json")
    )
)]
pub async fn readyz(State(app): State<Arc<App>>) -> Response {
    match app.views.lag().await {
        Ok(lag) if lag.behind() <= app.config.max_lag => Json(json!({
            "status": "ready",
            "log": "ok",
            "store": "ok",
            "records": lag.records,
            "lag": lag.behind(),
            "max_lag": app.config.max_lag,
        }))
        .into_response(),
        Ok(lag) => Problem::new(
            Kind::NotReady,
            format!(
                "the views are {} records behind the log (at most {})",
                lag.behind(),
                app.config.max_lag
            ),
        )
        .with("lag", json!(lag.behind()))
        .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Problem::new(Kind::NotReady, "the log or the view store does not answer")
                .into_response()
        }
    }
}
