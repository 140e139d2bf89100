//! Zero-employment household dynamic clearing (零就业家庭动态清零).

use crate::ids::{StreamId, SubjectKind};
use crate::region::RegionCode;
use crate::violation::{Validate, Violations};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// A member of a household, by the member's person stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HouseholdMember {
    /// The member's stream (`person-<uuid>`).
    pub person: StreamId,
    /// Of working age.
    pub working_age: bool,
    /// Able and willing to work.
    pub able_and_willing: bool,
}

impl Validate for HouseholdMember {
    fn validate(&self, at: &str, v: &mut Violations) {
        check_person(&self.person, &format!("{at}.person"), v);
    }
}

fn check_person(s: &StreamId, at: &str, v: &mut Violations) {
    v.check(
        s.kind == SubjectKind::Person,
        at,
        format!("must be a person stream, got {s}"),
    );
}

/// `household_identified`: identified as a zero-employment household (零就业家庭), with its members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HouseholdIdentified {
    /// Where the household lives.
    pub region: RegionCode,
    /// Its members; at least one, each once.
    pub members: Vec<HouseholdMember>,
}

impl Validate for HouseholdIdentified {
    fn validate(&self, at: &str, v: &mut Violations) {
        v.check(
            !self.members.is_empty(),
            format!("{at}.members"),
            "must list at least one member",
        );
        let mut seen = HashSet::new();
        for (i, m) in self.members.iter().enumerate() {
            let path = format!("{at}.members[{i}]");
            m.validate(&path, v);
            v.check(
                seen.insert(m.person),
                format!("{path}.person"),
                format!("{} is listed twice", m.person),
            );
        }
    }
}

/// `household_member_linked`: a person joined the household.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HouseholdMemberLinked {
    /// The new member.
    pub member: HouseholdMember,
}

impl Validate for HouseholdMemberLinked {
    fn validate(&self, at: &str, v: &mut Violations) {
        self.member.validate(&format!("{at}.member"), v);
    }
}

/// Why a member left the household.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnlinkReason {
    /// Moved out.
    MovedOut,
    /// Reached retirement age.
    ReachedRetirementAge,
    /// Died.
    Died,
}

/// `household_member_unlinked`: a person left the household.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HouseholdMemberUnlinked {
    /// The member who left.
    pub person: StreamId,
    /// Why.
    pub reason: UnlinkReason,
}

impl Validate for HouseholdMemberUnlinked {
    fn validate(&self, at: &str, v: &mut Violations) {
        check_person(&self.person, &format!("{at}.person"), v);
    }
}

/// How a member came to be employed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EmploymentKind {
    /// Hired by an employer.
    Hired,
    /// On a public-welfare post.
    PublicWelfarePost,
    /// Self-employed.
    SelfEmployed,
    /// Flexible work.
    FlexibleWork,
}

/// `household_cleared`: at least one member is employed, so the household leaves the list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HouseholdCleared {
    /// The member whose employment clears the household.
    pub employed_member: StreamId,
    /// How that member is employed.
    pub employment: EmploymentKind,
}

impl Validate for HouseholdCleared {
    fn validate(&self, at: &str, v: &mut Violations) {
        check_person(&self.employed_member, &format!("{at}.employed_member"), v);
    }
}

/// Why a household left the list other than by a member's employment (local exit rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HouseholdExitReason {
    /// Stable business income.
    StableBusinessIncome,
    /// Three referrals refused without good reason.
    ReferralsRefused,
    /// No contact for three consecutive months.
    NoContactThreeMonths,
    /// No willingness or capacity to work.
    NoWillingnessOrCapacity,
    /// The household moved away.
    MovedAway,
}

/// `household_exited`: the household left the list under a local exit rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HouseholdExited {
    /// Why.
    pub reason: HouseholdExitReason,
}

/// Why a household is on the list again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReidentifyReason {
    /// The employed member lost the job.
    MemberLostJob,
    /// The employed member left the household.
    EmployedMemberLeft,
    /// Business income stopped.
    BusinessIncomeStopped,
}

/// `household_reidentified`: a household that fell back is on the list again; its clock restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HouseholdReidentified {
    /// Why.
    pub reason: ReidentifyReason,
}

super::no_further_rules!(HouseholdExited, HouseholdReidentified);
