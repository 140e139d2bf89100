//! `assist serve`: the JSON API on the data dir (or `--log`/`--store`), until SIGTERM or
//! Ctrl-C; requests in flight then finish.

use super::views::{ViewOptions, Views};
use crate::outln;
use anyhow::{Context, Result};
use assist_catalog::RegionPrefix;
use assist_http::auth::{load_or_create_secret, Claims, Role, Signer, Verifier};
use assist_http::{App, Config};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// Serve the JSON API: POST /v1/events, GET /v1/caseload, /v1/sla, /v1/sla/clocks,
/// /v1/sla/clocks/{clock}, /v1/streams/{stream}/history, /v1/access-log, /healthz, /readyz,
/// /v1/notices, /openapi.json, /docs and /metrics; for auditors /v1/audit/findings, /v1/audit/verify,
/// /v1/deadletters; for admins POST /v1/streams/{stream}/erase and /v1/rebuild. Callers need a
/// bearer token (`assist token issue`, or an identity provider's with --jwt-public-key).
/// The pages for people are at / (sign in at /signin; `--demo` prints sign-in links).
#[derive(clap::Args)]
pub struct Args {
    /// The address to listen on (port 0: any free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Accept only tokens of an identity provider signed by this public key (PEM, RS256
    /// or ES256) instead of the data dir's jwt.key.
    #[arg(long, env = "ASSIST_JWT_PUBLIC_KEY")]
    jwt_public_key: Option<PathBuf>,
    /// The largest request body, in bytes.
    #[arg(long, default_value_t = 8 << 20)]
    body_limit: usize,
    /// /readyz fails while the views lag the log by more records than this.
    #[arg(long, default_value_t = 10_000)]
    max_lag: u64,
    /// Run the SLA timer in the server too: reminders and escalations recorded as they
    /// come due (shown to each person at /v1/notices) and delivered as `assist notify` does.
    #[arg(long)]
    notify: bool,
    #[command(flatten)]
    delivery: super::notify::Delivery,
    /// SQLite's memory in this process, in MiB (0: no bound): the page caches of every
    /// SQLite file the server opens (log, views, keys) share it, whatever the files' size.
    #[arg(long, env = "ASSIST_SQLITE_MEMORY_MIB", default_value_t = 512)]
    sqlite_memory_mib: u32,
    /// The dashboard's red / amber / green thresholds of the on-time rate (TOML with
    /// `green` and `amber`; default policies/dashboard/ratings.toml as shipped).
    #[arg(long, env = "ASSIST_RATINGS")]
    ratings: Option<PathBuf>,
    /// Try the pages out: put the demo's simulated county into an empty data dir, and
    /// print sign-in links for a caseworker, a county and a city supervisor, an observer
    /// and an auditor (signed with the data dir's key).
    #[arg(long, conflicts_with = "jwt_public_key")]
    demo: bool,
    /// Print the OpenAPI document (as checked in at crates/assist-http/openapi.json) and exit.
    #[arg(long)]
    print_openapi: bool,
}

