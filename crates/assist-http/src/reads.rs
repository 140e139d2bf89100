//! The read API: caseload, SLA summary, clocks and one stream's history. The caller's scope
//! (region prefix; for a caseworker, its assignment) is part of every query; a subject
//! outside it answers `404`, so its existence does not leak.

use crate::auth::{Caller, Role};
use crate::masking::mask_event;
use crate::problem::{Kind, Problem};
use crate::zone::{parse_when, rewrite_times, show_time};
use crate::App;
use assist_catalog::{RegionPrefix, StreamId};
use assist_ingest::history::Entry;
use assist_log::Record;
use assist_projections::audit::chain::{check_records, Integrity};
use assist_projections::caseload::query::{
    caseload_as_of, caseload_page, sort_by_deadline, CaseFilter,
};
use assist_projections::caseload::Stage;
use assist_projections::sla::report::{
    clocks_page, parse_status, summarize_listing, ClockLine, ClockWalk, Line, SlaFilter,
};
use assist_projections::sla::Status;
use assist_projections::store::{ts, Access};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Duration, FixedOffset, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use utoipa::IntoParams;

/// The largest page.
pub const MAX_LIMIT: usize = 1000;
/// The largest offset (2^53 - 1: any JSON client can write it exactly).
pub const MAX_OFFSET: usize = (1 << 53) - 1;
/// The page size when none is asked for.
pub const DEFAULT_LIMIT: usize = 50;

pub(crate) type Params<T> = Result<Query<T>, QueryRejection>;

pub(crate) fn params<T>(p: Params<T>) -> Result<T, Problem> {
    p.map(|Query(t)| t)
        .map_err(|e| Problem::new(Kind::BadParameter, e.body_text()))
}

pub(crate) fn allow(caller: &Caller, roles: &[Role], what: &str) -> Result<(), Problem> {
    if roles.contains(&caller.role) {
        Ok(())
    } else {
        Err(Problem::new(
            Kind::Forbidden,
            format!("role {} may not read {what}", caller.role.name()),
        ))
    }
}

/// The region prefix a request reads: the caller's, or a narrower one it asks for.
pub(crate) fn region_scope(caller: &Caller, asked: Option<&str>) -> Result<String, Problem> {
    let mine = caller.region.as_str();
    let Some(asked) = asked else {
        return Ok(mine.to_string());
    };
    let asked = RegionPrefix::new(asked)
        .map_err(|e| Problem::new(Kind::BadParameter, format!("region: {e}")))?;
    if asked.as_str().starts_with(mine) {
        Ok(asked.as_str().to_string())
    } else if mine.starts_with(asked.as_str()) {
        Ok(mine.to_string())
    } else {
        Err(Problem::new(
            Kind::OutOfScope,
            format!("region {asked} is outside the caller's region {mine}"),
        ))
    }
}

/// The caseworker a request reads: a caseworker reads only its own cases.
fn caseworker_scope(caller: &Caller, asked: Option<String>) -> Result<Option<String>, Problem> {
    match (caller.role, asked) {
        (Role::Caseworker, Some(w)) if w != caller.sub => Err(Problem::new(
            Kind::OutOfScope,
            "a caseworker reads only its own cases",
        )),
        (Role::Caseworker, _) => Ok(Some(caller.sub.clone())),
        (_, asked) => Ok(asked),
    }
}

pub(crate) fn page(limit: Option<usize>, offset: Option<usize>) -> Result<(usize, usize), Problem> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(Problem::new(
            Kind::BadParameter,
            format!("limit must be 1 to {MAX_LIMIT}"),
        ));
    }
    let offset = offset.unwrap_or(0);
    if offset > MAX_OFFSET {
        return Err(Problem::new(
            Kind::BadParameter,
            format!("offset must be 0 to {MAX_OFFSET}"),
        ));
    }
    Ok((limit, offset))
}

fn when(asked: Option<&str>, name: &str) -> Result<DateTime<Utc>, Problem> {
    match asked {
        Some(s) => {
            parse_when(s).map_err(|e| Problem::new(Kind::BadParameter, format!("{name}: {e}")))
        }
        None => Ok(Utc::now()),
    }
}

