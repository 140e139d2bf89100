//! `assist bench serve`: the service over loopback against the command line on the same
//! events: HTTP ingest (JSON Lines, concurrent clients) against `Recorder::ingest` of the
//! same lines, then the latency of the reads people make (history, caseload page, clock
//! list page, a city's and the province's SLA summary). The service runs as `assist serve`
//! in a child process, so that the memory it reports is the server's alone.

use crate::outln;
use anyhow::{Context, Result};
use assist_catalog::RegionPrefix;
use assist_http::auth::{load_or_create_secret, Claims, Role, Signer};
use assist_ingest::{IngestOptions, Recorder};
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;

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
    // The events as JSON Lines, held once: each POST's body is a slice of them.
    let (person, present, jsonl) = {
        let events = assist_simulate::simulate(args.persons, args.days, 3);
        let person = events
            .iter()
            .map(|e| e.meta.stream.name())
            .find(|s| s.starts_with("person-"))
            .context("a person")?;
        // The data's present: its latest fact, as a supervisor of a live system reads.
        let present = events
            .iter()
            .map(|e| e.meta.occurred_at)
            .max()
            .context("an event")?;
        (
            person,
            present,
            bytes::Bytes::from(assist_simulate::to_jsonl(&events)),
        )
    };
    let batch = args.batch.max(1);
    let bodies = batches(&jsonl, batch);
    let events = jsonl.iter().filter(|b| **b == b'\n').count();
    outln!(
        "log: {events} events of {} simulated people; POSTs of {batch} events from {} clients",
        args.persons,
        args.clients.max(1)
    )?;

    // The command line's ingest of the same lines, batches of the same size.
    let cli = Recorder::open_embedded(&dir.path().join("cli")).await?;
    let t = Instant::now();
    let report = cli
        .ingest(
            &jsonl[..],
            IngestOptions {
                atomic: false,
                batch_lines: batch,
            },
        )
        .await?;
    let cli_secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(report.accepted.len() == events, "ingest refused lines");
    drop(cli);

    // The service as it is deployed: `assist serve` in its own process, on its own data
    // dir, over loopback, so that its memory is its own.
    let data = dir.path().join("serve");
    std::fs::create_dir_all(&data)?;
    let secret = load_or_create_secret(&data)?;
    let mut server = Server::start(&data, args.batch).await?;
    let base = server.base.clone();
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
    // The reads below measure the server's memory, not the events posted.
    drop((bodies, jsonl));
    // The views caught up before the reads are measured.
    let caught = Instant::now();
    let stored = loop {
        let ready: serde_json::Value = client
            .get(format!("{base}/readyz"))
            .send()
            .await?
            .json()
            .await?;
        if ready["lag"].as_u64() == Some(0) {
            break ready["records"]
                .as_u64()
                .context("/readyz gives the log's records")?;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let caught = caught.elapsed().as_secs_f64();
    anyhow::ensure!(
        stored == events as u64,
        "the service stored {stored} of {events} events"
    );
    let n = events as f64;
    outln!(
        "command line ingest     {:>9.0} events/s ({cli_secs:.2} s)  [baseline]",
        n / cli_secs
    )?;
    outln!(
        "HTTP ingest             {:>9.0} events/s ({http_secs:.2} s)",
        n / http_secs
    )?;
    outln!("ratio (HTTP / command line) {:.2}", cli_secs / http_secs)?;

    outln!("views caught up {caught:.2} s after the last POST")?;
    let ingesting = Memory::of(server.pid);

    // A fixed day (a day before the 90 simulated days end), and the data's present.
    let at = "2026-04-04T00:00:00%2B08:00";
    let now = present
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).context("+08:00")?)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
        .replace('+', "%2B");
    let city = token(Role::Supervisor, "3501")?;
    let province = token(Role::Supervisor, "35")?;
    let auditor = token(Role::Auditor, "35")?;
    let few = (args.requests / 10).max(3);
    let reads: [(&str, String, &str, usize); 7] = [
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
        (
            "clock page, present (city)",
            format!("/v1/sla/clocks?status=breached&limit=50&at={now}"),
            city.as_str(),
            args.requests,
        ),
        (
            "SLA summary, present (prov.)",
            format!("/v1/sla?at={now}"),
            province.as_str(),
            args.requests,
        ),
    ];
    let before = Memory::reset_peak(server.pid);
    outln!(
        "{:<30} {:>8}  {:>8}  {:>8}",
        "read",
        "p50 ms",
        "p99 ms",
        "requests"
    )?;
    for (name, path, bearer, count) in reads {
        let auth = [("authorization", format!("Bearer {bearer}"))];
        let (p50, p99) = latency(&client, &format!("{base}{path}"), &auth, count).await?;
        outln!("{name:<30} {p50:>8.1}  {p99:>8.1}  {count:>8}")?;
    }
    if let (Some(ingesting), Some(before), Some(after)) =
        (ingesting, before, Memory::of(server.pid))
    {
        outln!(
            "server process memory: {} MB at most while it ingested and projected; {} MB resident at the start of the reads, {} MB at most during them",
            ingesting.peak_kb / 1024,
            before.resident_kb / 1024,
            after.peak_kb / 1024
        )?;
    }
    server.stop().await?;
    Ok(ExitCode::SUCCESS)
}

