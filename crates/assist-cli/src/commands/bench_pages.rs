//! `assist bench pages`: the pages for people next to the API reads they are made of, on
//! the same server in the same run. A page calls the API's handler and renders its JSON,
//! so the API read is the baseline and the difference is the page's own work. The XLSX
//! export of a long list is measured against the CSV export of the same rows (the same
//! read, written as plain text), for a county's list and the city's, with the server's
//! memory growth during each: flat when it does not grow with the rows.

use super::bench_serve::{latency, Memory, Server};
use crate::outln;
use anyhow::{Context, Result};
use assist_catalog::RegionPrefix;
use assist_http::auth::{load_or_create_secret, Claims, Role, Signer};
use assist_ingest::{IngestOptions, Recorder};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// People to simulate (about 11 events each; 100,000 make 1.1M events).
    #[arg(long, default_value_t = 100_000)]
    persons: usize,
    /// Requests per page measured.
    #[arg(long, default_value_t = 50)]
    requests: usize,
}

pub async fn run(args: Args) -> Result<ExitCode> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("serve");
    {
        let events = assist_simulate::simulate(args.persons, 90, 3);
        let recorder = Recorder::open_embedded(&data).await?;
        let report = recorder
            .ingest(
                assist_simulate::to_jsonl(&events).as_slice(),
                IngestOptions::default(),
            )
            .await?;
        outln!(
            "log: {} events of {} simulated people",
            report.accepted.len(),
            args.persons
        )?;
    }
    let secret = load_or_create_secret(&data)?;
    // The server catches the views up before it listens.
    let mut server = Server::start(&data, 200_000).await?;
    let base = server.base.clone();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(600))
        .build()?;
    loop {
        let ready: serde_json::Value = client
            .get(format!("{base}/readyz"))
            .send()
            .await?
            .json()
            .await?;
        if ready["lag"].as_u64() == Some(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let signer = Signer::shared_secret(&secret);
    let token = |region: &str| -> Result<String> {
        let region = RegionPrefix::new(region).context("region")?;
        Ok(signer.sign(&Claims::new(
            "bench",
            Role::Supervisor,
            &region,
            chrono::Duration::hours(8),
        ))?)
    };
    let (city, province) = (token("3501")?, token("35")?);
    let bearer = |t: &str| vec![("authorization", format!("Bearer {t}"))];
    let cookie = |t: &str| vec![("cookie", format!("assist_session={t}"))];
    // A day before the 90 simulated days end, as `bench serve` reads.
    let at = "2026-04-04T00:00:00%2B08:00";
    let reads = [
        (
            "dashboard (city)",
            format!("/dashboard?at={at}"),
            format!("/v1/sla?at={at}"),
            &city,
        ),
        (
            "dashboard (province)",
            format!("/dashboard?at={at}"),
            format!("/v1/sla?at={at}"),
            &province,
        ),
        (
            "drill-down list (city)",
            format!("/clocks?status=breached&at={at}"),
            format!("/v1/sla/clocks?status=breached&at={at}"),
            &city,
        ),
    ];
    outln!(
        "{:<26} {:>14} {:>14}   {:>14} {:>14}",
        "read",
        "page p50 ms",
        "page p99 ms",
        "API p50 ms",
        "API p99 ms"
    )?;
    for (name, page, api, t) in &reads {
        let (ap50, ap99) =
            latency(&client, &format!("{base}{api}"), &bearer(t), args.requests).await?;
        let (p50, p99) =
            latency(&client, &format!("{base}{page}"), &cookie(t), args.requests).await?;
        outln!("{name:<26} {p50:>14.1} {p99:>14.1}   {ap50:>14.1} {ap99:>14.1}  [baseline: API]")?;
    }

    // Exports of long lists: every clock of a county (about 113,000 at 100,000 people)
    // and of the city (five times as many), so that the memory each takes shows whether
    // it grows with the rows.
    outln!(
        "{:<30} {:>9} {:>10} {:>9} {:>14}",
        "export",
        "rows",
        "seconds",
        "MB",
        "memory +MB"
    )?;
    for (scope, query) in [
        ("county", format!("region=350102&at={at}")),
        ("city", format!("region=3501&at={at}")),
    ] {
        let t = &province;
        let total: serde_json::Value = client
            .get(format!("{base}/v1/sla/clocks?{query}&limit=1"))
            .bearer_auth(t)
            .send()
            .await?
            .json()
            .await?;
        let rows = total["total"].as_u64().context("the list's total")?;
        // The baseline first: the same rows as CSV, the plainest file of them (the same
        // read, text written by hand).
        for format in ["csv", "xlsx"] {
            let before = Memory::reset_peak(server.pid);
            let started = Instant::now();
            let r = client
                .get(format!("{base}/export/clocks.{format}?{query}"))
                .header("cookie", format!("assist_session={t}"))
                .send()
                .await?;
            anyhow::ensure!(
                r.status().is_success(),
                "the {format} export answered {}",
                r.status()
            );
            let bytes = r.bytes().await?.len();
            let secs = started.elapsed().as_secs_f64();
            let grew = match (before, Memory::of(server.pid)) {
                (Some(before), Some(after)) => format!(
                    "{}",
                    (after.peak_kb.saturating_sub(before.resident_kb)) / 1024
                ),
                _ => "-".to_string(),
            };
            let name = format!("{format} ({scope})");
            let note = if format == "csv" { "  [baseline]" } else { "" };
            outln!(
                "{name:<30} {rows:>9} {secs:>10.2} {:>9.1} {grew:>14}{note}",
                bytes as f64 / 1e6
            )?;
        }
    }
    server.stop().await?;
    Ok(ExitCode::SUCCESS)
}
