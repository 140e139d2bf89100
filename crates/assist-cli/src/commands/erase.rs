//! `assist erase STREAM`

use super::history::load;
use super::open_recorder;
use crate::outln;
use anyhow::{bail, Context, Result};
use assist_catalog::events::person::{ErasureReason, PersonalDataErased};
use assist_catalog::{Actor, Event, EventData, RegionCode, Role, StaffId, StreamId, SubjectKind};
use chrono::Utc;
use std::path::Path;
use std::process::ExitCode;

/// Destroy a person's data key (crypto-shredding) and append a `personal_data_erased` fact.
///
/// Afterwards `history` still shows every event, with the personal fields as "[erased]".
/// Running it again is safe: the key stays destroyed and the fact is not appended twice.
#[derive(clap::Args)]
pub struct Args {
    /// The person's stream: person-<uuid>.
    stream: StreamId,
    /// Why the data is erased.
    #[arg(long, value_enum, default_value = "legal-basis-ended")]
    reason: Reason,
    /// Pseudonymous id of who orders the erasure.
    #[arg(long, default_value = "assist-cli")]
    actor: String,
    /// Region code of the office that orders it; default: the person's registration region.
    #[arg(long)]
    region: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Reason {
    LegalBasisEnded,
    PersonRequested,
    RetentionExpired,
}

pub async fn run(dir: &Path, opts: &super::views::ViewOptions, args: Args) -> Result<ExitCode> {
    if args.stream.kind != SubjectKind::Person {
        bail!(
            "{} is not a person stream: only people have personal data",
            args.stream
        );
    }
    super::views::require_log(dir, opts)?;
    let recorder = open_recorder(dir, opts.log.as_deref()).await?;
    let history = load(&recorder, &args.stream).await?;
    let events: Vec<&Event> = history
        .iter()
        .filter_map(|e| e.event.as_ref().ok())
        .collect();
    if events.is_empty() {
        bail!(
            "{} has no events in the log at {}",
            args.stream,
            dir.display()
        );
    }
    let region = match &args.region {
        Some(r) => RegionCode::new(r)?,
        None => events
            .iter()
            .find_map(|e| match &e.data {
                EventData::PersonRegistered(p) => Some(p.region.clone()),
                _ => None,
            })
            .unwrap_or_else(|| events[events.len() - 1].meta.actor.region.clone()),
    };
    let already = events
        .iter()
        .any(|e| matches!(e.data, EventData::PersonalDataErased(_)));
    let subject = args.stream.to_string();
    // The key goes first: the legal duty is the destruction; the fact records it.
    recorder
        .keys()
        .erase(&subject, Utc::now())
        .await
        .context("cannot destroy the key")?;
    if already {
        outln!("{subject}: data key destroyed; the erasure was already recorded")?;
        return Ok(ExitCode::SUCCESS);
    }
    let reason = match args.reason {
        Reason::LegalBasisEnded => ErasureReason::LegalBasisEnded,
        Reason::PersonRequested => ErasureReason::PersonRequested,
        Reason::RetentionExpired => ErasureReason::RetentionExpired,
    };
    let actor = Actor {
        id: StaffId::new(&args.actor)?,
        role: Role::Service,
        region,
    };
    let fact = Event::new(
        args.stream,
        actor,
        EventData::PersonalDataErased(PersonalDataErased { reason }),
    );
    let out = recorder
        .record(vec![fact])
        .await
        .context("cannot append the erasure fact")?;
    outln!(
        "{subject}: data key destroyed; erasure recorded at {}",
        out[0].position()
    )?;
    Ok(ExitCode::SUCCESS)
}
