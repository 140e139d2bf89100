//! `assist history STREAM`

use super::views::{parse_when, ViewOptions, Views};
use crate::outln;
use crate::output::{print_json_as_is, show_time};
use anyhow::{bail, Context, Result};
use assist_catalog::StreamId;
use assist_ingest::Recorder;
use assist_log::{Position, Record};
use assist_projections::audit::chain::{check_records, Integrity};
use serde_json::{json, Value};
use std::path::Path;
use std::process::ExitCode;

/// Print one stream's events in log order.
///
/// Personal fields are opened with the person's key, or shown as "[erased]" once the key
/// was destroyed. Events written in an older schema version are shown upcast.
#[derive(clap::Args)]
pub struct Args {
    /// The stream: person-<uuid> or household-<uuid>.
    stream: StreamId,
    /// Print JSON for machines instead of text.
    #[arg(long)]
    json: bool,
    /// Only what had happened by this date or time (occurred_at).
    #[arg(long)]
    as_of: Option<String>,
    /// Only what had been recorded by this date or time (recorded_at): the history as known then.
    #[arg(long)]
    known_on: Option<String>,
    /// Who reads (recorded in the access log).
    #[arg(long, env = "USER", default_value = "unknown")]
    actor: String,
}

pub use assist_ingest::history::Entry;

/// Reads `stream` from the log, decodes every event and opens its personal fields.
pub async fn load(recorder: &Recorder, stream: &StreamId) -> Result<Vec<Entry>> {
    recorder
        .history(stream)
        .await
        .context("cannot read the key table or the log")
}

pub async fn run(dir: &Path, opts: &ViewOptions, args: Args) -> Result<ExitCode> {
    let as_of = args.as_of.as_deref().map(parse_when).transpose()?;
    let known_on = args.known_on.as_deref().map(parse_when).transpose()?;
    let views = Views::open_existing(dir, opts).await?;
    let command = format!(
        "history{}{}",
        args.as_of
            .as_ref()
            .map(|d| format!(" --as-of {d}"))
            .unwrap_or_default(),
        args.known_on
            .as_ref()
            .map(|d| format!(" --known-on {d}"))
            .unwrap_or_default()
    );
    views
        .store
        .log_access(
            &args.actor,
            &args.stream.to_string(),
            &command,
            chrono::Utc::now(),
        )
        .await?;
    if views.read_only {
        // The access log of a read-only copy is frozen with it: say so where it is seen.
        tracing::warn!(
            "this history read is not kept in the access log: the data dir is read-only"
        );
    }
    let all = load(&views.recorder, &args.stream).await?;
    if all.is_empty() {
        bail!("{} has no events in the log", args.stream);
    }
    let entries: Vec<Entry> = all
        .into_iter()
        .filter(|e| match &e.event {
            Ok(ev) => {
                as_of.is_none_or(|t| ev.meta.occurred_at <= t)
                    && known_on.is_none_or(|t| ev.meta.recorded_at <= t)
            }
            Err(_) => true,
        })
        .collect();
    let gen = views.store.active_gen().await?;
    let keyed: Vec<(Option<String>, &Record)> = entries
        .iter()
        .map(|e| {
            let id = e
                .record
                .event_id
                .or_else(|| e.event.as_ref().ok().map(|ev| ev.meta.event_id));
            (id.map(|id| id.to_string()), &e.record)
        })
        .collect();
    let integrity = check_records(&views.store, gen, &keyed).await?;
    let altered: Vec<Position> = entries
        .iter()
        .zip(&integrity)
        .filter(|(_, i)| **i == Integrity::Altered)
        .map(|(e, _)| e.position)
        .collect();
    for p in &altered {
        eprintln!(
            "warning: the record at {p} does not match the hash the audit trail recorded for it: it was changed after it was written; run `assist verify`"
        );
    }
    if args.json {
        let events: Vec<Value> = entries
            .iter()
            .zip(&integrity)
            .map(|(e, i)| entry_json(e, *i))
            .collect();
        let doc = json!({"stream": args.stream.to_string(), "events": events});
        print_json_as_is(&doc)?;
    } else {
        print_text(&args.stream, &entries)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn entry_json(e: &Entry, integrity: Integrity) -> Value {
    let mut v = json!({
        "partition": e.position.partition,
        "offset": e.position.offset,
        "written_version": e.written_version,
    });
    match &e.event {
        Ok(ev) => {
            // The envelope's times in the display zone; the data exactly as recorded (a
            // free-text field that looks like a time is no time to convert).
            v["event"] = serde_json::to_value(ev.to_wire()).unwrap_or(Value::Null);
            v["event"]["occurred_at"] = json!(show_time(&ev.meta.occurred_at));
            v["event"]["recorded_at"] = json!(show_time(&ev.meta.recorded_at));
        }
        Err(reason) => v["error"] = json!(reason),
    }
    if integrity == Integrity::Altered {
        v["altered"] = json!(true);
    }
    v
}

/// Prints a history as text, one event per two lines.
pub fn print_text(stream: &StreamId, entries: &[Entry]) -> Result<()> {
    outln!("{stream}: {} events", entries.len())?;
    for (i, e) in entries.iter().enumerate() {
        match &e.event {
            Ok(ev) => {
                let m = &ev.meta;
                let wire = ev.to_wire();
                let upcast = if e.written_version != wire.schema_version {
                    format!(
                        " (written as v{}, read as v{})",
                        e.written_version, wire.schema_version
                    )
                } else {
                    String::new()
                };
                outln!(
                    "#{i} {} | occurred {} | recorded {} | {}{upcast} | {} {} {}",
                    e.position,
                    show_time(&m.occurred_at),
                    show_time(&m.recorded_at),
                    wire.type_name,
                    m.actor.id,
                    m.actor.role,
                    m.actor.region,
                )?;
                outln!("    {}", wire.data)?;
            }
            Err(reason) => outln!("#{i} {} | cannot be read: {reason}", e.position)?,
        }
    }
    Ok(())
}
