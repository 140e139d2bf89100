//! The case lifecycle: opened, assigned, transferred, suspended, closed, reopened.

use super::person::Group;
use crate::ids::StaffId;
use crate::region::RegionCode;
use crate::violation::{Validate, Violations};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What opened a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OpenReason {
    /// A monitoring alert.
    Alert,
    /// The person asked for help.
    RequestForHelp,
    /// Registration at a service point.
    Registration,
    /// Identification (employment difficulty, zero-employment household).
    Identification,
    /// Referral from another office.
    Referral,
}

/// `case_opened`: assistance starts for the subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseOpened {
    /// The key groups the subject belongs to; at least one.
    pub groups: Vec<Group>,
    /// What opened it.
    pub reason: OpenReason,
}

impl Validate for CaseOpened {
    fn validate(&self, at: &str, v: &mut Violations) {
        v.check(
            !self.groups.is_empty(),
            format!("{at}.groups"),
            "must list at least one key group",
        );
    }
}

/// `case_assigned`: a caseworker takes the case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseAssigned {
    /// The caseworker's pseudonymous id.
    pub caseworker: StaffId,
}

/// Why a case moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransferReason {
    /// The person moved for work (inter-province labour cooperation).
    Migration,
    /// Workload balancing.
    Workload,
    /// The caseworker left.
    CaseworkerLeft,
}

/// `case_transferred`: the case moves to another caseworker, another region, or both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseTransferred {
    /// The new caseworker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_caseworker: Option<StaffId>,
    /// The new region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_region: Option<RegionCode>,
    /// Why.
    pub reason: TransferReason,
}

impl Validate for CaseTransferred {
    fn validate(&self, at: &str, v: &mut Violations) {
        v.check(
            self.to_caseworker.is_some() || self.to_region.is_some(),
            at,
            "must name to_caseworker, to_region, or both",
        );
    }
}

/// Why a case is on hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SuspendReason {
    /// The person cannot be reached.
    PersonUnreachable,
    /// The person is in hospital.
    PersonHospitalised,
    /// The person asked for a pause.
    PersonRequested,
    /// The person is in full-time education.
    InEducation,
}

/// `case_suspended`: the case is on hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseSuspended {
    /// Why.
    pub reason: SuspendReason,
}

/// Why a case closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// In stable work.
    StablyEmployed,
    /// Moved away.
    MovedAway,
    /// No longer in a key group.
    NoLongerEligible,
    /// Declined assistance.
    DeclinedAssistance,
    /// Reached retirement age.
    ReachedRetirementAge,
    /// Died.
    Died,
}

/// `case_closed`: assistance ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseClosed {
    /// Why.
    pub reason: CloseReason,
}

/// Why a case reopened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReopenReason {
    /// A new monitoring alert.
    NewAlert,
    /// The person lost the job.
    JobLost,
    /// The person asked for help again.
    RequestForHelp,
    /// The suspension ended.
    SuspensionEnded,
}

/// `case_reopened`: a closed or suspended case is active again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseReopened {
    /// Why.
    pub reason: ReopenReason,
}

super::no_further_rules!(CaseAssigned, CaseSuspended, CaseClosed, CaseReopened);
