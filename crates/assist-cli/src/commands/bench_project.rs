//! `assist bench project`: projection throughput against inserting the same rows plainly.

use crate::outln;
use anyhow::{Context, Result};
use assist_ingest::{IngestOptions, Recorder};
use assist_projections::sla::Rules;
use assist_projections::{Cell, Runner, Store, TableRows};
use sqlx::{Connection, Executor};
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// People to simulate (about 11 events each).
    #[arg(long, default_value_t = 20_000)]
    persons: usize,
    /// Days to simulate.
    #[arg(long, default_value_t = 90)]
    days: u32,
    /// Events per projection transaction (the commands' default).
    #[arg(long, default_value_t = 200_000)]
    batch: usize,
    /// The order the facts arrive in: as they occurred (no fact late), or as they were
    /// recorded (about 2% days late: their subjects are folded again).
    #[arg(long, value_enum, default_value_t = Arrival::Occurred)]
    arrival: Arrival,
    /// A PostgreSQL server to measure too (a temporary database is created and dropped),
    /// e.g. postgres://postgres@127.0.0.1:5432/postgres.
    #[arg(long, env = "ASSIST_BENCH_POSTGRES")]
    postgres: Option<String>,
}

/// The order the simulated facts arrive in.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Arrival {
    Occurred,
    Recorded,
}

