//! The auditor's endpoints: findings (also a supervisor's), verify and dead letters. The
//! caller's region prefix goes into the findings' SQL; verify re-reads the whole log (what
//! it proves is about the whole log) and names only the mismatches of the caller's region.

use crate::auth::{Caller, Role};
use crate::problem::{Kind, Problem};
use crate::reads::{active_gen, allow, page, params, region_scope, respond, Params};
use crate::App;
use assist_log::PartitionReader;
use assist_projections::audit::findings::findings_in;
use assist_projections::audit::verify::verify as verify_log;
use assist_projections::store::ts;
use axum::extract::State;
use axum::response::Response;
use chrono::{Duration, Utc};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use utoipa::IntoParams;

/// `GET /v1/audit/findings` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FindingParams {
    /// A step recorded more than this many hours after it occurred is backdated, 0 to
    /// 87600 (default 72).
    #[param(minimum = 0, maximum = 87600)]
    backdated_after_hours: Option<i64>,
    /// A region prefix (2, 4 or 6 digits) inside the caller's; default the caller's region.
    #[param(
        pattern = "^(11|12|13|14|15|21|22|23|31|32|33|34|35|36|37|41|42|43|44|45|46|50|51|52|53|54|61|62|63|64|65|71|81|82)([0-9]{2}){0,2}$"
    )]
    region: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Items to skip (default 0).
    #[param(minimum = 0, maximum = 9007199254740991_u64)]
    offset: Option<usize>,
}

/// Findings about subjects of the caller's region (backdated steps, facts that break the
/// domain rules), each with its events, by subject then event.
#[utoipa::path(
    get,
    path = "/v1/audit/findings",
    tag = "audit",
    params(FindingParams),
    responses(
        (status = 200, description = "a page of findings", body = crate::openapi::FindingsDoc),
        (status = 400, description = "a parameter is not valid (`bad-parameter`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "no valid bearer token (`unauthorized`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "the role may not read findings (`forbidden`), or a region outside the caller's is asked for (`out-of-scope`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json")
    )
)]
pub async fn findings(
    caller: Caller,
    State(app): State<Arc<App>>,
    p: Params<FindingParams>,
) -> Result<Response, Problem> {
    allow(&caller, &[Role::Auditor, Role::Supervisor], "findings")?;
    let p = params(p)?;
    let (limit, offset) = page(p.limit, p.offset)?;
    let hours = p.backdated_after_hours.unwrap_or(72);
    if !(0..=87_600).contains(&hours) {
        return Err(Problem::new(
            Kind::BadParameter,
            "backdated_after_hours must be 0 to 87600",
        ));
    }
    let region = region_scope(&caller, p.region.as_deref())?;
    let gen = active_gen(&app).await?;
    let all = findings_in(&app.views.store, gen, &region, Duration::hours(hours))
        .await
        .map_err(|e| Problem::internal(&e))?;
    let shown: Vec<_> = all.iter().skip(offset).take(limit).collect();
    Ok(respond(
        &app,
        json!({
            "backdated_after_hours": hours,
            "total": all.len(),
            "limit": limit,
            "offset": offset,
            "findings": shown,
        }),
    ))
}

/// Re-reads the log and checks every hash chain and partition digest against the audit
/// store, there and then; lists the mismatches of the caller's region (and those of no
/// stream) and counts the others.
#[utoipa::path(
    get,
    path = "/v1/audit/verify",
    tag = "audit",
    responses(
        (status = 200, description = "the verification, started and finished", body = crate::openapi::VerifyDoc),
        (status = 401, description = "no valid bearer token (`unauthorized`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "the role may not verify (`forbidden`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json")
    )
)]
pub async fn verify(caller: Caller, State(app): State<Arc<App>>) -> Result<Response, Problem> {
    allow(&caller, &[Role::Auditor], "verify")?;
    let gen = active_gen(&app).await?;
    let started = Utc::now();
    let log: &dyn PartitionReader = app.views.recorder.log().as_ref();
    let v = verify_log(log, &app.views.store, gen)
        .await
        .map_err(|e| Problem::internal(&e))?;
    let finished = Utc::now();
    let mut shown = Vec::new();
    let mut elsewhere = 0usize;
    for m in &v.mismatches {
        let visible = match &m.stream {
            None => true,
            Some(stream) => app
                .views
                .store
                .case_in_scope(gen, stream, caller.region.as_str(), None)
                .await
                .map_err(|e| Problem::internal(&e))?,
        };
        if visible {
            shown.push(m);
        } else {
            elsewhere += 1;
        }
    }
    Ok(respond(
        &app,
        json!({
            "started_at": ts(started),
            "finished_at": ts(finished),
            "records": v.records,
            "agrees": v.mismatches.is_empty(),
            "mismatches": shown,
            "mismatches_elsewhere": elsewhere,
        }),
    ))
}

/// `GET /v1/deadletters` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterParams {
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Items to skip (default 0).
    #[param(minimum = 0, maximum = 9007199254740991_u64)]
    offset: Option<usize>,
}

/// Log records the projections could not read: partition, offset, reason and size (never
/// the bytes), by position. A record that could not be read names no region, so every
/// auditor sees them all.
#[utoipa::path(
    get,
    path = "/v1/deadletters",
    tag = "audit",
    params(DeadLetterParams),
    responses(
        (status = 200, description = "a page of dead letters", body = crate::openapi::DeadLettersDoc),
        (status = 400, description = "a parameter is not valid (`bad-parameter`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "no valid bearer token (`unauthorized`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "the role may not read dead letters (`forbidden`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json")
    )
)]
pub async fn deadletters(
    caller: Caller,
    State(app): State<Arc<App>>,
    p: Params<DeadLetterParams>,
) -> Result<Response, Problem> {
    allow(&caller, &[Role::Auditor], "dead letters")?;
    let p = params(p)?;
    let (limit, offset) = page(p.limit, p.offset)?;
    let gen = active_gen(&app).await?;
    let all = assist_projections::runner::dead_letters(&app.views.store, gen)
        .await
        .map_err(|e| Problem::internal(&e))?;
    let shown: Vec<_> = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(|d| {
            json!({"partition": d.partition, "offset": d.offset, "reason": d.reason, "bytes": d.bytes, "redacted": d.redacted, "sha256": d.sha256})
        })
        .collect();
    Ok(respond(
        &app,
        json!({
            "total": all.len(),
            "limit": limit,
            "offset": offset,
            "dead_letters": shown,
        }),
    ))
}
