//! `assist policies`: the SLA policies in force (every version, with the date it takes
//! effect) and whether the views were built with them.

use super::views::{require_log, ViewOptions, Views};
use crate::outln;
use crate::output::print_json;
use anyhow::Result;
use serde::Serialize;
use std::path::Path;
use std::process::ExitCode;

/// Show the SLA policies in force (each version and the date it takes effect), their
/// fingerprint, and the fingerprint the active views were built with.
#[derive(clap::Args)]
pub struct Args {
    /// JSON for machines.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct PolicyLine {
    id: String,
    name: String,
    effective_from: Option<String>,
    days: &'static str,
    file: String,
    steps: Vec<String>,
}

#[derive(Serialize)]
struct Report {
    fingerprint: String,
    policies: Vec<PolicyLine>,
    /// The active generation and the fingerprint it was built with (absent without views).
    views_generation: Option<i64>,
    views_fingerprint: Option<String>,
    views_built_with_these: Option<bool>,
}

pub async fn run(dir: &Path, opts: &ViewOptions, args: Args) -> Result<ExitCode> {
    let rules = super::views::load_rules(opts.policies.as_deref())?;
    let fingerprint = rules.fingerprint();
    let policies: Vec<PolicyLine> = rules
        .policies
        .iter()
        .map(|p| PolicyLine {
            id: p.id.clone(),
            name: p.name.clone(),
            effective_from: p.effective_from.map(|d| d.to_string()),
            days: match p.days {
                assist_projections::sla::DayKind::Calendar => "calendar",
                assist_projections::sla::DayKind::Working => "working",
            },
            file: p.file.clone(),
            steps: p
                .steps
                .iter()
                .map(|s| {
                    let times = if s.count > 1 {
                        format!(" ×{}", s.count)
                    } else {
                        String::new()
                    };
                    format!("{} {}d ({}{times})", s.id, s.within_days, s.met_by)
                })
                .collect(),
        })
        .collect();
    let (gen, built) = if require_log(dir, opts).is_ok() {
        let views = Views::open_existing(dir, opts).await?;
        let gen = views.store.active_gen().await?;
        (Some(gen), views.store.generation_rules(gen).await?)
    } else {
        (None, None)
    };
    let same = built.as_ref().map(|b| *b == fingerprint);
    if args.json {
        print_json(&Report {
            fingerprint,
            policies,
            views_generation: gen,
            views_fingerprint: built,
            views_built_with_these: same,
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!("policies in force (fingerprint {fingerprint}):")?;
    for p in &policies {
        outln!(
            "  {:<20} {:<16} {} days  {}  [{}]",
            p.id,
            p.effective_from
                .as_deref()
                .map(|d| format!("from {d}"))
                .unwrap_or_else(|| "always".into()),
            p.days,
            p.steps.join(", "),
            p.file
        )?;
    }
    match (gen, built, same) {
        (Some(g), Some(b), Some(true)) => {
            outln!("the views (generation {g}) were built with these policies ({b})")?
        }
        (Some(g), Some(b), _) => outln!(
            "the views (generation {g}) were built with other policies ({b}): run `assist rebuild` (with the same --policies) to apply these"
        )?,
        _ => outln!("no views have been projected yet")?,
    }
    Ok(ExitCode::SUCCESS)
}