fn risk(hours: Option<i64>) -> Result<Duration, Problem> {
    let hours = hours.unwrap_or(24);
    if !(0..=8760).contains(&hours) {
        return Err(Problem::new(
            Kind::BadParameter,
            "risk_hours must be 0 to 8760",
        ));
    }
    Ok(Duration::hours(hours))
}

/// A JSON response with its times in the display zone.
pub(crate) fn respond(app: &App, mut doc: Value) -> Response {
    rewrite_times(&mut doc, app.config.zone);
    Json(doc).into_response()
}

/// Whether generation `gen` was built with other SLA policies than those in force: then
/// its figures follow the old ones until a rebuild, and the answer says so.
pub(crate) async fn policies_differ(app: &App, gen: i64) -> Result<Option<Value>, Problem> {
    let built = app
        .views
        .store
        .generation_rules(gen)
        .await
        .map_err(|e| Problem::internal(&e))?;
    let in_force = app.views.rules.fingerprint();
    Ok(built.filter(|b| *b != in_force).map(|built_with| {
        json!({
            "built_with": built_with,
            "in_force": in_force,
            "advice": "the figures follow the policies the views were built with; a rebuild (POST /v1/rebuild) applies those in force",
        })
    }))
}

/// The generation a read reads, once it holds everything the log held when the read came:
/// a read after a write's answer sees that write.
pub(crate) async fn active_gen(app: &App) -> Result<i64, Problem> {
    app.views.fresh().await.map_err(|e| Problem::internal(&e))?;
    app.views
        .store
        .active_gen()
        .await
        .map_err(|e| Problem::internal(&e))
}

/// `GET /v1/caseload` parameters: the command line's filters and a page.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CaseloadParams {
    /// Only this caseworker's (a caseworker may give only its own id).
    caseworker: Option<String>,
    /// A region prefix (2, 4 or 6 digits) inside the caller's; default the caller's region.
    #[param(
        pattern = "^(11|12|13|14|15|21|22|23|31|32|33|34|35|36|37|41|42|43|44|45|46|50|51|52|53|54|61|62|63|64|65|71|81|82)([0-9]{2}){0,2}$"
    )]
    region: Option<String>,
    /// Only cases of this key group.
    group: Option<String>,
    /// Only cases at this stage (alerted, contacted, assessed, offers_pushed, in_training, placed, in_follow_up, suspended, closed).
    #[param(
        pattern = "^(alerted|contacted|assessed|offers_pushed|in_training|placed|in_follow_up|suspended|closed)$"
    )]
    stage: Option<String>,
    #[serde(default)]
    /// Include closed cases.
    all: bool,
    /// The caseload as it stood then, by the facts that had occurred by then: RFC 3339, or
    /// a date (its end, in China time). Folds the log again: slower than the current one.
    #[param(value_type = Option<String>, format = DateTime)]
    as_of: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Items to skip (default 0).
    #[param(minimum = 0, maximum = 9007199254740991_u64)]
    offset: Option<usize>,
}

