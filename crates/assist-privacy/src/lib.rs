//! Personal data protection for `assist`: a data key per person, sealing of personal
//! fields with AES-256-GCM, and erasure by destroying the key (crypto-shredding).
//!
//! Keys live in their own SQLite file with `secure_delete` on, so an erased key is
//! overwritten on disk, not merely unlinked from a page.

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

mod sealing;
pub use sealing::{reveal, seal, ERASED};

const NONCE_LEN: usize = 12;

/// Why a key could not be had or a value could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    /// The subject's key was destroyed: its personal data is gone for good.
    #[error("personal data of {subject} was erased at {at}")]
    Erased {
        /// The stream whose key was destroyed.
        subject: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// A sealed value is not valid base64 or fails authentication (altered, or sealed for another field).
    #[error(
        "a sealed value of {subject} does not open: altered, or sealed for another person or field"
    )]
    Tampered {
        /// The stream the value belongs to.
        subject: String,
    },
    /// Sealed values exist but no key was ever recorded for the subject (a foreign or damaged store).
    #[error("no data key is recorded for {subject}")]
    NoKey {
        /// The stream.
        subject: String,
    },
    /// The key table holds something it should not.
    #[error("the key table is damaged for {subject}: {what}")]
    Damaged {
        /// The stream concerned.
        subject: String,
        /// What is wrong.
        what: String,
    },
    /// The key is destroyed, but a copy of it is still in the key table's files: another
    /// process holds keys.db open in a read, so SQLite could not overwrite the copy yet.
    #[error(
        "the data key of {subject} is destroyed, but a copy is still in keys.db's write-ahead log because another process is reading keys.db (a long-running assist command?); let it finish or stop it, then run `assist erase` again to remove the copy"
    )]
    CopiesRemain {
        /// The stream whose key was destroyed.
        subject: String,
    },
    /// The key store failed.
    #[error("key store failed: {0}")]
    Storage(#[from] sqlx::Error),
}

/// A person's data key (AES-256). Not `Debug`, so it never reaches a log line.
#[derive(Clone)]
pub struct DataKey {
    subject: String,
    key: [u8; 32],
}

impl DataKey {
    /// Seals `plaintext` of `field` (name, national_id, ...): base64(nonce || ciphertext || tag).
    /// The subject and field are bound in as associated data.
    pub fn seal(&self, field: &str, plaintext: &str) -> String {
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.key));
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = format!("{}/{field}", self.subject);
        // Encryption fails only for inputs beyond AES-GCM's 64 GiB limit, far above any field.
        let ct = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend(ct);
        B64.encode(out)
    }

    /// Opens a value sealed by [`DataKey::seal`] for the same subject and field.
    pub fn open(&self, field: &str, sealed: &str) -> Result<String, PrivacyError> {
        let tampered = || PrivacyError::Tampered {
            subject: self.subject.clone(),
        };
        let raw = B64.decode(sealed).map_err(|_| tampered())?;
        if raw.len() < NONCE_LEN {
            return Err(tampered());
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.key));
        let aad = format!("{}/{field}", self.subject);
        let pt = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| tampered())?;
        String::from_utf8(pt).map_err(|_| tampered())
    }
}

/// What the store knows of one subject's key.
pub enum KeyState {
    /// The key exists.
    Present(DataKey),
    /// The key was destroyed at this time.
    Erased(DateTime<Utc>),
    /// No key was ever made (the subject never had personal data).
    Missing,
}

/// The table of per-person data keys, in its own SQLite file.
pub struct KeyStore {
    pool: SqlitePool,
}

impl KeyStore {
    /// Opens (or creates) the key store at `path`.
    pub async fn open(path: &Path) -> Result<Self, PrivacyError> {
        let _opening = assist_log::OpenLock::acquire(path).await;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .pragma("secure_delete", "ON")
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS data_keys (subject TEXT PRIMARY KEY, key BLOB NOT NULL, created_at TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS erased_subjects (subject TEXT PRIMARY KEY, erased_at TEXT NOT NULL);",
        )
        .execute(&pool)
        .await?;
        Ok(Self { pool })
    }

