//! `assist notify`: the SLA timer (reminders before a deadline, escalations after a
//! breach) with delivery to a webhook and, on Kafka, a topic; `assist notices` lists what
//! it recorded.

use super::views::{parse_when, ViewOptions, Views};
use crate::outln;
use crate::output::{print_json, show_time};
use anyhow::{bail, Context, Result};
use assist_log::EventLog;
use assist_projections::notices::{
    list_notices, Channel, DeliveryStats, NoticeFilter, NoticeRules, Outbox, TickStats, Timer,
};
use assist_projections::sla::Rules;
use assist_projections::Store;
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Where notices are delivered, besides the notices table.
#[derive(clap::Args, Clone, Default)]
pub struct Delivery {
    /// POST each notice to this URL (JSON, HMAC-SHA256 signed, the notice id as
    /// Idempotency-Key); retried with backoff until the receiver answers 2xx.
    #[arg(long, env = "ASSIST_WEBHOOK_URL")]
    pub webhook: Option<String>,
    /// A file holding the webhook's shared secret (needed with --webhook).
    #[arg(long, env = "ASSIST_WEBHOOK_SECRET_FILE")]
    pub webhook_secret_file: Option<PathBuf>,
    /// With --log kafka:…, also produce each notice to this topic, keyed by its clock.
    #[arg(long, env = "ASSIST_NOTICES_TOPIC")]
    pub notices_topic: Option<String>,
}

impl Delivery {
    /// Opens the channels asked for.
    pub async fn channels(&self, opts: &ViewOptions) -> Result<Vec<Box<dyn Channel>>> {
        let mut out: Vec<Box<dyn Channel>> = Vec::new();
        if let Some(url) = &self.webhook {
            let Some(file) = &self.webhook_secret_file else {
                bail!("--webhook needs --webhook-secret-file (the secret its receiver checks signatures with)");
            };
            let secret = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let secret = secret.trim();
            if secret.len() < 16 {
                bail!(
                    "the webhook secret in {} is shorter than 16 characters",
                    file.display()
                );
            }
            let hook = assist_webhook::Webhook::new(
                url,
                secret.as_bytes().to_vec(),
                Duration::from_secs(10),
            )?;
            out.push(Box::new(hook));
        }
        if let Some(topic) = &self.notices_topic {
            let Some(kafka) = opts.log.as_deref().and_then(|l| l.strip_prefix("kafka:")) else {
                bail!("--notices-topic needs the Kafka log (--log kafka:BROKERS[/TOPIC])");
            };
            let mut config = assist_kafka::KafkaConfig::parse(kafka);
            config.topic = topic.clone();
            let channel = assist_kafka::notices::NoticeTopic::open(config).await?;
            out.push(Box::new(channel));
        }
        Ok(out)
    }
}

/// The notice rules of a policy directory (`notices/*.toml` in it), or the shipped ones.
pub fn load_notice_rules(dir: Option<&Path>, rules: &Rules) -> Result<NoticeRules> {
    let notices = match dir {
        None => NoticeRules::shipped()?,
        Some(dir) => {
            let sub = dir.join("notices");
            let files = if sub.is_dir() {
                super::views::read_dir_toml(&sub)?
            } else {
                Vec::new()
            };
            let pairs: Vec<(&str, &str)> = files
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            NoticeRules::from_files(&pairs)?
        }
    };
    let ids: Vec<&str> = rules.policies.iter().map(|p| p.id.as_str()).collect();
    notices.check_policies(&ids)?;
    // A policy directory without a policy's notice file is allowed (a rule nobody needs
    // reminding of), but never silent: the operator is told which clocks send nothing.
    // (A policy with several dated versions is one id, named once.)
    let silent: std::collections::BTreeSet<&str> = ids
        .iter()
        .copied()
        .filter(|id| notices.of(id).is_none())
        .collect();
    for id in silent {
        eprintln!(
            "warning: policy {id} has no notice rules (notices/{id}.toml in the policies directory): its clocks send no reminders or escalations"
        );
    }
    Ok(notices)
}

/// The timer and its outbox over one log and store.
pub struct Notifier {
    log: Arc<dyn EventLog>,
    store: Store,
    rules: Rules,
    notices: NoticeRules,
    channels: Vec<Box<dyn Channel>>,
    names: Vec<String>,
}

impl Notifier {
    /// A notifier delivering through `channels`.
    pub fn new(
        log: Arc<dyn EventLog>,
        store: Store,
        rules: Rules,
        notices: NoticeRules,
        channels: Vec<Box<dyn Channel>>,
    ) -> Notifier {
        let names = channels.iter().map(|c| c.name().to_string()).collect();
        Notifier {
            log,
            store,
            rules,
            notices,
            channels,
            names,
        }
    }

