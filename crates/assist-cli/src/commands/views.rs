//! The read side on the command line: project, caseload, sla, verify, audit findings,
//! dead letters, rebuild. Every command first brings the views up to date with the log.

use super::open_recorder;
use crate::outln;
use anyhow::{bail, Context, Result};
use assist_catalog::RegionPrefix;
use assist_ingest::Recorder;
use assist_log::{PartitionReader, ProjectionLog};
use assist_privacy::Kek;
use assist_projections::audit::{findings::findings, verify::verify};
use assist_projections::caseload::query::{
    caseload_as_of, caseload_page, sort_by_deadline, CaseFilter,
};
use assist_projections::caseload::Stage;
use assist_projections::outage::Backoff;
use assist_projections::sla::report::{
    clocks_page, explain, fold_clocks, parse_status, report, summarize, ClockLine, SlaFilter,
    SlaReport,
};
use assist_projections::sla::{Rules, Status, SHIPPED_CALENDARS};
use assist_projections::store::{parse_ts, ts};
use assist_projections::{RunStats, Runner, Store};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where the views live and how they are computed (global options).
#[derive(clap::Args, Clone)]
pub struct ViewOptions {
    /// The event log: `embedded` (log.db in the data dir) or kafka:BROKERS[/TOPIC].
    #[arg(long = "log", global = true, env = "ASSIST_EVENT_LOG")]
    pub log: Option<String>,
    /// The view store: sqlite:PATH or postgres://USER@HOST/DB [default: sqlite:DATA_DIR/views.db].
    #[arg(long, global = true, env = "ASSIST_STORE")]
    pub store: Option<String>,
    /// The key-encryption key that wraps every person's data key (a file of 32 random
    /// bytes in base64, from `assist keys new-kek`), kept outside the data dir and the
    /// database [default: DATA_DIR/kek, made when missing].
    #[arg(long, global = true, env = "ASSIST_KEK_FILE")]
    pub kek_file: Option<PathBuf>,
    /// A directory of SLA policy files (*.toml) and calendars (calendars/*.toml) to use
    /// instead of the shipped ones.
    #[arg(long, global = true, env = "ASSIST_POLICIES")]
    pub policies: Option<PathBuf>,
    /// Events per projection transaction (at most: a batch holds what the log has). Large
    /// by default: while a generation is built, every batch rewrites the pages of the
    /// per-subject tables it touches, so fewer, larger batches write far less.
    #[arg(
        long,
        global = true,
        default_value_t = 200_000,
        hide = true,
        env = "ASSIST_PROJECTION_BATCH"
    )]
    pub projection_batch: usize,
}

impl ViewOptions {
    /// Opens the view store: `--store`, or the embedded one in `dir`. The error never
    /// repeats the store's URL, which may hold a password.
    pub async fn open_store(&self, dir: &Path) -> Result<Store> {
        let spec = self
            .store
            .clone()
            .unwrap_or_else(|| format!("sqlite:{}", dir.join("views.db").display()));
        open_store_spec(&spec).await
    }
}

/// Opens the view store `spec`, retrying briefly while PostgreSQL restarts.
async fn open_store_spec(spec: &str) -> Result<Store> {
    {
        // A few quick tries only: a store that stays unreachable is more often a wrong
        // address than a restart, and the person waiting should hear so soon.
        let mut backoff = Backoff::new(3);
        loop {
            match Store::open(spec).await {
                Ok(store) => return Ok(store),
                // A PostgreSQL restart while the store is opened and migrated: try again.
                Err(e) if e.is_connection_lost() && spec.starts_with("postgres") => {
                    match backoff.next_wait() {
                        Some(wait) => {
                            tracing::warn!(error = %e, wait_ms = wait.as_millis() as u64, "lost the store's connection; retrying");
                            tokio::time::sleep(wait).await;
                        }
                        None => return Err(e).context("cannot open the view store"),
                    }
                }
                Err(e) => return Err(e).context("cannot open the view store"),
            }
        }
    }
}

