//! A lock held while a SQLite file is opened and set up.
//!
//! Two processes opening a fresh SQLite file at once can both try to switch it from the
//! rollback journal to WAL and create its tables; SQLite then refuses one of them at once
//! (`database is locked`) instead of waiting, since waiting could deadlock. Every opener of
//! an `assist` SQLite file therefore takes an exclusive lock on `PATH.lock` first, so the
//! second one waits for the first and then finds the file ready.

use std::fs::{File, OpenOptions};
use std::path::Path;

/// Held while a SQLite file is opened and migrated; released when dropped.
#[derive(Debug)]
pub struct OpenLock {
    file: Option<File>,
}

impl OpenLock {
    /// Waits (on a blocking thread, not the runtime's) for the exclusive lock of `db`.
    ///
    /// Where `PATH.lock` cannot be made (a read-only copy, which nobody else sets up
    /// either) no lock is needed and none is taken.
    pub async fn acquire(db: &Path) -> OpenLock {
        let mut name = db.as_os_str().to_owned();
        name.push(".lock");
        let file = tokio::task::spawn_blocking(move || {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&name)
                .ok()?;
            file.lock().ok()?;
            Some(file)
        })
        .await
        .ok()
        .flatten();
        OpenLock { file }
    }

    /// Whether the lock is held (false where the lock file could not be made).
    pub fn is_held(&self) -> bool {
        self.file.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_opener_waits_until_the_first_releases_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        let first = OpenLock::acquire(&db).await;
        assert!(first.is_held());
        let second = tokio::spawn({
            let db = db.clone();
            async move { OpenLock::acquire(&db).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!second.is_finished(), "the second opener did not wait");
        drop(first);
        let second = tokio::time::timeout(std::time::Duration::from_secs(10), second)
            .await
            .expect("the second opener never got the lock")
            .unwrap();
        assert!(second.is_held());
    }

    #[tokio::test]
    async fn no_lock_is_taken_where_the_lock_file_cannot_be_made() {
        let lock = OpenLock::acquire(Path::new("/nonexistent-dir/x.db")).await;
        assert!(!lock.is_held());
    }
}
