//! Supervisors' SLA figures: counts per status by region (rolled up province → city →
//! county) and by caseworker, on-time rates, and the breached and at-risk clocks; every
//! figure drills down to its clocks, and `explain` to the facts behind a clock.

use super::{Calendar, Clock, Rules, Status};
use crate::runner::clock_from;
use crate::store::{like_escape, through, ts, Dialect, Store, StoreError};
use assist_catalog::Event;
use assist_log::StreamReader;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::Row;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Which clocks to count.
#[derive(Debug, Clone, Default)]
pub struct SlaFilter {
    /// Only regions with this prefix.
    pub region: Option<String>,
    /// Only this caseworker's clocks.
    pub caseworker: Option<String>,
    /// Only this policy.
    pub policy: Option<String>,
    /// Only this step (of any policy, or of `policy`).
    pub step: Option<String>,
}

impl SlaFilter {
    /// Whether the filter selects clock `c` (started by `at`: a clock not started yet is
    /// in no figure).
    fn selects(&self, c: &Clock, at: DateTime<Utc>) -> bool {
        c.started_at <= at
            && self
                .region
                .as_ref()
                .is_none_or(|r| c.region.starts_with(r.as_str()))
            && self.caseworker.as_ref().is_none_or(|w| *w == c.caseworker)
            && self.policy.as_ref().is_none_or(|p| *p == c.policy)
            && self.step.as_ref().is_none_or(|s| *s == c.step)
    }
}

/// A status by its name (`on_track`, `at_risk`, `paused`, `breached`, `met`, `met_late`,
/// `cancelled`).
pub fn parse_status(name: &str) -> Option<Status> {
    Status::ALL.into_iter().find(|s| s.name() == name)
}

/// The clocks a filter selects that have status `status` at `at` (any status when `None`),
/// by deadline then id: what every figure of the report drills down to.
pub fn list_clocks(
    clocks: &[Clock],
    calendar: &Calendar,
    at: DateTime<Utc>,
    risk: Duration,
    filter: &SlaFilter,
    status: Option<Status>,
) -> Vec<ClockLine> {
    let mut out: Vec<ClockLine> = clocks
        .iter()
        .filter(|c| filter.selects(c, at))
        .filter_map(|c| {
            let s = c.status(at, risk, calendar);
            status
                .is_none_or(|wanted| wanted == s)
                .then(|| ClockLine::of(c, at, s, calendar))
        })
        .collect();
    out.sort_by(by_deadline);
    out
}

/// Counts per status and the on-time rate.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counts {
    /// Clocks counted.
    pub total: usize,
    /// Per status (every status listed, zeros included).
    pub by_status: BTreeMap<&'static str, usize>,
    /// met / (met + met_late + breached), 4 decimals; absent when nothing is decided yet.
    pub on_time_rate: Option<f64>,
}

impl Counts {
    fn add(&mut self, s: Status, n: usize) {
        self.total += n;
        *self.by_status.entry(s.name()).or_default() += n;
    }

    fn finish(mut self) -> Self {
        for s in Status::ALL {
            self.by_status.entry(s.name()).or_default();
        }
        let met = self.by_status["met"] as f64;
        let decided = met + (self.by_status["met_late"] + self.by_status["breached"]) as f64;
        self.on_time_rate = (decided > 0.0).then(|| (met / decided * 10_000.0).round() / 10_000.0);
        self
    }
}

/// Figures for one region or caseworker.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    /// province, city, county or caseworker.
    pub level: &'static str,
    /// The region code (2, 4 or 6 digits) or the caseworker id.
    pub key: String,
    /// Its figures.
    pub counts: Counts,
    /// Under a region filter, a province or city above the filter counts only the
    /// filtered part (`350121` of city `3501`): never read such a line as the whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only: Option<String>,
}

/// One clock in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClockLine {
    /// Its id (give it to `sla explain`).
    pub clock_id: String,
    /// The stream.
    pub subject: String,
    /// `policy/step`.
    pub step: String,
    /// Region.
    pub region: String,
    /// Caseworker.
    pub caseworker: String,
    /// Started.
    pub started_at: String,
    /// Deadline, pauses included.
    pub due_at: String,
    /// Status.
    pub status: &'static str,
}

impl ClockLine {
    /// A clock as listed at `at`, with its status then.
    fn of(c: &Clock, at: DateTime<Utc>, status: Status, calendar: &Calendar) -> ClockLine {
        ClockLine {
            clock_id: c.clock_id.clone(),
            subject: c.subject.clone(),
            step: format!("{}/{}", c.policy, c.step),
            region: c.region.clone(),
            caseworker: c.caseworker.clone(),
            started_at: ts(c.started_at),
            due_at: ts(c.effective_due(at, calendar)),
            status: status.name(),
        }
    }
}

/// The SLA summary at a time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlaReport {
    /// The time the statuses are computed at.
    pub at: String,
    /// All clocks counted.
    pub total: Counts,
    /// Per policy and step.
    pub by_step: Vec<Line>,
    /// Per province, city and county.
    pub by_region: Vec<Line>,
    /// Per caseworker.
    pub by_caseworker: Vec<Line>,
    /// Breached clocks, by deadline.
    pub breached: Vec<ClockLine>,
    /// At-risk clocks, by deadline.
    pub at_risk: Vec<ClockLine>,
}

/// Computes the report from clocks: a pure function of the clocks, `at` and the window
/// (`calendar` measures the pauses of clocks that count working days).
pub fn report(
    clocks: &[Clock],
    calendar: &Calendar,
    at: DateTime<Utc>,
    risk: Duration,
    filter: &SlaFilter,
) -> SlaReport {
    let mut summary = Summary::new(calendar, at, risk, filter);
    for c in clocks {
        summary.add(c);
    }
    summary.finish()
}

/// The SLA summary of generation `gen`, counted by the store: equal to [`report`] over
/// [`load_clocks`]. See [`summarize_listing`].
pub async fn summarize(
    store: &Store,
    gen: i64,
    calendar: &Calendar,
    at: DateTime<Utc>,
    risk: Duration,
    filter: &SlaFilter,
) -> Result<SlaReport, StoreError> {
    summarize_listing(store, gen, calendar, at, risk, filter, None).await
}

/// The SLA summary of generation `gen` with at most `list` breached and at-risk clocks
/// listed (the first by deadline; all when `None`). A clock never paused has its status
/// in SQL (`plain`: settled ones by their `outcome`, open ones by their deadline), and so
/// has a paused clock settled by `at` or past its last pause fact then
/// ([`Clock::after_pauses`]): the store counts those by step, region and caseworker. Only
/// the other paused clocks (and rows from before migrations 0011 and 0015) are read one by
/// one and counted here. The filter is part of every query.
pub async fn summarize_listing(
    store: &Store,
    gen: i64,
    calendar: &Calendar,
    at: DateTime<Utc>,
    risk: Duration,
    filter: &SlaFilter,
    list: Option<usize>,
) -> Result<SlaReport, StoreError> {
    let scope = Scope::new(store, gen, filter, at, risk).await?;
    let mut summary = Summary::new(calendar, at, risk, filter);
    // Clocks never paused, and paused ones settled by `at`: counted by the store.
    for (by, counted) in By::ALL.into_iter().zip(scope.counted(store).await?) {
        for (key, counts) in counted {
            summary.count_keyed(by, &key, &counts);
        }
    }
    // Their breached and at-risk lists, by deadline (a paused clock's deadline moved: all
    // of those breached are read, a few).
    if list != Some(0) {
        for wanted in [Status::Breached, Status::AtRisk] {
            let mut sql = format!(
                "SELECT * FROM {} WHERE {} AND {} = '{}'{} ORDER BY due_at, clock_id",
                scope.through("clocks_by_deadline"),
                scope.plain(),
                Scope::STATUS,
                wanted.name(),
                Scope::due_range(Some(wanted)),
            );
            if let Some(n) = list {
                sql.push_str(&format!(" LIMIT {n}"));
            }
            for c in scope.clocks(store, &sql).await? {
                summary.list(&c, wanted);
            }
        }
        for wanted in [Status::Breached, Status::AtRisk] {
            for c in scope
                .known_clocks(store, Some(wanted), list.unwrap_or(usize::MAX))
                .await?
            {
                summary.list(&c, wanted);
            }
        }
    }
    // The others, one by one.
    for c in scope.other_clocks(store).await? {
        summary.add(&c);
    }
    let mut report = summary.finish();
    if let Some(n) = list {
        report.breached.truncate(n);
        report.at_risk.truncate(n);
    }
    Ok(report)
}

