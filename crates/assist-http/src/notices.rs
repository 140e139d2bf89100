//! `GET /v1/notices`: the SLA timer's reminders and escalations, each person their own: a
//! caseworker those addressed to them, a supervisor those addressed to their region, an
//! auditor every notice of their region subtree.

use crate::auth::{Caller, Role};
use crate::problem::{Kind, Problem};
use crate::reads::{allow, page, params, respond, Params};
use crate::App;
use assist_projections::notices::{list_notices, NoticeFilter};
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use utoipa::IntoParams;

/// `GET /v1/notices` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct NoticeParams {
    /// Only this kind: `reminder`, `escalation-1`, `escalation-2`, …
    #[param(pattern = "^(reminder|escalation-[1-9][0-9]?)$")]
    kind: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Items to skip (default 0).
    #[param(minimum = 0, maximum = 9007199254740991_u64)]
    offset: Option<usize>,
}

/// The caller's notices, newest first, with their deliveries; the scope is in the query
/// (recipient and region), not applied afterwards.
#[utoipa::path(
    get,
    path = "/v1/notices",
    tag = "reads",
    params(NoticeParams),
    responses(
        (status = 200, description = "a page of notices", body = crate::openapi::NoticesDoc),
        (status = 400, description = "a parameter is not valid (`bad-parameter`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "no valid bearer token (`unauthorized`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "the role may not read notices (`forbidden`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json")
    )
)]
pub async fn notices(
    caller: Caller,
    State(app): State<Arc<App>>,
    p: Params<NoticeParams>,
) -> Result<Response, Problem> {
    allow(
        &caller,
        &[Role::Caseworker, Role::Supervisor, Role::Auditor],
        "notices",
    )?;
    let p = params(p)?;
    let (limit, offset) = page(p.limit, p.offset)?;
    if let Some(k) = &p.kind {
        if assist_projections::notices::Kind::parse(k).is_none() {
            return Err(Problem::new(
                Kind::BadParameter,
                "kind must be reminder or escalation-N",
            ));
        }
    }
    let region = caller.region.as_str().to_string();
    let filter = match caller.role {
        Role::Caseworker => NoticeFilter {
            audience: Some("caseworker".into()),
            recipient: Some(caller.sub.clone()),
            region: Some(region),
            kind: p.kind,
        },
        Role::Supervisor => NoticeFilter {
            audience: Some("supervisor".into()),
            recipient: Some(region.clone()),
            region: Some(region),
            kind: p.kind,
        },
        _ => NoticeFilter {
            region: Some(region),
            kind: p.kind,
            ..NoticeFilter::default()
        },
    };
    let (total, lines) = list_notices(
        &app.views.store,
        &filter,
        limit as i64,
        i64::try_from(offset).unwrap_or(i64::MAX),
    )
    .await
    .map_err(|e| Problem::internal(&e))?;
    Ok(respond(
        &app,
        json!({"total": total, "limit": limit, "offset": offset, "notices": lines}),
    ))
}
