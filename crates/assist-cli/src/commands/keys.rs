//! `assist keys`: the key-encryption key (KEK) that wraps every person's data key: make
//! one, and re-wrap every data key under a new one without touching the log.

use super::open_recorder;
use super::views::ViewOptions;
use crate::outln;
use anyhow::{Context, Result};
use assist_privacy::Kek;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The key-encryption key.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Write a fresh KEK (32 random bytes, base64) to a new file readable by its owner
    /// only, and print its id.
    NewKek {
        /// The file to write; it must not exist.
        #[arg(long)]
        out: PathBuf,
    },
    /// Re-wrap every data key under the KEK in NEW (the store's keys are opened with
    /// `--kek-file`, else the data dir's own KEK), in one transaction. Afterwards run with
    /// `--kek-file NEW`; destroying the old KEK then makes the keys in older backups
    /// unreadable.
    Rotate {
        /// The new KEK's file (from `assist keys new-kek`).
        #[arg(long)]
        new_kek_file: PathBuf,
    },
}

pub async fn run(dir: &Path, views: &ViewOptions, cmd: Command) -> Result<ExitCode> {
    match cmd {
        Command::NewKek { out } => {
            let kek = Kek::create(&out).context("cannot write the new KEK")?;
            outln!("wrote key-encryption key {} to {}", kek.id(), out.display())?;
        }
        Command::Rotate { new_kek_file } => {
            super::views::require_log(dir, views)?;
            let new = Kek::load(&new_kek_file).context("cannot read --new-kek-file")?;
            let recorder = open_recorder(dir, views).await?;
            let from = recorder.keys().kek_id().unwrap_or_default().to_string();
            let n = recorder
                .keys()
                .rotate(&new)
                .await
                .context("cannot re-wrap the data keys")?;
            outln!(
                "re-wrapped {n} data keys from key-encryption key {from} to {}; from now on give --kek-file {}",
                new.id(),
                new_kek_file.display()
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
