//! `assist simulate`: write the seeded workload of [`assist_simulate`] as JSON Lines.

use anyhow::{Context, Result};
use assist_simulate::{simulate, to_jsonl};
use std::path::PathBuf;
use std::process::ExitCode;

/// Write a seeded JSON Lines workload of a simulated city.
#[derive(clap::Args)]
pub struct Args {
    /// How many people.
    #[arg(long, default_value_t = 5_000)]
    persons: usize,
    /// How many days, from 2026-01-05.
    #[arg(long, default_value_t = 90)]
    days: u32,
    /// The seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where to write (JSON Lines).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let events = simulate(args.persons, args.days, args.seed);
    std::fs::write(&args.out, to_jsonl(&events))
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!(
        "wrote {} events of {} people over {} days to {}",
        events.len(),
        args.persons,
        args.days,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