/// The caseload in the caller's scope, sorted by next step due (overdue first); the
/// observer gets the figures only.
#[utoipa::path(
    get,
    path = "/v1/caseload",
    tag = "reads",
    params(CaseloadParams),
    responses(
        (status = 200, description = "the caseload in the caller's scope", body = crate::openapi::CaseloadDoc),
        (status = 400, description = "a parameter is not valid (`bad-parameter`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "no valid bearer token (`unauthorized`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "the role may not read this (`forbidden`), or a region outside the caller's is asked for (`out-of-scope`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json")
    )
)]
pub async fn caseload(
    caller: Caller,
    State(app): State<Arc<App>>,
    p: Params<CaseloadParams>,
) -> Result<Response, Problem> {
    allow(
        &caller,
        &[Role::Caseworker, Role::Supervisor, Role::Observer],
        "the caseload",
    )?;
    let p = params(p)?;
    let (limit, offset) = page(p.limit, p.offset)?;
    let stage = match &p.stage {
        Some(s) => Some(Stage::parse(s).ok_or_else(|| {
            Problem::new(Kind::BadParameter, "stage is not one of alerted, contacted, assessed, offers_pushed, in_training, placed, in_follow_up, suspended, closed")
        })?),
        None => None,
    };
    let filter = CaseFilter {
        caseworker: caseworker_scope(&caller, p.caseworker)?,
        region: Some(region_scope(&caller, p.region.as_deref())?),
        group: p.group,
        stage,
        include_closed: p.all || stage == Some(Stage::Closed),
    };
    let as_of = p
        .as_of
        .as_deref()
        .map(|s| when(Some(s), "as_of"))
        .transpose()?;
    let load = match as_of {
        Some(at) => {
            let log: &dyn assist_log::PartitionReader = app.views.recorder.log().as_ref();
            let events = assist_projections::runner::read_facts(log)
                .await
                .map_err(|e| Problem::internal(&e))?;
            let mut load = caseload_as_of(&app.views.rules, events.iter(), &filter, at);
            sort_by_deadline(&mut load.cases);
            load.cases = load.cases.into_iter().skip(offset).take(limit).collect();
            load
        }
        None => {
            let gen = active_gen(&app).await?;
            caseload_page(
                &app.views.store,
                &app.views.rules.calendar,
                gen,
                &filter,
                Utc::now(),
                (limit, offset),
            )
            .await
            .map_err(|e| Problem::internal(&e))?
        }
    };
    let mut doc = json!({
        "at": load.at,
        "total": load.total,
        "by_stage": load.by_stage,
    });
    if caller.role != Role::Observer {
        doc["limit"] = json!(limit);
        doc["offset"] = json!(offset);
        doc["cases"] = json!(load.cases);
    }
    Ok(respond(&app, doc))
}

/// `GET /v1/sla` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SlaParams {
    /// The time the figures are for: RFC 3339, or a date (its end, in China time); default now.
    #[param(value_type = Option<String>, format = DateTime)]
    at: Option<String>,
    /// Hours before a deadline that count as at risk, 0 to 8760 (default 24).
    #[param(minimum = 0, maximum = 8760)]
    risk_hours: Option<i64>,
    /// A region prefix (2, 4 or 6 digits) inside the caller's; default the caller's region.
    #[param(
        pattern = "^(11|12|13|14|15|21|22|23|31|32|33|34|35|36|37|41|42|43|44|45|46|50|51|52|53|54|61|62|63|64|65|71|81|82)([0-9]{2}){0,2}$"
    )]
    region: Option<String>,
    /// Only this caseworker's (a caseworker may give only its own id).
    caseworker: Option<String>,
    /// Caseworker lines per page, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Caseworker lines to skip (default 0).
    #[param(minimum = 0, maximum = 9007199254740991_u64)]
    offset: Option<usize>,
}

/// The SLA figures in the caller's scope: totals, by step, by region (rolled up) and a
/// page of the caseworker lines, most breached clocks first (a province has thousands of
/// caseworkers). The breached and at-risk clocks are listed by `/v1/sla/clocks?status=…`.
#[utoipa::path(
    get,
    path = "/v1/sla",
    tag = "reads",
    params(SlaParams),
    responses(
        (status = 200, description = "the SLA figures in the caller's scope", body = crate::openapi::SlaDoc),
        (status = 400, description = "a parameter is not valid (`bad-parameter`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "no valid bearer token (`unauthorized`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "the role may not read this (`forbidden`), or a region outside the caller's is asked for (`out-of-scope`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json")
    )
)]
pub async fn sla(
    caller: Caller,
    State(app): State<Arc<App>>,
    p: Params<SlaParams>,
) -> Result<Response, Problem> {
    allow(
        &caller,
        &[Role::Caseworker, Role::Supervisor, Role::Observer],
        "SLA figures",
    )?;
    let p = params(p)?;
    let (limit, offset) = page(p.limit, p.offset)?;
    let at = when(p.at.as_deref(), "at")?;
    let risk = risk(p.risk_hours)?;
    let region = region_scope(&caller, p.region.as_deref())?;
    let caseworker = caseworker_scope(&caller, p.caseworker)?;
    let gen = active_gen(&app).await?;
    // The scope goes into the query; the clocks are counted as they are read.
    let filter = SlaFilter {
        region: Some(region),
        caseworker,
        policy: None,
        step: None,
    };
    // Only figures: no list of clocks (`/v1/sla/clocks` pages through them).
    let r = summarize_listing(
        &app.views.store,
        gen,
        &app.views.rules.calendar,
        at,
        risk,
        &filter,
        Some(0),
    )
    .await
    .map_err(|e| Problem::internal(&e))?;
    let workers = r.by_caseworker.len();
    let mut doc = json!({
        "at": r.at,
        "risk_hours": risk.num_hours(),
        "total": r.total,
        "by_step": r.by_step,
        "by_region": r.by_region,
        "by_caseworker": worst_first(r.by_caseworker, limit, offset),
        "caseworkers": workers,
        "limit": limit,
        "offset": offset,
    });
    if let Some(differ) = policies_differ(&app, gen).await? {
        doc["policies_differ"] = differ;
    }
    Ok(respond(&app, doc))
}

