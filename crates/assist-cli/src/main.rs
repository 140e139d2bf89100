//! `assist`: the command line of the event-sourced case-management core.

mod commands;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Event-sourced case management for targeted employment assistance (就业帮扶).
///
/// Every assistance action is an immutable event in a partitioned log; by default the
/// log, the key table and the views live in an embedded data dir (no Kafka, no Postgres).
#[derive(Parser)]
#[command(name = "assist", version, propagate_version = true)]
struct Cli {
    /// Where the embedded default keeps everything: log, keys, views.
    #[arg(
        long,
        global = true,
        env = "ASSIST_DATA_DIR",
        default_value = "./assist-data"
    )]
    data_dir: PathBuf,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate JSON Lines events and append the valid ones to the log.
    Ingest(commands::ingest::Args),
    /// Print one stream's events in order (personal fields opened, or shown as erased).
    History(commands::history::Args),
    /// Destroy a person's data key and record the erasure as a fact.
    Erase(commands::erase::Args),
    /// The event catalog: list the types, or write the JSON Schemas under events/.
    #[command(subcommand)]
    Catalog(commands::catalog::Command),
    /// Ingest the shipped examples into the data dir and print a person's history.
    Demo(commands::demo::Args),
    /// Benchmarks that print their figures next to a raw baseline.
    #[command(subcommand)]
    Bench(commands::bench::Command),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ASSIST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let dir = cli.data_dir;
    match cli.command {
        Command::Ingest(args) => commands::ingest::run(&dir, args).await,
        Command::History(args) => commands::history::run(&dir, args).await,
        Command::Erase(args) => commands::erase::run(&dir, args).await,
        Command::Catalog(cmd) => commands::catalog::run(cmd),
        Command::Demo(args) => commands::demo::run(&dir, args).await,
        Command::Bench(cmd) => commands::bench::run(cmd).await,
    }
}