/// The log, the views and the rules, opened together.
pub struct Views {
    pub recorder: Recorder,
    pub store: Store,
    pub rules: Rules,
    pub batch: usize,
    /// Opened from a data dir that cannot be written (a copy on read-only media): the views
    /// are caught up in `scratch`, and nothing in the data dir changes.
    pub read_only: bool,
    /// The temporary copy of a read-only data dir's views.db, removed when dropped.
    _scratch: Option<tempfile::TempDir>,
}

/// Whether `dir` cannot be written: read-only media, or no write permission.
fn is_read_only(dir: &Path) -> bool {
    match tempfile::tempfile_in(dir) {
        Ok(_) => false,
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
        ),
    }
}

/// Every `*.toml` file directly in `dir`, as (file name, text), sorted by name.
pub fn read_dir_toml(dir: &Path) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = e?.path();
        if path.extension().is_some_and(|x| x == "toml") {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            out.push((
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                text,
            ));
        }
    }
    out.sort();
    Ok(out)
}

/// The rules from a policy directory, or the shipped ones.
pub fn load_rules(dir: Option<&Path>) -> Result<Rules> {
    match dir {
        None => Ok(Rules::shipped()?),
        Some(dir) => {
            let policies = read_dir_toml(dir)?;
            let cal_dir = dir.join("calendars");
            let calendars = if cal_dir.is_dir() {
                read_dir_toml(&cal_dir)?
            } else {
                SHIPPED_CALENDARS
                    .iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect()
            };
            let p: Vec<(&str, &str)> = policies
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            let c: Vec<(&str, &str)> = calendars
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            Ok(Rules::from_files(&p, &c)?)
        }
    }
}

impl Views {
    /// Opens the log in `dir`, the view store and the rules, without projecting.
    pub async fn open(dir: &Path, opts: &ViewOptions) -> Result<Views> {
        let recorder = open_recorder(dir, opts).await?;
        let store = opts.open_store(dir).await?;
        let rules = load_rules(opts.policies.as_deref())?;
        Ok(Views {
            recorder,
            store,
            rules,
            batch: opts.projection_batch,
            read_only: false,
            _scratch: None,
        })
    }

    /// Opens a data dir that cannot be written: the log and keys read-only, and the views
    /// in a temporary copy of its views.db (or `--store`), where they are caught up.
    async fn open_read_only_copy(dir: &Path, opts: &ViewOptions) -> Result<Views> {
        let kek = match &opts.kek_file {
            Some(path) => Some(Kek::load(path).context("cannot read --kek-file")?),
            None => None,
        };
        let recorder = Recorder::open_embedded_read_only(dir, kek)
            .await
            .with_context(|| format!("cannot open the read-only data dir {}", dir.display()))?;
        let (store, scratch) = match &opts.store {
            Some(spec) => (open_store_spec(spec).await?, None),
            None => {
                let scratch = tempfile::tempdir()
                    .context("cannot make a temporary copy of the views of a read-only data dir")?;
                for name in ["views.db", "views.db-wal"] {
                    let from = dir.join(name);
                    if from.is_file() {
                        std::fs::copy(&from, scratch.path().join(name))
                            .with_context(|| format!("cannot copy {}", from.display()))?;
                    }
                }
                let spec = format!("sqlite:{}", scratch.path().join("views.db").display());
                (open_store_spec(&spec).await?, Some(scratch))
            }
        };
        tracing::warn!(
            "the data dir is read-only: nothing in it is changed, views are caught up in a temporary copy"
        );
        Ok(Views {
            recorder,
            store,
            rules: load_rules(opts.policies.as_deref())?,
            batch: opts.projection_batch,
            read_only: true,
            _scratch: scratch,
        })
    }

