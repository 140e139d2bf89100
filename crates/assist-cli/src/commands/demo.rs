//! `assist demo`: the main job on the embedded default.

use super::views::{ViewOptions, Views};
use crate::outln;
use crate::output::show;
use anyhow::Result;
use assist_ingest::IngestOptions;
use assist_projections::caseload::query::{caseload, CaseFilter};
use assist_projections::sla::report::{summarize, SlaFilter};
use assist_simulate::{sim_start, to_jsonl};
use chrono::Duration;
use std::path::Path;
use std::process::ExitCode;

/// Simulate a county's assistance work (seeded), ingest it into the data dir, project the
/// views, and print the caseload and SLA summaries as they stood at the end of it.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    workload: super::simulate::Workload,
}

pub async fn run(dir: &Path, opts: &ViewOptions, args: Args) -> Result<ExitCode> {
    let views = Views::open(dir, opts).await?;
    let w = &args.workload;
    let events = w.events();
    let jsonl = to_jsonl(&events);
    outln!(
        "simulated {} events of {} people over {} days (seed {})",
        events.len(),
        w.persons,
        w.days,
        w.seed
    )?;
    let report_in = views
        .recorder
        .ingest(jsonl.as_slice(), IngestOptions::default())
        .await?;
    outln!("ingest into {}: {}", dir.display(), report_in.summary())?;
    let t = std::time::Instant::now();
    let gen = views.store.live_gen().await?;
    let stats = views.project(gen, None).await?;
    outln!(
        "projected {} events into {} in {:.1} s",
        stats.applied,
        views.store.name(),
        t.elapsed().as_secs_f64()
    )?;

    let at = sim_start() + Duration::days(i64::from(w.days));
    let load = caseload(
        &views.store,
        &views.rules.calendar,
        gen,
        &CaseFilter::default(),
        at,
    )
    .await?;
    outln!()?;
    outln!("caseload at {}: {} open cases", show(&load.at), load.total)?;
    for (stage, n) in &load.by_stage {
        outln!("  {:<14} {n:>6}", stage.name())?;
    }
    let sla = summarize(
        &views.store,
        gen,
        &views.rules.calendar,
        at,
        Duration::hours(24),
        &SlaFilter::default(),
    )
    .await?;
    outln!()?;
    outln!(
        "SLA at {} — counts per status, on-time = met / (met + met late + breached)",
        show(&sla.at)
    )?;
    let header = format!(
        "{:<30} {:>7} {:>8} {:>7} {:>7} {:>8} {:>7} {:>8} {:>10} {:>8}",
        "",
        "total",
        "on track",
        "at risk",
        "paused",
        "breached",
        "met",
        "met late",
        "cancelled",
        "on time"
    );
    outln!("{header}")?;
    let row = |label: &str, c: &assist_projections::sla::report::Counts| {
        let n = |s: &str| c.by_status.get(s).copied().unwrap_or(0);
        format!(
            "{label:<30} {:>7} {:>8} {:>7} {:>7} {:>8} {:>7} {:>8} {:>10} {:>8}",
            c.total,
            n("on_track"),
            n("at_risk"),
            n("paused"),
            n("breached"),
            n("met"),
            n("met_late"),
            n("cancelled"),
            c.on_time_rate
                .map(|r| format!("{:.1}%", r * 100.0))
                .unwrap_or_else(|| "-".into())
        )
    };
    outln!("{}", row("all", &sla.total))?;
    for l in &sla.by_step {
        outln!("{}", row(&l.key, &l.counts))?;
    }
    for l in &sla.by_region {
        outln!("{}", row(&format!("{} {}", l.level, l.key), &l.counts))?;
    }
    outln!()?;
    outln!("next: assist caseload --region 350121 | assist sla --at {} | assist sla explain <clock> | assist audit findings | assist verify", show(&sla.at))?;
    Ok(ExitCode::SUCCESS)
}
