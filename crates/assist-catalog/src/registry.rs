//! The registry of event types: name, current schema version, subject kind, decoding
//! from JSON (with upcasting of older versions) and the rules of each payload.

use crate::events::{case::*, difficulty::*, household::*, monitoring::*, person::*};
use crate::events::{placement::*, response::*, training::*};
use crate::ids::SubjectKind;
use crate::personal::Personal;
use crate::violation::{Validate, Violation, Violations};
use schemars::gen::SchemaGenerator;
use schemars::schema::Schema;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Which streams an event type may be appended to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subjects {
    /// Only `person-<uuid>` streams.
    Person,
    /// Only `household-<uuid>` streams.
    Household,
    /// Either.
    Both,
}

impl Subjects {
    /// Whether a stream of this kind may hold the event type.
    pub fn admits(self, kind: SubjectKind) -> bool {
        matches!(
            (self, kind),
            (Subjects::Both, _)
                | (Subjects::Person, SubjectKind::Person)
                | (Subjects::Household, SubjectKind::Household)
        )
    }
}

/// One event type of the catalog at its current schema version.
#[derive(Clone, Copy)]
pub struct EventType {
    /// The `type` field, e.g. `contact_made`.
    pub name: &'static str,
    /// The current schema version; older ones are upcast on read.
    pub version: u32,
    /// Which streams it belongs on.
    pub subjects: Subjects,
    /// The JSON Schema of its `data`.
    pub data_schema: fn(&mut SchemaGenerator) -> Schema,
}

/// An older schema version that is still accepted and read, with its upcaster to the next version.
#[derive(Clone, Copy)]
pub struct LegacyVersion {
    /// The event type.
    pub name: &'static str,
    /// The old version.
    pub version: u32,
    /// The JSON Schema of its `data`.
    pub data_schema: fn(&mut SchemaGenerator) -> Schema,
    /// Turns `data` of this version into `data` of `version + 1`, checking the old rules.
    pub upcast: fn(Value) -> Result<Value, Vec<Violation>>,
}

/// Why an event (envelope or payload) is not a valid fact.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EventError {
    /// No such event type.
    #[error("unknown event type ({})", crate::violation::text(.0))]
    UnknownType(String),
    /// The type exists but not in this version.
    #[error("event type {name:?} has no schema_version {version} (known: {known})")]
    UnknownVersion {
        /// The type.
        name: String,
        /// The version asked for.
        version: u32,
        /// The versions that exist, e.g. `1, 2`.
        known: String,
    },
    /// The payload breaks the schema or a rule.
    #[error("{}", join(.0))]
    Invalid(Vec<Violation>),
}