/// The clocks a filter selects with status `status` at `at` (any when `None`), by
/// deadline then id, a page of them (`limit` from `offset`) and how many there are in all:
/// [`list_clocks`] with the store doing the work for the clocks whose status the SQL
/// gives (see [`summarize_listing`]).
#[allow(clippy::too_many_arguments)]
pub async fn clocks_page(
    store: &Store,
    gen: i64,
    calendar: &Calendar,
    at: DateTime<Utc>,
    risk: Duration,
    filter: &SlaFilter,
    status: Option<Status>,
    (limit, offset): (usize, usize),
) -> Result<(usize, Vec<ClockLine>), StoreError> {
    let scope = Scope::new(store, gen, filter, at, risk).await?;
    // The first `offset + limit` of those the store walks in order, and all the others:
    // the page lies within those. The three reads go to the store at once, each on its own
    // connection (as before, not in one snapshot: a page and its total are two reads).
    let n = offset.saturating_add(limit);
    let (counted, mut lines, (unordered, uncounted)) = tokio::try_join!(
        scope.counted_total(store, status),
        scope.ordered(store, calendar, filter, status, (None, n)),
        scope.unordered(store, calendar, filter, status),
    )?;
    lines.extend(unordered);
    lines.sort_by(by_deadline);
    Ok((
        counted + uncounted,
        lines.into_iter().skip(offset).take(limit).collect(),
    ))
}

/// Clock lines by deadline, then id: the order of every clock list.
fn by_deadline(a: &ClockLine, b: &ClockLine) -> std::cmp::Ordering {
    (&a.due_at, &a.clock_id).cmp(&(&b.due_at, &b.clock_id))
}

/// Where a list by deadline resumes: after the clock with this deadline (stored form) and
/// this id, the last of the page before.
pub type ClockKey = (String, String);

/// A clock list (the clocks a filter selects with a status at a time) read in deadline-
/// then-id order a page at a time, as an export reads a long one: each page resumes the
/// store's walk after the last clock given. The paused clocks the store does not keep in
/// order ([`Scope::unordered`], a few percent) are read once when the walk starts and
/// merged in; the rest of the list is never in memory beyond a page.
pub struct ClockWalk {
    scope: Scope,
    filter: SlaFilter,
    status: Option<Status>,
    /// The unordered clocks not given yet, in order.
    unordered: std::collections::VecDeque<ClockLine>,
    /// How many of the unordered ones the store's counts leave out.
    uncounted: usize,
    after: Option<ClockKey>,
}

impl ClockWalk {
    /// A walk of the clocks of generation `gen` that `filter` selects with status `status`
    /// at `at` (any when `None`), before its first page.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        store: &Store,
        gen: i64,
        calendar: &Calendar,
        at: DateTime<Utc>,
        risk: Duration,
        filter: &SlaFilter,
        status: Option<Status>,
    ) -> Result<ClockWalk, StoreError> {
        let scope = Scope::new(store, gen, filter, at, risk).await?;
        let (unordered, uncounted) = scope.unordered(store, calendar, filter, status).await?;
        Ok(ClockWalk {
            scope,
            filter: filter.clone(),
            status,
            unordered: unordered.into(),
            uncounted,
            after: None,
        })
    }

    /// How many clocks the whole list holds (as [`clocks_page`] counts them), without
    /// reading again the unordered ones the walk read when it started.
    pub async fn total(&self, store: &Store) -> Result<usize, StoreError> {
        Ok(self.scope.counted_total(store, self.status).await? + self.uncounted)
    }

    /// The next `n` clocks (fewer at the end of the list, none past it).
    pub async fn next_page(
        &mut self,
        store: &Store,
        calendar: &Calendar,
        n: usize,
    ) -> Result<Vec<ClockLine>, StoreError> {
        let mut lines = self
            .scope
            .ordered(
                store,
                calendar,
                &self.filter,
                self.status,
                (self.after.as_ref(), n),
            )
            .await?;
        lines.extend(self.unordered.iter().take(n).cloned());
        lines.sort_by(by_deadline);
        lines.truncate(n);
        if let Some(last) = lines.last() {
            while self
                .unordered
                .front()
                .is_some_and(|u| by_deadline(u, last).is_le())
            {
                self.unordered.pop_front();
            }
            self.after = Some((last.due_at.clone(), last.clock_id.clone()));
        }
        Ok(lines)
    }
}

/// The on-time figures of one week of deadlines.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Week {
    /// The week's first moment (stored form).
    pub from: String,
    /// The moment after it (stored form); the last week ends at the trend's `at`.
    pub to: String,
    /// The clocks never paused that were due in the week, by their status at `at`.
    pub counts: Counts,
}

/// The `weeks` weeks of seven days before `at`, oldest first, the last ending at `at`.
fn weeks_before(at: DateTime<Utc>, weeks: u32) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    (0..i64::from(weeks))
        .rev()
        .map(|k| (at - Duration::days(7 * (k + 1)), at - Duration::days(7 * k)))
        .collect()
}

/// The on-time trend, a pure function of the clocks: for each of the `weeks` weeks before
/// `at`, the clocks the filter selects that were never paused and fell due in that week,
/// counted by their status at `at` (met, met late, breached or cancelled: all were due by
/// then). A paused clock's deadline moves with its pauses, so it belongs to no week and
/// the trend leaves it out; the summary counts it.
pub fn trend(
    clocks: &[Clock],
    calendar: &Calendar,
    at: DateTime<Utc>,
    weeks: u32,
    filter: &SlaFilter,
) -> Vec<Week> {
    weeks_before(at, weeks)
        .into_iter()
        .map(|(from, to)| {
            let mut counts = Counts::default();
            for c in clocks {
                if c.pauses.is_empty() && filter.selects(c, at) && c.due_at >= from && c.due_at < to
                {
                    counts.add(c.status(at, Duration::zero(), calendar), 1);
                }
            }
            Week {
                from: ts(from),
                to: ts(to),
                counts: counts.finish(),
            }
        })
        .collect()
}

/// [`trend`] counted by the store: one range of the deadline index per week, grouped by
/// status, with the filter in the SQL.
pub async fn trend_counted(
    store: &Store,
    gen: i64,
    at: DateTime<Utc>,
    weeks: u32,
    filter: &SlaFilter,
) -> Result<Vec<Week>, StoreError> {
    let err = |e| store.err(e);
    let mut scope = Scope::new(store, gen, filter, at, Duration::zero()).await?;
    let sql = scope.week_counts();
    let mut out = Vec::new();
    for (from, to) in weeks_before(at, weeks) {
        let n = scope.values.len();
        scope.values[n - 2] = ts(from);
        scope.values[n - 1] = ts(to);
        let rows = scope
            .bind(sqlx::query(&sql))
            .fetch_all(&store.pool)
            .await
            .map_err(err)?;
        let mut counts = Counts::default();
        for row in rows {
            let status: String = row.try_get(0).map_err(err)?;
            let n: i64 = row.try_get(1).map_err(err)?;
            let status = parse_status(&status).ok_or_else(|| StoreError::Rows {
                store: store.name().to_string(),
                reason: format!("a clock row has status {status:?}"),
            })?;
            counts.add(status, usize::try_from(n).unwrap_or(0));
        }
        out.push(Week {
            from: ts(from),
            to: ts(to),
            counts: counts.finish(),
        });
    }
    Ok(out)
}

/// What a clock adds, in SQL, to counts standing at base `base`, at time `t`: nothing
/// before it started, its outcome once settled (a paused one only while settled by the
/// base too), nothing while paused and unsettled, else breached past its deadline or
/// `pending`. With `t` = `base`, its count in the base itself (the store moves a base
/// forward by it).
pub(crate) fn counted_at(t: &str, base: &str) -> String {
    format!("(CASE WHEN started_at > {t} THEN NULL WHEN settled_at IS NOT NULL AND settled_at <= {t} AND (plain = 1 OR (started_at <= {base} AND settled_at <= {base})) THEN outcome WHEN plain = 0 THEN NULL WHEN due_at < {t} THEN 'breached' ELSE 'pending' END)")
}