/// `GET /v1/sla/trend` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TrendParams {
    /// The end of the last week: RFC 3339, or a date (its end, in China time); default now.
    #[param(value_type = Option<String>, format = DateTime)]
    at: Option<String>,
    /// How many weeks, 1 to 52 (default 8).
    #[param(minimum = 1, maximum = 52)]
    weeks: Option<u32>,
    /// A region prefix (2, 4 or 6 digits) inside the caller's; default the caller's region.
    #[param(
        pattern = "^(11|12|13|14|15|21|22|23|31|32|33|34|35|36|37|41|42|43|44|45|46|50|51|52|53|54|61|62|63|64|65|71|81|82)([0-9]{2}){0,2}$"
    )]
    region: Option<String>,
    /// Only this caseworker's (a caseworker may give only its own id).
    caseworker: Option<String>,
}

/// The weekly on-time trend in the caller's scope: for each of the weeks of seven days
/// before `at`, the clocks never paused that fell due in it, by their status at `at`,
/// and their on-time rate (a paused clock's deadline moves, so it is in no week).
#[utoipa::path(
    get,
    path = "/v1/sla/trend",
    tag = "reads",
    params(TrendParams),
    responses(
        (status = 200, description = "the weeks, oldest first", body = crate::openapi::TrendDoc),
        (status = 400, description = "a parameter is not valid (`bad-parameter`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "no valid bearer token (`unauthorized`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "the role may not read this (`forbidden`), or a region outside the caller's is asked for (`out-of-scope`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json")
    )
)]
pub async fn trend(
    caller: Caller,
    State(app): State<Arc<App>>,
    p: Params<TrendParams>,
) -> Result<Response, Problem> {
    allow(
        &caller,
        &[Role::Caseworker, Role::Supervisor, Role::Observer],
        "SLA figures",
    )?;
    let p = params(p)?;
    let at = when(p.at.as_deref(), "at")?;
    let weeks = p.weeks.unwrap_or(8);
    if !(1..=52).contains(&weeks) {
        return Err(Problem::new(Kind::BadParameter, "weeks must be 1 to 52"));
    }
    let filter = SlaFilter {
        region: Some(region_scope(&caller, p.region.as_deref())?),
        caseworker: caseworker_scope(&caller, p.caseworker)?,
        policy: None,
        step: None,
    };
    let gen = active_gen(&app).await?;
    let weeks =
        assist_projections::sla::report::trend_counted(&app.views.store, gen, at, weeks, &filter)
            .await
            .map_err(|e| Problem::internal(&e))?;
    Ok(respond(&app, json!({"at": ts(at), "weeks": weeks})))
}

/// A page of caseworker lines: the most breached clocks first, then by staff id (a
/// stable order that puts first whom a supervisor looks at first).
fn worst_first(lines: Vec<Line>, limit: usize, offset: usize) -> Vec<Line> {
    // Each line's breached count read once, not at every comparison (a province has
    // thousands of caseworkers).
    let mut lines: Vec<(usize, Line)> = lines
        .into_iter()
        .map(|l| (l.counts.by_status.get("breached").copied().unwrap_or(0), l))
        .collect();
    lines.sort_by(|(a, x), (b, y)| b.cmp(a).then_with(|| x.key.cmp(&y.key)));
    lines
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|(_, l)| l)
        .collect()
}