pub(crate) fn join(v: &[Violation]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Deserializes `data` into `T`, naming the path of the first mismatch (`data.employer.name`).
pub(crate) fn from_data<T: DeserializeOwned>(data: Value) -> Result<T, Vec<Violation>> {
    crate::wire::from_value(data, "data", false).map_err(|v| vec![v])
}

fn decode_checked<T: DeserializeOwned + Validate>(data: Value) -> Result<T, Vec<Violation>> {
    let t: T = from_data(data)?;
    let mut v = Violations::default();
    t.validate("data", &mut v);
    if v.is_empty() {
        Ok(t)
    } else {
        Err(v.into_vec())
    }
}

/// `data` parsed straight from its text into `T` and valid, or `None`.
fn decode_checked_text<T: DeserializeOwned + Validate>(data: &str) -> Option<T> {
    let t: T = serde_json::from_str(data).ok()?;
    let mut v = Violations::default();
    t.validate("data", &mut v);
    v.is_empty().then_some(t)
}

/// `data` of type `name` written at `version`, when that is the type's current version and
/// the text is valid: the fast path of [`crate::envelope::decode_stored`].
pub(crate) fn decode_current_text(name: &str, version: u32, data: &str) -> Option<EventData> {
    if event_type(name)?.version != version {
        return None;
    }
    EventData::decode_current_text(name, data)
}

fn to_data<T: Serialize>(t: &T) -> Value {
    // Serializing our own plain data types cannot fail: no maps with non-string keys, no I/O.
    serde_json::to_value(t).unwrap_or(Value::Null)
}

macro_rules! catalog {
    ($( $name:literal @ $version:literal => $variant:ident($ty:ty) on $subjects:ident; )*) => {
        /// The payload of an event at its current schema version: one variant per event type.
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(tag = "type", content = "data")]
        #[allow(missing_docs)]
        pub enum EventData {
            $( #[serde(rename = $name)] $variant($ty), )*
        }

        /// Every event type of the catalog, at its current version.
        pub const EVENT_TYPES: &[EventType] = &[
            $( EventType {
                name: $name,
                version: $version,
                subjects: Subjects::$subjects,
                data_schema: SchemaGenerator::subschema_for::<$ty>,
            }, )*
        ];

        impl EventData {
            /// The `type` of this event.
            pub fn type_name(&self) -> &'static str {
                match self { $( EventData::$variant(_) => $name, )* }
            }

            /// The `data` object, as the catalog's JSON.
            pub fn to_data(&self) -> Value {
                match self { $( EventData::$variant(d) => to_data(d), )* }
            }

            fn validate_into(&self, v: &mut Violations) {
                match self { $( EventData::$variant(d) => d.validate("data", v), )* }
            }

            /// `data` of type `name` at its current version, parsed from its text and valid.
            fn decode_current_text(name: &str, data: &str) -> Option<Self> {
                match name {
                    $( $name => decode_checked_text::<$ty>(data).map(EventData::$variant), )*
                    _ => None,
                }
            }

            fn decode_current(name: &str, data: Value) -> Result<Self, EventError> {
                match name {
                    $( $name => decode_checked::<$ty>(data).map(EventData::$variant).map_err(EventError::Invalid), )*
                    other => Err(EventError::UnknownType(other.to_string())),
                }
            }
        }
    };
}

catalog! {
    "alert_raised" @ 1 => AlertRaised(AlertRaised) on Person;
    "contact_made" @ 1 => ContactMade(ContactMade) on Both;
    "contact_attempt_failed" @ 1 => ContactAttemptFailed(ContactAttemptFailed) on Both;
    "home_visit_completed" @ 1 => HomeVisitCompleted(HomeVisitCompleted) on Both;
    "job_offer_pushed" @ 2 => JobOfferPushed(JobOfferPushed) on Person;
    "clock_paused" @ 1 => ClockPaused(ClockPaused) on Both;
    "clock_resumed" @ 1 => ClockResumed(ClockResumed) on Both;
    "training_referred" @ 1 => TrainingReferred(TrainingReferred) on Person;
    "training_enrolled" @ 1 => TrainingEnrolled(TrainingEnrolled) on Person;
    "training_session_attended" @ 1 => TrainingSessionAttended(TrainingSessionAttended) on Person;
    "training_completed" @ 1 => TrainingCompleted(TrainingCompleted) on Person;
    "training_certified" @ 1 => TrainingCertified(TrainingCertified) on Person;
    "training_dropped_out" @ 1 => TrainingDroppedOut(TrainingDroppedOut) on Person;
    "training_subsidy_claimed" @ 1 => TrainingSubsidyClaimed(TrainingSubsidyClaimed) on Person;
    "training_subsidy_paid" @ 1 => TrainingSubsidyPaid(TrainingSubsidyPaid) on Person;
    "interview_held" @ 1 => InterviewHeld(InterviewHeld) on Person;
    "hired" @ 1 => Hired(Hired) on Person;
    "self_employed" @ 1 => SelfEmployed(SelfEmployed) on Person;
    "flexible_work_started" @ 1 => FlexibleWorkStarted(FlexibleWorkStarted) on Person;
    "retention_followed_up" @ 1 => RetentionFollowedUp(RetentionFollowedUp) on Person;
    "job_lost" @ 1 => JobLost(JobLost) on Person;
    "household_identified" @ 1 => HouseholdIdentified(HouseholdIdentified) on Household;
    "household_member_linked" @ 1 => HouseholdMemberLinked(HouseholdMemberLinked) on Household;
    "household_member_unlinked" @ 1 => HouseholdMemberUnlinked(HouseholdMemberUnlinked) on Household;
    "household_cleared" @ 1 => HouseholdCleared(HouseholdCleared) on Household;
    "household_exited" @ 1 => HouseholdExited(HouseholdExited) on Household;
    "household_reidentified" @ 1 => HouseholdReidentified(HouseholdReidentified) on Household;
    "difficulty_identified" @ 1 => DifficultyIdentified(DifficultyIdentified) on Person;
    "difficulty_exited" @ 1 => DifficultyExited(DifficultyExited) on Person;
    "case_opened" @ 1 => CaseOpened(CaseOpened) on Both;
    "case_assigned" @ 1 => CaseAssigned(CaseAssigned) on Both;
    "case_transferred" @ 1 => CaseTransferred(CaseTransferred) on Both;
    "case_suspended" @ 1 => CaseSuspended(CaseSuspended) on Both;
    "case_closed" @ 1 => CaseClosed(CaseClosed) on Both;
    "case_reopened" @ 1 => CaseReopened(CaseReopened) on Both;
    "person_registered" @ 1 => PersonRegistered(PersonRegistered) on Person;
    "personal_details_corrected" @ 1 => PersonalDetailsCorrected(PersonalDetailsCorrected) on Person;
    "personal_data_erased" @ 1 => PersonalDataErased(PersonalDataErased) on Person;
}