/// The clocks of generation `gen` started, due or settled between `lo` and `hi` (SQL
/// values), each once, as a table named `clocks` for a `WHERE` to go on: the only clocks
/// whose status can differ between those times. Three ranges of the generation's indexes
/// by start, deadline and settling, each leaving out the clocks an earlier one gives (a
/// clock's start and deadline are never NULL), and each holding every column the counts
/// read: the index alone answers, with no lookup of a row and no set to take duplicates
/// out of (BENCHMARKS.md, a day before the base at 10M events).
pub(crate) fn changed_clocks(gen: i64, named: bool, lo: &str, hi: &str) -> String {
    let ranges =
        changed_ranges(gen, named, lo, hi).map(|range| format!("SELECT {CHANGED_COLUMNS} {range}"));
    format!(
        "({}) AS clocks WHERE clocks.gen = {gen}",
        ranges.join(" UNION ALL ")
    )
}

/// The three ranges [`changed_clocks`] joins, each as `FROM … WHERE …` for a `SELECT` to
/// go before and more conditions after: a count reads each on its own, straight from its
/// index, which costs less than reading them through the join (BENCHMARKS.md).
fn changed_ranges(gen: i64, named: bool, lo: &str, hi: &str) -> [String; 3] {
    let within = |column: &str| format!("{column} >= {lo} AND {column} <= {hi}");
    let range = |index: &str, column: &str, not_in: &[&str]| {
        let earlier: String = not_in
            .iter()
            .map(|c| format!(" AND NOT ({})", within(c)))
            .collect();
        format!(
            "FROM {} WHERE gen = {gen} AND {}{earlier}",
            through("clocks", index, gen, named),
            within(column),
        )
    };
    [
        range("clocks_by_start_at", "started_at", &[]),
        range("clocks_by_deadline", "due_at", &["started_at"]),
        range(
            "clocks_by_settled_at",
            "settled_at",
            &["started_at", "due_at"],
        ),
    ]
}

/// What [`changed_clocks`] gives of each clock: its keys, the columns its status at a time
/// is made of, and its generation; every index it reads holds them all.
const CHANGED_COLUMNS: &str =
    "gen, policy, step, region, caseworker, plain, started_at, due_at, settled_at, outcome";

/// A filter as SQL over the clocks of a generation (named literally, so that the planner
/// can use the generation's partial indexes), with its values bound in order: `$1` the
/// time, `$2` the edge of the risk window, then the filter's.
#[derive(Clone)]
struct Scope {
    gen: i64,
    /// Whether the SQL names the generation's indexes ([`Store::names_indexes`]).
    named: bool,
    /// The filter's conditions, on columns both `clocks` and `sla_counts` have.
    filter: String,
    /// Whether the filter names a caseworker (not a column of `sla_step_counts`).
    by_worker: bool,
    /// Whether the filter names a policy or step (not columns of `sla_worker_counts`).
    by_step: bool,
    /// The time (`$1`) and the risk window (`$2` is `at + risk`).
    at: DateTime<Utc>,
    risk: Duration,
    values: Vec<String>,
    dialect: Dialect,
}

/// The clocks whose status may differ between a base W and `$1`, for a count to correct
/// the counts at W by: what each adds to them at W and at `$1` (SQL expressions), and the
/// placeholders of the two times between which they were started, due or settled.
struct Changed {
    was: String,
    now: String,
    between: (String, String),
}

/// A way of grouping clocks: the summary has a line per step, per region and per
/// caseworker, so the store counts by each of them (not by all three at once, which
/// gives a row per step, region and caseworker: tens of thousands for a province).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum By {
    Step,
    Region,
    Worker,
}

impl By {
    const ALL: [By; 3] = [By::Step, By::Region, By::Worker];

    /// The group's key in SQL, on columns both `clocks` and `sla_counts` have.
    fn key(self) -> &'static str {
        match self {
            By::Step => "policy || '/' || step",
            By::Region => "region",
            By::Worker => "caseworker",
        }
    }

    /// The keys of groupings `by` as columns `k0`, `k1`, `k2` (numbered in [`By::ALL`]
    /// order), then `GROUP BY` them and the status column after them.
    fn keys(by: &[By]) -> (String, String) {
        let columns = by
            .iter()
            .map(|b| format!("{} AS k{}", b.key(), *b as usize))
            .collect::<Vec<_>>()
            .join(", ");
        let group = (1..=by.len() + 1)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        (columns, format!("GROUP BY {group}"))
    }
}

/// Clocks counted per key, one count per status in [`Status::ALL`] order, for each
/// grouping (in [`By::ALL`] order).
type Counted = [Vec<(String, [usize; 7])>; 3];

/// Signed counts per grouping and key, one per status in [`Status::ALL`] order, while
/// corrections are added up (`pending`, the base's on track or at risk before the window
/// splits them, adds to on track). Each key is allocated once: a province has tens of
/// thousands of rows to add.
#[derive(Default)]
struct Sums {
    by: [foldhash::HashMap<String, [i64; 7]>; 3],
    /// A status the store named that is none of these (the counts went wrong).
    unknown: Option<String>,
}

impl Sums {
    /// Adds grouped rows, each with its `status` and count.
    fn add_rows<'a>(&mut self, rows: impl Iterator<Item = Grouped<'a>>, by: &[By]) {
        for row in rows {
            if let Some(status) = &row.status {
                self.add_keyed(&row, by, status, row.n);
            }
        }
    }

    /// Adds `n` clocks of status `status` from a grouped row to each of groupings `by`.
    fn add_keyed(&mut self, row: &Grouped<'_>, by: &[By], status: &str, n: i64) {
        let name = if status == "pending" {
            Status::OnTrack.name()
        } else {
            status
        };
        let Some(slot) = Status::ALL.iter().position(|s| s.name() == name) else {
            self.unknown.get_or_insert_with(|| status.to_string());
            return;
        };
        for b in by {
            let key = row.keys[*b as usize].as_deref().unwrap_or_default();
            let sums = &mut self.by[*b as usize];
            match sums.get_mut(key) {
                Some(counts) => counts[slot] += n,
                None => {
                    let mut counts = [0; 7];
                    counts[slot] = n;
                    sums.insert(key.to_string(), counts);
                }
            }
        }
    }
}

/// One row of a grouped count: the keys of the groupings counted (by [`By`] number),
/// one or two statuses (a clock's count at the base and at the time asked, for the
/// corrections) and how many clocks. Its text borrows from the store's JSON where it
/// can: a province's count reads tens of thousands of rows.
#[derive(Debug)]
struct Grouped<'a> {
    keys: [Option<Cow<'a, str>>; 3],
    status: Option<Cow<'a, str>>,
    now: Option<Cow<'a, str>>,
    n: i64,
}

/// [`Grouped`] as the store sends it: one JSON array per row.
#[derive(serde::Deserialize)]
struct GroupedArray<'a>(
    #[serde(borrow)] Option<Text<'a>>,
    #[serde(borrow)] Option<Text<'a>>,
    #[serde(borrow)] Option<Text<'a>>,
    #[serde(borrow)] Option<Text<'a>>,
    #[serde(borrow)] Option<Text<'a>>,
    i64,
);

/// A string of the store's JSON, borrowed unless it has escapes (serde borrows a `Cow`
/// only as a field of its own, not inside an `Option`).
#[derive(serde::Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'a> From<GroupedArray<'a>> for Grouped<'a> {
    fn from(GroupedArray(k0, k1, k2, status, now, n): GroupedArray<'a>) -> Self {
        let text = |t: Option<Text<'a>>| t.map(|Text(s)| s);
        Grouped {
            keys: [text(k0), text(k1), text(k2)],
            status: text(status),
            now: text(now),
            n,
        }
    }
}

/// The JSON array of a grouped count's rows, as the store sent it ([`Scope::grouped`]).
struct GroupedJson(String);

impl GroupedJson {
    /// Its rows, borrowing their text from it.
    fn rows(&self) -> Result<impl Iterator<Item = Grouped<'_>>, sqlx::Error> {
        let rows: Vec<GroupedArray<'_>> =
            serde_json::from_str(&self.0).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        Ok(rows.into_iter().map(Grouped::from))
    }
}

impl Scope {
    /// The status at `$1` of a clock never paused. Settled by then: its outcome. Open then:
    /// breached past its deadline, at risk within the window, else on track (as
    /// [`Clock::status`] without pauses).
    const STATUS: &'static str = "(CASE WHEN settled_at IS NOT NULL AND settled_at <= $1 THEN outcome WHEN due_at < $1 THEN 'breached' WHEN due_at <= $2 THEN 'at_risk' ELSE 'on_track' END)";

