//! Riding out a store that went away for a moment (a PostgreSQL restart, a dropped
//! connection): which failures are worth another try, and how long to wait between tries.

use crate::runner::ProjectionError;
use crate::store::StoreError;
use std::time::Duration;

impl StoreError {
    /// Whether the failure is the connection's, not the work's: the database was
    /// unreachable, restarting or shutting down, or the connection broke. Everything a
    /// batch did is rolled back then, so running it again is safe.
    pub fn is_connection_lost(&self) -> bool {
        match self {
            StoreError::Sql { source, .. } => connection_lost(source),
            StoreError::Migrate {
                source:
                    sqlx::migrate::MigrateError::Execute(e)
                    | sqlx::migrate::MigrateError::ExecuteMigration(e, _),
                ..
            } => connection_lost(e),
            _ => false,
        }
    }

    /// Whether the store undid the work to break a deadlock or a serialization conflict
    /// with another writer: nothing of it was kept, and doing it again may succeed.
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Sql { source, .. } if conflict(source))
    }
}

/// PostgreSQL's deadlock (40P01) and serialization failure (40001).
pub(crate) fn conflict(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| matches!(code.as_ref(), "40P01" | "40001"))
}

fn connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(e) => e.code().is_some_and(|code| {
            // 08: connection exception; 57P01-03: admin/crash shutdown, cannot connect now.
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

impl ProjectionError {
    /// Whether another try may succeed: the store's connection was lost.
    pub fn is_connection_lost(&self) -> bool {
        matches!(self, ProjectionError::Store(e) if e.is_connection_lost())
    }
}

/// Waits between tries: 250 ms, doubling up to 8 s, at most `tries` times in a row
/// (about a minute in all by default), then the failure stands.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    left: u32,
    tries: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(12)
    }
}

impl Backoff {
    /// At most `tries` waits in a row.
    pub fn new(tries: u32) -> Self {
        Backoff {
            next: Duration::from_millis(250),
            left: tries,
            tries,
        }
    }

    /// The wait before the next try, or `None` when the tries are used up.
    pub fn next_wait(&mut self) -> Option<Duration> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let wait = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(8));
        Some(wait)
    }

    /// After a success: the next failure starts from the first wait again.
    pub fn reset(&mut self) {
        *self = Backoff::new(self.tries);
    }

    /// The wait after a failed try; a try that got somewhere before it failed (committed
    /// some work) starts the count afresh, so only failures in a row without progress
    /// use the tries up.
    pub fn after_failure(&mut self, made_progress: bool) -> Option<Duration> {
        if made_progress {
            self.reset();
        }
        self.next_wait()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_eight_seconds_and_stop_after_the_given_tries() {
        let mut b = Backoff::new(7);
        let waits: Vec<u64> = std::iter::from_fn(|| b.next_wait())
            .map(|d| d.as_millis() as u64)
            .collect();
        assert_eq!(waits, [250, 500, 1000, 2000, 4000, 8000, 8000]);
        b.reset();
        assert_eq!(b.next_wait(), Some(Duration::from_millis(250)));
    }

    #[test]
    fn a_failure_after_progress_starts_the_tries_afresh() {
        let mut b = Backoff::new(2);
        assert_eq!(b.after_failure(false), Some(Duration::from_millis(250)));
        assert_eq!(b.after_failure(false), Some(Duration::from_millis(500)));
        assert_eq!(b.after_failure(true), Some(Duration::from_millis(250)));
        assert_eq!(b.after_failure(false), Some(Duration::from_millis(500)));
        assert_eq!(b.after_failure(false), None);
    }

    #[test]
    fn only_a_lost_connection_counts_as_one() {
        let sql = |source| StoreError::Sql {
            store: "s".into(),
            source,
        };
        assert!(sql(sqlx::Error::PoolTimedOut).is_connection_lost());
        assert!(sql(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused
        )))
        .is_connection_lost());
        assert!(!sql(sqlx::Error::RowNotFound).is_connection_lost());
        assert!(!StoreError::Rows {
            store: "s".into(),
            reason: "r".into()
        }
        .is_connection_lost());
    }
}