/// Older versions that are still read and accepted, each with its upcaster.
pub const LEGACY_VERSIONS: &[LegacyVersion] = &[LegacyVersion {
    name: "job_offer_pushed",
    version: 1,
    data_schema: SchemaGenerator::subschema_for::<JobOfferPushedV1>,
    upcast: |data| {
        let v1: JobOfferPushedV1 = decode_checked(data)?;
        Ok(to_data(&JobOfferPushed::from(v1)))
    },
}];

/// Looks up an event type by its `type` name.
pub fn event_type(name: &str) -> Option<&'static EventType> {
    EVENT_TYPES.iter().find(|t| t.name == name)
}

/// Decodes `data` written as `version` of `name`, upcasting older versions to the current one.
pub fn decode_data(name: &str, version: u32, mut data: Value) -> Result<EventData, EventError> {
    let ty = event_type(name).ok_or_else(|| EventError::UnknownType(name.to_string()))?;
    let unknown = || {
        let mut known: Vec<u32> = LEGACY_VERSIONS
            .iter()
            .filter(|l| l.name == name)
            .map(|l| l.version)
            .collect();
        known.push(ty.version);
        known.sort_unstable();
        let known = known
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        EventError::UnknownVersion {
            name: name.to_string(),
            version,
            known,
        }
    };
    if version > ty.version {
        return Err(unknown());
    }
    for v in version..ty.version {
        let step = LEGACY_VERSIONS
            .iter()
            .find(|l| l.name == name && l.version == v)
            .ok_or_else(unknown)?;
        data = (step.upcast)(data).map_err(EventError::Invalid)?;
    }
    let personal = PERSONAL_TYPES.contains(&name);
    EventData::decode_current(name, data).map_err(|e| match e {
        EventError::Invalid(found) if personal => EventError::Invalid(
            found
                .into_iter()
                .map(|v| Violation {
                    message: redact(&v.message),
                    ..v
                })
                .collect(),
        ),
        other => other,
    })
}

/// The event types whose payload carries personal fields (see [`EventData::personal_fields`]).
pub const PERSONAL_TYPES: &[&str] = &["person_registered", "personal_details_corrected"];