    async fn new(
        store: &Store,
        gen: i64,
        filter: &SlaFilter,
        at: DateTime<Utc>,
        risk: Duration,
    ) -> Result<Scope, StoreError> {
        let mut scope = Scope {
            gen,
            named: store.names_indexes(gen).await?,
            filter: String::new(),
            by_worker: filter.caseworker.is_some(),
            by_step: filter.policy.is_some() || filter.step.is_some(),
            at,
            risk,
            values: vec![ts(at), ts(at + risk)],
            dialect: store.dialect(),
        };
        if let Some(r) = &filter.region {
            scope.add("region", "LIKE", format!("{}%", like_escape(r)));
        }
        if let Some(w) = &filter.caseworker {
            scope.add("caseworker", "=", w.clone());
        }
        if let Some(p) = &filter.policy {
            scope.add("policy", "=", p.clone());
        }
        if let Some(s) = &filter.step {
            scope.add("step", "=", s.clone());
        }
        Ok(scope)
    }

    fn add(&mut self, column: &str, op: &str, value: String) {
        let placeholder = self.value(value);
        self.filter
            .push_str(&format!(" AND {column} {op} {placeholder}"));
    }

    /// Binds one more value; returns its placeholder.
    fn value(&mut self, value: String) -> String {
        self.values.push(value);
        format!("${}", self.values.len())
    }

    /// The selected clocks never paused with a deadline from the last value but one to
    /// before the last (two values it binds), counted by status at `$1`: read from the
    /// deadline's index alone, which holds every column this names.
    fn week_counts(&mut self) -> String {
        let (lo, hi) = (self.value(String::new()), self.value(String::new()));
        format!(
            "SELECT {} AS status, COUNT(*) AS n FROM {} WHERE {} AND due_at >= {lo} AND due_at < {hi} GROUP BY 1",
            Scope::STATUS,
            self.through("clocks_by_deadline"),
            self.plain(),
        )
    }

    /// The selected clocks: of the generation, started by `$1`, in the filter.
    fn conditions(&self) -> String {
        format!("gen = {} AND started_at <= $1{}", self.gen, self.filter)
    }

    /// The clocks table read through generation index `index` (see [`through`]).
    fn through(&self, index: &str) -> String {
        through("clocks", index, self.gen, self.named)
    }

