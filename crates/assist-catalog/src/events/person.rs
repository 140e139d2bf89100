//! People: registration, corrections and erasure of personal data; the key groups.
//!
//! These are the only events that carry personal data, and only in [`Personal`] fields.

use crate::personal::{check_national_id, Personal};
use crate::region::RegionCode;
use crate::violation::{Validate, Violations};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A key group (重点群体); a person may belong to several.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    /// People lifted out of poverty (脱贫人口).
    PovertyRelieved,
    /// People with employment difficulties (就业困难人员).
    EmploymentDifficulty,
    /// Members of zero-employment households (零就业家庭).
    ZeroEmploymentHousehold,
    /// College graduates (高校毕业生).
    CollegeGraduate,
    /// Graduates from hard-up families (困难毕业生).
    HardshipGraduate,
    /// Long-term unemployed youth (长期失业青年).
    LongTermUnemployedYouth,
    /// Disabled people (残疾人).
    Disabled,
    /// Veterans (退役军人).
    Veteran,
    /// Women returning to work after childbirth ("妈妈岗").
    ReturningMother,
}

/// Sex as recorded at registration (needed for age-based identification rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    /// Female.
    Female,
    /// Male.
    Male,
}

/// `person_registered`: a person gets a real-name record; carries sealed personal data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonRegistered {
    /// Full name (personal).
    pub name: Personal,
    /// National ID number (personal).
    pub national_id: Personal,
    /// Phone number (personal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<Personal>,
    /// Home address (personal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Personal>,
    /// Year of birth.
    #[schemars(range(min = 1900, max = 2100))]
    pub birth_year: u16,
    /// Sex.
    pub sex: Sex,
    /// The region of the person's registration.
    pub region: RegionCode,
    /// Key groups; at least one.
    pub groups: Vec<Group>,
}

impl Validate for PersonRegistered {
    fn validate(&self, at: &str, v: &mut Violations) {
        check_personal(
            &self.name,
            &self.national_id,
            &self.phone,
            &self.address,
            at,
            v,
        );
        v.check(
            (1900..=2100).contains(&self.birth_year),
            format!("{at}.birth_year"),
            format!("must be 1900 to 2100, got {}", self.birth_year),
        );
        v.check(
            !self.groups.is_empty(),
            format!("{at}.groups"),
            "must list at least one key group",
        );
    }
}

/// `personal_details_corrected`: corrected personal fields; at least one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonalDetailsCorrected {
    /// Corrected full name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Personal>,
    /// Corrected national ID number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub national_id: Option<Personal>,
    /// Corrected phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<Personal>,
    /// Corrected address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Personal>,
}

impl Validate for PersonalDetailsCorrected {
    fn validate(&self, at: &str, v: &mut Violations) {
        let any = self.name.is_some()
            || self.national_id.is_some()
            || self.phone.is_some()
            || self.address.is_some();
        v.check(
            any,
            at,
            "must correct at least one of name, national_id, phone, address",
        );
        if let Some(n) = &self.name {
            check_name(n, &format!("{at}.name"), v);
        }
        if let Some(id) = &self.national_id {
            check_id(id, &format!("{at}.national_id"), v);
        }
        check_optional(&self.phone, &self.address, at, v);
    }
}

fn check_personal(
    name: &Personal,
    id: &Personal,
    phone: &Option<Personal>,
    address: &Option<Personal>,
    at: &str,
    v: &mut Violations,
) {
    check_name(name, &format!("{at}.name"), v);
    check_id(id, &format!("{at}.national_id"), v);
    check_optional(phone, address, at, v);
}

fn check_name(p: &Personal, at: &str, v: &mut Violations) {
    if let Some(s) = p.plain() {
        let n = s.chars().count();
        v.check(
            !s.trim().is_empty() && n <= 100,
            at,
            format!("must be 1 to 100 characters, got {n} (value not shown)"),
        );
    }
}

fn check_id(p: &Personal, at: &str, v: &mut Violations) {
    if let Some(s) = p.plain() {
        if let Err(reason) = check_national_id(s) {
            v.push(at, reason);
        }
    }
}

fn check_optional(
    phone: &Option<Personal>,
    address: &Option<Personal>,
    at: &str,
    v: &mut Violations,
) {
    if let Some(s) = phone.as_ref().and_then(Personal::plain) {
        let digits = s.strip_prefix('+').unwrap_or(s);
        v.check(
            (7..=15).contains(&digits.len())
                && digits.bytes().all(|b| b.is_ascii_digit() || b == b'-'),
            format!("{at}.phone"),
            "must be 7 to 15 digits, optionally with + and - (value not shown)",
        );
    }
    if let Some(s) = address.as_ref().and_then(Personal::plain) {
        let n = s.chars().count();
        v.check(
            !s.trim().is_empty() && n <= 300,
            format!("{at}.address"),
            format!("must be 1 to 300 characters, got {n} (value not shown)"),
        );
    }
}

/// Why personal data was erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErasureReason {
    /// The legal basis for keeping it ended.
    LegalBasisEnded,
    /// The person asked for deletion.
    PersonRequested,
    /// The retention period ran out.
    RetentionExpired,
}

/// `personal_data_erased`: the person's data key was destroyed; carries no personal data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonalDataErased {
    /// Why.
    pub reason: ErasureReason,
}

super::no_further_rules!(PersonalDataErased);