/// Hides the values serde quotes in a message (`"..."`, and digits in backticks), for
/// payloads that carry personal data: a value typed into the wrong field may be personal.
pub fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find(['"', '`']) {
        let q = rest.as_bytes()[i] as char;
        out.push_str(&rest[..=i]);
        let after = &rest[i + 1..];
        match after.find(q) {
            Some(j) if q == '"' || after[..j].bytes().any(|b| b.is_ascii_digit()) => {
                out.push_str("(value not shown)");
                out.push(q);
                rest = &after[j + 1..];
            }
            Some(j) => {
                out.push_str(&after[..=j]);
                rest = &after[j + 1..];
            }
            None => {
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

impl EventData {
    /// The personal fields of this payload with their names; empty for all but the person events.
    pub fn personal_fields(&self) -> Vec<(&'static str, &Personal)> {
        let mut out: Vec<(&'static str, &Personal)> = Vec::new();
        match self {
            EventData::PersonRegistered(p) => {
                out.push(("name", &p.name));
                out.push(("national_id", &p.national_id));
                out.extend(p.phone.as_ref().map(|x| ("phone", x)));
                out.extend(p.address.as_ref().map(|x| ("address", x)));
            }
            EventData::PersonalDetailsCorrected(p) => {
                for (name, field) in [
                    ("name", &p.name),
                    ("national_id", &p.national_id),
                    ("phone", &p.phone),
                    ("address", &p.address),
                ] {
                    out.extend(field.as_ref().map(|x| (name, x)));
                }
            }
            _ => {}
        }
        out
    }

    /// The personal fields of this payload, to seal or reveal them in place.
    pub fn personal_fields_mut(&mut self) -> Vec<(&'static str, &mut Personal)> {
        let mut out: Vec<(&'static str, &mut Personal)> = Vec::new();
        match self {
            EventData::PersonRegistered(p) => {
                out.push(("name", &mut p.name));
                out.push(("national_id", &mut p.national_id));
                if let Some(x) = p.phone.as_mut() {
                    out.push(("phone", x));
                }
                if let Some(x) = p.address.as_mut() {
                    out.push(("address", x));
                }
            }
            EventData::PersonalDetailsCorrected(p) => {
                for (name, field) in [
                    ("name", &mut p.name),
                    ("national_id", &mut p.national_id),
                    ("phone", &mut p.phone),
                    ("address", &mut p.address),
                ] {
                    if let Some(x) = field.as_mut() {
                        out.push((name, x));
                    }
                }
            }
            _ => {}
        }
        out
    }

    /// The rules of this payload beyond its types, reported under `data`.
    pub fn violations(&self) -> Vec<Violation> {
        let mut v = Violations::default();
        self.validate_into(&mut v);
        v.into_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_type_name_is_unique() {
        let mut names: Vec<_> = EVENT_TYPES.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EVENT_TYPES.len());
    }

    #[test]
    fn a_version_1_job_offer_is_read_as_version_2_with_a_monthly_wage() {
        let v1 = json!({
            "offer_id": "0192f0c1-8a3b-7cde-9f00-0123456789ab",
            "job_id": "J-1", "job_title": "packer",
            "employer": {"id": "91350100MA0000000X", "name": "Minhou Foods"},
            "monthly_wage": 4200, "location": "350121"
        });
        let EventData::JobOfferPushed(offer) = decode_data("job_offer_pushed", 1, v1).unwrap()
        else {
            panic!("not a job offer");
        };
        assert_eq!((offer.wage, offer.wage_period), (4200.0, WagePeriod::Month));
    }

    #[test]
    fn a_version_1_job_offer_keeps_its_own_rules_and_paths() {
        let v1 = json!({
            "offer_id": "0192f0c1-8a3b-7cde-9f00-0123456789ab",
            "job_id": "J-1", "job_title": "packer",
            "employer": {"id": "E1", "name": "Minhou Foods"},
            "monthly_wage": -1, "location": "350121"
        });
        assert_eq!(
            decode_data("job_offer_pushed", 1, v1)
                .unwrap_err()
                .to_string(),
            "data.monthly_wage: must be >= 0, got -1"
        );
    }

    #[test]
    fn a_future_version_is_refused_with_the_known_ones() {
        assert_eq!(
            decode_data("job_offer_pushed", 3, json!({}))
                .unwrap_err()
                .to_string(),
            r#"event type "job_offer_pushed" has no schema_version 3 (known: 1, 2)"#
        );
    }

    #[test]
    fn redaction_hides_quoted_values_and_numbers_but_keeps_field_names() {
        assert_eq!(
            redact(
                r#"invalid type: string "Lin 3501", expected u16; unknown field `nme`; integer `3501`"#
            ),
            r#"invalid type: string "(value not shown)", expected u16; unknown field `nme`; integer `(value not shown)`"#
        );
    }

    #[test]
    fn legacy_versions_carry_no_personal_data() {
        // Sealing works on current payloads only; an old version with personal fields would leak.
        for l in LEGACY_VERSIONS {
            assert!(!matches!(
                l.name,
                "person_registered" | "personal_details_corrected"
            ));
        }
    }
}
