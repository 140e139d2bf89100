//! Reading the caseload: filtered by caseworker, region prefix, group and stage, now or as
//! it stood on a date, with each case's next step due.

use super::{Case, Stage};
use crate::runner::{case_from, clock_from};
use crate::sla::{Calendar, Clock, Rules};
use crate::store::{like_escape, through, ts, Dialect, Store, StoreError};
use assist_catalog::Event;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use std::collections::{BTreeMap, HashMap};

/// Which cases to show.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    /// Only this caseworker's.
    pub caseworker: Option<String>,
    /// Only regions starting with this 2-, 4- or 6-digit prefix (province, city, county).
    pub region: Option<String>,
    /// Only cases in this key group.
    pub group: Option<String>,
    /// Only cases at this stage.
    pub stage: Option<Stage>,
    /// Closed cases too.
    pub include_closed: bool,
}

/// The next deadline of a case: its earliest running SLA clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NextStep {
    /// `policy/step`.
    pub step: String,
    /// The deadline, pauses included.
    pub due_at: String,
}

/// One line of a caseload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseView {
    /// The case.
    #[serde(flatten)]
    pub case: CaseLine,
    /// The next deadline, if a clock runs.
    pub next_step: Option<NextStep>,
}

/// The stored fields of a case, as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseLine {
    /// The stream.
    pub subject: String,
    /// person or household.
    pub kind: String,
    /// Open or closed.
    pub open: bool,
    /// The stage.
    pub stage: Stage,
    /// Key groups.
    pub groups: Vec<String>,
    /// Caseworker.
    pub caseworker: String,
    /// Region.
    pub region: String,
    /// Opened.
    pub opened_at: String,
    /// Last fact (by then, for `--as-of`).
    pub last_activity_at: Option<String>,
}

/// A caseload: counts per stage and the cases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Caseload {
    /// The time it describes.
    pub at: String,
    /// Number of cases the filter selects.
    pub total: usize,
    /// Cases per stage.
    pub by_stage: BTreeMap<Stage, usize>,
    /// The cases: all by subject, or a page by deadline ([`caseload_page`],
    /// [`sort_by_deadline`]).
    pub cases: Vec<CaseView>,
}

fn line(c: &Case, last_activity: bool) -> CaseLine {
    CaseLine {
        subject: c.subject.clone(),
        kind: c.kind.to_string(),
        open: c.open,
        stage: c.stage,
        groups: c.groups.clone(),
        caseworker: c.caseworker.clone(),
        region: c.region.clone(),
        opened_at: ts(c.opened_at),
        last_activity_at: last_activity.then(|| ts(c.last_activity_at)),
    }
}

/// Sorts cases as the caseload pages list them: next step due first (overdue ones have
/// the earliest deadlines, a case without one comes last), then by subject.
pub fn sort_by_deadline(cases: &mut [CaseView]) {
    fn due(c: &CaseView) -> &str {
        c.next_step.as_ref().map_or("~", |n| n.due_at.as_str())
    }
    cases.sort_by(|a, b| (due(a), &a.case.subject).cmp(&(due(b), &b.case.subject)));
}

/// The current caseload of generation `gen`, with next steps as of `at` (`calendar`
/// measures the pauses of clocks that count working days).
pub async fn caseload(
    store: &Store,
    calendar: &Calendar,
    gen: i64,
    filter: &CaseFilter,
    at: DateTime<Utc>,
) -> Result<Caseload, StoreError> {
    let err = |e| store.err(e);
    let region = format!("{}%", filter.region.clone().unwrap_or_default());
    // The caseworker is part of the query: a caseworker's scope is its assignment.
    let mut sql = String::from("SELECT * FROM cases WHERE gen = $1 AND region LIKE $2");
    if filter.caseworker.is_some() {
        sql.push_str(" AND caseworker = $3");
    }
    let mut q = sqlx::query(&sql).bind(gen).bind(&region);
    if let Some(w) = &filter.caseworker {
        q = q.bind(w);
    }
    let rows = q.fetch_all(&store.pool).await.map_err(err)?;
    let lines: Vec<CaseLine> = rows
        .iter()
        .map(|r| case_from(r).map(|c| line(&c, true)))
        .collect::<Result<_, _>>()
        .map_err(err)?;
    let clocks = clocks_running_at(store, gen, at, &region, filter.caseworker.as_deref()).await?;
    Ok(assemble(lines, &clocks, calendar, filter, at))
}

