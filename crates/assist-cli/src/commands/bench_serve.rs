//! `assist bench serve`: the service over loopback against the command line on the same
//! events: HTTP ingest (JSON Lines, concurrent clients) against `Recorder::ingest` of the
//! same lines, then the latency of the reads people make (history, caseload page, clock
//! list page, a city's and the province's SLA summary).

use crate::outln;
use anyhow::{Context, Result};
use assist_catalog::RegionPrefix;
use assist_http::auth::{load_or_create_secret, Claims, Role, Signer, Verifier};
use assist_http::{App, Config};
use assist_ingest::{IngestOptions, Recorder};
use assist_projections::sla::Rules;
use assist_projections::Store;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// People to simulate (about 11 events each; 100,000 make 1.1M events).
    #[arg(long, default_value_t = 100_000)]
    persons: usize,
    /// Days to simulate.
    #[arg(long, default_value_t = 90)]
    days: u32,
    /// Events per POST (and per ingest batch on the command line's side).
    #[arg(long, default_value_t = 1_000)]
    batch: usize,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Requests per read measured (the SLA summaries take a tenth of them, at least 3).
    #[arg(long, default_value_t = 100)]
    requests: usize,
}

pub async fn run(args: Args) -> Result<ExitCode> {
    let dir = tempfile::tempdir()?;
    let events = assist_simulate::simulate(args.persons, args.days, 3);
    let jsonl = assist_simulate::to_jsonl(&events);
    let lines: Vec<&[u8]> = jsonl
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let batch = args.batch.max(1);
    outln!(
        "log: {} events of {} simulated people; POSTs of {batch} events from {} clients",
        lines.len(),
        args.persons,
        args.clients.max(1)
    )?;

    // The command line's ingest of the same lines, batches of the same size.
    let cli = Recorder::open_embedded(&dir.path().join("cli")).await?;
    let t = Instant::now();
    let report = cli
        .ingest(
            jsonl.as_slice(),
            IngestOptions {
                atomic: false,
                batch_lines: batch,
            },
        )
        .await?;
    let cli_secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(report.accepted.len() == lines.len(), "ingest refused lines");
    drop(cli);

    // The service, on its own data dir, over loopback.
    let data = dir.path().join("serve");
    let recorder = Recorder::open_embedded(&data).await?;
    let store = Store::open(&format!("sqlite:{}", data.join("views.db").display())).await?;
    let secret = load_or_create_secret(&data)?;
    let app = Arc::new(App {
        views: assist_http::Views::new(recorder, store, Rules::shipped()?, 200_000),
        verifier: Verifier::shared_secret(&secret),
        config: Config {
            body_limit: 64 << 20,
            request_timeout: Duration::from_secs(600),
            ..Config::default()
        },
        metrics: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(assist_http::serve(listener, app.clone(), async {
        let _ = stopped.await;
    }));
    let signer = Signer::shared_secret(&secret);
    let token = |role: Role, region: &str| -> Result<String> {
        let region = RegionPrefix::new(region).context("region")?;
        Ok(signer.sign(&Claims::new(
            "bench",
            role,
            &region,
            chrono::Duration::hours(8),
        ))?)
    };
    let client = reqwest::Client::new();

    let bodies: Vec<Vec<u8>> = lines.chunks(batch).map(|c| c.join(&b'\n')).collect();
    let service = token(Role::Service, "35")?;
    let t = Instant::now();
    let mut tasks = Vec::new();
    let clients = args.clients.max(1);
    let bodies = Arc::new(bodies);
    for c in 0..clients {
        let (client, bodies, base, service) = (
            client.clone(),
            bodies.clone(),
            base.clone(),
            service.clone(),
        );
        tasks.push(tokio::spawn(async move {
            for body in bodies.iter().skip(c).step_by(clients) {
                let r = client
                    .post(format!("{base}/v1/events"))
                    .bearer_auth(&service)
                    .header("content-type", "application/x-ndjson")
                    .body(body.clone())
                    .send()
                    .await?;
                anyhow::ensure!(r.status().is_success(), "POST answered {}", r.status());
            }
            Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let http_secs = t.elapsed().as_secs_f64();
    let stored = app.views.recorder.log().record_count().await?;
    anyhow::ensure!(
        stored == lines.len() as u64,
        "the service stored {stored} of {} events",
        lines.len()
    );
    let n = lines.len() as f64;
    outln!(
        "command line ingest     {:>9.0} events/s ({cli_secs:.2} s)  [baseline]",
        n / cli_secs
    )?;
    outln!(
        "HTTP ingest             {:>9.0} events/s ({http_secs:.2} s)",
        n / http_secs
    )?;
    outln!("ratio (HTTP / command line) {:.2}", cli_secs / http_secs)?;

    // The views caught up before the reads are measured.
    let t = Instant::now();
    app.views.catch_up().await?;
    outln!(
        "views caught up {:.2} s after the last POST",
        t.elapsed().as_secs_f64()
    )?;

    let person = events
        .iter()
        .map(|e| e.meta.stream.name())
        .find(|s| s.starts_with("person-"))
        .context("a person")?;
    let at = "2026-04-04T00:00:00%2B08:00";
    let city = token(Role::Supervisor, "3501")?;
    let province = token(Role::Supervisor, "35")?;
    let auditor = token(Role::Auditor, "35")?;
    let few = (args.requests / 10).max(3);
    let reads: [(&str, String, &str, usize); 5] = [
        (
            "history (auditor)",
            format!("/v1/streams/{person}/history"),
            auditor.as_str(),
            args.requests,
        ),
        (
            "caseload page (city)",
            "/v1/caseload?limit=50".into(),
            city.as_str(),
            args.requests,
        ),
        (
            "clock list page (city)",
            format!("/v1/sla/clocks?status=breached&limit=50&at={at}"),
            city.as_str(),
            args.requests,
        ),
        (
            "SLA summary (city)",
            format!("/v1/sla?at={at}"),
            city.as_str(),
            few,
        ),
        (
            "SLA summary (province)",
            format!("/v1/sla?at={at}"),
            province.as_str(),
            few,
        ),
    ];
    outln!("read                         p50 ms    p99 ms  requests")?;
    for (name, path, bearer, count) in reads {
        let mut took = Vec::with_capacity(count);
        for _ in 0..count {
            let t = Instant::now();
            let r = client
                .get(format!("{base}{path}"))
                .bearer_auth(bearer)
                .send()
                .await?;
            let status = r.status();
            r.bytes().await?;
            anyhow::ensure!(status.is_success(), "{name} answered {status}");
            took.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        took.sort_by(f64::total_cmp);
        let at = |q: f64| took[((took.len() as f64 * q).ceil() as usize).clamp(1, took.len()) - 1];
        outln!("{name:<26} {:>8.1}  {:>8.1}  {count:>8}", at(0.5), at(0.99))?;
    }
    let _ = stop.send(());
    server.await??;
    Ok(ExitCode::SUCCESS)
}
