//! The read side of `assist`: the log folded into caseload views, SLA clocks and audit
//! trails, in SQLite (the embedded default) or PostgreSQL, with the same code.
//!
//! The folds are pure (`caseload::apply`, `sla::apply`): state and an event in, state
//! out, no clock and no I/O. The [`runner`] persists what they decide, one transaction
//! per batch with the partition's checkpoint.

pub mod audit;
mod batch;
pub mod caseload;
pub mod dead_letter;
pub mod notices;
pub mod outage;
pub mod runner;
pub mod sla;
pub mod store;
pub mod subject;

pub use runner::{MemoryLimits, ProjectionError, RunStats, Runner};
pub use store::{Cell, Dialect, Store, StoreError, TableRows};