    /// The deadlines a clock never paused with status `status` at `$1` has (none for a
    /// settled status): so that a list by deadline walks only those.
    fn due_range(status: Option<Status>) -> &'static str {
        match status {
            Some(Status::Breached) => " AND due_at < $1",
            Some(Status::AtRisk) => " AND due_at >= $1 AND due_at <= $2",
            Some(Status::OnTrack) => " AND due_at > $2",
            _ => "",
        }
    }

    /// The selected clocks whose status the SQL gives.
    fn plain(&self) -> String {
        format!("{} AND plain = 1", self.conditions())
    }

    /// The status at `$1` of a paused clock that [`Scope::known`] selects. Settled by
    /// then: its outcome. Past its last pause fact: paused while waiting, else breached,
    /// at risk or on track by its moved deadline (see [`Clock::after_pauses`]).
    const PAUSED_STATUS: &'static str = "(CASE WHEN settled_at IS NOT NULL AND settled_at <= $1 THEN outcome WHEN waiting = 1 THEN 'paused' WHEN moved_due < $1 THEN 'breached' WHEN moved_due <= $2 THEN 'at_risk' ELSE 'on_track' END)";

    /// The selected paused clocks whose status at `$1` the SQL gives
    /// ([`Scope::PAUSED_STATUS`]): settled by then, or past their last pause fact.
    fn known(&self) -> String {
        format!(
            "{} AND plain = 0 AND ((outcome IS NOT NULL AND settled_at <= $1) OR pauses_end < $1)",
            self.conditions()
        )
    }

    /// The selected clocks counted one by one: paused, neither settled by `$1` nor past
    /// their last pause fact then, or written without those columns (before migrations
    /// 0011 and 0015). Read through [`Scope::by_settled`], whose ranges say "not settled
    /// by `$1`" in a way the index can walk.
    fn other(&self) -> String {
        format!(
            "{} AND plain = 0 AND (pauses_end IS NULL OR pauses_end >= $1)",
            self.conditions()
        )
    }

    /// The paused clocks [`Scope::known`] selects with status `status` at `$1` (any when
    /// `None`): the first `n` by deadline of those whose deadline stands still then, and
    /// all the others ([`Scope::known_rest`]).
    async fn known_clocks(
        &self,
        store: &Store,
        status: Option<Status>,
        n: usize,
    ) -> Result<Vec<Clock>, StoreError> {
        let mut clocks = self.known_first(store, status, n, None).await?;
        clocks.extend(self.known_rest(store, status).await?);
        Ok(clocks)
    }

    /// The condition a paused clock's status at `$1` must meet to be `status` (none when
    /// `None`).
    fn paused_wanted(status: Option<Status>) -> String {
        status
            .map(|s| format!(" AND {} = '{}'", Scope::PAUSED_STATUS, s.name()))
            .unwrap_or_default()
    }

    /// Of the paused clocks [`Scope::known`] selects with status `status`, those whose
    /// deadline stands still at `$1` (past their last pause fact, not waiting): the first
    /// `n` after `after` by that deadline then id, walked in that order in the paused
    /// clocks' own index (an open status also bounds the deadline), then read.
    async fn known_first(
        &self,
        store: &Store,
        status: Option<Status>,
        n: usize,
        after: Option<&ClockKey>,
    ) -> Result<Vec<Clock>, StoreError> {
        let wanted = Scope::paused_wanted(status);
        let still = "waiting = 0 AND pauses_end < $1";
        let due = match status {
            Some(Status::OnTrack) => " AND moved_due > $2",
            Some(Status::AtRisk) => " AND moved_due >= $1 AND moved_due <= $2",
            _ => "",
        };
        let mut keyed = self.clone();
        let past = keyed.past("moved_due", after);
        let first = format!(
            "SELECT clock_id FROM {} WHERE {}{wanted} AND {still}{due}{past} ORDER BY moved_due, clock_id LIMIT {}",
            keyed.through("clocks_paused_by_due"),
            keyed.known(),
            n.min(i64::MAX as usize)
        );
        keyed
            .clocks(
                store,
                &format!(
                    "SELECT * FROM clocks WHERE gen = {} AND clock_id IN ({first})",
                    self.gen
                ),
            )
            .await
    }

    /// The other paused clocks [`Scope::known`] selects with status `status`: settled by
    /// `$1` (their outcome) before a later pause fact, or waiting (`paused`), whose
    /// deadline the store does not keep in order.
    async fn known_rest(
        &self,
        store: &Store,
        status: Option<Status>,
    ) -> Result<Vec<Clock>, StoreError> {
        let wanted = Scope::paused_wanted(status);
        let moving = "(waiting = 1 OR pauses_end IS NULL OR pauses_end >= $1)";
        let select = |index: &str| {
            format!(
                "SELECT * FROM {} WHERE {}{wanted} AND {moving}",
                self.through(index),
                self.known()
            )
        };
        let sql = match status {
            None => select("clocks_paused_settled"),
            Some(Status::OnTrack | Status::AtRisk) => return Ok(Vec::new()),
            Some(Status::Paused) => Scope::union(
                &select("clocks_paused_settled"),
                &[" AND settled_at IS NULL", " AND settled_at > $1"],
            ),
            Some(s @ (Status::Met | Status::MetLate | Status::Cancelled | Status::Breached)) => {
                format!(
                    "{} AND outcome = '{}' AND settled_at <= $1",
                    select("clocks_paused_by_outcome"),
                    s.name()
                )
            }
        };
        self.clocks(store, &sql).await
    }

    /// The selected clocks with status `status` (any when `None`) that the store walks in
    /// deadline-then-id order: the first `n` after `after` of those never paused, and of
    /// the paused ones whose deadline stands still ([`Scope::known_first`]).
    async fn ordered(
        &self,
        store: &Store,
        calendar: &Calendar,
        filter: &SlaFilter,
        status: Option<Status>,
        (after, n): (Option<&ClockKey>, usize),
    ) -> Result<Vec<ClockLine>, StoreError> {
        let (at, risk) = (self.at, self.risk);
        let wanted = status
            .map(|s| format!(" AND {} = '{}'", Scope::STATUS, s.name()))
            .unwrap_or_default();
        let mut keyed = self.clone();
        let past = keyed.past("due_at", after);
        let sql = format!(
            "SELECT * FROM {} WHERE {}{wanted}{}{past} ORDER BY due_at, clock_id LIMIT {}",
            keyed.through("clocks_by_deadline"),
            keyed.plain(),
            Scope::due_range(status),
            n.min(i64::MAX as usize)
        );
        let mut lines: Vec<ClockLine> = keyed
            .clocks(store, &sql)
            .await?
            .iter()
            .map(|c| ClockLine::of(c, at, c.status(at, risk, calendar), calendar))
            .collect();
        let known = self.known_first(store, status, n, after).await?;
        lines.extend(list_clocks(&known, calendar, at, risk, filter, status));
        Ok(lines)
    }

    /// The other selected clocks with status `status`, sorted by deadline then id: the
    /// paused ones whose deadline the store does not keep in order, and how many of them
    /// the store's counts leave out ([`Scope::other_clocks`]).
    async fn unordered(
        &self,
        store: &Store,
        calendar: &Calendar,
        filter: &SlaFilter,
        status: Option<Status>,
    ) -> Result<(Vec<ClockLine>, usize), StoreError> {
        let (at, risk) = (self.at, self.risk);
        let rest = self.known_rest(store, status).await?;
        let mut lines = list_clocks(&rest, calendar, at, risk, filter, status);
        let others = self.other_clocks(store).await?;
        let others = list_clocks(&others, calendar, at, risk, filter, status);
        let uncounted = others.len();
        lines.extend(others);
        lines.sort_by(by_deadline);
        Ok((lines, uncounted))
    }

    /// The condition that a clock comes after `after` by deadline (column `due`) then id,
    /// binding its two values; none when `after` is `None`. Its `{due} >= …` is where the
    /// walk of the deadline's index starts (the planners take no range from the `OR`).
    fn past(&mut self, due: &str, after: Option<&ClockKey>) -> String {
        match after {
            Some((at, id)) => {
                let (at, id) = (self.value(at.clone()), self.value(id.clone()));
                format!(" AND {due} >= {at} AND ({due} > {at} OR clock_id > {id})")
            }
            None => String::new(),
        }
    }

    /// The selected clocks whose status only the calendar gives: see [`Scope::other`].
    async fn other_clocks(&self, store: &Store) -> Result<Vec<Clock>, StoreError> {
        let select = format!(
            "SELECT * FROM {} WHERE {}",
            self.through("clocks_paused_settled"),
            self.other()
        );
        self.clocks(store, &Scope::by_settled(&select, Some(Status::OnTrack)))
            .await
    }

    /// `select` (a read of the paused clocks' index, ending in its conditions) once per
    /// range of `settled_at` that a clock with status `status` at `$1` lies in, joined by
    /// `UNION ALL`: the index leads with `settled_at`, so a range skips the clocks settled
    /// outside it (a row has `settled_at` exactly when it has `outcome`). Open statuses:
    /// not settled by `$1`; met, met late and cancelled: settled by then; breached: either.
    fn by_settled(select: &str, status: Option<Status>) -> String {
        let ranges: &[&str] = match status {
            None | Some(Status::Breached) => &[""],
            Some(Status::Met | Status::MetLate | Status::Cancelled) => &[" AND settled_at <= $1"],
            Some(Status::OnTrack | Status::AtRisk | Status::Paused) => {
                &[" AND settled_at IS NULL", " AND settled_at > $1"]
            }
        };
        Scope::union(select, ranges)
    }

    /// `select` once per condition of `ranges` (appended to it), joined by `UNION ALL`.
    fn union(select: &str, ranges: &[&str]) -> String {
        ranges
            .iter()
            .map(|range| format!("{select}{range}"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ")
    }

    /// The selected clocks whose status at `$1` the SQL gives, counted by group and status,
    /// in one snapshot of the store: the paused ones [`Scope::known`] selects, and those
    /// never paused as follows. With the generation's counts (migrations 0012 and 0016, as
    /// they stood at their base time W; paused clocks settled by W in them too): those
    /// counts, corrected by the clocks started, due or settled between W and `$1` (the
    /// only ones whose status can differ), the pending ones split into at risk and on
    /// track by their deadline, and the paused ones the counts do not hold. Without: one
    /// GROUP BY. Counted by each grouping: step, region and caseworker.
    async fn counted(&self, store: &Store) -> Result<Counted, StoreError> {
        let by = &By::ALL;
        let mut this = self.clone();
        let err = |e| store.err(e);
        let (mut tx, base) = this.begin_count(store).await?;
        let mut sums = Sums::default();
        // With a base, the rows read (paused clocks not settled by it, clocks changed since
        // it, the counts' own rows) come back one by one and are summed here: they are
        // nearly one group each, and SQLite's GROUP BY over tens of thousands of groups
        // costs more than the rows (BENCHMARKS.md). Without one, the store groups.
        let (keys, group) = By::keys(by);
        let (count, group) = match base {
            Some(_) => ("1", String::new()),
            None => ("COUNT(*)", group),
        };
        let paused = this.paused_uncounted(base.as_deref());
        let sql = format!(
            "SELECT {keys}, {} AS status, {count} AS n FROM ({paused}) AS paused {group}",
            Scope::PAUSED_STATUS,
        );
        let json = this
            .grouped(&mut tx, &sql, by, [Some("status"), None])
            .await
            .map_err(err)?;
        sums.add_rows(json.rows().map_err(err)?, by);
        let Some(base) = base else {
            let sql = format!(
                "SELECT {keys}, {} AS status, COUNT(*) AS n FROM clocks WHERE {} {group}",
                Scope::STATUS,
                this.plain(),
            );
            let json = this
                .grouped(&mut tx, &sql, by, [Some("status"), None])
                .await
                .map_err(err)?;
            sums.add_rows(json.rows().map_err(err)?, by);
            tx.commit().await.map_err(err)?;
            return this.statuses(store, sums);
        };
        let Changed {
            was,
            now,
            between: (lo, hi),
        } = this.changed_since(&base);
        let gen = this.gen;
        let changed = changed_clocks(gen, this.named, &lo, &hi);
        // The counts as they stood at W, by each grouping.
        for b in by {
            let (key, _) = By::keys(&[*b]);
            let sql = format!(
                "SELECT {key}, status, n FROM {} WHERE gen = {gen} AND n <> 0{}",
                this.counts_table(*b),
                this.filter
            );
            let one = [*b];
            let json = this
                .grouped(&mut tx, &sql, &one, [Some("status"), None])
                .await
                .map_err(err)?;
            sums.add_rows(json.rows().map_err(err)?, &one);
        }
        // The clocks whose status may have changed between W and `$1`.
        let sql = format!(
            "SELECT {keys}, {was} AS was, {now} AS now, 1 AS n FROM {changed}{}",
            this.filter
        );
        let json = this
            .grouped(&mut tx, &sql, by, [Some("was"), Some("now")])
            .await
            .map_err(err)?;
        for row in json.rows().map_err(err)? {
            if let Some(was) = &row.status {
                sums.add_keyed(&row, by, was, -row.n);
            }
            if let Some(now) = &row.now {
                sums.add_keyed(&row, by, now, row.n);
            }
        }
        // The pending ones due within the window are at risk; the others on track.
        let sql = format!("SELECT {keys}, 1 AS n FROM {}", this.pending_at_risk());
        let json = this
            .grouped(&mut tx, &sql, by, [None, None])
            .await
            .map_err(err)?;
        for row in json.rows().map_err(err)? {
            sums.add_keyed(&row, by, "pending", -row.n);
            sums.add_keyed(&row, by, Status::AtRisk.name(), row.n);
        }
        tx.commit().await.map_err(err)?;
        this.statuses(store, sums)
    }

    /// How many selected clocks have status `status` at `$1` (any when `None`), of those
    /// [`Scope::counted`] counts (all but those [`Scope::other_clocks`] reads): the same
    /// parts in one snapshot, each summed by the store into one figure, as a page's total
    /// needs no groups (no rows sent, no sorting for a `GROUP BY`).
    async fn counted_total(
        &self,
        store: &Store,
        status: Option<Status>,
    ) -> Result<usize, StoreError> {
        let mut this = self.clone();
        let err = |e| store.err(e);
        let (mut tx, base) = this.begin_count(store).await?;
        // Whether a status column names `status`: `pending` (in the counts at W and their
        // corrections) is on track until the window takes the at-risk ones out of it.
        let is = |column: &str| match status {
            None => format!("{column} IS NOT NULL"),
            Some(Status::OnTrack) => format!("{column} IN ('on_track', 'pending')"),
            Some(s) => format!("{column} = '{}'", s.name()),
        };
        // Each range of an index counted straight from it, in one pass: less than reading
        // the ranges through their `UNION ALL` (BENCHMARKS.md).
        let mut parts: Vec<(char, String)> = this
            .paused_ranges(base.as_deref())
            .into_iter()
            .map(|range| {
                let paused = is(Scope::PAUSED_STATUS);
                ('+', format!("(SELECT COUNT(*) {range} AND {paused})"))
            })
            .collect();
        match &base {
            None => parts.push((
                '+',
                format!(
                    "(SELECT COUNT(*) FROM clocks WHERE {} AND {})",
                    this.plain(),
                    is(Scope::STATUS)
                ),
            )),
            Some(base) => {
                let Changed {
                    was,
                    now,
                    between: (lo, hi),
                } = this.changed_since(base);
                parts.push((
                    '+',
                    format!(
                        "(SELECT COALESCE(SUM(n), 0) FROM {} WHERE gen = {} AND n <> 0{} AND {})",
                        this.counts_table(By::Step),
                        this.gen,
                        this.filter,
                        is("status")
                    ),
                ));
                // What each changed clock adds at `$1` less what it added at W.
                let one = |status: &str| format!("CASE WHEN {} THEN 1 ELSE 0 END", is(status));
                for range in changed_ranges(this.gen, this.named, &lo, &hi) {
                    parts.push((
                        '+',
                        format!(
                            "(SELECT COALESCE(SUM({} - {}), 0) {range}{})",
                            one(&now),
                            one(&was),
                            this.filter
                        ),
                    ));
                }
                let split = format!("(SELECT COUNT(*) FROM {})", this.pending_at_risk());
                match status {
                    Some(Status::AtRisk) => parts.push(('+', split)),
                    Some(Status::OnTrack) => parts.push(('-', split)),
                    _ => {}
                }
            }
        }
        let sum: String = parts
            .iter()
            .map(|(sign, part)| format!(" {sign} {part}"))
            .collect();
        let sql = format!("SELECT CAST(0{sum} AS BIGINT)");
        let total: i64 = this
            .bind(sqlx::query(&sql))
            .fetch_one(&mut *tx)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        usize::try_from(total).map_err(|_| StoreError::Rows {
            store: store.name().to_string(),
            reason: format!(
                "generation {}'s SLA counts do not add up ({total} clocks); run `assist rebuild`",
                this.gen
            ),
        })
    }

    /// Begins the read transaction a count is made in (one snapshot: on PostgreSQL
    /// repeatable read) and reads the generation's base W in it, if it has one.
    async fn begin_count<'a>(
        &self,
        store: &'a Store,
    ) -> Result<(sqlx::Transaction<'a, sqlx::Any>, Option<String>), StoreError> {
        let err = |e| store.err(e);
        let mut tx = store.pool.begin().await.map_err(err)?;
        if store.dialect() == Dialect::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        let base = sqlx::query_scalar("SELECT base_at FROM sla_base WHERE gen = $1")
            .bind(self.gen)
            .fetch_optional(&mut *tx)
            .await
            .map_err(err)?;
        Ok((tx, base))
    }

    /// The paused clocks whose status the SQL gives, but for those the counts at base
    /// `base` hold with the same status at `$1`: settled by W and by `$1` (and so started
    /// by both; a row has `settled_at` exactly when it has `outcome`). Those not settled
    /// and those settled later are two ranges of the index, so the settled ones are never
    /// read. Every one when there is no base. Binds the value it compares with.
    fn paused_uncounted(&mut self, base: Option<&str>) -> String {
        self.paused_ranges(base)
            .iter()
            .map(|range| format!("SELECT policy, step, region, caseworker, settled_at, outcome, waiting, pauses_end, moved_due {range}"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ")
    }

    /// The ranges [`Scope::paused_uncounted`] joins, each as `FROM … WHERE …` (see
    /// [`changed_ranges`]).
    fn paused_ranges(&mut self, base: Option<&str>) -> Vec<String> {
        let settled_by = base.map(|b| {
            let by = b.min(self.values[0].as_str()).to_string();
            self.value(by)
        });
        let from = self.through("clocks_paused_settled");
        let paused = |settled: &str| format!("FROM {from} WHERE {}{settled}", self.known());
        match &settled_by {
            Some(settled_by) => vec![
                paused(" AND settled_at IS NULL"),
                paused(&format!(" AND settled_at > {settled_by}")),
            ],
            None => vec![paused("")],
        }
    }

    /// What a clock adds to the counts at base `base` (W) then (`was`, its count in W) and
    /// at `$1` (`now`: the same, for a paused one, only while it is settled by both), and
    /// the times between which the clocks whose status may differ were started, due or
    /// settled (see [`changed_clocks`]). Binds the values they compare with.
    fn changed_since(&mut self, base: &str) -> Changed {
        let at = self.values[0].clone();
        let (lo, hi) = if base <= at.as_str() {
            (base.to_string(), at)
        } else {
            (at, base.to_string())
        };
        let w = self.value(base.to_string());
        Changed {
            was: counted_at(&w, &w),
            now: counted_at("$1", &w),
            between: (self.value(lo), self.value(hi)),
        }
    }

    /// The smallest table of counts at W that has grouping `by`'s key and the filter's
    /// columns.
    fn counts_table(&self, by: By) -> &'static str {
        match by {
            By::Step | By::Region if !self.by_worker => "sla_step_counts",
            By::Worker if !self.by_step => "sla_worker_counts",
            _ => "sla_counts",
        }
    }

    /// The selected clocks never paused, open at `$1` and due within the window: pending
    /// in the counts at W (once corrected), at risk at `$1`. Read from the deadline's index.
    fn pending_at_risk(&self) -> String {
        format!(
            "{} WHERE gen = {} AND plain = 1{} AND due_at >= $1 AND due_at <= $2 AND started_at <= $1 AND (settled_at IS NULL OR settled_at > $1)",
            self.through("clocks_by_deadline"),
            self.gen,
            self.filter,
        )
    }

    /// Counted keys by status (`pending` left over is on track), but those that count no
    /// clock; a negative count means the stored counts went wrong.
    fn statuses(&self, store: &Store, sums: Sums) -> Result<Counted, StoreError> {
        let wrong = |what: String| StoreError::Rows {
            store: store.name().to_string(),
            reason: format!(
                "generation {}'s SLA counts do not add up ({what}); run `assist rebuild`",
                self.gen
            ),
        };
        if let Some(status) = sums.unknown {
            return Err(wrong(format!("a status {status:?}")));
        }
        let mut out: Counted = Default::default();
        for (counted, sums) in out.iter_mut().zip(sums.by) {
            for (key, counts) in sums {
                // A key whose corrections cancel out counts nothing: it has no line.
                if counts.iter().all(|n| *n == 0) {
                    continue;
                }
                let mut checked = [0; 7];
                for ((status, n), slot) in Status::ALL.into_iter().zip(counts).zip(&mut checked) {
                    *slot = usize::try_from(n)
                        .map_err(|_| wrong(format!("{n} clocks {}", status.name())))?;
                }
                counted.push((key, checked));
            }
        }
        Ok(out)
    }

    /// The rows of grouped count `sql` (with this scope's values bound) in transaction
    /// `tx`: its keys `k0`..`k2` of groupings `by`, the status columns `statuses` names
    /// (a [`Grouped`]'s `status` and `now`), and `n`. They come back as one JSON array in
    /// one row: sqlx hands rows over one at a time, which costs more than the query itself
    /// at tens of thousands of rows (BENCHMARKS.md).
    async fn grouped(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        sql: &str,
        by: &[By],
        statuses: [Option<&str>; 2],
    ) -> Result<GroupedJson, sqlx::Error> {
        const NONE: &str = "CAST(NULL AS TEXT)";
        let keys = By::ALL.map(|b| {
            if by.contains(&b) {
                format!("k{}", b as usize)
            } else {
                NONE.to_string()
            }
        });
        let [status, now] = statuses.map(|c| c.unwrap_or(NONE));
        let columns = format!("{}, {status}, {now}, n", keys.join(", "));
        let sql = match self.dialect {
            Dialect::Sqlite => format!("SELECT json_group_array(json_array({columns})) FROM ({sql})"),
            Dialect::Postgres => format!(
                "SELECT COALESCE(json_agg(json_build_array({columns})), '[]')::text FROM ({sql}) AS grouped"
            ),
        };
        let json: String = self
            .bind(sqlx::query(&sql))
            .fetch_one(&mut **tx)
            .await?
            .try_get(0)?;
        Ok(GroupedJson(json))
    }

    /// The clocks `sql` (with this scope's values bound) reads.
    async fn clocks(&self, store: &Store, sql: &str) -> Result<Vec<Clock>, StoreError> {
        let err = |e| store.err(e);
        self.bind(sqlx::query(sql))
            .fetch_all(&store.pool)
            .await
            .map_err(err)?
            .iter()
            .map(|r| clock_from(r))
            .collect::<Result<_, _>>()
            .map_err(err)
    }

    fn bind<'q>(
        &'q self,
        q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        let mut q = q;
        for v in &self.values {
            q = q.bind(v.as_str());
        }
        q
    }
}

