//! What the dead-letter table keeps of a record the projections cannot read. Any Kafka
//! client can write to the topic, so a dead letter may be a person's registration in
//! clear: the table keeps a record's bytes only when they hold no personal value in clear,
//! else a redacted form, and always a SHA-256 of the bytes (to match them with a copy).

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The catalog's personal fields (see `EventData::personal_fields`): a value under one of
/// these names in clear is personal wherever it is.
const PERSONAL_FIELDS: &[&str] = &["name", "national_id", "phone", "address"];

/// What replaces a personal value in a redacted dead letter.
pub const REDACTED: &str = "[redacted]";

/// What the table keeps of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// The record's bytes, its redacted JSON, or nothing (bytes that are not JSON cannot
    /// be checked for personal values, so none of them is kept).
    pub bytes: Vec<u8>,
    /// Whether `bytes` is not the record as it was.
    pub redacted: bool,
    /// SHA-256 of the record's bytes, in hex.
    pub sha256: String,
}

/// What the dead-letter table keeps of a record with bytes `payload`.
pub fn kept(payload: &[u8]) -> Kept {
    let sha256 = hex::encode(Sha256::digest(payload));
    match serde_json::from_slice::<Value>(payload) {
        Ok(mut value) => {
            if redact(&mut value, false) == 0 {
                Kept {
                    bytes: payload.to_vec(),
                    redacted: false,
                    sha256,
                }
            } else {
                Kept {
                    bytes: serde_json::to_vec(&value).unwrap_or_default(),
                    redacted: true,
                    sha256,
                }
            }
        }
        Err(_) => Kept {
            bytes: Vec::new(),
            redacted: !payload.is_empty(),
            sha256,
        },
    }
}

/// Replaces the personal values in clear in `v` by [`REDACTED`] and counts them: every
/// string or number under a personal field's name (`personal`; a sealed value is an
/// object and stays), and anywhere any string that reads as a national ID or a mobile
/// number.
fn redact(v: &mut Value, personal: bool) -> usize {
    match v {
        Value::Object(map) => map
            .iter_mut()
            .map(|(k, v)| redact(v, PERSONAL_FIELDS.contains(&k.as_str())))
            .sum(),
        Value::Array(items) => items.iter_mut().map(|v| redact(v, personal)).sum(),
        Value::String(s) if personal || looks_personal(s) => {
            *v = Value::String(REDACTED.to_string());
            1
        }
        Value::Number(_) if personal => {
            *v = Value::String(REDACTED.to_string());
            1
        }
        _ => 0,
    }
}

/// A resident ID number (18 characters, the last a digit or X; or the old 15 digits) or a
/// mainland mobile number (11 digits from 1), alone in a string.
fn looks_personal(s: &str) -> bool {
    let s = s.trim();
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    match s.len() {
        18 => digits(&s[..17]) && (digits(&s[17..]) || s.ends_with(['X', 'x'])),
        15 => digits(s),
        11 => digits(s) && s.starts_with('1'),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registration_in_clear_is_kept_redacted_with_the_hash_of_its_bytes() {
        let raw = br#"{"type":"person_registered","stream":"person-1","data":{"name":"Lin Xiaomei","national_id":"35012119900307002X","phone":"13800000000","address":"No. 1 Example Road","birth_year":1990,"note":"call 13912345678"}}"#;
        let k = kept(raw);
        assert!(k.redacted);
        let text = String::from_utf8(k.bytes).unwrap();
        for value in [
            "Lin Xiaomei",
            "35012119900307002X",
            "13800000000",
            "Example Road",
        ] {
            assert!(!text.contains(value), "{value} in {text}");
        }
        assert!(text.contains("\"birth_year\":1990"), "{text}");
        assert!(text.contains("\"stream\":\"person-1\""), "{text}");
        assert_eq!(k.sha256, hex::encode(Sha256::digest(raw)));
    }

    #[test]
    fn a_record_with_sealed_personal_fields_is_kept_as_it_was() {
        let raw = br#"{"type":"person_registered","data":{"name":{"sealed":"AAAA"},"national_id":{"sealed":"BBBB"},"birth_year":1990}}"#;
        let k = kept(raw);
        assert!(!k.redacted);
        assert_eq!(k.bytes, raw);
    }

    #[test]
    fn bytes_that_are_not_json_are_not_kept() {
        let k = kept(b"Lin Xiaomei 35012119900307002X");
        assert!(k.redacted && k.bytes.is_empty());
        assert_eq!(k.sha256.len(), 64);
    }

    #[test]
    fn an_id_number_or_a_mobile_number_anywhere_is_redacted() {
        for s in [
            "35012119900307002X",
            "350121199003070021",
            "350121900307002",
            "13800000000",
        ] {
            assert!(looks_personal(s), "{s}");
        }
        for s in [
            "2026-03-02",
            "cw-350121-007",
            "350121",
            "23800000000",
            "1380000000",
        ] {
            assert!(!looks_personal(s), "{s}");
        }
    }
}