/// `GET /v1/sla/clocks` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ClockParams {
    /// Only clocks of this status (on_track, at_risk, paused, breached, met, met_late, cancelled).
    #[param(pattern = "^(on_track|at_risk|paused|breached|met|met_late|cancelled)$")]
    status: Option<String>,
    /// Only clocks of this policy.
    policy: Option<String>,
    /// Only clocks of this step.
    step: Option<String>,
    /// A region prefix (2, 4 or 6 digits) inside the caller's; default the caller's region.
    #[param(
        pattern = "^(11|12|13|14|15|21|22|23|31|32|33|34|35|36|37|41|42|43|44|45|46|50|51|52|53|54|61|62|63|64|65|71|81|82)([0-9]{2}){0,2}$"
    )]
    region: Option<String>,
    /// Only this caseworker's (a caseworker may give only its own id).
    caseworker: Option<String>,
    /// The time the figures are for: RFC 3339, or a date (its end, in China time); default now.
    #[param(value_type = Option<String>, format = DateTime)]
    at: Option<String>,
    /// Hours before a deadline that count as at risk, 0 to 8760 (default 24).
    #[param(minimum = 0, maximum = 8760)]
    risk_hours: Option<i64>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Items to skip (default 0).
    #[param(minimum = 0, maximum = 9007199254740991_u64)]
    offset: Option<usize>,
}

/// The clocks behind a figure, by deadline then id, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/sla/clocks",
    tag = "reads",
    params(ClockParams),
    responses(
        (status = 200, description = "a page of clocks", body = crate::openapi::ClocksDoc),
        (status = 400, description = "a parameter is not valid (`bad-parameter`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "no valid bearer token (`unauthorized`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "the role may not read this (`forbidden`), or a region outside the caller's is asked for (`out-of-scope`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json")
    )
)]
pub async fn clocks(
    caller: Caller,
    State(app): State<Arc<App>>,
    p: Params<ClockParams>,
) -> Result<Response, Problem> {
    allow(&caller, &[Role::Caseworker, Role::Supervisor], "clocks")?;
    let p = params(p)?;
    let shown = page(p.limit, p.offset)?;
    let list = clock_list(&caller, &app, p, shown).await?;
    let mut doc = json!({
        "at": list.at,
        "total": list.total,
        "limit": shown.0,
        "offset": shown.1,
        "clocks": list.clocks,
    });
    if let Some(differ) = policies_differ(&app, list.gen).await? {
        doc["policies_differ"] = differ;
    }
    Ok(respond(&app, doc))
}

/// The clocks a [`ClockParams`] selects in the caller's scope: when (stored form), how
/// many in all, and `limit` of them from `offset`.
pub struct ClockList {
    /// The generation read.
    pub gen: i64,
    /// The time the statuses are for (stored form).
    pub at: String,
    /// How many the filter selects in all.
    pub total: usize,
    /// The page asked for.
    pub clocks: Vec<assist_projections::sla::report::ClockLine>,
}

/// What `GET /v1/sla/clocks` reads, for any page size: the API pages it (`limit` up to
/// [`MAX_LIMIT`]). `p`'s own `limit` and `offset` are not read.
pub async fn clock_list(
    caller: &Caller,
    app: &App,
    p: ClockParams,
    (limit, offset): (usize, usize),
) -> Result<ClockList, Problem> {
    let q = ClockQuery::of(caller, app, p).await?;
    let (total, clocks) = q.page(app, (limit, offset)).await?;
    Ok(ClockList {
        gen: q.gen,
        at: ts(q.at),
        total,
        clocks,
    })
}

/// A clock list's query checked and scoped for its caller, on the generation active when
/// it was made: what `GET /v1/sla/clocks` reads a page of, and an export reads all of,
/// page by page ([`ClockQuery::walk`]).
pub struct ClockQuery {
    /// The generation read.
    pub gen: i64,
    /// The time the statuses are for.
    pub at: DateTime<Utc>,
    risk: Duration,
    filter: SlaFilter,
    status: Option<Status>,
}

