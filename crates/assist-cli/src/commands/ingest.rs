//! `assist ingest FILE|-`

use super::views::{ViewOptions, Views};
use crate::outln;
use anyhow::{Context, Result};
use assist_ingest::{IngestOptions, IngestReport};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tokio::io::{AsyncBufRead, BufReader};

/// Validate JSON Lines events and append the valid ones.
///
/// Prints `accepted N, duplicate N, conflicting N, rejected N`, then
/// `line L: <event id>: <reason>` for each line whose event id was already taken by other
/// content and each rejected line, in line order. Exits with status 1 when any line was
/// rejected or reused an id for other content.
#[derive(clap::Args)]
pub struct Args {
    /// A JSON Lines file, or `-` for standard input.
    input: PathBuf,
    /// Store nothing at all when any line is bad.
    #[arg(long)]
    atomic: bool,
}

pub async fn run(dir: &Path, views: &ViewOptions, args: Args) -> Result<ExitCode> {
    let views = Views::open(dir, views).await?;
    let recorder = &views.recorder;
    let options = IngestOptions {
        atomic: args.atomic,
        ..IngestOptions::default()
    };
    let input: Box<dyn AsyncBufRead + Unpin> = if args.input.as_os_str() == "-" {
        Box::new(BufReader::new(tokio::io::stdin()))
    } else {
        let file = tokio::fs::File::open(&args.input)
            .await
            .with_context(|| format!("cannot open {}", args.input.display()))?;
        Box::new(BufReader::with_capacity(1 << 20, file))
    };
    let report = recorder
        .ingest(input, options)
        .await
        .context("ingest stopped; lines appended before the failure are stored, and running it again is safe (duplicates are skipped)")?;
    print_report(&report)?;
    let gen = views.store.live_gen().await?;
    let stats = views.project(gen, None).await?;
    tracing::info!(applied = stats.applied, "views updated");
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Prints the summary line and one line per conflict or rejection, in line order.
pub fn print_report(report: &IngestReport) -> Result<()> {
    outln!("{}", report.summary())?;
    let mut lines: Vec<(usize, String)> = report
        .conflicts
        .iter()
        .map(|c| (c.line, c.to_string()))
        .chain(report.rejected.iter().map(|r| (r.line, r.to_string())))
        .collect();
    lines.sort_by_key(|(line, _)| *line);
    for (_, text) in lines {
        outln!("{text}")?;
    }
    if report.rolled_back {
        outln!("nothing was stored (--atomic)")?;
    }
    Ok(())
}