    /// As [`Views::open`] for a command that reads: it fails, creating nothing, when the
    /// data dir holds no event log (a mistyped `--data-dir` is an error, not an empty store).
    /// A data dir that cannot be written is opened as a read-only copy.
    pub async fn open_existing(dir: &Path, opts: &ViewOptions) -> Result<Views> {
        require_log(dir, opts)?;
        let embedded = matches!(opts.log.as_deref(), None | Some("embedded"));
        if embedded && is_read_only(dir) {
            return Views::open_read_only_copy(dir, opts).await;
        }
        Views::open(dir, opts).await
    }

    /// Opens everything and brings the active views up to date with the log.
    pub async fn open_current(dir: &Path, opts: &ViewOptions) -> Result<(Views, i64)> {
        let views = Views::open_existing(dir, opts).await?;
        views.project(views.store.live_gen().await?, None).await?;
        let gen = views.store.active_gen().await?;
        Ok((views, gen))
    }

    /// Says on stderr when generation `gen` was built with other SLA policies than those in
    /// force, and how to rebuild: its figures follow the old ones until then.
    pub async fn warn_if_built_with_other_rules(&self, gen: i64) -> Result<()> {
        let built = self.store.generation_rules(gen).await?;
        let now = self.rules.fingerprint();
        if let Some(built) = built.filter(|b| *b != now) {
            eprintln!(
                "warning: the views were built with other SLA policies ({built}) than those in force ({now}); `assist policies` shows them, `assist rebuild` (with the same --policies) applies these"
            );
        }
        Ok(())
    }

    fn log(&self) -> &dyn ProjectionLog {
        self.recorder.log().as_ref()
    }

    /// Projects the log into generation `gen`, with a progress bar when one is given.
    pub async fn project(&self, gen: i64, bar: Option<&ProgressBar>) -> Result<RunStats> {
        let runner = Runner {
            log: self.log(),
            store: &self.store,
            rules: &self.rules,
            batch: self.batch,
            memory: Default::default(),
        };
        let mut backoff = Backoff::default();
        let partitions: Vec<u32> = (0..self.log().partition_count()).collect();
        // Counted across tries: what a failed try committed stays projected.
        let mut stats = RunStats::default();
        loop {
            let before = stats.records;
            let run = runner
                .catch_up_counting(gen, &partitions, &mut stats, |n| {
                    if let Some(b) = bar {
                        b.inc(n);
                    }
                })
                .await;
            match run {
                Ok(()) => return Ok(stats),
                // A store restart: the open batch was rolled back; resume from the checkpoint.
                // A try that got somewhere before it failed starts the tries afresh.
                Err(e) if e.is_connection_lost() => {
                    match backoff.after_failure(stats.records > before) {
                        Some(wait) => {
                            tracing::warn!(error = %e, wait_ms = wait.as_millis() as u64, "lost the store's connection; retrying");
                            tokio::time::sleep(wait).await;
                        }
                        None => return Err(e).context(STOPPED),
                    }
                }
                Err(e) => return Err(e).context(STOPPED),
            }
        }
    }
}

/// What a failed projection says: nothing is half-done, and how to go on.
const STOPPED: &str =
    "projecting the log into the views failed; run it again to resume from the last checkpoint";

/// Fails unless the embedded log exists in `dir` (with `--log kafka:…` the log is the topic).
pub fn require_log(dir: &Path, opts: &ViewOptions) -> Result<()> {
    let embedded = matches!(opts.log.as_deref(), None | Some("embedded"));
    let log = dir.join(assist_ingest::LOG_FILE);
    if embedded && !log.is_file() {
        bail!(
            "no event log in the data dir {}: {} does not exist (check --data-dir or ASSIST_DATA_DIR; `assist ingest` and `assist demo` create one)",
            dir.display(),
            log.display()
        );
    }
    Ok(())
}