impl ClockQuery {
    /// `p` checked, in `caller`'s scope (a region or caseworker outside it is a problem).
    pub async fn of(caller: &Caller, app: &App, p: ClockParams) -> Result<ClockQuery, Problem> {
        allow(caller, &[Role::Caseworker, Role::Supervisor], "clocks")?;
        let at = when(p.at.as_deref(), "at")?;
        let risk = risk(p.risk_hours)?;
        let status = match &p.status {
            Some(s) => Some(parse_status(s).ok_or_else(|| {
                Problem::new(Kind::BadParameter, "status is not one of on_track, at_risk, paused, breached, met, met_late, cancelled")
            })?),
            None => None,
        };
        let region = region_scope(caller, p.region.as_deref())?;
        let caseworker = caseworker_scope(caller, p.caseworker)?;
        let gen = active_gen(app).await?;
        // The scope goes into the queries; the store pages the clocks never paused.
        let filter = SlaFilter {
            region: Some(region),
            caseworker,
            policy: p.policy,
            step: p.step,
        };
        Ok(ClockQuery {
            gen,
            at,
            risk,
            filter,
            status,
        })
    }

    /// How many clocks there are in all, and `limit` of them from `offset`.
    pub async fn page(
        &self,
        app: &App,
        (limit, offset): (usize, usize),
    ) -> Result<(usize, Vec<ClockLine>), Problem> {
        clocks_page(
            &app.views.store,
            self.gen,
            &app.views.rules.calendar,
            self.at,
            self.risk,
            &self.filter,
            self.status,
            (limit, offset),
        )
        .await
        .map_err(|e| Problem::internal(&e))
    }

    /// A walk of the whole list a page at a time, in memory bounded by a page (and the
    /// few paused clocks the store does not keep in order): what an export reads.
    pub async fn walk(&self, app: &App) -> Result<ClockWalk, Problem> {
        ClockWalk::start(
            &app.views.store,
            self.gen,
            &app.views.rules.calendar,
            self.at,
            self.risk,
            &self.filter,
            self.status,
        )
        .await
        .map_err(|e| Problem::internal(&e))
    }
}

/// `GET /v1/sla/clocks/{clock}` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExplainParams {
    /// The clock as it stood at this time (only facts that had occurred by then); default now.
    #[param(value_type = Option<String>, format = DateTime)]
    at: Option<String>,
    /// Hours before a deadline that count as at risk, 0 to 8760 (default 24).
    #[param(minimum = 0, maximum = 8760)]
    risk_hours: Option<i64>,
}

/// One clock's facts (started, counted, paused, met, cancelled) as it stood at `at`, for a
/// clock in the caller's scope; any other answers `404`.
#[utoipa::path(
    get,
    path = "/v1/sla/clocks/{clock}",
    tag = "reads",
    params(("clock" = String, Path, description = "the clock's id, percent-encoded as one path segment"), ExplainParams),
    responses(
        (status = 200, description = "the clock's facts", body = crate::openapi::ExplanationDoc),
        (status = 400, description = "a parameter is not valid (`bad-parameter`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "no valid bearer token (`unauthorized`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "the role may not read this (`forbidden`), or a region outside the caller's is asked for (`out-of-scope`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "no such clock in the caller's scope (`not-found`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json")
    )
)]
pub async fn explain(
    caller: Caller,
    State(app): State<Arc<App>>,
    Path(clock): Path<String>,
    p: Params<ExplainParams>,
) -> Result<Response, Problem> {
    allow(
        &caller,
        &[Role::Caseworker, Role::Supervisor, Role::Auditor],
        "a clock's facts",
    )?;
    let p = params(p)?;
    let at = when(p.at.as_deref(), "at")?;
    let risk = risk(p.risk_hours)?;
    let not_found = || Problem::new(Kind::NotFound, "no such clock in the caller's scope");
    let gen = active_gen(&app).await?;
    let assigned = (caller.role == Role::Caseworker).then_some(caller.sub.as_str());
    let in_scope = app
        .views
        .store
        .clock_in_scope(gen, &clock, caller.region.as_str(), assigned)
        .await
        .map_err(|e| Problem::internal(&e))?;
    if !in_scope {
        return Err(not_found());
    }
    let log = app.views.recorder.log().clone();
    let e = assist_projections::sla::report::explain(
        &app.views.store,
        log.as_ref(),
        gen,
        &app.views.rules,
        &clock,
        at,
        risk,
    )
    .await
    .map_err(|e| Problem::internal(&e))?
    .ok_or_else(not_found)?;
    Ok(respond(&app, json!(e)))
}

