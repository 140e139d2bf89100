//! `assist simulate`: write the seeded workload of [`assist_simulate`] as JSON Lines.

use crate::outln;
use anyhow::{Context, Result};
use assist_simulate::{simulate, to_jsonl};
use std::path::PathBuf;
use std::process::ExitCode;

/// The size and seed of a simulated workload (shared by `simulate` and `demo`).
#[derive(clap::Args)]
pub struct Workload {
    /// How many people.
    #[arg(long, default_value_t = 5_000)]
    pub persons: usize,
    /// How many days, from 2026-01-05.
    #[arg(long, default_value_t = 90)]
    pub days: u32,
    /// The seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl Workload {
    /// The simulated events.
    pub fn events(&self) -> Vec<assist_catalog::Event> {
        simulate(self.persons, self.days, self.seed)
    }
}

/// Write a seeded JSON Lines workload of a simulated city.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    workload: Workload,
    /// Where to write (JSON Lines).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let events = args.workload.events();
    std::fs::write(&args.out, to_jsonl(&events))
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    outln!(
        "wrote {} events of {} people over {} days to {}",
        events.len(),
        args.workload.persons,
        args.workload.days,
        args.out.display()
    )?;
    Ok(ExitCode::SUCCESS)
}