/// A time given as RFC 3339, or as a date (meaning the end of that day, China time).
pub fn parse_when(s: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let day = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .with_context(|| format!("{s:?} is neither a date (2026-03-31) nor an RFC 3339 time"))?;
    let next = day.succ_opt().context("date out of range")?;
    let midnight = assist_projections::sla::calendar::china_time()
        .from_local_datetime(&next.and_hms_opt(0, 0, 0).context("midnight")?)
        .single()
        .context("no such local time")?;
    Ok(midnight.with_timezone(&Utc) - Duration::milliseconds(1))
}

use crate::output::{print_json, show, show_time};

// ---------------------------------------------------------------- project

/// Bring the views up to date with the log.
#[derive(clap::Args)]
pub struct ProjectArgs {}

pub async fn project(dir: &Path, opts: &ViewOptions, _args: ProjectArgs) -> Result<ExitCode> {
    let views = Views::open_existing(dir, opts).await?;
    let gen = views.store.live_gen().await?;
    let s = views.project(gen, None).await?;
    outln!(
        "projected {} records: {} applied, {} duplicates skipped, {} dead letters{}",
        s.records,
        s.applied,
        s.duplicates,
        s.dead_letters,
        redone_note(&s)
    )?;
    Ok(ExitCode::SUCCESS)
}

/// What a summary line adds when partitions of a build were started over (a run stopped
/// before their end, or facts crossing partitions): those records were projected, and
/// counted, again.
pub fn redone_note(s: &RunStats) -> String {
    match s.redone {
        0 => String::new(),
        n => format!(" ({n} of the records projected again: partitions of a build started over)"),
    }
}

// ---------------------------------------------------------------- caseload

/// Caseworkers' and supervisors' caseload: counts per stage and the cases by their next step due (overdue first).
#[derive(clap::Args)]
pub struct CaseloadArgs {
    /// Only this caseworker's cases.
    #[arg(long)]
    caseworker: Option<String>,
    /// Only regions under this 2-, 4- or 6-digit code (province, city, county).
    #[arg(long)]
    region: Option<RegionPrefix>,
    /// Only this key group (e.g. poverty_relieved).
    #[arg(long)]
    group: Option<String>,
    /// Only this stage (alerted, contacted, assessed, offers_pushed, in_training, placed, in_follow_up, suspended, closed).
    #[arg(long)]
    stage: Option<String>,
    /// The caseload as it stood on this date (or time), by when things happened.
    #[arg(long)]
    as_of: Option<String>,
    /// Closed cases too.
    #[arg(long)]
    all: bool,
    /// How many cases to list in text (0: all).
    #[arg(long, default_value_t = 30)]
    limit: usize,
    /// JSON for machines.
    #[arg(long)]
    json: bool,
}