    /// Opens an existing key store for reading only (a read-only copy of a data dir):
    /// personal fields can be opened, nothing is written, erasing fails. As for the log,
    /// without a `-wal` file beside it the file is opened as immutable.
    pub async fn open_read_only(path: &Path) -> Result<Self, PrivacyError> {
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let options = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .immutable(!Path::new(&wal).exists())
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    /// Closes the store.
    pub async fn close(self) {
        self.pool.close().await;
    }

    /// The keys to seal with for `subjects`, made where missing, in one transaction.
    /// A subject whose key was erased comes back as [`KeyState::Erased`]: its personal data
    /// cannot be recorded again.
    pub async fn keys_for_sealing(
        &self,
        subjects: &[String],
        now: DateTime<Utc>,
    ) -> Result<HashMap<String, KeyState>, PrivacyError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut out = HashMap::new();
        for subject in subjects {
            if out.contains_key(subject) {
                continue;
            }
            if let Some(at) = erased_at(&mut tx, subject).await? {
                out.insert(subject.clone(), KeyState::Erased(at));
                continue;
            }
            let existing: Option<Vec<u8>> =
                sqlx::query_scalar("SELECT key FROM data_keys WHERE subject = ?")
                    .bind(subject)
                    .fetch_optional(&mut *tx)
                    .await?;
            let key = match existing
                .as_deref()
                .and_then(|k| <[u8; 32]>::try_from(k).ok())
            {
                Some(k) => k,
                None => {
                    let fresh: [u8; 32] = Aes256Gcm::generate_key(&mut OsRng).into();
                    sqlx::query("INSERT OR REPLACE INTO data_keys (subject, key, created_at) VALUES (?, ?, ?)")
                        .bind(subject)
                        .bind(fresh.as_slice())
                        .bind(now.to_rfc3339())
                        .execute(&mut *tx)
                        .await?;
                    fresh
                }
            };
            out.insert(
                subject.clone(),
                KeyState::Present(DataKey {
                    subject: subject.clone(),
                    key,
                }),
            );
        }
        tx.commit().await?;
        Ok(out)
    }

    /// The state of `subject`'s key, for opening sealed values.
    pub async fn key(&self, subject: &str) -> Result<KeyState, PrivacyError> {
        let mut conn = self.pool.acquire().await?;
        if let Some(at) = erased_at(&mut conn, subject).await? {
            return Ok(KeyState::Erased(at));
        }
        let row = sqlx::query("SELECT key FROM data_keys WHERE subject = ?")
            .bind(subject)
            .fetch_optional(&mut *conn)
            .await?;
        Ok(match row {
            Some(row) => {
                let k: Vec<u8> = row.try_get(0)?;
                match <[u8; 32]>::try_from(k.as_slice()) {
                    Ok(key) => KeyState::Present(DataKey {
                        subject: subject.to_string(),
                        key,
                    }),
                    Err(_) => KeyState::Missing,
                }
            }
            None => KeyState::Missing,
        })
    }

    /// Destroys `subject`'s key and records when; returns false when it was already erased.
    /// Either way it then checkpoints and truncates the WAL, and succeeds only when that
    /// left no copy of the key in keys.db's files ([`PrivacyError::CopiesRemain`] else):
    /// running it again after such an error finishes the job.
    pub async fn erase(&self, subject: &str, now: DateTime<Utc>) -> Result<bool, PrivacyError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let fresh = erased_at(&mut tx, subject).await?.is_none();
        if fresh {
            sqlx::query("DELETE FROM data_keys WHERE subject = ?")
                .bind(subject)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO erased_subjects (subject, erased_at) VALUES (?, ?)")
                .bind(subject)
                .bind(now.to_rfc3339())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.truncate_wal(subject).await?;
        tracing::info!(subject, "data key destroyed");
        Ok(fresh)
    }

    /// Copies every page of the WAL into the database file (where `secure_delete` has
    /// overwritten the key) and truncates the WAL. SQLite cannot do that while another
    /// connection reads an older snapshot: it waits up to 5 s, then reports it.
    async fn truncate_wal(&self, subject: &str) -> Result<(), PrivacyError> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query("PRAGMA busy_timeout = 5000")
            .execute(&mut *conn)
            .await?;
        // (busy, frames in the WAL, frames checkpointed); busy = 1 when it could not finish.
        let result: Result<(i64, i64, i64), sqlx::Error> =
            sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&mut *conn)
                .await;
        sqlx::query("PRAGMA busy_timeout = 30000")
            .execute(&mut *conn)
            .await?;
        match result? {
            (0, _, _) => Ok(()),
            _ => Err(PrivacyError::CopiesRemain {
                subject: subject.to_string(),
            }),
        }
    }
}