pub async fn run(dir: &Path, opts: &ViewOptions, args: Args) -> Result<ExitCode> {
    if args.print_openapi {
        outln!("{}", assist_http::openapi::document_json().trim_end())?;
        return Ok(ExitCode::SUCCESS);
    }
    assist_log::sqlite_memory::limit_memory(u64::from(args.sqlite_memory_mib) << 20);
    crate::allocator::fewer_malloc_arenas();
    let views = Views::open(dir, opts).await?;
    let channels = if args.notify {
        args.delivery.channels(opts).await?
    } else {
        if args.delivery.webhook.is_some() || args.delivery.notices_topic.is_some() {
            anyhow::bail!(
                "--webhook and --notices-topic deliver the SLA timer's notices: add --notify"
            );
        }
        Vec::new()
    };
    let notice_rules = super::notify::load_notice_rules(opts.policies.as_deref(), &views.rules)?;
    if args.demo {
        demo_data(dir, &views).await?;
    }
    let ratings = match &args.ratings {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            assist_pages::Ratings::parse(&text).with_context(|| format!("{}", path.display()))?
        }
        None => assist_pages::Ratings::shipped(),
    };
    let mut pages = assist_pages::Pages::new(ratings);
    let mut demo_links = Vec::new();
    if args.demo {
        let signer = Signer::shared_secret(&load_or_create_secret(dir)?);
        for (who, role, region, sub) in DEMO_PEOPLE {
            let claims = Claims::new(
                sub,
                role,
                &RegionPrefix::new(region)?,
                chrono::Duration::hours(8),
            );
            demo_links.push((who, pages.add_demo_signin(signer.sign(&claims)?)));
        }
    }
    let verifier = match &args.jwt_public_key {
        Some(path) => {
            let pem =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            Verifier::public_key_pem(&pem)?
        }
        None => Verifier::shared_secret(&load_or_create_secret(dir)?),
    };
    let live = assist_http::Views::new(views.recorder, views.store, views.rules, views.batch);
    let config = Config {
        body_limit: args.body_limit,
        zone: crate::output::zone(),
        max_lag: args.max_lag,
        ..Config::default()
    };
    let app = Arc::new(App {
        views: live,
        verifier,
        config,
        metrics: Default::default(),
    });
    if let Err(e) = app.views.catch_up().await {
        tracing::warn!(error = %e, "projecting the log at start failed; the periodic run retries");
    }
    // What a catch-up freed goes back to the system, at start and as the log grows.
    tokio::spawn(async {
        let mut every = tokio::time::interval(crate::allocator::RETURN_FREED_EVERY);
        loop {
            every.tick().await;
            let started = std::time::Instant::now();
            let _ = tokio::task::spawn_blocking(crate::allocator::return_freed_memory).await;
            tracing::debug!(ms = started.elapsed().as_millis(), "returned freed memory");
        }
    });
    if args.notify {
        let notifier = super::notify::Notifier::new(
            app.views.recorder.log().clone(),
            app.views.store.clone(),
            app.views.rules.clone(),
            notice_rules,
            channels,
        );
        tokio::spawn(async move {
            notifier
                .run_until(std::time::Duration::from_secs(1), std::future::pending())
                .await
        });
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let bound = listener.local_addr().context("the bound address")?;
    outln!("listening on http://{bound}")?;
    for (who, path) in demo_links {
        outln!("sign in as {who}: http://{bound}{path}")?;
    }
    tracing::info!(%bound, "serving");
    assist_http::serve_with(
        listener,
        app,
        assist_pages::routes(pages),
        shutdown_signal(),
    )
    .await
    .context("the server stopped")?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// The people `--demo` prints sign-in links for: who, role, region, staff id (ids and
/// counties of the simulated city, Fuzhou 3501).
const DEMO_PEOPLE: [(&str, Role, &str, &str); 5] = [
    ("a caseworker", Role::Caseworker, "350102", "cw-350102-001"),
    (
        "a county supervisor",
        Role::Supervisor,
        "350102",
        "sup-350102",
    ),
    ("a city supervisor", Role::Supervisor, "3501", "sup-3501"),
    ("an observer", Role::Observer, "3501", "obs-3501"),
    ("an auditor", Role::Auditor, "3501", "aud-3501"),
];

/// `--demo`: the demo's county into a data dir whose log is empty (as `assist demo`).
async fn demo_data(dir: &Path, views: &Views) -> Result<()> {
    if views.recorder.log().record_count().await? > 0 {
        return Ok(());
    }
    let events = assist_simulate::simulate(5_000, 90, 1);
    let report = views
        .recorder
        .ingest(
            assist_simulate::to_jsonl(&events).as_slice(),
            assist_ingest::IngestOptions::default(),
        )
        .await?;
    outln!("demo data into {}: {}", dir.display(), report.summary())?;
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
