//! `assist catalog list|write`

use crate::outln;
use anyhow::{Context, Result};
use assist_catalog::registry::{EVENT_TYPES, LEGACY_VERSIONS};
use assist_catalog::schema::{all_schemas, schema_text};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Command {
    /// List every event type with its current version and the streams it belongs on.
    List,
    /// Write the JSON Schemas generated from the Rust types into DIR (default events/schemas).
    Write {
        /// The directory to write into.
        #[arg(default_value = "events/schemas")]
        dir: PathBuf,
    },
}

pub fn run(cmd: Command) -> Result<ExitCode> {
    match cmd {
        Command::List => {
            for t in EVENT_TYPES {
                let older: Vec<String> = LEGACY_VERSIONS
                    .iter()
                    .filter(|l| l.name == t.name)
                    .map(|l| format!("v{}", l.version))
                    .collect();
                let older = if older.is_empty() {
                    String::new()
                } else {
                    format!(" (also reads {})", older.join(", "))
                };
                outln!("{:<28} v{}  {:?}{older}", t.name, t.version, t.subjects)?;
            }
        }
        Command::Write { dir } => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let schemas = all_schemas();
            for (name, schema) in &schemas {
                let path = dir.join(name);
                std::fs::write(&path, schema_text(schema))
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            outln!("wrote {} schemas to {}", schemas.len(), dir.display())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