/// The current caseload of generation `gen` as a page: `total` and `by_stage` count every
/// case the filter selects, `cases` holds `limit` of them from `offset`, next deadline
/// first (overdue ones have the earliest), cases with none last, ties by subject. The
/// store pages the cases by their kept next deadline (`cases.next_due`); only those with
/// a paused clock (whose deadline moves with `at`) are read with their clocks and placed
/// here. For `at` after every fact (now): a clock met or cancelled later than `at` counts
/// as closed.
pub async fn caseload_page(
    store: &Store,
    calendar: &Calendar,
    gen: i64,
    filter: &CaseFilter,
    at: DateTime<Utc>,
    (limit, offset): (usize, usize),
) -> Result<Caseload, StoreError> {
    let err = |e| store.err(e);
    let named = store.names_indexes(gen).await?;
    let prefix = like_escape(filter.region.as_deref().unwrap_or_default());
    // The filter as SQL: the region as a range (for the indexes) and a prefix.
    let mut values = vec![prefix.clone(), format!("{prefix}~"), format!("{prefix}%")];
    let mut scope = format!("gen = {gen} AND region >= $1 AND region < $2 AND region LIKE $3");
    let mut add = |condition: &str, value: String| {
        values.push(value);
        scope.push_str(&condition.replace("$?", &format!("${}", values.len())));
    };
    if let Some(w) = &filter.caseworker {
        add(" AND caseworker = $?", w.clone());
    }
    if let Some(stage) = filter.stage {
        add(" AND stage = $?", stage.name().to_string());
    }
    if let Some(g) = &filter.group {
        // Exactly one of the comma-separated groups (`LIKE` would ignore case on SQLite).
        let find = match store.dialect() {
            Dialect::Sqlite => "instr",
            Dialect::Postgres => "strpos",
        };
        add(
            &format!(" AND {find}(',' || key_groups || ',', $?) > 0"),
            format!(",{g},"),
        );
    }
    if !filter.include_closed {
        scope.push_str(" AND is_open = 1");
    }
    if filter.group.as_ref().is_some_and(|g| g.contains(',')) {
        // No group's name holds a comma.
        scope.push_str(" AND 1 = 0");
    }
    fn bind<'q>(
        sql: &'q str,
        values: &[String],
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        let mut q = sqlx::query(sql);
        for v in values {
            q = q.bind(v.clone());
        }
        q
    }
    // Counted: a region's cases in `case_counts` (once the generation has its counts), a
    // caseworker's from the cases.
    let sql = if filter.caseworker.is_some() {
        format!(
            "SELECT stage, COUNT(*) AS n FROM {} WHERE {scope} GROUP BY stage",
            through("cases", "cases_by_caseworker", gen, named)
        )
    } else if store.sla_base(gen).await?.is_some() {
        format!("SELECT stage, CAST(SUM(n) AS BIGINT) AS n FROM case_counts WHERE {scope} GROUP BY stage HAVING SUM(n) <> 0")
    } else {
        format!("SELECT stage, COUNT(*) AS n FROM cases WHERE {scope} GROUP BY stage")
    };
    let mut by_stage = BTreeMap::new();
    let mut total = 0;
    for row in bind(&sql, &values)
        .fetch_all(&store.pool)
        .await
        .map_err(err)?
    {
        let stage: String = row.try_get("stage").map_err(err)?;
        let n = usize::try_from(row.try_get::<i64, _>("n").map_err(err)?).map_err(|_| {
            StoreError::Rows {
                store: store.name().to_string(),
                reason: format!(
                    "the case counts of generation {gen} went below zero: run assist rebuild"
                ),
            }
        })?;
        total += n;
        *by_stage
            .entry(Stage::parse(&stage).unwrap_or(Stage::Alerted))
            .or_default() += n;
    }
    // The first `offset + limit` by their kept deadline: the page lies within those and
    // the cases whose deadline moves.
    let sql = format!(
        "SELECT * FROM {} WHERE {scope} AND next_moves = 0 ORDER BY COALESCE(next_due, '~'), subject LIMIT {}",
        through("cases", "cases_by_next", gen, named),
        offset.saturating_add(limit).min(i64::MAX as usize)
    );
    let mut cases = Vec::new();
    for row in bind(&sql, &values)
        .fetch_all(&store.pool)
        .await
        .map_err(err)?
    {
        let case = case_from(&row).map_err(err)?;
        let next_step = match (
            row.try_get::<Option<String>, _>("next_step"),
            row.try_get::<Option<String>, _>("next_due"),
        ) {
            (Ok(Some(step)), Ok(Some(due_at))) => Some(NextStep { step, due_at }),
            _ => None,
        };
        cases.push(CaseView {
            case: line(&case, true),
            next_step,
        });
    }
    let sql = format!("SELECT * FROM cases WHERE {scope} AND next_moves = 1");
    let moving: Vec<CaseLine> = bind(&sql, &values)
        .fetch_all(&store.pool)
        .await
        .map_err(err)?
        .iter()
        .map(|r| case_from(r).map(|c| line(&c, true)))
        .collect::<Result<_, _>>()
        .map_err(err)?;
    if !moving.is_empty() {
        let subjects = format!("SELECT subject FROM cases WHERE {scope} AND next_moves = 1");
        let at_value = values.len() + 1;
        let sql = format!(
            "SELECT * FROM clocks WHERE gen = {gen} AND started_at <= ${at_value}
               AND (met_at IS NULL OR met_at > ${at_value}) AND (cancelled_at IS NULL OR cancelled_at > ${at_value})
               AND subject IN ({subjects})"
        );
        let rows = bind(&sql, &values)
            .bind(ts(at))
            .fetch_all(&store.pool)
            .await
            .map_err(err)?;
        let mut clocks: HashMap<String, Vec<Clock>> = HashMap::new();
        for r in &rows {
            let c = clock_from(r).map_err(err)?;
            clocks.entry(c.subject.clone()).or_default().push(c);
        }
        cases.extend(assemble(moving, &clocks, calendar, filter, at).cases);
    }
    cases.sort_by(|a, b| {
        let due = |c: &CaseView| {
            c.next_step
                .as_ref()
                .map_or("~", |n| n.due_at.as_str())
                .to_string()
        };
        (due(a), &a.case.subject).cmp(&(due(b), &b.case.subject))
    });
    Ok(Caseload {
        at: ts(at),
        total,
        by_stage,
        cases: cases.into_iter().skip(offset).take(limit).collect(),
    })
}

