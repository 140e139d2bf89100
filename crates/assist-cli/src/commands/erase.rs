//! `assist erase STREAM`

use super::open_recorder;
use crate::outln;
use anyhow::{bail, Context, Result};
use assist_catalog::events::person::ErasureReason;
use assist_catalog::{RegionCode, StaffId, StreamId, SubjectKind};
use assist_ingest::{EraseError, ErasureFact};
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
    let recorder = open_recorder(dir, opts).await?;
    let region = args.region.as_deref().map(RegionCode::new).transpose()?;
    let reason = match args.reason {
        Reason::LegalBasisEnded => ErasureReason::LegalBasisEnded,
        Reason::PersonRequested => ErasureReason::PersonRequested,
        Reason::RetentionExpired => ErasureReason::RetentionExpired,
    };
    let subject = args.stream.to_string();
    let by = StaffId::new(&args.actor)?;
    let erased = recorder.erase_person(args.stream, by, region, reason).await;
    // What dead letters keep of the person goes too.
    let cleared = match erased {
        Ok(_) => opts
            .open_store(dir)
            .await?
            .clear_dead_letters_of(&subject)
            .await
            .context("cannot clear the person's dead letters")?,
        Err(_) => 0,
    };
    match erased {
        Ok(ErasureFact::AlreadyRecorded(_)) => {
            outln!("{subject}: data key destroyed; the erasure was already recorded")?
        }
        Ok(ErasureFact::Recorded(_, position)) => {
            outln!("{subject}: data key destroyed; erasure recorded at {position}")?
        }
        Err(EraseError::NoEvents) => {
            bail!("{subject} has no events in the log at {}", dir.display())
        }
        Err(EraseError::Read(e)) => return Err(e.into()),
        Err(EraseError::DestroyKey(e)) => return Err(e).context("cannot destroy the key"),
        Err(EraseError::Record(e)) => return Err(e).context("cannot append the erasure fact"),
    }
    if cleared > 0 {
        outln!("{subject}: cleared what {cleared} dead letters kept of the person")?;
    }
    Ok(ExitCode::SUCCESS)
}
