//! Personal data fields: plaintext only at ingest, sealed (encrypted per person) in the log.
//!
//! Error messages about these fields never repeat their values.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// A personal field (name, national ID number, phone, address). Its `Debug` never shows
/// the plaintext, so no `?event` in a log line can leak it.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Personal {
    /// Plaintext, as a caseworker service sends it; never stored.
    Plain(String),
    /// Encrypted with the person's data key; what the log holds.
    Sealed(Sealed),
}

/// A sealed personal value: base64 of nonce and AES-256-GCM ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sealed {
    /// base64(nonce || ciphertext || tag)
    pub sealed: String,
}

impl std::fmt::Debug for Personal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Personal::Plain(_) => f.write_str("Plain(<personal data>)"),
            Personal::Sealed(s) => f.debug_tuple("Sealed").field(s).finish(),
        }
    }
}

impl Personal {
    /// The plaintext, when this value has not been sealed yet.
    pub fn plain(&self) -> Option<&str> {
        match self {
            Personal::Plain(s) => Some(s),
            Personal::Sealed(_) => None,
        }
    }
}

impl<'de> Deserialize<'de> for Personal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A fixed message: the value itself is personal data and must not be echoed.
        let fail = || {
            serde::de::Error::custom(
                "must be a string (or, in stored form, an object with one field, sealed); value not shown",
            )
        };
        match Value::deserialize(d)? {
            Value::String(s) => Ok(Personal::Plain(s)),
            Value::Object(mut m) if m.len() == 1 => match m.remove("sealed") {
                Some(Value::String(s)) => Ok(Personal::Sealed(Sealed { sealed: s })),
                _ => Err(fail()),
            },
            _ => Err(fail()),
        }
    }
}

impl JsonSchema for Personal {
    fn schema_name() -> String {
        "Personal".into()
    }

    fn json_schema(gen: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        use schemars::schema::{Metadata, SchemaObject, SubschemaValidation};
        SchemaObject {
            metadata: Some(Box::new(Metadata {
                description: Some(
                    "personal data: plaintext when sent to ingest, sealed with the person's key in the log"
                        .into(),
                ),
                ..Default::default()
            })),
            subschemas: Some(Box::new(SubschemaValidation {
                one_of: Some(vec![gen.subschema_for::<String>(), gen.subschema_for::<Sealed>()]),
                ..Default::default()
            })),
            ..Default::default()
        }
        .into()
    }
}

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK: &[u8; 11] = b"10X98765432";

/// Checks a mainland resident identity number (18 characters, ISO 7064 MOD 11-2 check digit).
///
/// Returns what is wrong without repeating the number.
pub fn check_national_id(id: &str) -> Result<(), &'static str> {
    let bytes = id.as_bytes();
    if bytes.len() != 18 {
        return Err("must be an 18-character national ID number (value not shown)");
    }
    if !bytes[..17].iter().all(u8::is_ascii_digit) {
        return Err("must have 17 digits before the check character (value not shown)");
    }
    let birth = &id[6..14];
    if chrono::NaiveDate::parse_from_str(birth, "%Y%m%d").is_err() {
        return Err("has no valid birth date in digits 7-14 (value not shown)");
    }
    let sum: u32 = bytes[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    if bytes[17].to_ascii_uppercase() != CHECK[(sum % 11) as usize] {
        return Err("check character does not match (value not shown)");
    }
    Ok(())
}

/// Completes 17 digits with their check character; for fictitious test and example data.
pub fn with_check_character(first17: &str) -> String {
    let sum: u32 = first17
        .bytes()
        .zip(WEIGHTS)
        .map(|(b, w)| u32::from(b.wrapping_sub(b'0')) * w)
        .sum();
    format!("{first17}{}", CHECK[(sum % 11) as usize] as char)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completed_number_passes_its_check() {
        let id = with_check_character("35010219900307002");
        assert_eq!(check_national_id(&id), Ok(()));
    }

    #[test]
    fn a_wrong_check_character_is_named_without_the_number() {
        let mut id = with_check_character("35010219900307002");
        let last = if id.ends_with('1') { '2' } else { '1' };
        id.replace_range(17.., &last.to_string());
        let err = check_national_id(&id).unwrap_err();
        assert!(err.contains("check character"));
        assert!(!err.contains(&id[..6]));
    }

    #[test]
    fn debug_output_hides_plaintext() {
        assert_eq!(
            format!("{:?}", Personal::Plain("Lin".into())),
            "Plain(<personal data>)"
        );
    }

    #[test]
    fn a_personal_value_of_the_wrong_type_is_not_echoed() {
        let err = serde_json::from_str::<Personal>("350102199003070021").unwrap_err();
        assert!(!err.to_string().contains("3501021990"), "{err}");
    }
}