/// The summary under construction: clocks are added one at a time, counted into their
/// step, region levels and caseworker, and listed when breached or at risk.
struct Summary<'a> {
    calendar: &'a Calendar,
    at: DateTime<Utc>,
    risk: Duration,
    filter: &'a SlaFilter,
    total: Counts,
    steps: BTreeMap<String, Counts>,
    /// By region prefix (2, 4 or 6 digits: province, city, county).
    regions: BTreeMap<String, Counts>,
    workers: BTreeMap<String, Counts>,
    breached: Vec<ClockLine>,
    at_risk: Vec<ClockLine>,
}

impl<'a> Summary<'a> {
    fn new(
        calendar: &'a Calendar,
        at: DateTime<Utc>,
        risk: Duration,
        filter: &'a SlaFilter,
    ) -> Self {
        Summary {
            calendar,
            at,
            risk,
            filter,
            total: Counts::default(),
            steps: BTreeMap::new(),
            regions: BTreeMap::new(),
            workers: BTreeMap::new(),
            breached: Vec::new(),
            at_risk: Vec::new(),
        }
    }

    /// Counts clock `c` and lists it when breached or at risk.
    fn add(&mut self, c: &Clock) {
        let at = self.at;
        if !self.filter.selects(c, at) {
            return;
        }
        let s = c.status(at, self.risk, self.calendar);
        self.count_by(By::Step, &format!("{}/{}", c.policy, c.step), s, 1);
        self.count_by(By::Region, &c.region, s, 1);
        self.count_by(By::Worker, &c.caseworker, s, 1);
        self.list(c, s);
    }