pub async fn run(args: Args) -> Result<ExitCode> {
    let dir = tempfile::tempdir()?;
    let mut events = assist_simulate::simulate(args.persons, args.days, 1);
    if let Arrival::Recorded = args.arrival {
        events.sort_by_key(|e| (e.meta.recorded_at, e.meta.occurred_at, e.meta.event_id));
    }
    let recorder = Recorder::open_embedded(&dir.path().join("data")).await?;
    let report = recorder
        .ingest(
            assist_simulate::to_jsonl(&events).as_slice(),
            IngestOptions::default(),
        )
        .await?;
    anyhow::ensure!(
        report.rejected.is_empty(),
        "the simulation has rejected lines"
    );
    let n = events.len() as f64;
    outln!(
        "log: {} events of {} simulated people, projection batches of {}",
        events.len(),
        args.persons,
        args.batch
    )?;
    let rules = Rules::shipped()?;

    // SQLite: project, then insert the same rows with prepared statements in one transaction.
    let lite = Store::open(&format!("sqlite:{}", dir.path().join("views.db").display())).await?;
    let t = Instant::now();
    Runner {
        log: recorder.log().as_ref(),
        store: &lite,
        rules: &rules,
        batch: args.batch,
        memory: Default::default(),
    }
    .catch_up(1, |_| {})
    .await?;
    let ours = t.elapsed().as_secs_f64();
    let tables = lite.export(1).await?;
    let rows: usize = tables.iter().map(|t| t.rows.len()).sum();
    let base_store = Store::open(&format!(
        "sqlite:{}",
        dir.path().join("baseline.db").display()
    ))
    .await?;
    base_store.close().await;
    let t = Instant::now();
    sqlite_baseline(&dir.path().join("baseline.db"), &tables).await?;
    let base = t.elapsed().as_secs_f64();
    outln!(
        "SQLite   projection {:>9.0} events/s ({ours:.2} s, {rows} view rows)",
        n / ours
    )?;
    outln!("SQLite   baseline   {:>9.0} events/s ({base:.2} s: the same rows, prepared INSERTs, one transaction, the store's pragmas)", n / base)?;
    outln!(
        "SQLite   ratio (baseline time / projection time) {:.2}",
        base / ours
    )?;
    // What the store itself takes: the same rows copied table to table inside SQLite, no
    // binding and no work of ours.
    let floor_path = dir.path().join("floor.db");
    Store::open(&format!("sqlite:{}", floor_path.display()))
        .await?
        .close()
        .await;
    let t = Instant::now();
    sqlite_floor(&floor_path, &dir.path().join("views.db"), &tables).await?;
    let floor = t.elapsed().as_secs_f64();
    outln!(
        "SQLite   floor      {:>9.0} events/s ({floor:.2} s: the same rows by INSERT … SELECT from the projected file)",
        n / floor
    )?;

    if let Some(url) = &args.postgres {
        let (proj_db, base_db) = ("assist_bench_projection", "assist_bench_baseline");
        let mut admin = sqlx::PgConnection::connect(url)
            .await
            .context("cannot reach PostgreSQL")?;
        for db in [proj_db, base_db] {
            admin
                .execute(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)").as_str())
                .await?;
            admin
                .execute(format!("CREATE DATABASE {db}").as_str())
                .await?;
        }
        let base_url = url
            .rsplit_once('/')
            .map(|(b, _)| b.to_string())
            .context("no database in the URL")?;
        let pg = Store::open(&format!("{base_url}/{proj_db}")).await?;
        let t = Instant::now();
        Runner {
            log: recorder.log().as_ref(),
            store: &pg,
            rules: &rules,
            batch: args.batch,
            memory: Default::default(),
        }
        .catch_up(1, |_| {})
        .await?;
        let ours = t.elapsed().as_secs_f64();
        pg.close().await;
        let b = Store::open(&format!("{base_url}/{base_db}")).await?;
        b.close().await;
        let t = Instant::now();
        copy_baseline(&format!("{base_url}/{base_db}"), &tables).await?;
        let base = t.elapsed().as_secs_f64();
        outln!(
            "Postgres projection {:>9.0} events/s ({ours:.2} s)",
            n / ours
        )?;
        outln!(
            "Postgres baseline   {:>9.0} events/s ({base:.2} s: the same rows by COPY)",
            n / base
        )?;
        outln!(
            "Postgres ratio (baseline time / projection time) {:.2}",
            base / ours
        )?;
        for db in [proj_db, base_db] {
            admin
                .execute(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)").as_str())
                .await?;
        }
    } else {
        outln!("PostgreSQL: not measured (give --postgres URL)")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The same rows by prepared single-row INSERTs in one transaction, on a connection with
/// the view store's own settings (WAL, `synchronous=NORMAL`, 128 MiB cache, temp store in
/// memory, its WAL checkpoint interval; the file was made by `Store::open`, so 16 KiB pages).
async fn sqlite_baseline(path: &std::path::Path, tables: &[TableRows]) -> Result<()> {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
    let options = SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .pragma("cache_size", "-131072")
        .pragma("temp_store", "memory")
        .pragma("wal_autocheckpoint", "16384")
        .pragma("journal_size_limit", "67108864");
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?;
    let mut tx = pool.begin().await?;
    for t in tables.iter().filter(|t| !t.rows.is_empty()) {
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            t.table,
            t.columns.join(", "),
            vec!["?"; t.columns.len()].join(", ")
        );
        for row in &t.rows {
            let mut q = sqlx::query(&sql);
            for c in row {
                q = match c {
                    Cell::Null => q.bind(Option::<String>::None),
                    Cell::Int(i) => q.bind(*i),
                    Cell::Text(s) => q.bind(s.as_str()),
                    Cell::Bytes(b) => q.bind(b.as_slice()),
                };
            }
            q.execute(&mut *tx).await?;
        }
    }
    tx.commit().await?;
    pool.close().await;
    Ok(())
}

async fn sqlite_floor(
    path: &std::path::Path,
    projected: &std::path::Path,
    tables: &[TableRows],
) -> Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", path.display())).await?;
    conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -131072; PRAGMA temp_store = MEMORY;")
        .await?;
    sqlx::query("ATTACH DATABASE ? AS projected")
        .bind(projected.display().to_string())
        .execute(&mut conn)
        .await?;
    let mut tx = conn.begin().await?;
    for t in tables.iter().filter(|t| !t.rows.is_empty()) {
        let cols = t.columns.join(", ");
        tx.execute(
            format!(
                "INSERT INTO main.{0} ({cols}) SELECT {cols} FROM projected.{0}",
                t.table
            )
            .as_str(),
        )
        .await?;
    }
    tx.commit().await?;
    conn.close().await?;
    Ok(())
}

async fn copy_baseline(url: &str, tables: &[TableRows]) -> Result<()> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    for t in tables.iter().filter(|t| !t.rows.is_empty()) {
        let mut csv = String::new();
        for row in &t.rows {
            let cells: Vec<String> = row
                .iter()
                .map(|c| match c {
                    Cell::Null => String::new(),
                    Cell::Int(i) => i.to_string(),
                    Cell::Text(s) => format!("\"{}\"", s.replace('"', "\"\"")),
                    Cell::Bytes(b) => format!("\\\\x{}", hex_encode(b)),
                })
                .collect();
            csv.push_str(&cells.join(","));
            csv.push('\n');
        }
        let mut copy = conn
            .copy_in_raw(&format!(
                "COPY {} ({}) FROM STDIN (FORMAT csv)",
                t.table,
                t.columns.join(", ")
            ))
            .await?;
        copy.send(csv.into_bytes()).await?;
        copy.finish().await?;
    }
    conn.close().await?;
    Ok(())
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
