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
use sqlx::any::AnyPoolOptions;
use sqlx::{Any, AnyConnection, AnyPool, Executor};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

mod kek;
mod sealing;
pub use kek::Kek;
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
    /// The key-encryption key file cannot be read, made, or does not hold a key.
    #[error("the key-encryption key file {path}: {reason}")]
    Kek {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The keys are wrapped with another key-encryption key than the one given.
    #[error("the data keys are wrapped with key-encryption key {wrapped_with}, but the one given is {given:?}: give the file of {wrapped_with} (--kek-file or ASSIST_KEK_FILE)")]
    WrongKek {
        /// The id of the KEK the keys are wrapped with.
        wrapped_with: String,
        /// The id of the KEK given.
        given: String,
    },
    /// The key store was opened read-only.
    #[error("the key store is opened read-only")]
    ReadOnly,
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

/// Where the key table is: a SQLite file of its own, or PostgreSQL.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Sqlite,
    Postgres,
}

/// The table of per-person data keys, each wrapped by a key-encryption key ([`Kek`]) kept
/// outside it: in its own SQLite file (the embedded default, `secure_delete` on, so an
/// erased key is overwritten on disk), or in PostgreSQL, shared by every instance.
pub struct KeyStore {
    pool: AnyPool,
    dialect: Dialect,
    /// None only for a read-only copy whose keys were never wrapped.
    kek: Option<Kek>,
}