    /// Counts `n` clocks with status `s` into their group `key` of grouping `by` (each
    /// clock is counted once by each grouping; the total goes with the steps).
    fn count_by(&mut self, by: By, key: &str, s: Status, n: usize) {
        let mut counts = [0; 7];
        if let Some(slot) = Status::ALL.iter().position(|a| *a == s) {
            counts[slot] = n;
        }
        self.count_keyed(by, key, &counts);
    }

    /// Counts clocks into their group `key` of grouping `by`, `counts[i]` of them with
    /// status `Status::ALL[i]`: the group is looked up once for all of them.
    fn count_keyed(&mut self, by: By, key: &str, counts: &[usize; 7]) {
        let add = |group: &mut Counts| {
            for (s, n) in Status::ALL.into_iter().zip(counts) {
                if *n != 0 {
                    group.add(s, *n);
                }
            }
        };
        match by {
            By::Step => {
                add(&mut self.total);
                add(counts_of(&mut self.steps, key));
            }
            By::Region => {
                for len in [2, 4, 6] {
                    if let Some(prefix) = key.get(..len) {
                        add(counts_of(&mut self.regions, prefix));
                    }
                }
            }
            By::Worker => {
                let worker = if key.is_empty() { "(unassigned)" } else { key };
                add(counts_of(&mut self.workers, worker));
            }
        }
    }

    /// Lists clock `c` (counted already) when its status `s` is breached or at risk.
    fn list(&mut self, c: &Clock, s: Status) {
        match s {
            Status::Breached => self
                .breached
                .push(ClockLine::of(c, self.at, s, self.calendar)),
            Status::AtRisk => self
                .at_risk
                .push(ClockLine::of(c, self.at, s, self.calendar)),
            _ => {}
        }
    }

    fn finish(self) -> SlaReport {
        let Summary {
            at,
            filter,
            total,
            steps,
            regions,
            workers,
            mut breached,
            mut at_risk,
            ..
        } = self;
        let level = |len: usize| match len {
            2 => "province",
            4 => "city",
            _ => "county",
        };
        for list in [&mut breached, &mut at_risk] {
            list.sort_by(by_deadline);
        }
        let mut by_region: Vec<Line> = regions
            .into_iter()
            .map(|(key, counts)| Line {
                level: level(key.len()),
                only: filter
                    .region
                    .as_ref()
                    .filter(|r| r.len() > key.len())
                    .cloned(),
                key,
                counts: counts.finish(),
            })
            .collect();
        by_region.sort_by(|a, b| a.key.cmp(&b.key));
        SlaReport {
            at: ts(at),
            total: total.finish(),
            by_step: steps
                .into_iter()
                .map(|(key, c)| Line {
                    level: "step",
                    key,
                    counts: c.finish(),
                    only: None,
                })
                .collect(),
            by_region,
            by_caseworker: workers
                .into_iter()
                .map(|(key, c)| Line {
                    level: "caseworker",
                    key,
                    counts: c.finish(),
                    only: None,
                })
                .collect(),
            breached,
            at_risk,
        }
    }
}

/// The counts of `key` in `map`, added when new: the key is allocated only then (a
/// province's summary adds tens of thousands of counted rows).
fn counts_of<'m>(map: &'m mut BTreeMap<String, Counts>, key: &str) -> &'m mut Counts {
    if !map.contains_key(key) {
        map.insert(key.to_string(), Counts::default());
    }
    map.get_mut(key).expect("the key was inserted above")
}

/// Every clock of generation `gen`.
pub async fn load_clocks(store: &Store, gen: i64) -> Result<Vec<Clock>, StoreError> {
    let rows = sqlx::query("SELECT * FROM clocks WHERE gen = $1 ORDER BY clock_id")
        .bind(gen)
        .fetch_all(&store.pool)
        .await
        .map_err(|e| store.err(e))?;
    rows.iter()
        .map(|r| clock_from(r))
        .collect::<Result<_, _>>()
        .map_err(|e| store.err(e))
}

/// The clocks of generation `gen` in a scope: regions starting with `region`, and only
/// `caseworker`'s when given (the scope is part of the query, not a filter afterwards).
pub async fn load_clocks_in(
    store: &Store,
    gen: i64,
    region: &str,
    caseworker: Option<&str>,
) -> Result<Vec<Clock>, StoreError> {
    let mut sql = String::from("SELECT * FROM clocks WHERE gen = $1 AND region LIKE $2");
    if caseworker.is_some() {
        sql.push_str(" AND caseworker = $3");
    }
    sql.push_str(" ORDER BY clock_id");
    let mut q = sqlx::query(&sql)
        .bind(gen)
        .bind(format!("{}%", like_escape(region)));
    if let Some(w) = caseworker {
        q = q.bind(w);
    }
    let rows = q.fetch_all(&store.pool).await.map_err(|e| store.err(e))?;
    rows.iter()
        .map(|r| clock_from(r))
        .collect::<Result<_, _>>()
        .map_err(|e| store.err(e))
}

/// Folds events (in log order per stream) into clocks under `rules`, in memory: the
/// what-if evaluation of a history under another policy, touching no stored view.
pub fn fold_clocks<'a>(rules: &Rules, events: impl IntoIterator<Item = &'a Event>) -> Vec<Clock> {
    let (_, clocks) = crate::subject::fold(rules, events);
    let mut all: Vec<Clock> = clocks.into_values().flatten().collect();
    all.sort_by(|a, b| a.clock_id.cmp(&b.clock_id));
    all
}

/// A fact behind a clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fact {
    /// What it did to the clock: started, counted, met, paused, resumed, cancelled.
    pub role: &'static str,
    /// The event.
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// When it occurred.
    pub occurred_at: String,
    /// When it was recorded.
    pub recorded_at: String,
    /// Who recorded it.
    pub actor: String,
}

/// A clock with its status and the facts that set it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// The clock's line.
    pub clock: ClockLine,
    /// Facts needed to meet the step, and counted so far.
    pub needed: u32,
    /// Counted so far.
    pub counted: u32,
    /// The facts, in time order.
    pub facts: Vec<Fact>,
}

