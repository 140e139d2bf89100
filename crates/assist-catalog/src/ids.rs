//! Identifiers in events: streams (case subjects) and pseudonymous staff ids.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// What a stream is about: one person or one household.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    /// `person-<uuid>`
    Person,
    /// `household-<uuid>`
    Household,
}

impl SubjectKind {
    /// The stream-name prefix of this kind.
    pub fn prefix(self) -> &'static str {
        match self {
            SubjectKind::Person => "person",
            SubjectKind::Household => "household",
        }
    }
}

/// A stream: one case subject, `person-<uuid>` or `household-<uuid>`; the uuid is pseudonymous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId {
    /// Person or household.
    pub kind: SubjectKind,
    /// The pseudonymous id of the subject.
    pub id: Uuid,
}

/// Why a text is not a stream id. Holds only the text's length: the text may be anything
/// (a national ID number typed into the wrong field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stream (text, {}) must be person-<uuid> or household-<uuid>", length_text(*.chars))]
pub struct StreamIdError {
    /// The length of the refused text, in characters.
    pub chars: usize,
}

fn length_text(chars: usize) -> String {
    format!("{chars} {}", if chars == 1 { "char" } else { "chars" })
}

impl StreamId {
    /// The stream of a person.
    pub fn person(id: Uuid) -> Self {
        Self {
            kind: SubjectKind::Person,
            id,
        }
    }

    /// The stream of a household.
    pub fn household(id: Uuid) -> Self {
        Self {
            kind: SubjectKind::Household,
            id,
        }
    }

    /// The longest name: `household-` and a hyphenated uuid.
    const NAME_MAX: usize = "household-".len() + uuid::fmt::Hyphenated::LENGTH;

    /// The stream's name, `person-<uuid>` (what `to_string` gives, built in one allocation:
    /// the projection names a stream several times per event).
    pub fn name(&self) -> String {
        let mut name = String::with_capacity(Self::NAME_MAX);
        // Writing into a String cannot fail.
        let _ = self.write_name(&mut name);
        name
    }

    /// Writes `prefix-uuid` (lower-case, hyphenated): for `name` and `Display` alike.
    fn write_name(&self, out: &mut impl fmt::Write) -> fmt::Result {
        out.write_str(self.kind.prefix())?;
        out.write_char('-')?;
        out.write_str(
            self.id
                .hyphenated()
                .encode_lower(&mut Uuid::encode_buffer()),
        )
    }

    /// Whether `text` is this stream's name, without building the name.
    pub fn is_named(&self, text: &str) -> bool {
        let mut buf = Uuid::encode_buffer();
        text.strip_prefix(self.kind.prefix())
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|id| id == self.id.hyphenated().encode_lower(&mut buf))
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_name(f)
    }
}

impl FromStr for StreamId {
    type Err = StreamIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || StreamIdError {
            chars: s.chars().count(),
        };
        let (kind, rest) = if let Some(rest) = s.strip_prefix("person-") {
            (SubjectKind::Person, rest)
        } else if let Some(rest) = s.strip_prefix("household-") {
            (SubjectKind::Household, rest)
        } else {
            return Err(err());
        };
        // Only the canonical lower-case hyphenated form, so one subject has one stream name.
        let id = Uuid::try_parse(rest).map_err(|_| err())?;
        if id.hyphenated().encode_lower(&mut Uuid::encode_buffer()) != rest {
            return Err(err());
        }
        Ok(Self { kind, id })
    }
}

impl Serialize for StreamId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StreamId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Parsed from the text where it lies (no copy into a String first).
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = StreamId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<StreamId, E> {
                s.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(Name)
    }
}

impl JsonSchema for StreamId {
    fn schema_name() -> String {
        "StreamId".into()
    }

    fn json_schema(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        crate::schema::string_pattern(
            "^(person|household)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
            "a case subject: person-<uuid> or household-<uuid> (lower-case, hyphenated)",
        )
    }
}

/// A pseudonymous id of a staff member or a system (never a name): 1 to 64 of `A-Z a-z 0-9 . _ : -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct StaffId(String);

/// Why a text is not a staff id. Holds only the text's length: a refused id is often a
/// name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("staff id (text, {}) must be 1 to 64 characters of A-Z a-z 0-9 . _ : -", length_text(*.chars))]
pub struct StaffIdError {
    /// The length of the refused text, in characters.
    pub chars: usize,
}

impl StaffId {
    /// Checks and wraps a staff id.
    pub fn new(id: &str) -> Result<Self, StaffIdError> {
        let ok = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b));
        if ok {
            Ok(Self(id.to_string()))
        } else {
            Err(StaffIdError {
                chars: id.chars().count(),
            })
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StaffId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for StaffId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        StaffId::new(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for StaffId {
    fn schema_name() -> String {
        "StaffId".into()
    }

    fn json_schema(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        crate::schema::string_pattern(
            "^[A-Za-z0-9._:-]{1,64}$",
            "pseudonymous id of a staff member or system, never a name",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_id_round_trips_through_text() {
        let s: StreamId = "person-0192f0c1-8a3b-7cde-9f00-0123456789ab"
            .parse()
            .unwrap();
        assert_eq!(s.kind, SubjectKind::Person);
        assert_eq!(s.to_string(), "person-0192f0c1-8a3b-7cde-9f00-0123456789ab");
    }

    #[test]
    fn an_upper_case_stream_id_is_refused_so_one_subject_has_one_name() {
        assert!("person-0192F0C1-8A3B-7CDE-9F00-0123456789AB"
            .parse::<StreamId>()
            .is_err());
    }

    #[test]
    fn a_streams_name_is_its_text_and_only_that_text_is_named_so() {
        let text = "household-0192f0c1-8a3b-7cde-9f00-0123456789ab";
        let s: StreamId = text.parse().unwrap();
        assert_eq!(s.name(), text);
        assert_eq!(s.to_string(), text);
        assert!(s.is_named(text));
        assert!(!s.is_named("person-0192f0c1-8a3b-7cde-9f00-0123456789ab"));
        assert!(!s.is_named("household-0192F0C1-8a3b-7cde-9f00-0123456789ab"));
        assert!(!s.is_named("household0192f0c1-8a3b-7cde-9f00-0123456789ab"));
    }

    #[test]
    fn a_staff_id_with_spaces_is_refused_without_repeating_it() {
        assert_eq!(
            StaffId::new("Wang Fang").unwrap_err().to_string(),
            "staff id (text, 9 chars) must be 1 to 64 characters of A-Z a-z 0-9 . _ : -"
        );
    }
}
