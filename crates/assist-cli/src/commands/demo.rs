//! `assist demo`: the main job on the embedded default, until the projections exist.

use super::history::{load, print_text};
use super::ingest::print_report;
use super::{open_recorder, EXAMPLES};
use anyhow::{Context, Result};
use assist_catalog::StreamId;
use assist_ingest::IngestOptions;
use serde_json::Value;
use std::path::Path;
use std::process::ExitCode;

/// Ingest the shipped example of every event type into the data dir (in the order they
/// happened) and print the history of the example person.
#[derive(clap::Args)]
pub struct Args {}

pub async fn run(dir: &Path, _args: Args) -> Result<ExitCode> {
    let recorder = open_recorder(dir).await?;
    let mut events: Vec<Value> = EXAMPLES
        .iter()
        .map(|(name, text)| {
            serde_json::from_str(text).with_context(|| format!("example {name} is not JSON"))
        })
        .collect::<Result<_>>()?;
    events.sort_by(|a, b| a["occurred_at"].as_str().cmp(&b["occurred_at"].as_str()));
    let mut jsonl = Vec::new();
    for e in &events {
        serde_json::to_writer(&mut jsonl, e)?;
        jsonl.push(b'\n');
    }
    println!(
        "ingesting {} example events into {}",
        events.len(),
        dir.display()
    );
    let report = recorder
        .ingest(jsonl.as_slice(), IngestOptions::default())
        .await?;
    print_report(&report);
    let person: StreamId = events
        .iter()
        .find(|e| e["type"] == "person_registered")
        .and_then(|e| e["stream"].as_str())
        .context("no person_registered example")?
        .parse()?;
    println!();
    print_text(&person, &load(&recorder, &person).await?);
    Ok(if report.rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