async fn erased_at(
    conn: &mut sqlx::SqliteConnection,
    subject: &str,
) -> Result<Option<DateTime<Utc>>, PrivacyError> {
    let at: Option<String> =
        sqlx::query_scalar("SELECT erased_at FROM erased_subjects WHERE subject = ?")
            .bind(subject)
            .fetch_optional(conn)
            .await?;
    match at {
        None => Ok(None),
        Some(s) => DateTime::parse_from_rfc3339(&s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| PrivacyError::Damaged {
                subject: subject.to_string(),
                what: format!("its erasure time {s:?} is not a timestamp"),
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, KeyStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(&dir.path().join("keys.db")).await.unwrap();
        (dir, store)
    }

    async fn fresh_key(s: &KeyStore, subject: &str) -> DataKey {
        match s
            .keys_for_sealing(&[subject.into()], Utc::now())
            .await
            .unwrap()
            .remove(subject)
        {
            Some(KeyState::Present(k)) => k,
            _ => panic!("no key made"),
        }
    }

    #[tokio::test]
    async fn a_sealed_value_opens_with_the_same_key_and_field() {
        let (_d, s) = store().await;
        let key = fresh_key(&s, "person-a").await;
        let sealed = key.seal("name", "Lin Xiaomei");
        assert!(!sealed.contains("Lin"));
        assert_eq!(key.open("name", &sealed).unwrap(), "Lin Xiaomei");
    }

    #[tokio::test]
    async fn a_value_sealed_for_one_field_does_not_open_as_another() {
        let (_d, s) = store().await;
        let key = fresh_key(&s, "person-a").await;
        let sealed = key.seal("name", "Lin Xiaomei");
        assert!(matches!(
            key.open("address", &sealed),
            Err(PrivacyError::Tampered { .. })
        ));
    }

    #[tokio::test]
    async fn the_same_subject_keeps_its_key() {
        let (_d, s) = store().await;
        let sealed = fresh_key(&s, "person-a").await.seal("phone", "13800000000");
        let KeyState::Present(again) = s.key("person-a").await.unwrap() else {
            panic!("no key")
        };
        assert_eq!(again.open("phone", &sealed).unwrap(), "13800000000");
    }

    #[tokio::test]
    async fn an_erased_key_is_gone_and_cannot_seal_again() {
        let (_d, s) = store().await;
        fresh_key(&s, "person-a").await;
        assert!(s.erase("person-a", Utc::now()).await.unwrap());
        assert!(matches!(
            s.key("person-a").await.unwrap(),
            KeyState::Erased(_)
        ));
        let again = s
            .keys_for_sealing(&["person-a".into()], Utc::now())
            .await
            .unwrap();
        assert!(matches!(again["person-a"], KeyState::Erased(_)));
        assert!(
            !s.erase("person-a", Utc::now()).await.unwrap(),
            "a second erasure changes nothing"
        );
    }

    #[tokio::test]
    async fn an_erasure_that_a_reader_keeps_from_overwriting_the_key_fails_until_run_again() {
        use sqlx::Connection;
        let (dir, s) = store().await;
        let raw = fresh_key(&s, "person-a").await.key;
        // Another process reads keys.db: its snapshot still holds the key.
        let mut reader = sqlx::SqliteConnection::connect(&format!(
            "sqlite://{}",
            dir.path().join("keys.db").display()
        ))
        .await
        .unwrap();
        sqlx::query("BEGIN").execute(&mut reader).await.unwrap();
        sqlx::query("SELECT count(*) FROM data_keys")
            .fetch_one(&mut reader)
            .await
            .unwrap();
        let e = s.erase("person-a", Utc::now()).await.unwrap_err();
        assert!(matches!(e, PrivacyError::CopiesRemain { .. }), "{e}");
        assert!(matches!(
            s.key("person-a").await.unwrap(),
            KeyState::Erased(_)
        ));
        sqlx::query("COMMIT").execute(&mut reader).await.unwrap();
        reader.close().await.unwrap();
        assert!(
            !s.erase("person-a", Utc::now()).await.unwrap(),
            "the second run finds it erased and finishes the job"
        );
        for name in ["keys.db", "keys.db-wal"] {
            let bytes = std::fs::read(dir.path().join(name)).unwrap_or_default();
            assert!(
                !bytes.windows(32).any(|w| w == raw),
                "key bytes left in {name}"
            );
        }
    }

    #[tokio::test]
    async fn an_erased_key_leaves_no_bytes_in_the_files() {
        let (dir, s) = store().await;
        let raw = fresh_key(&s, "person-a").await.key;
        s.erase("person-a", Utc::now()).await.unwrap();
        s.close().await;
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            // SQLite may remove its -wal and -shm files just after the pool closes.
            let bytes = match std::fs::read(entry.unwrap().path()) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                read => read.unwrap(),
            };
            assert!(
                !bytes.windows(32).any(|w| w == raw),
                "key bytes left on disk"
            );
        }
    }
}
