//! `assist`: the command line of the event-sourced case-management core.

mod allocator;
mod commands;
mod output;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Event-sourced case management for targeted employment assistance (就业帮扶).
///
/// Every assistance action is an immutable event in a partitioned log; by default the
/// log, the key table and the views live in an embedded data dir (no Kafka, no Postgres).
#[derive(Parser)]
#[command(
    name = "assist",
    version,
    propagate_version = true,
    after_help = EXIT_STATUS
)]
struct Cli {
    /// Where the embedded default keeps everything: log, keys, views.
    #[arg(
        long,
        global = true,
        env = "ASSIST_DATA_DIR",
        default_value = "./assist-data"
    )]
    data_dir: PathBuf,

    /// The zone times are shown in: an offset such as +08:00 (China time, the default) or UTC.
    /// Times given without an offset (`--at 2026-03-31`) are read in China time.
    #[arg(long, global = true, env = "ASSIST_TZ", value_parser = output::parse_zone)]
    tz: Option<chrono::FixedOffset>,

    /// Show times in UTC (the same as `--tz UTC`; wins over `--tz` and ASSIST_TZ).
    #[arg(long, global = true)]
    utc: bool,

    #[command(flatten)]
    views: commands::views::ViewOptions,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate JSON Lines events, append the valid ones to the log, update the views.
    Ingest(commands::ingest::Args),
    /// Bring the views (caseload, SLA clocks, audit trail) up to date with the log.
    Project(commands::views::ProjectArgs),
    /// A projection worker in a Kafka consumer group: project the partitions it owns until Ctrl-C.
    Follow(commands::follow::Args),
    /// The caseload: counts per stage and the cases with their next step due.
    Caseload(commands::views::CaseloadArgs),
    /// SLA compliance by region and caseworker; `sla explain CLOCK` for one clock's facts.
    Sla(commands::views::SlaArgs),
    /// Re-read the log and check every hash chain and digest against the audit store.
    Verify(commands::views::VerifyArgs),
    /// Audit findings: backdated steps and facts that break the domain rules.
    #[command(subcommand)]
    Audit(commands::views::AuditCommand),
    /// Log records the projections could not read, with the reason.
    Deadletters(commands::views::DeadLetterArgs),
    /// Build every view again from offset 0 and swap it in once caught up.
    Rebuild(commands::views::RebuildArgs),
    /// Write a seeded, realistic JSON Lines workload of a simulated city.
    Simulate(commands::simulate::Args),
    /// Print one stream's events in order (personal fields opened, or shown as erased).
    History(commands::history::Args),
    /// Destroy a person's data key and record the erasure as a fact.
    Erase(commands::erase::Args),
    /// The event catalog: list the types, or write the JSON Schemas under events/.
    #[command(subcommand)]
    Catalog(commands::catalog::Command),
    /// The main job: simulate a county into the data dir, project it, print caseload and SLA.
    Demo(commands::demo::Args),
    /// The SLA policies in force (each version and its date) and those the views were built with.
    Policies(commands::policies::Args),
    /// The SLA timer: reminders before a deadline, escalations after a breach, delivered
    /// to a webhook or a Kafka topic; until SIGTERM (`--once` for one round).
    Notify(commands::notify::NotifyArgs),
    /// The reminders and escalations the SLA timer recorded, with their deliveries.
    Notices(commands::notify::NoticesArgs),
    /// Serve the JSON API (events in, caseload, SLA, clocks, histories out) and the pages
    /// for people at / until SIGTERM.
    Serve(commands::serve::Args),
    /// Bearer tokens for `assist serve`, signed with the data dir's key.
    #[command(subcommand)]
    Token(commands::token::Command),
    /// The key-encryption key that wraps every person's data key: make one, rotate.
    #[command(subcommand)]
    Keys(commands::keys::Command),
    /// Benchmarks that print their figures next to a raw baseline.
    #[command(subcommand)]
    Bench(commands::bench::Command),
}

/// What the exit status means, in `--help` and the README.
const EXIT_STATUS: &str = "Exit status:
  0  done
  1  done, but some input was refused: ingest rejected lines or found an event id reused
     with other content, or verify found mismatches
  2  the command failed (bad arguments, store or log unreachable, disk full): see the
     message; nothing was half-done that running it again will not finish";

/// The exit status of a command that failed (see [`EXIT_STATUS`]).
pub const FAILED: u8 = 2;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ASSIST_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("warn,sqlx=error,librdkafka=off,rdkafka=off")
            }),
        )
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal: a log file or a pipe gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    if cli.utc {
        output::set_zone(chrono::FixedOffset::east_opt(0).expect("UTC is an offset"));
    } else if let Some(zone) = cli.tz {
        output::set_zone(zone);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(FAILED);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            let mut lines = output::error_lines(&e).into_iter();
            if let Some(first) = lines.next() {
                eprintln!("error: {first}");
            }
            for cause in lines {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(FAILED)
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let dir = cli.data_dir;
    let views = cli.views;
    match cli.command {
        Command::Ingest(args) => commands::ingest::run(&dir, &views, args).await,
        Command::Project(args) => commands::views::project(&dir, &views, args).await,
        Command::Follow(args) => commands::follow::run(&dir, &views, args).await,
        Command::Caseload(args) => commands::views::caseload_cmd(&dir, &views, args).await,
        Command::Sla(args) => commands::views::sla_cmd(&dir, &views, args).await,
        Command::Verify(args) => commands::views::verify_cmd(&dir, &views, args).await,
        Command::Audit(cmd) => commands::views::audit_cmd(&dir, &views, cmd).await,
        Command::Deadletters(args) => commands::views::deadletters_cmd(&dir, &views, args).await,
        Command::Rebuild(args) => commands::views::rebuild_cmd(&dir, &views, args).await,
        Command::Simulate(args) => commands::simulate::run(args),
        Command::History(args) => commands::history::run(&dir, &views, args).await,
        Command::Erase(args) => commands::erase::run(&dir, &views, args).await,
        Command::Catalog(cmd) => commands::catalog::run(cmd),
        Command::Demo(args) => commands::demo::run(&dir, &views, args).await,
        Command::Policies(args) => commands::policies::run(&dir, &views, args).await,
        Command::Notify(args) => commands::notify::notify_cmd(&dir, &views, args).await,
        Command::Notices(args) => commands::notify::notices_cmd(&dir, &views, args).await,
        Command::Serve(args) => commands::serve::run(&dir, &views, args).await,
        Command::Token(cmd) => commands::token::run(&dir, cmd),
        Command::Keys(cmd) => commands::keys::run(&dir, &views, cmd).await,
        Command::Bench(cmd) => commands::bench::run(cmd).await,
    }
}
