//! The key-encryption key (KEK): it wraps every data key at rest (envelope encryption), and
//! it is kept outside the key table, in a file. Its id, derived from it, is stored with
//! each wrapped key, so that a store knows which KEK wrapped what and `assist keys rotate`
//! can re-wrap every key under a new one without touching the log.

use crate::PrivacyError;
use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::path::Path;

const NONCE_LEN: usize = 12;

/// A key-encryption key and its id. Not `Debug`, so it never reaches a log line.
pub struct Kek {
    id: String,
    key: [u8; 32],
}

impl Kek {
    /// The KEK in file `path`: 32 random bytes in base64, as [`Kek::create`] writes them.
    pub fn load(path: &Path) -> Result<Kek, PrivacyError> {
        let fail = |reason: &str| PrivacyError::Kek {
            path: path.display().to_string(),
            reason: reason.to_string(),
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(&e.to_string()))?;
        let bytes = B64
            .decode(text.trim())
            .map_err(|_| fail("it is not base64"))?;
        let key = <[u8; 32]>::try_from(bytes.as_slice())
            .map_err(|_| fail("it does not hold 32 bytes (a 256-bit key)"))?;
        Ok(Kek::from_bytes(key))
    }

    /// A fresh random KEK written to `path`, which must not exist yet; readable by its
    /// owner only.
    pub fn create(path: &Path) -> Result<Kek, PrivacyError> {
        use std::io::Write;
        let fail = |e: std::io::Error| PrivacyError::Kek {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let key: [u8; 32] = Aes256Gcm::generate_key(&mut OsRng).into();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(fail)?;
        file.write_all(format!("{}\n", B64.encode(key)).as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(fail)?;
        Ok(Kek::from_bytes(key))
    }

    /// The KEK in `path`, made there first when there is none (the embedded default's
    /// own `kek` file beside its key table).
    pub fn load_or_create(path: &Path) -> Result<Kek, PrivacyError> {
        match Kek::create(path) {
            Ok(kek) => Ok(kek),
            Err(_) if path.exists() => Kek::load(path),
            Err(e) => Err(e),
        }
    }

    fn from_bytes(key: [u8; 32]) -> Kek {
        let digest = Sha256::new()
            .chain_update(b"assist key-encryption key\0")
            .chain_update(key)
            .finalize();
        Kek {
            id: hex::encode(&digest[..8]),
            key,
        }
    }

    /// Its id: the first 8 bytes of a SHA-256 of the key, in hex (it names the key without
    /// revealing it).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `subject`'s data key wrapped: nonce || ciphertext || tag, the subject bound in.
    pub(crate) fn wrap(&self, subject: &str, key: &[u8; 32]) -> Vec<u8> {
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.key));
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = aad(subject);
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: key,
                    aad: &aad,
                },
            )
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend(sealed);
        out
    }

    /// `subject`'s data key from what [`Kek::wrap`] made of it.
    pub(crate) fn unwrap(&self, subject: &str, wrapped: &[u8]) -> Result<[u8; 32], PrivacyError> {
        let damaged = || PrivacyError::Damaged {
            subject: subject.to_string(),
            what: format!(
                "its wrapped data key does not open with key-encryption key {}",
                self.id
            ),
        };
        if wrapped.len() < NONCE_LEN {
            return Err(damaged());
        }
        let (nonce, sealed) = wrapped.split_at(NONCE_LEN);
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.key));
        let aad = aad(subject);
        let key = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| damaged())?;
        <[u8; 32]>::try_from(key.as_slice()).map_err(|_| damaged())
    }
}

/// What a wrapped key is bound to: its subject, so that a key copied to another subject's
/// row does not open.
fn aad(subject: &str) -> Vec<u8> {
    let mut aad = b"assist data key\0".to_vec();
    aad.extend(subject.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_key_opens_with_its_kek_for_its_subject_only() {
        let dir = tempfile::tempdir().unwrap();
        let kek = Kek::create(&dir.path().join("kek")).unwrap();
        let key = [7u8; 32];
        let wrapped = kek.wrap("person-a", &key);
        assert!(!wrapped.windows(32).any(|w| w == key));
        assert_eq!(kek.unwrap("person-a", &wrapped).unwrap(), key);
        assert!(kek.unwrap("person-b", &wrapped).is_err());
        let other = Kek::create(&dir.path().join("other")).unwrap();
        assert!(other.unwrap("person-a", &wrapped).is_err());
        assert_ne!(kek.id(), other.id());
    }

    #[test]
    fn a_kek_file_reads_back_as_the_same_kek_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek");
        let made = Kek::create(&path).unwrap();
        assert_eq!(Kek::load(&path).unwrap().id(), made.id());
        assert_eq!(Kek::load_or_create(&path).unwrap().id(), made.id());
        assert!(
            Kek::create(&path).is_err(),
            "an existing KEK is never replaced"
        );
        std::fs::write(dir.path().join("short"), "c2hvcnQ=\n").unwrap();
        let e = Kek::load(&dir.path().join("short"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("short") && e.contains("32 bytes"), "{e}");
    }
}