/// The caseload as it stood at `at` by business time: the folds run again over the events
/// that had occurred by then, in the order they occurred (`subject::fold`, as the views),
/// so a step recorded late counts from when it happened and a later fact never leaks into
/// an earlier day.
pub fn caseload_as_of<'a>(
    rules: &Rules,
    events: impl IntoIterator<Item = &'a Event>,
    filter: &CaseFilter,
    at: DateTime<Utc>,
) -> Caseload {
    let happened: Vec<&Event> = events
        .into_iter()
        .filter(|e| e.meta.occurred_at <= at)
        .collect();
    let (cases, all_clocks) = crate::subject::fold(rules, happened.iter().copied());
    let mut clocks: HashMap<String, Vec<Clock>> = HashMap::new();
    for c in all_clocks.into_values().flatten() {
        if c.status(at, chrono::Duration::zero(), &rules.calendar) != crate::sla::Status::Cancelled
            && c.met_at.is_none_or(|m| m > at)
        {
            clocks.entry(c.subject.clone()).or_default().push(c);
        }
    }
    let region = filter.region.clone().unwrap_or_default();
    let lines = cases
        .values()
        .flatten()
        .filter(|c| c.region.starts_with(region.as_str()))
        .map(|c| line(c, true))
        .collect();
    assemble(lines, &clocks, &rules.calendar, filter, at)
}

fn assemble(
    lines: Vec<CaseLine>,
    clocks: &HashMap<String, Vec<Clock>>,
    calendar: &Calendar,
    filter: &CaseFilter,
    at: DateTime<Utc>,
) -> Caseload {
    let mut cases: Vec<CaseView> = lines
        .into_iter()
        .filter(|c| filter.include_closed || c.open)
        .filter(|c| {
            filter
                .caseworker
                .as_ref()
                .is_none_or(|w| *w == c.caseworker)
        })
        .filter(|c| filter.group.as_ref().is_none_or(|g| c.groups.contains(g)))
        .filter(|c| filter.stage.is_none_or(|s| s == c.stage))
        .map(|c| {
            let next_step = clocks
                .get(&c.subject)
                .and_then(|cs| {
                    cs.iter()
                        .min_by_key(|k| (k.effective_due(at, calendar), k.clock_id.clone()))
                })
                .map(|k| NextStep {
                    step: format!("{}/{}", k.policy, k.step),
                    due_at: ts(k.effective_due(at, calendar)),
                });
            CaseView { case: c, next_step }
        })
        .collect();
    cases.sort_by(|a, b| a.case.subject.cmp(&b.case.subject));
    let mut by_stage = BTreeMap::new();
    for c in &cases {
        *by_stage.entry(c.case.stage).or_default() += 1;
    }
    Caseload {
        at: ts(at),
        total: cases.len(),
        by_stage,
        cases,
    }
}

/// Clocks that had started and were neither met nor cancelled at `at`, by subject: those of
/// the cases the caseload selects (by the case's region and caseworker, so a clock started
/// before a transfer still belongs to its case), found in the query, not after it.
async fn clocks_running_at(
    store: &Store,
    gen: i64,
    at: DateTime<Utc>,
    region_like: &str,
    caseworker: Option<&str>,
) -> Result<HashMap<String, Vec<Clock>>, StoreError> {
    let at_s = ts(at);
    let mut sql = String::from(
        "SELECT * FROM clocks WHERE gen = $1 AND started_at <= $2
           AND (met_at IS NULL OR met_at > $2) AND (cancelled_at IS NULL OR cancelled_at > $2)
           AND subject IN (SELECT subject FROM cases WHERE gen = $1 AND region LIKE $3",
    );
    if caseworker.is_some() {
        sql.push_str(" AND caseworker = $4");
    }
    sql.push(')');
    let mut q = sqlx::query(&sql).bind(gen).bind(&at_s).bind(region_like);
    if let Some(w) = caseworker {
        q = q.bind(w);
    }
    let rows = q.fetch_all(&store.pool).await.map_err(|e| store.err(e))?;
    let mut out: HashMap<String, Vec<Clock>> = HashMap::new();
    for r in &rows {
        let c = clock_from(r).map_err(|e| store.err(e))?;
        out.entry(c.subject.clone()).or_default().push(c);
    }
    Ok(out)
}