/// `GET /v1/streams/{stream}/history` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// Only events that had occurred by then (RFC 3339 or a date).
    #[param(value_type = Option<String>, format = DateTime)]
    as_of: Option<String>,
    /// Only events recorded by then (RFC 3339 or a date).
    #[param(value_type = Option<String>, format = DateTime)]
    known_on: Option<String>,
    /// Why an auditor opens personal fields (at most 500 characters; it is logged).
    #[param(max_length = 500)]
    reason: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Items to skip (default 0).
    #[param(minimum = 0, maximum = 9007199254740991_u64)]
    offset: Option<usize>,
}

/// How personal fields are shown to a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Personal {
    Opened,
    Masked,
}

/// One stream's events in log order (as-of by occurred time, known-on by recorded time),
/// for a caseworker's assigned subjects, a supervisor's region (masked) and an auditor's
/// region (opened only with a reason). Every read is in the access log.
#[utoipa::path(
    get,
    path = "/v1/streams/{stream}/history",
    tag = "reads",
    params(("stream" = String, Path, description = "person-<uuid> or household-<uuid>"), HistoryParams),
    responses(
        (status = 200, description = "a page of the stream's events", body = crate::openapi::HistoryDoc),
        (status = 400, description = "a parameter is not valid (`bad-parameter`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "no valid bearer token (`unauthorized`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "the role may not read this (`forbidden`), or a region outside the caller's is asked for (`out-of-scope`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "no such stream in the caller's scope (`not-found`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json")
    )
)]
pub async fn history(
    caller: Caller,
    State(app): State<Arc<App>>,
    Path(stream): Path<String>,
    p: Params<HistoryParams>,
) -> Result<Response, Problem> {
    allow(
        &caller,
        &[Role::Caseworker, Role::Supervisor, Role::Auditor],
        "histories",
    )?;
    let p = params(p)?;
    let (limit, offset) = page(p.limit, p.offset)?;
    let not_found = || Problem::new(Kind::NotFound, "no such stream in the caller's scope");
    let stream: StreamId = stream.parse().map_err(|_| not_found())?;
    let as_of = p
        .as_of
        .as_deref()
        .map(|s| when(Some(s), "as_of"))
        .transpose()?;
    let known_on = p
        .known_on
        .as_deref()
        .map(|s| when(Some(s), "known_on"))
        .transpose()?;
    let reason = p.reason.filter(|r| !r.trim().is_empty());
    if reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
        return Err(Problem::new(
            Kind::BadParameter,
            "reason may have at most 500 characters",
        ));
    }
    let personal = match (caller.role, &reason) {
        (Role::Caseworker, _) => Personal::Opened,
        (Role::Auditor, Some(_)) => Personal::Opened,
        _ => Personal::Masked,
    };
    let gen = active_gen(&app).await?;
    let assigned = (caller.role == Role::Caseworker).then_some(caller.sub.as_str());
    let store = &app.views.store;
    let subject = stream.to_string();
    let internal = |e: &dyn std::fmt::Display| Problem::internal(e);
    let mut in_scope = store
        .case_in_scope(gen, &subject, caller.region.as_str(), assigned)
        .await
        .map_err(|e| internal(&e))?;
    let mut all = None;
    if !in_scope && assigned.is_none() {
        // A subject without a case (registered, never alerted) lies where the system that
        // recorded its first fact does: an auditor or supervisor there may read it.
        let has_case = store
            .case_in_scope(gen, &subject, "", None)
            .await
            .map_err(|e| internal(&e))?;
        if !has_case {
            let entries = app
                .views
                .recorder
                .history(&stream)
                .await
                .map_err(|e| internal(&e))?;
            in_scope = entries
                .iter()
                .find_map(|e| e.event.as_ref().ok())
                .is_some_and(|first| {
                    first
                        .meta
                        .actor
                        .region
                        .as_str()
                        .starts_with(caller.region.as_str())
                });
            all = Some(entries);
        }
    }
    if !in_scope {
        return Err(not_found());
    }
    let mut command = String::from("GET history");
    if let Some(t) = as_of {
        command.push_str(&format!(" as_of={}", ts(t)));
    }
    if let Some(t) = known_on {
        command.push_str(&format!(" known_on={}", ts(t)));
    }
    command.push_str(match personal {
        Personal::Opened => " personal=opened",
        Personal::Masked => " personal=masked",
    });
    app.views
        .store
        .record_access(&Access {
            at: ts(Utc::now()),
            actor: caller.sub.clone(),
            role: caller.role.name().to_string(),
            stream: stream.to_string(),
            command,
            reason: reason.clone(),
            region: None,
        })
        .await
        .map_err(|e| Problem::internal(&e))?;
    let all = match all {
        Some(all) => all,
        None => app
            .views
            .recorder
            .history(&stream)
            .await
            .map_err(|e| Problem::internal(&e))?,
    };
    let entries: Vec<Entry> = all
        .into_iter()
        .filter(|e| match &e.event {
            Ok(ev) => {
                as_of.is_none_or(|t| ev.meta.occurred_at <= t)
                    && known_on.is_none_or(|t| ev.meta.recorded_at <= t)
            }
            Err(_) => true,
        })
        .collect();
    let total = entries.len();
    let shown: Vec<Entry> = entries.into_iter().skip(offset).take(limit).collect();
    let keyed: Vec<(Option<String>, &Record)> = shown
        .iter()
        .map(|e| {
            let id = e
                .record
                .event_id
                .or_else(|| e.event.as_ref().ok().map(|ev| ev.meta.event_id));
            (id.map(|id| id.to_string()), &e.record)
        })
        .collect();
    let integrity = check_records(&app.views.store, gen, &keyed)
        .await
        .map_err(|e| Problem::internal(&e))?;
    let zone = app.config.zone;
    let events: Vec<Value> = shown
        .into_iter()
        .zip(integrity)
        .map(|(e, i)| entry_json(e, i, personal, zone))
        .collect();
    let doc = json!({
        "stream": stream.to_string(),
        "personal_fields": match personal { Personal::Opened => "opened", Personal::Masked => "masked" },
        "total": total,
        "limit": limit,
        "offset": offset,
        "events": events,
    });
    // Not `respond`: the envelope's times are put in the zone above, and the data is
    // shown exactly as recorded (a free-text field that looks like a time is no time).
    Ok(Json(doc).into_response())
}