/// p50 and p99 of `count` GETs of `url` with `headers`, in milliseconds; every answer
/// must be a success, read to its end.
pub(crate) async fn latency(
    client: &reqwest::Client,
    url: &str,
    headers: &[(&str, String)],
    count: usize,
) -> Result<(f64, f64)> {
    let mut took = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        let t = Instant::now();
        let mut r = client.get(url);
        for (k, v) in headers {
            r = r.header(*k, v);
        }
        let r = r.send().await?;
        let status = r.status();
        r.bytes().await?;
        anyhow::ensure!(status.is_success(), "{url} answered {status}");
        took.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    took.sort_by(f64::total_cmp);
    let at = |q: f64| took[((took.len() as f64 * q).ceil() as usize).clamp(1, took.len()) - 1];
    Ok((at(0.5), at(0.99)))
}

/// The `POST` bodies: `jsonl` cut after every `batch` lines, each a slice of it (no copy).
fn batches(jsonl: &bytes::Bytes, batch: usize) -> Vec<bytes::Bytes> {
    let mut bodies = Vec::new();
    let (mut start, mut lines) = (0, 0);
    for (i, b) in jsonl.iter().enumerate() {
        if *b == b'\n' {
            lines += 1;
            if lines == batch {
                bodies.push(jsonl.slice(start..i));
                (start, lines) = (i + 1, 0);
            }
        }
    }
    if start < jsonl.len() {
        bodies.push(jsonl.slice(start..));
    }
    bodies
}

/// `assist serve --listen 127.0.0.1:0` on a data dir, as a child process (killed when
/// dropped).
pub(crate) struct Server {
    child: tokio::process::Child,
    pub(crate) pid: u32,
    /// `http://` and the address it bound.
    pub(crate) base: String,
}

impl Server {
    pub(crate) async fn start(data: &Path, batch: usize) -> Result<Server> {
        let exe = std::env::current_exe().context("the assist binary")?;
        let mut child = tokio::process::Command::new(exe)
            .env("ASSIST_DATA_DIR", data)
            // Warnings, but not a line per 503 of `/readyz` while the views catch up.
            .env("ASSIST_LOG", "warn,tower_http=off")
            .args(["serve", "--listen", "127.0.0.1:0", "--body-limit"])
            .arg(batch.saturating_mul(4096).max(8 << 20).to_string())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start assist serve")?;
        let pid = child.id().context("the server's pid")?;
        // It prints the bound address once it listens.
        let stdout = child.stdout.take().context("the server's output")?;
        let mut line = String::new();
        tokio::io::BufReader::new(stdout)
            .read_line(&mut line)
            .await?;
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .context("assist serve did not say where it listens")?
            .to_string();
        Ok(Server { child, pid, base })
    }

    /// SIGTERM, then waits for it to finish what is in flight.
    pub(crate) async fn stop(&mut self) -> Result<()> {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "cannot signal the server");
        self.child.wait().await?;
        Ok(())
    }
}

/// A process's memory as Linux reports it (`/proc/PID/status`), so that the server's
/// memory is measured in the same run; `None` elsewhere.
pub(crate) struct Memory {
    pub(crate) resident_kb: u64,
    pub(crate) peak_kb: u64,
}

impl Memory {
    pub(crate) fn of(pid: u32) -> Option<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| -> Option<u64> {
            let line = status.lines().find(|l| l.starts_with(name))?;
            line[name.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        };
        Some(Memory {
            resident_kb: field("VmRSS:")?,
            peak_kb: field("VmHWM:")?,
        })
    }

    /// Resets the peak to the current resident size (`clear_refs` 5), then reads both.
    pub(crate) fn reset_peak(pid: u32) -> Option<Memory> {
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5").ok()?;
        Memory::of(pid)
    }
}
