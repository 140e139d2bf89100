//! The admin's endpoints: erase one person's personal data (crypto-shredding, as
//! `assist erase`) and rebuild every view (as `assist rebuild`).

use crate::auth::{Caller, Role};
use crate::problem::{Kind, Problem};
use crate::reads::{active_gen, allow, params, respond, Params};
use crate::App;
use assist_catalog::events::person::ErasureReason;
use assist_catalog::{StaffId, StreamId, SubjectKind};
use assist_ingest::{EraseError, ErasureFact};
use assist_privacy::PrivacyError;
use axum::extract::{Path, State};
use axum::response::Response;
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use utoipa::IntoParams;

/// `POST /v1/streams/{stream}/erase` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EraseParams {
    /// Why: legal_basis_ended (default), person_requested or retention_expired.
    #[param(pattern = "^(legal_basis_ended|person_requested|retention_expired)$")]
    reason: Option<String>,
}

/// Destroys the person's data key and records a `personal_data_erased` fact (actor: the
/// admin's `sub`, region: the person's registration region), for a person of the admin's
/// region; any other answers `404`. Running it again is safe.
#[utoipa::path(
    post,
    path = "/v1/streams/{stream}/erase",
    tag = "admin",
    params(("stream" = String, Path, description = "person-<uuid>"), EraseParams),
    responses(
        (status = 200, description = "the key is destroyed and the erasure recorded", body = crate::openapi::ErasedDoc),
        (status = 400, description = "a parameter is not valid (`bad-parameter`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "no valid bearer token (`unauthorized`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "the role may not erase (`forbidden`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "no such person in the caller's scope (`not-found`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 503, description = "another process reads the key table, so a copy of the key may remain (`not-ready`); the key is destroyed, try again to finish", body = crate::openapi::ProblemDoc, content_type = "application/problem+json")
    )
)]
pub async fn erase(
    caller: Caller,
    State(app): State<Arc<App>>,
    Path(stream): Path<String>,
    p: Params<EraseParams>,
) -> Result<Response, Problem> {
    allow(&caller, &[Role::Admin], "erasure")?;
    let p = params(p)?;
    let reason = match p.reason.as_deref() {
        None | Some("legal_basis_ended") => ErasureReason::LegalBasisEnded,
        Some("person_requested") => ErasureReason::PersonRequested,
        Some("retention_expired") => ErasureReason::RetentionExpired,
        Some(_) => {
            return Err(Problem::new(
                Kind::BadParameter,
                "reason is not one of legal_basis_ended, person_requested, retention_expired",
            ))
        }
    };
    let not_found = || Problem::new(Kind::NotFound, "no such person in the caller's scope");
    let stream: StreamId = stream.parse().map_err(|_| not_found())?;
    if stream.kind != SubjectKind::Person {
        return Err(not_found());
    }
    let actor_id = StaffId::new(&caller.sub).map_err(|_| {
        Problem::new(
            Kind::Forbidden,
            "the token's sub is not a staff id (letters, digits, . - _ :, at most 64) and cannot be recorded as the actor",
        )
    })?;
    let gen = active_gen(&app).await?;
    let subject = stream.to_string();
    let in_scope = app
        .views
        .store
        .case_in_scope(gen, &subject, caller.region.as_str(), None)
        .await
        .map_err(|e| Problem::internal(&e))?;
    if !in_scope {
        return Err(not_found());
    }
    let erased = app
        .views
        .recorder
        .erase_person(stream, actor_id, None, reason)
        .await;
    let (event_id, position) = match erased {
        Ok(fact) => {
            tracing::info!(sub = %caller.sub, "personal data erased");
            // What dead letters keep of the person goes too.
            app.views
                .store
                .clear_dead_letters_of(&subject)
                .await
                .map_err(|e| Problem::internal(&e))?;
            match fact {
                ErasureFact::AlreadyRecorded(id) => {
                    return Ok(respond(
                        &app,
                        json!({"stream": subject, "key_destroyed": true, "erasure": {"event_id": id.to_string(), "already_recorded": true}}),
                    ))
                }
                ErasureFact::Recorded(id, position) => (id, Some(position)),
            }
        }
        Err(EraseError::NoEvents) => return Err(not_found()),
        Err(EraseError::DestroyKey(PrivacyError::CopiesRemain { .. })) => {
            return Err(Problem::new(
                Kind::NotReady,
                "the key is destroyed, but another process reads the key table so a copy may remain; try again to finish",
            ))
        }
        Err(EraseError::DestroyKey(e)) => return Err(Problem::internal(&e)),
        Err(EraseError::Record(e)) => {
            tracing::info!(sub = %caller.sub, "personal data erased");
            return Err(Problem::internal(&e));
        }
        Err(EraseError::Read(e)) => return Err(Problem::internal(&e)),
    };
    if let Err(e) = app.views.catch_up().await {
        tracing::warn!(error = %e, "projecting after an erasure failed; the periodic run retries");
    }
    Ok(respond(
        &app,
        json!({
            "stream": subject,
            "key_destroyed": true,
            "erasure": {
                "event_id": event_id.to_string(),
                "already_recorded": false,
                "position": position.map(|p| json!({"partition": p.partition, "offset": p.offset})),
            },
        }),
    ))
}

/// Builds every view again from offset 0 into a new generation, swaps it in once caught up
/// and drops the old one, there and then (queries read the old one meanwhile). The views
/// are the whole deployment's, so any admin may.
#[utoipa::path(
    post,
    path = "/v1/rebuild",
    tag = "admin",
    responses(
        (status = 200, description = "the new generation is active", body = crate::openapi::RebuiltDoc),
        (status = 401, description = "no valid bearer token (`unauthorized`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "the role may not rebuild (`forbidden`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json")
    )
)]
pub async fn rebuild(caller: Caller, State(app): State<Arc<App>>) -> Result<Response, Problem> {
    allow(&caller, &[Role::Admin], "rebuild")?;
    tracing::info!(sub = %caller.sub, "rebuild asked");
    let started = Utc::now();
    // In a task of its own: a client that goes away (or the request timeout) does not
    // cancel a rebuild half way.
    let task = {
        let app = app.clone();
        tokio::spawn(async move { app.views.rebuild().await })
    };
    let rebuilt = task
        .await
        .map_err(|e| Problem::internal(&e))?
        .map_err(|e| Problem::internal(&e))?;
    let finished = Utc::now();
    Ok(respond(
        &app,
        json!({
            "started_at": assist_projections::store::ts(started),
            "finished_at": assist_projections::store::ts(finished),
            "generation": rebuilt.generation,
            "records": rebuilt.records,
            "dropped": rebuilt.dropped,
        }),
    ))
}