/// Explains one clock as it stood at `at` (the facts that had occurred by then); `None`
/// when there is no such clock. The subject's events are found
/// in the log's stream index (`log`), and their audit rows by id: the views keep no index
/// of their own by stream (at 10M events one cost a rebuild 30 – 50 s).
pub async fn explain(
    store: &Store,
    log: &dyn StreamReader,
    gen: i64,
    rules: &Rules,
    clock_id: &str,
    at: DateTime<Utc>,
    risk: Duration,
) -> Result<Option<Explanation>, ExplainError> {
    let err = |e| ExplainError::Store(store.err(e));
    let row = sqlx::query("SELECT * FROM clocks WHERE gen = $1 AND clock_id = $2")
        .bind(gen)
        .bind(clock_id)
        .fetch_optional(&store.pool)
        .await
        .map_err(err)?;
    let Some(row) = row else { return Ok(None) };
    let c = clock_from(&row).map_err(err)?;
    let met_by = rules
        .policy_of(&c)
        .and_then(|p| p.steps.iter().find(|s| s.id == c.step))
        .map(|s| s.met_by.clone())
        .unwrap_or_default();
    let end = c
        .met_at
        .or(c.cancelled_at)
        .map(ts)
        .unwrap_or_else(|| "9999".into());
    // A stored id twice (a producer's retry) is one fact.
    let ids: std::collections::BTreeSet<String> = log
        .read_stream(&c.subject)
        .await?
        .iter()
        .filter_map(|r| {
            r.event_id.or_else(|| {
                crate::runner::decode_record(r)
                    .ok()
                    .map(|e| e.meta.event_id)
            })
        })
        .map(|id| id.to_string())
        .collect();
    let ids: Vec<String> = ids.into_iter().collect();
    let mut rows = Vec::new();
    for chunk in ids.chunks(500) {
        let sql = audit_rows_sql(store.dialect(), chunk.len());
        let mut q = sqlx::query(&sql)
            .bind(gen)
            .bind(&c.subject)
            .bind(ts(c.started_at))
            .bind(&end);
        for id in chunk {
            q = q.bind(id);
        }
        rows.extend(q.fetch_all(&store.pool).await.map_err(err)?);
    }
    let mut keyed = Vec::with_capacity(rows.len());
    for r in rows {
        let occurred: String = r.try_get("occurred_at").map_err(err)?;
        let seq: i64 = r.try_get("seq").map_err(err)?;
        keyed.push(((occurred, seq), r));
    }
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    let rows = keyed.into_iter().map(|(_, r)| r);
    let pauses: Vec<String> = c.pauses.iter().map(|p| p.pause_event.to_string()).collect();
    let resumes: Vec<String> = c
        .pauses
        .iter()
        .filter_map(|p| p.resume_event.map(|e| e.to_string()))
        .collect();
    let mut facts = Vec::new();
    for r in rows {
        let id: String = r.try_get("event_id").map_err(err)?;
        let event_type: String = r.try_get("event_type").map_err(err)?;
        let role = if id == c.start_event.to_string() {
            "started"
        } else if Some(id.clone()) == c.end_event.map(|e| e.to_string()) {
            if c.met_at.is_some() {
                "met"
            } else {
                "cancelled"
            }
        } else if pauses.contains(&id) {
            "paused"
        } else if resumes.contains(&id) {
            "resumed"
        } else if event_type == met_by {
            "counted"
        } else {
            continue;
        };
        facts.push(Fact {
            role,
            event_id: id,
            event_type,
            occurred_at: r.try_get("occurred_at").map_err(err)?,
            recorded_at: r.try_get("recorded_at").map_err(err)?,
            actor: r.try_get("actor").map_err(err)?,
        });
    }
    // The clock as it stood at `at`: only what had occurred by then is listed and counted.
    let at_text = ts(at);
    facts.retain(|f| f.occurred_at <= at_text);
    let counted = facts
        .iter()
        .filter(|f| matches!(f.role, "counted" | "met"))
        .count();
    Ok(Some(Explanation {
        clock: ClockLine::of(&c, at, c.status(at, risk, &rules.calendar), &rules.calendar),
        needed: c.needed,
        counted: u32::try_from(counted).unwrap_or(u32::MAX).min(c.needed),
        facts,
    }))
}

/// Why a clock could not be explained.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// The views could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The log could not be read.
    #[error(transparent)]
    Log(#[from] assist_log::LogError),
}

/// The audit rows of `n` event ids (bound as $5 on) of generation $1 and stream $2 that
/// occurred between $3 and $4: one primary-key probe per id. The stream is checked too: an
/// id the stream reused from another stream is that other stream's fact.
fn audit_rows_sql(dialect: Dialect, n: usize) -> String {
    let ids: Vec<String> = (0..n)
        .map(|i| match dialect {
            Dialect::Sqlite => "?".to_string(),
            Dialect::Postgres => format!("${}", i + 5),
        })
        .collect();
    let (gen, stream, from, to) = match dialect {
        Dialect::Sqlite => ("?", "?", "?", "?"),
        Dialect::Postgres => ("$1", "$2", "$3", "$4"),
    };
    format!(
        "SELECT event_id, event_type, occurred_at, recorded_at, actor, seq FROM audit_events
         WHERE gen = {gen} AND stream = {stream} AND occurred_at >= {from} AND occurred_at <= {to}
         AND event_id IN ({})",
        ids.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{sqlite_plan, sqlite_store_indexed};

    #[tokio::test]
    async fn explain_takes_an_id_only_from_the_clocks_own_stream() {
        // Stream S reused the id of a fact of stream T: that audit row is T's, not S's.
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store_indexed(dir.path(), 1).await;
        sqlx::query(
            "INSERT INTO audit_events (gen, event_id, stream, seq, part, log_offset, event_type, occurred_at, recorded_at, actor, record_delay_ms, hash, prev_hash)
             VALUES (1, 'id-x', 'person-t', 1, 0, 0, 'contact_made', '2026-01-10', '2026-01-10', 'cw-1', 0, 'h', '')",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        let sql = audit_rows_sql(Dialect::Sqlite, 1);
        let found = |stream: &'static str| {
            let (store, sql) = (&store, &sql);
            async move {
                sqlx::query(sql)
                    .bind(1_i64)
                    .bind(stream)
                    .bind("2026-01-01")
                    .bind("2026-02-01")
                    .bind("id-x")
                    .fetch_all(&store.pool)
                    .await
                    .unwrap()
                    .len()
            }
        };
        assert_eq!(found("person-s").await, 0);
        assert_eq!(found("person-t").await, 1);
    }

    #[tokio::test]
    async fn the_clocks_changed_between_two_times_are_read_from_the_indexes_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store_indexed(dir.path(), 1).await;
        let sql = format!(
            "SELECT policy, step, {}, COUNT(*) FROM {} AND region LIKE '3501%' AND caseworker = 'cw-1' GROUP BY 1, 2, 3",
            counted_at("'2026-03-01T00:00:00.000Z'", "'2026-03-02T00:00:00.000Z'"),
            changed_clocks(1, true, "'2026-03-01T00:00:00.000Z'", "'2026-03-02T00:00:00.000Z'"),
        );
        let plan = sqlite_plan(&store, &sql, &[]).await;
        for index in [
            "clocks_by_start_at_g1",
            "clocks_by_deadline_g1",
            "clocks_by_settled_at_g1",
        ] {
            assert!(
                plan.contains(&format!("USING COVERING INDEX {index}")),
                "{plan}"
            );
        }
        // No row is looked up, and no set of ids is made to take duplicates out.
        assert!(!plan.contains("PRIMARY KEY"), "{plan}");
        assert!(!plan.contains("UNION USING TEMP B-TREE"), "{plan}");
    }

    #[tokio::test]
    async fn a_week_of_the_trend_is_counted_from_the_deadline_index_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store_indexed(dir.path(), 1).await;
        let filter = SlaFilter {
            region: Some("3501".to_string()),
            caseworker: Some("cw-1".to_string()),
            policy: Some("p".to_string()),
            step: Some("s".to_string()),
        };
        let at = "2026-03-01T00:00:00Z".parse().unwrap();
        let mut scope = Scope::new(&store, 1, &filter, at, Duration::zero())
            .await
            .unwrap();
        let sql = scope.week_counts();
        let binds: Vec<&str> = scope.values.iter().map(String::as_str).collect();
        let plan = sqlite_plan(&store, &sql, &binds).await;
        assert!(
            plan.contains("USING COVERING INDEX clocks_by_deadline_g1"),
            "{plan}"
        );
    }

    #[tokio::test]
    async fn explain_finds_a_subjects_audit_rows_by_primary_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store_indexed(dir.path(), 1).await;
        let sql = audit_rows_sql(Dialect::Sqlite, 2);
        let binds = ["1", "person-1", "2026-01-01", "2026-02-01", "id-1", "id-2"];
        let plan = sqlite_plan(&store, &sql, &binds).await;
        assert!(
            plan.contains("USING INDEX sqlite_autoindex_audit_events_1"),
            "{plan}"
        );
    }
}