    fn timer(&self) -> Timer<'_> {
        Timer {
            log: self.log.as_ref(),
            store: &self.store,
            rules: &self.rules,
            notices: &self.notices,
            channels: &self.names,
        }
    }

    /// One round at `now`: record what came due, then deliver what waits.
    pub async fn round(&self, now: DateTime<Utc>) -> Result<(TickStats, DeliveryStats)> {
        let ticked = self
            .timer()
            .tick(now)
            .await
            .context("the SLA timer failed")?;
        let outbox = Outbox {
            store: &self.store,
            channels: &self.channels,
        };
        let delivered = outbox
            .deliver_due(now)
            .await
            .context("delivering notices failed")?;
        Ok((ticked, delivered))
    }

    /// How long to sleep after a round: until the next notice or retry is due, at most
    /// `poll` (new facts may bring a moment closer).
    pub async fn wait(&self, poll: Duration) -> Duration {
        let outbox = Outbox {
            store: &self.store,
            channels: &self.channels,
        };
        let next_notice = self.timer().next_moment().await.ok().flatten();
        let next_retry = outbox.next_attempt().await.ok().flatten();
        let now = Utc::now();
        [next_notice, next_retry]
            .into_iter()
            .flatten()
            .map(|t| (t - now).to_std().unwrap_or(Duration::ZERO))
            .fold(poll, Duration::min)
    }

    /// Rounds until `stop` resolves; a failed round is logged and tried again.
    pub async fn run_until(&self, poll: Duration, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            match self.round(Utc::now()).await {
                Ok((t, d)) => {
                    if t.notices + d.delivered + d.failed > 0 {
                        tracing::info!(
                            notices = t.notices,
                            delivered = d.delivered,
                            failed = d.failed,
                            "notices"
                        );
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "a round of the SLA timer failed; retrying")
                }
            }
            let wait = self.wait(poll).await;
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Run the SLA timer: record each reminder and escalation as it comes due (once: its id
/// comes from its clock and kind), deliver them, keep the views current; until SIGTERM.
#[derive(clap::Args)]
pub struct NotifyArgs {
    /// One round, then exit.
    #[arg(long)]
    once: bool,
    /// The time of that round instead of now (RFC 3339, or a date meaning its end, China
    /// time): for trying out what would be sent. Only with --once.
    #[arg(long, requires = "once")]
    at: Option<String>,
    /// Look for new facts at least this often, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    poll_ms: u64,
    #[command(flatten)]
    delivery: Delivery,
}

pub async fn notify_cmd(dir: &Path, opts: &ViewOptions, args: NotifyArgs) -> Result<ExitCode> {
    let at = args.at.as_deref().map(parse_when).transpose()?;
    let channels = args.delivery.channels(opts).await?;
    let (views, gen) = Views::open_current(dir, opts).await?;
    let notices = load_notice_rules(opts.policies.as_deref(), &views.rules)?;
    let notifier = Notifier::new(
        views.recorder.log().clone(),
        views.store.clone(),
        views.rules.clone(),
        notices,
        channels,
    );
    if args.once {
        let (t, d) = notifier.round(at.unwrap_or_else(Utc::now)).await?;
        outln!(
            "{} notices recorded; {} delivered, {} not delivered (retried later)",
            t.notices,
            d.delivered,
            d.failed
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let poll = Duration::from_millis(args.poll_ms.max(10));
    outln!("the SLA timer runs; stop it with Ctrl-C or SIGTERM")?;
    let keep_current = async {
        loop {
            tokio::time::sleep(poll).await;
            if let Err(e) = views.project(gen, None).await {
                tracing::warn!(error = %format!("{e:#}"), "projecting new facts failed; retrying");
            }
        }
    };
    tokio::select! {
        () = notifier.run_until(poll, super::serve::shutdown_signal()) => {},
        () = keep_current => {},
    }
    Ok(ExitCode::SUCCESS)
}

/// List the reminders and escalations the SLA timer recorded, newest first, with their
/// deliveries.
#[derive(clap::Args)]
pub struct NoticesArgs {
    /// Only those to this recipient: a caseworker's staff id, or a region prefix (its
    /// supervisors).
    #[arg(long)]
    to: Option<String>,
    /// Only clocks in regions with this prefix.
    #[arg(long)]
    region: Option<String>,
    /// Only this kind: reminder, escalation-1, escalation-2, ...
    #[arg(long)]
    kind: Option<String>,
    /// At most this many (0: all).
    #[arg(long, default_value_t = 50)]
    limit: i64,
    /// JSON for machines.
    #[arg(long)]
    json: bool,
}

pub async fn notices_cmd(dir: &Path, opts: &ViewOptions, args: NoticesArgs) -> Result<ExitCode> {
    if let Some(r) = &args.region {
        assist_catalog::RegionPrefix::new(r).map_err(|e| anyhow::anyhow!("--region: {e}"))?;
    }
    let views = Views::open_existing(dir, opts).await?;
    let filter = NoticeFilter {
        recipient: args.to.clone(),
        region: args.region.clone(),
        kind: args.kind.clone(),
        ..NoticeFilter::default()
    };
    let limit = if args.limit <= 0 {
        i64::MAX
    } else {
        args.limit
    };
    let (total, lines) = list_notices(&views.store, &filter, limit, 0).await?;
    if args.json {
        print_json(&lines)?;
        return Ok(ExitCode::SUCCESS);
    }
    for l in &lines {
        let n = &l.notice;
        let delivered: Vec<String> = l
            .deliveries
            .iter()
            .map(|d| match d.delivered_at {
                Some(_) => format!("{} delivered", d.channel),
                None => format!("{} pending ({} attempts)", d.channel, d.attempts),
            })
            .collect();
        outln!(
            "{}  {:<12} {:<10} {:<14} {}/{}  due {}  {}{}",
            show_time(&n.moment),
            n.kind,
            n.audience,
            n.recipient,
            n.policy,
            n.step,
            show_time(&n.deadline),
            n.clock_id,
            if delivered.is_empty() {
                String::new()
            } else {
                format!("  [{}]", delivered.join(", "))
            }
        )?;
    }
    outln!("{} of {total} notices", lines.len())?;
    Ok(ExitCode::SUCCESS)
}