fn entry_json(e: Entry, integrity: Integrity, personal: Personal, zone: FixedOffset) -> Value {
    let mut v = json!({
        "partition": e.position.partition,
        "offset": e.position.offset,
        "written_version": e.written_version,
    });
    match e.event {
        Ok(mut ev) => {
            if personal == Personal::Masked {
                mask_event(&mut ev.data);
            }
            v["event"] = serde_json::to_value(ev.to_wire()).unwrap_or(Value::Null);
            v["event"]["occurred_at"] = json!(show_time(&ev.meta.occurred_at, zone));
            v["event"]["recorded_at"] = json!(show_time(&ev.meta.recorded_at, zone));
        }
        Err(reason) => v["error"] = json!(reason),
    }
    if integrity == Integrity::Altered {
        v["altered"] = json!(true);
    }
    v
}

/// `GET /v1/access-log` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AccessParams {
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Items to skip (default 0).
    #[param(minimum = 0, maximum = 9007199254740991_u64)]
    offset: Option<usize>,
}

/// Who read the histories of subjects in the auditor's region: sub, role, what, when and
/// the reason given; oldest first, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/access-log",
    tag = "reads",
    params(AccessParams),
    responses(
        (status = 200, description = "a page of the access log", body = crate::openapi::AccessLogDoc),
        (status = 400, description = "a parameter is not valid (`bad-parameter`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "no valid bearer token (`unauthorized`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "the role may not read this (`forbidden`), or a region outside the caller's is asked for (`out-of-scope`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json")
    )
)]
pub async fn access_log(
    caller: Caller,
    State(app): State<Arc<App>>,
    p: Params<AccessParams>,
) -> Result<Response, Problem> {
    allow(&caller, &[Role::Auditor], "the access log")?;
    let p = params(p)?;
    let (limit, offset) = page(p.limit, p.offset)?;
    let gen = active_gen(&app).await?;
    let (entries, total) = app
        .views
        .store
        .access_log_in(
            gen,
            caller.region.as_str(),
            limit as i64,
            i64::try_from(offset).unwrap_or(i64::MAX),
        )
        .await
        .map_err(|e| Problem::internal(&e))?;
    let doc = json!({
        "total": total,
        "limit": limit,
        "offset": offset,
        "entries": entries,
    });
    Ok(respond(&app, doc))
}
