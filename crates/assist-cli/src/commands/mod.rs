//! One module per subcommand.

pub mod bench;
pub mod bench_project;
pub mod catalog;
pub mod demo;
pub mod erase;
pub mod history;
pub mod ingest;
pub mod simulate;
pub mod views;

use anyhow::{Context, Result};
use assist_ingest::Recorder;
use std::path::Path;

/// Opens the embedded log and key table in `dir`, with the path in any error.
pub async fn open_recorder(dir: &Path) -> Result<Recorder> {
    Recorder::open_embedded(dir)
        .await
        .with_context(|| format!("cannot open the data dir {}", dir.display()))
}