impl KeyStore {
    /// Opens (or creates) the key store at `path`, its keys wrapped by `kek`. Keys written
    /// before keys were wrapped are wrapped now; keys wrapped by another KEK are an error
    /// naming both ids.
    pub async fn open(path: &Path, kek: Kek) -> Result<Self, PrivacyError> {
        let _opening = assist_log::OpenLock::acquire(path).await;
        sqlx::any::install_default_drivers();
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let pool = AnyPoolOptions::new()
            .max_connections(2)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA busy_timeout = 30000; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA secure_delete = ON;")
                        .await?;
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS data_keys (subject TEXT PRIMARY KEY, key BLOB NOT NULL, created_at TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS erased_subjects (subject TEXT PRIMARY KEY, erased_at TEXT NOT NULL);",
        )
        .execute(&pool)
        .await?;
        let wrapped: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pragma_table_info('data_keys') WHERE name = 'kek_id'",
        )
        .fetch_one(&pool)
        .await?;
        if wrapped == 0 {
            sqlx::raw_sql("ALTER TABLE data_keys ADD COLUMN kek_id TEXT; CREATE INDEX data_keys_by_kek ON data_keys (kek_id);")
                .execute(&pool)
                .await?;
        }
        let store = Self {
            pool,
            dialect: Dialect::Sqlite,
            kek: Some(kek),
        };
        store.check_kek().await?;
        store.wrap_plain_keys().await?;
        Ok(store)
    }

    /// Opens the key table in PostgreSQL at `url` (created when missing), shared by every
    /// instance: a key made or erased through one is seen by the others at once.
    pub async fn open_postgres(url: &str, kek: Kek) -> Result<Self, PrivacyError> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        let mut tx = pool.begin().await?;
        // Two instances starting at once would race to create the same tables.
        sqlx::query("SELECT pg_advisory_xact_lock(7340202)")
            .execute(&mut *tx)
            .await?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS data_keys (subject TEXT PRIMARY KEY, key BYTEA NOT NULL, kek_id TEXT NOT NULL, created_at TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS data_keys_by_kek ON data_keys (kek_id);
             CREATE TABLE IF NOT EXISTS erased_subjects (subject TEXT PRIMARY KEY, erased_at TEXT NOT NULL);",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let store = Self {
            pool,
            dialect: Dialect::Postgres,
            kek: Some(kek),
        };
        store.check_kek().await?;
        Ok(store)
    }

    /// Opens an existing key store for reading only (a read-only copy of a data dir):
    /// personal fields can be opened (with `kek` when its keys are wrapped), nothing is
    /// written, erasing fails. As for the log, without a `-wal` file beside it the file is
    /// opened as immutable.
    pub async fn open_read_only(path: &Path, kek: Option<Kek>) -> Result<Self, PrivacyError> {
        sqlx::any::install_default_drivers();
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let immutable = if Path::new(&wal).exists() {
            ""
        } else {
            "&immutable=true"
        };
        let url = format!("sqlite://{}?mode=ro{immutable}", path.display());
        let pool = AnyPoolOptions::new()
            .max_connections(2)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA busy_timeout = 30000;").await?;
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        let store = Self {
            pool,
            dialect: Dialect::Sqlite,
            kek,
        };
        if store.kek.is_some() {
            store.check_kek().await?;
        }
        Ok(store)
    }

    /// Closes the store.
    pub async fn close(self) {
        self.pool.close().await;
    }

    /// The id of the key-encryption key this store wraps keys with.
    pub fn kek_id(&self) -> Option<&str> {
        self.kek.as_ref().map(Kek::id)
    }

    /// Fails when a key is wrapped by another KEK than this store's.
    async fn check_kek(&self) -> Result<(), PrivacyError> {
        let Some(kek) = &self.kek else {
            return Ok(());
        };
        let ids: Vec<Option<String>> = sqlx::query_scalar("SELECT DISTINCT kek_id FROM data_keys")
            .fetch_all(&self.pool)
            .await
            .or_else(|e| match e {
                // A read-only copy from before keys were wrapped has no such column.
                sqlx::Error::Database(_) => Ok(Vec::new()),
                e => Err(e),
            })?;
        match ids.into_iter().flatten().find(|id| id != kek.id()) {
            Some(other) => Err(PrivacyError::WrongKek {
                wrapped_with: other,
                given: kek.id().to_string(),
            }),
            None => Ok(()),
        }
    }

    /// Wraps the keys a key table from before wrapping holds in the clear, in one
    /// transaction, then truncates the WAL so that no clear copy stays in the files.
    async fn wrap_plain_keys(&self) -> Result<(), PrivacyError> {
        let Some(kek) = &self.kek else {
            return Ok(());
        };
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let plain: Vec<(String, Vec<u8>)> =
            sqlx::query_as("SELECT subject, key FROM data_keys WHERE kek_id IS NULL")
                .fetch_all(&mut *tx)
                .await?;
        for (subject, key) in &plain {
            store_wrapped(&mut tx, kek, subject, &plain_key(subject, key)?).await?;
        }
        tx.commit().await?;
        if !plain.is_empty() {
            self.truncate_wal("the keys wrapped on opening").await?;
            tracing::info!(
                keys = plain.len(),
                kek = kek.id(),
                "wrapped the data keys kept in the clear"
            );
        }
        Ok(())
    }

    /// Begins a transaction that keys are made in: no erasure commits meanwhile (SQLite's
    /// write lock; on PostgreSQL a share lock on the erasures, which erasures conflict
    /// with and makers do not).
    async fn begin_making(&self) -> Result<sqlx::Transaction<'static, Any>, PrivacyError> {
        Ok(match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => {
                let mut tx = self.pool.begin().await?;
                sqlx::query("LOCK TABLE erased_subjects IN SHARE MODE")
                    .execute(&mut *tx)
                    .await?;
                tx
            }
        })
    }

    /// The keys to seal with for `subjects`, made where missing, in one transaction.
    /// A subject whose key was erased comes back as [`KeyState::Erased`]: its personal data
    /// cannot be recorded again. Two instances making a subject's key at once both get
    /// the one stored first.
    pub async fn keys_for_sealing(
        &self,
        subjects: &[String],
        now: DateTime<Utc>,
    ) -> Result<HashMap<String, KeyState>, PrivacyError> {
        let kek = self.kek.as_ref().ok_or(PrivacyError::ReadOnly)?;
        let mut tx = self.begin_making().await?;
        let mut out = HashMap::new();
        for subject in subjects {
            if out.contains_key(subject) {
                continue;
            }
            if let Some(at) = erased_at(&mut tx, subject).await? {
                out.insert(subject.clone(), KeyState::Erased(at));
                continue;
            }
            let state = match self.stored_key(&mut tx, subject).await? {
                KeyState::Missing => {
                    let fresh: [u8; 32] = Aes256Gcm::generate_key(&mut OsRng).into();
                    sqlx::query("INSERT INTO data_keys (subject, key, kek_id, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (subject) DO NOTHING")
                        .bind(subject)
                        .bind(kek.wrap(subject, &fresh))
                        .bind(kek.id())
                        .bind(now.to_rfc3339())
                        .execute(&mut *tx)
                        .await?;
                    self.stored_key(&mut tx, subject).await?
                }
                state => state,
            };
            out.insert(subject.clone(), state);
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
        self.stored_key(&mut conn, subject).await
    }

    /// `subject`'s key as stored, unwrapped ([`KeyState::Missing`] when there is none).
    async fn stored_key(
        &self,
        conn: &mut AnyConnection,
        subject: &str,
    ) -> Result<KeyState, PrivacyError> {
        let (key, kek_id): (Vec<u8>, Option<String>) = match self.dialect {
            // A read-only copy from before keys were wrapped has no `kek_id`.
            Dialect::Sqlite if self.kek.is_none() => {
                match sqlx::query_scalar("SELECT key FROM data_keys WHERE subject = $1")
                    .bind(subject)
                    .fetch_optional(&mut *conn)
                    .await?
                {
                    Some(key) => (key, None),
                    None => return Ok(KeyState::Missing),
                }
            }
            _ => match sqlx::query_as("SELECT key, kek_id FROM data_keys WHERE subject = $1")
                .bind(subject)
                .fetch_optional(&mut *conn)
                .await?
            {
                Some(row) => row,
                None => return Ok(KeyState::Missing),
            },
        };
        let key = match (kek_id, &self.kek) {
            (None, _) => plain_key(subject, &key)?,
            (Some(id), Some(kek)) if id == kek.id() => kek.unwrap(subject, &key)?,
            (Some(id), kek) => {
                return Err(PrivacyError::WrongKek {
                    wrapped_with: id,
                    given: kek.as_ref().map(|k| k.id().to_string()).unwrap_or_default(),
                })
            }
        };
        Ok(KeyState::Present(DataKey {
            subject: subject.to_string(),
            key,
        }))
    }

    /// Destroys `subject`'s key and records when, in one transaction; returns false when
    /// it was already erased. On PostgreSQL every instance sees it at its next read. On
    /// SQLite it then checkpoints and truncates the WAL, and succeeds only when that left
    /// no copy of the key in keys.db's files ([`PrivacyError::CopiesRemain`] else): running
    /// it again after such an error finishes the job.
    pub async fn erase(&self, subject: &str, now: DateTime<Utc>) -> Result<bool, PrivacyError> {
        let mut tx = match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => {
                let mut tx = self.pool.begin().await?;
                sqlx::query("LOCK TABLE erased_subjects IN SHARE ROW EXCLUSIVE MODE")
                    .execute(&mut *tx)
                    .await?;
                tx
            }
        };
        let fresh = erased_at(&mut tx, subject).await?.is_none();
        if fresh {
            sqlx::query("DELETE FROM data_keys WHERE subject = $1")
                .bind(subject)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO erased_subjects (subject, erased_at) VALUES ($1, $2)")
                .bind(subject)
                .bind(now.to_rfc3339())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        if self.dialect == Dialect::Sqlite {
            self.truncate_wal(subject).await?;
        }
        tracing::info!(subject, "data key destroyed");
        Ok(fresh)
    }

    /// Re-wraps every key under `new` in one transaction, without touching the log; the
    /// store's own KEK must be the one they are wrapped with. Afterwards the store must be
    /// opened with `new` (and the old KEK can be destroyed, which makes the keys in older
    /// backups unreadable, those of erased subjects among them). Returns how many keys.
    pub async fn rotate(&self, new: &Kek) -> Result<usize, PrivacyError> {
        let kek = self.kek.as_ref().ok_or(PrivacyError::ReadOnly)?;
        let mut tx = self.begin_making().await?;
        let rows: Vec<(String, Vec<u8>, Option<String>)> =
            sqlx::query_as("SELECT subject, key, kek_id FROM data_keys")
                .fetch_all(&mut *tx)
                .await?;
        for (subject, wrapped, id) in &rows {
            let key = match id.as_deref() {
                Some(id) if id == kek.id() => kek.unwrap(subject, wrapped)?,
                Some(id) if id == new.id() => continue,
                Some(id) => {
                    return Err(PrivacyError::WrongKek {
                        wrapped_with: id.to_string(),
                        given: kek.id().to_string(),
                    })
                }
                None => plain_key(subject, wrapped)?,
            };
            store_wrapped(&mut tx, new, subject, &key).await?;
        }
        tx.commit().await?;
        if self.dialect == Dialect::Sqlite {
            self.truncate_wal("the keys re-wrapped").await?;
        }
        tracing::info!(
            keys = rows.len(),
            from = kek.id(),
            to = new.id(),
            "re-wrapped the data keys"
        );
        Ok(rows.len())
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

/// A data key kept in the clear (before keys were wrapped), checked.
fn plain_key(subject: &str, key: &[u8]) -> Result<[u8; 32], PrivacyError> {
    <[u8; 32]>::try_from(key).map_err(|_| PrivacyError::Damaged {
        subject: subject.to_string(),
        what: "its data key is not 32 bytes".to_string(),
    })
}

/// Stores `subject`'s data key `key` wrapped by `kek`, in place of what its row held.
async fn store_wrapped(
    conn: &mut AnyConnection,
    kek: &Kek,
    subject: &str,
    key: &[u8; 32],
) -> Result<(), PrivacyError> {
    sqlx::query("UPDATE data_keys SET key = $1, kek_id = $2 WHERE subject = $3")
        .bind(kek.wrap(subject, key))
        .bind(kek.id())
        .bind(subject)
        .execute(conn)
        .await?;
    Ok(())
}

async fn erased_at(
    conn: &mut AnyConnection,
    subject: &str,
) -> Result<Option<DateTime<Utc>>, PrivacyError> {
    let at: Option<String> =
        sqlx::query_scalar("SELECT erased_at FROM erased_subjects WHERE subject = $1")
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
        let kek = Kek::create(&dir.path().join("kek")).unwrap();
        let store = KeyStore::open(&dir.path().join("keys.db"), kek)
            .await
            .unwrap();
        (dir, store)
    }

    /// Every byte of the files in `dir` (SQLite may remove its -wal and -shm files as a
    /// pool closes).
    fn file_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|entry| {
                let path = entry.unwrap().path();
                match std::fs::read(&path) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    read => Some((path.display().to_string(), read.unwrap())),
                }
            })
            .collect()
    }

    #[tokio::test]
    async fn a_key_is_kept_wrapped_so_its_bytes_are_in_no_file() {
        let (dir, s) = store().await;
        let raw = fresh_key(&s, "person-a").await.key;
        s.close().await;
        for (name, bytes) in file_bytes(dir.path()) {
            assert!(!bytes.windows(32).any(|w| w == raw), "key bytes in {name}");
        }
    }

    #[tokio::test]
    async fn a_key_table_from_before_wrapping_is_wrapped_when_opened_with_a_kek() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.db");
        // The table as earlier versions wrote it: keys in the clear, no `kek_id`.
        let raw = [9u8; 32];
        {
            use sqlx::Connection;
            let mut c =
                sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", path.display()))
                    .await
                    .unwrap();
            sqlx::raw_sql("CREATE TABLE data_keys (subject TEXT PRIMARY KEY, key BLOB NOT NULL, created_at TEXT NOT NULL); CREATE TABLE erased_subjects (subject TEXT PRIMARY KEY, erased_at TEXT NOT NULL);")
                .execute(&mut c)
                .await
                .unwrap();
            sqlx::query("INSERT INTO data_keys VALUES ('person-a', ?, '2026-01-01T00:00:00Z')")
                .bind(raw.as_slice())
                .execute(&mut c)
                .await
                .unwrap();
            c.close().await.unwrap();
        }
        let kek = Kek::create(&dir.path().join("kek")).unwrap();
        let s = KeyStore::open(&path, kek).await.unwrap();
        let KeyState::Present(key) = s.key("person-a").await.unwrap() else {
            panic!("the key is gone")
        };
        assert_eq!(key.key, raw, "the same key, now wrapped");
        s.close().await;
        for (name, bytes) in file_bytes(dir.path()) {
            assert!(!bytes.windows(32).any(|w| w == raw), "key bytes in {name}");
        }
    }

    #[tokio::test]
    async fn keys_wrapped_by_another_kek_are_an_error_naming_both_ids() {
        let (dir, s) = store().await;
        fresh_key(&s, "person-a").await;
        let first = s.kek_id().unwrap().to_string();
        s.close().await;
        let other = Kek::create(&dir.path().join("other")).unwrap();
        let given = other.id().to_string();
        let e = KeyStore::open(&dir.path().join("keys.db"), other)
            .await
            .err()
            .unwrap();
        assert!(matches!(e, PrivacyError::WrongKek { .. }), "{e}");
        let e = e.to_string();
        assert!(e.contains(&first) && e.contains(&given), "{e}");
    }

    #[tokio::test]
    async fn rotating_rewraps_every_key_under_the_new_kek_and_the_old_one_opens_none() {
        let (dir, s) = store().await;
        let sealed = fresh_key(&s, "person-a").await.seal("name", "Lin Xiaomei");
        fresh_key(&s, "person-b").await;
        let new = Kek::create(&dir.path().join("new")).unwrap();
        assert_eq!(s.rotate(&new).await.unwrap(), 2);
        s.close().await;
        let old = Kek::load(&dir.path().join("kek")).unwrap();
        assert!(matches!(
            KeyStore::open(&dir.path().join("keys.db"), old).await,
            Err(PrivacyError::WrongKek { .. })
        ));
        let s = KeyStore::open(&dir.path().join("keys.db"), new)
            .await
            .unwrap();
        let KeyState::Present(key) = s.key("person-a").await.unwrap() else {
            panic!("no key")
        };
        assert_eq!(key.open("name", &sealed).unwrap(), "Lin Xiaomei");
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
        fresh_key(&s, "person-a").await;
        let raw: Vec<u8> =
            sqlx::query_scalar("SELECT key FROM data_keys WHERE subject = 'person-a'")
                .fetch_one(&s.pool)
                .await
                .unwrap();
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
                !bytes.windows(raw.len()).any(|w| w == raw),
                "key bytes left in {name}"
            );
        }
    }

    #[tokio::test]
    async fn an_erased_key_leaves_not_even_its_wrapped_bytes_in_the_files() {
        let (dir, s) = store().await;
        fresh_key(&s, "person-a").await;
        let wrapped: Vec<u8> =
            sqlx::query_scalar("SELECT key FROM data_keys WHERE subject = 'person-a'")
                .fetch_one(&s.pool)
                .await
                .unwrap();
        s.erase("person-a", Utc::now()).await.unwrap();
        s.close().await;
        for (name, bytes) in file_bytes(dir.path()) {
            assert!(
                !bytes.windows(wrapped.len()).any(|w| w == wrapped),
                "wrapped key bytes left in {name}"
            );
        }
    }
}