pub async fn caseload_cmd(dir: &Path, opts: &ViewOptions, args: CaseloadArgs) -> Result<ExitCode> {
    let stage = match &args.stage {
        Some(s) => Some(Stage::parse(s).with_context(|| format!("unknown stage {s:?}"))?),
        None => None,
    };
    let (views, gen) = Views::open_current(dir, opts).await?;
    views.warn_if_built_with_other_rules(gen).await?;
    let at = match &args.as_of {
        Some(s) => parse_when(s)?,
        None => Utc::now(),
    };
    let filter = CaseFilter {
        caseworker: args.caseworker,
        region: args.region.map(|r| r.as_str().to_string()),
        group: args.group,
        stage,
        include_closed: args.all || stage == Some(Stage::Closed),
    };
    // The text lists the first `--limit` cases; JSON all of them.
    let limit = if args.limit == 0 || args.json {
        usize::MAX
    } else {
        args.limit
    };
    let load = if args.as_of.is_some() {
        let events = read_all_events(views.log()).await?;
        let mut load = caseload_as_of(&views.rules, events.iter(), &filter, at);
        sort_by_deadline(&mut load.cases);
        load.cases.truncate(limit);
        load
    } else {
        // The service's query: the store pages cases by their next deadline.
        caseload_page(
            &views.store,
            &views.rules.calendar,
            gen,
            &filter,
            at,
            (limit, 0),
        )
        .await?
    };
    if args.json {
        print_json(&load)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!("caseload at {}: {} cases", show(&load.at), load.total)?;
    let stages: Vec<String> = load
        .by_stage
        .iter()
        .map(|(s, n)| format!("{} {n}", s.name()))
        .collect();
    outln!("by stage: {}", stages.join(", "))?;
    for c in &load.cases {
        let next = c
            .next_step
            .as_ref()
            .map(|n| format!("{} due {}", n.step, show(&n.due_at)))
            .unwrap_or_else(|| "-".into());
        outln!(
            "{}  {:<13} {:<16} {}  [{}]  next: {next}",
            c.case.subject,
            c.case.stage.name(),
            c.case.caseworker,
            c.case.region,
            c.case.groups.join(",")
        )?;
    }
    if load.cases.len() < load.total {
        outln!(
            "({} more; --limit 0 lists all)",
            load.total - load.cases.len()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------- sla

/// SLA compliance by region (province, city, county) and caseworker, with breached and at-risk clocks.
#[derive(clap::Args)]
pub struct SlaArgs {
    #[command(subcommand)]
    command: Option<SlaCommand>,
    /// Compute statuses at this time [default: now].
    #[arg(long, global = true)]
    at: Option<String>,
    /// Hours before a deadline that count as at risk.
    #[arg(long, global = true, default_value_t = 24)]
    risk_hours: i64,
    /// Only regions under this 2-, 4- or 6-digit code (province, city, county).
    #[arg(long)]
    region: Option<RegionPrefix>,
    /// Only this caseworker.
    #[arg(long)]
    caseworker: Option<String>,
    /// What-if: re-evaluate the whole history under these policy files instead (stored views untouched).
    #[arg(long = "policy")]
    policy: Vec<PathBuf>,
    /// How many breached and at-risk clocks to list in text (0: all) [default: 10].
    #[arg(long)]
    limit: Option<usize>,
    /// JSON for machines.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(clap::Subcommand)]
enum SlaCommand {
    /// The facts that started, paused, counted towards, met or cancelled one clock, as it
    /// stood at `--at` (only what had occurred by then).
    Explain {
        /// The clock id, as listed by `assist sla` and `assist sla clocks`.
        clock: String,
    },
    /// The clocks behind a figure: by status at `--at`, policy, step, region, caseworker;
    /// by deadline, then id.
    Clocks(ClocksArgs),
}

/// Which clocks `sla clocks` lists.
#[derive(clap::Args)]
struct ClocksArgs {
    /// Only clocks with this status at `--at`: on_track, at_risk, paused, breached, met,
    /// met_late, cancelled.
    #[arg(long, value_parser = parse_status_arg)]
    status: Option<Status>,
    /// Only this policy (e.g. response-2473).
    #[arg(long)]
    policy: Option<String>,
    /// Only this step of the policy (e.g. contact).
    #[arg(long)]
    step: Option<String>,
    /// Only regions under this 2-, 4- or 6-digit code (province, city, county).
    #[arg(long)]
    region: Option<RegionPrefix>,
    /// Only this caseworker.
    #[arg(long)]
    caseworker: Option<String>,
    /// How many clocks to list (0: all).
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Skip this many clocks first (the next page).
    #[arg(long, default_value_t = 0)]
    offset: usize,
}

fn parse_status_arg(s: &str) -> Result<Status, String> {
    parse_status(s).ok_or_else(|| {
        let names: Vec<&str> = Status::ALL.iter().map(|s| s.name()).collect();
        format!("the status must be one of {}", names.join(", "))
    })
}

pub async fn sla_cmd(dir: &Path, opts: &ViewOptions, args: SlaArgs) -> Result<ExitCode> {
    let at = match &args.at {
        Some(s) => parse_when(s)?,
        None => Utc::now(),
    };
    let risk = Duration::try_hours(args.risk_hours).context("--risk-hours is out of range")?;
    if let Some(command) = &args.command {
        // `sla --region R clocks` would otherwise list every region's clocks.
        let given: Vec<&str> = [
            ("--region", args.region.is_some()),
            ("--caseworker", args.caseworker.is_some()),
            ("--policy", !args.policy.is_empty()),
            ("--limit", args.limit.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        if !given.is_empty() {
            let sub = match command {
                SlaCommand::Explain { .. } => "explain",
                SlaCommand::Clocks(_) => "clocks",
            };
            bail!(
                "{} given before `{sub}`: the options of `assist sla` do not apply to `sla {sub}`; give those of `sla {sub}` after it (`assist sla {sub} --help`)",
                given.join(", ")
            );
        }
    }
    let (views, gen) = Views::open_current(dir, opts).await?;
    if args.policy.is_empty() {
        views.warn_if_built_with_other_rules(gen).await?;
    }
    if let Some(SlaCommand::Explain { clock }) = &args.command {
        let log = views.recorder.log().clone();
        let Some(e) = explain(
            &views.store,
            log.as_ref(),
            gen,
            &views.rules,
            clock,
            at,
            risk,
        )
        .await?
        else {
            bail!("no clock {clock:?}; `assist sla` lists clock ids");
        };
        if parse_ts(&e.clock.started_at).is_some_and(|started| started > at) {
            bail!(
                "clock {clock:?} had not started by {}: it started at {}",
                show_time(&at),
                show(&e.clock.started_at)
            );
        }
        if args.json {
            print_json(&e)?;
        } else {
            let c = &e.clock;
            outln!(
                "{}: {} for {} ({}, {})",
                c.clock_id,
                c.step,
                c.subject,
                c.region,
                if c.caseworker.is_empty() {
                    "unassigned"
                } else {
                    &c.caseworker
                }
            )?;
            outln!(
                "started {}, due {}, status at {}: {} ({} of {} facts counted)",
                show(&c.started_at),
                show(&c.due_at),
                show_time(&at),
                c.status,
                e.counted,
                e.needed
            )?;
            for f in &e.facts {
                outln!(
                    "  {:<9} {} {:<24} occurred {} recorded {} by {}",
                    f.role,
                    f.event_id,
                    f.event_type,
                    show(&f.occurred_at),
                    show(&f.recorded_at),
                    f.actor
                )?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(SlaCommand::Clocks(c)) = &args.command {
        let filter = SlaFilter {
            region: c.region.as_ref().map(|r| r.as_str().to_string()),
            caseworker: c.caseworker.clone(),
            policy: c.policy.clone(),
            step: c.step.clone(),
        };
        let limit = if c.limit == 0 { usize::MAX } else { c.limit };
        let (total, page): (usize, Vec<ClockLine>) = clocks_page(
            &views.store,
            gen,
            &views.rules.calendar,
            at,
            risk,
            &filter,
            c.status,
            (limit, c.offset),
        )
        .await?;
        if args.json {
            print_json(&serde_json::json!({
                "at": ts(at),
                "total": total,
                "offset": c.offset,
                "clocks": page,
            }))?;
        } else {
            outln!("{} clocks at {}", total, show_time(&at))?;
            for l in &page {
                outln!(
                    "  {}  {:<9} {:<28} due {}  {}  {}",
                    l.clock_id,
                    l.status,
                    l.step,
                    show(&l.due_at),
                    l.region,
                    if l.caseworker.is_empty() {
                        "-"
                    } else {
                        &l.caseworker
                    }
                )?;
            }
            let shown_to = c.offset + page.len();
            if shown_to < total {
                outln!(
                    "  ({} more; --offset {shown_to} for the next page, --limit 0 lists all)",
                    total - shown_to
                )?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let filter = SlaFilter {
        region: args.region.as_ref().map(|r| r.as_str().to_string()),
        caseworker: args.caseworker.clone(),
        policy: None,
        step: None,
    };
    let r = if args.policy.is_empty() {
        summarize(&views.store, gen, &views.rules.calendar, at, risk, &filter).await?
    } else {
        let mut texts = Vec::new();
        for p in &args.policy {
            texts.push((
                p.display().to_string(),
                std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read {}", p.display()))?,
            ));
        }
        let pols: Vec<(&str, &str)> = texts
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let rules = Rules::from_files(&pols, SHIPPED_CALENDARS).map(|mut r| {
            r.calendar = views.rules.calendar.clone();
            r
        })?;
        let events = read_all_events(views.log()).await?;
        let clocks = fold_clocks(&rules, events.iter());
        report(&clocks, &views.rules.calendar, at, risk, &filter)
    };
    if args.json {
        print_json(&r)?;
    } else {
        print_sla(
            &r,
            args.risk_hours,
            args.limit.unwrap_or(10),
            !args.policy.is_empty(),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Every fact of the log, each id once: what `--as-of` and the what-if fold.
pub async fn read_all_events(log: &dyn PartitionReader) -> Result<Vec<assist_catalog::Event>> {
    Ok(assist_projections::runner::read_facts(log).await?)
}

fn counts_line(c: &assist_projections::sla::report::Counts) -> String {
    let parts: Vec<String> = assist_projections::sla::Status::ALL
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s.name(),
                c.by_status.get(s.name()).copied().unwrap_or(0)
            )
        })
        .collect();
    let rate = c
        .on_time_rate
        .map(|r| format!("{:.1}%", r * 100.0))
        .unwrap_or_else(|| "-".into());
    format!(
        "{:>6} clocks | {} | on time {rate}",
        c.total,
        parts.join(" | ")
    )
}

fn print_sla(r: &SlaReport, risk_hours: i64, limit: usize, what_if: bool) -> Result<()> {
    outln!(
        "SLA at {} (at risk: due within {risk_hours} h){}",
        show(&r.at),
        if what_if {
            " — what-if under the given policies"
        } else {
            ""
        }
    )?;
    outln!("all        {}", counts_line(&r.total))?;
    outln!("by step:")?;
    for l in &r.by_step {
        outln!("  {:<28} {}", l.key, counts_line(&l.counts))?;
    }
    outln!("by region:")?;
    for l in &r.by_region {
        let key = match &l.only {
            Some(only) => format!("{} (only {only})", l.key),
            None => l.key.clone(),
        };
        outln!("  {:<8} {:<8} {}", l.level, key, counts_line(&l.counts))?;
    }
    outln!("by caseworker:")?;
    for l in &r.by_caseworker {
        outln!("  {:<16} {}", l.key, counts_line(&l.counts))?;
    }
    for (name, list) in [("breached", &r.breached), ("at risk", &r.at_risk)] {
        outln!("{name}: {}", list.len())?;
        let shown = if limit == 0 {
            list.len()
        } else {
            limit.min(list.len())
        };
        for c in &list[..shown] {
            outln!(
                "  {}  due {}  {}  {}",
                c.clock_id,
                show(&c.due_at),
                c.region,
                if c.caseworker.is_empty() {
                    "-"
                } else {
                    &c.caseworker
                }
            )?;
        }
        if shown < list.len() {
            outln!(
                "  ({} more; --limit 0 lists all, --json for machines)",
                list.len() - shown
            )?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- verify, findings, dead letters

/// Re-read the log and check every hash chain and partition digest against the audit store.
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// JSON for machines.
    #[arg(long)]
    json: bool,
}

pub async fn verify_cmd(dir: &Path, opts: &ViewOptions, args: VerifyArgs) -> Result<ExitCode> {
    let (views, gen) = Views::open_current(dir, opts).await?;
    let v = verify(views.log(), &views.store, gen).await?;
    if args.json {
        print_json(&v)?;
    } else {
        for m in &v.mismatches {
            let at = m.offset.map(|o| format!(" offset {o}")).unwrap_or_default();
            let who = match (&m.stream, &m.event_id) {
                (Some(s), Some(e)) => format!(": stream {s}, event {e}"),
                _ => String::new(),
            };
            outln!("MISMATCH partition {}{at}{who}: {}", m.partition, m.problem)?;
        }
        outln!(
            "verified {} records: {}",
            v.records,
            if v.mismatches.is_empty() {
                "log and audit store agree".to_string()
            } else {
                format!("{} mismatches", v.mismatches.len())
            }
        )?;
    }
    Ok(if v.mismatches.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Audit: findings.
#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Backdated steps and facts that break the domain rules, each with its events.
    Findings {
        /// A step recorded more than this many hours after it occurred is backdated.
        #[arg(long, default_value_t = 72)]
        backdated_after_hours: i64,
        /// JSON for machines.
        #[arg(long)]
        json: bool,
    },
}

pub async fn audit_cmd(dir: &Path, opts: &ViewOptions, cmd: AuditCommand) -> Result<ExitCode> {
    let AuditCommand::Findings {
        backdated_after_hours,
        json,
    } = cmd;
    let (views, gen) = Views::open_current(dir, opts).await?;
    let delay = Duration::try_hours(backdated_after_hours)
        .context("--backdated-after-hours is out of range")?;
    let list = findings(&views.store, gen, delay).await?;
    if json {
        print_json(&list)?;
    } else {
        for f in &list {
            outln!(
                "{:<32} {}  events {}  {}",
                f.kind,
                f.subject,
                f.events.join(","),
                f.detail
            )?;
        }
        outln!("{} findings", list.len())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// List log records the projections could not read (partition, offset, reason).
#[derive(clap::Args)]
pub struct DeadLetterArgs {
    /// JSON for machines.
    #[arg(long)]
    json: bool,
}

pub async fn deadletters_cmd(
    dir: &Path,
    opts: &ViewOptions,
    args: DeadLetterArgs,
) -> Result<ExitCode> {
    let (views, gen) = Views::open_current(dir, opts).await?;
    let list = assist_projections::runner::dead_letters(&views.store, gen).await?;
    if args.json {
        print_json(&list)?;
    } else {
        for d in &list {
            outln!(
                "partition {} offset {}: {} ({} bytes{})",
                d.partition,
                d.offset,
                d.reason,
                d.bytes,
                if d.redacted { " kept, redacted" } else { "" }
            )?;
        }
        outln!("{} dead letters", list.len())?;
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------- rebuild

/// Build every view again from offset 0 into a new generation and swap it in once caught up.
#[derive(clap::Args)]
pub struct RebuildArgs {}

pub async fn rebuild_cmd(dir: &Path, opts: &ViewOptions, _args: RebuildArgs) -> Result<ExitCode> {
    let views = Views::open_existing(dir, opts).await?;
    let total = views.log().record_count().await?;
    let gen = views.store.begin_rebuild().await?;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} events  {per_sec}  ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let t = std::time::Instant::now();
    // Catch up twice: events appended during the first pass are taken before the swap.
    let mut stats = views.project(gen, Some(&bar)).await?;
    let more = views.project(gen, Some(&bar)).await?;
    stats.records += more.records;
    let old = views.store.swap_in(gen).await?;
    bar.finish_and_clear();
    let active = views.store.active_gen().await?;
    if active != gen {
        bail!(
            "generation {gen} was not swapped in: generation {active} is active (another rebuild finished first)"
        );
    }
    let secs = t.elapsed().as_secs_f64();
    outln!(
        "rebuilt generation {gen} from {} records in {secs:.1} s ({:.0} events/s); it is now the active one",
        stats.records,
        stats.records as f64 / secs.max(1e-9)
    )?;
    if let Some(old) = old {
        let t = std::time::Instant::now();
        views.store.drop_generation(old).await?;
        outln!(
            "dropped generation {old} in {:.1} s",
            t.elapsed().as_secs_f64()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
