//! People with employment difficulties (就业困难人员): identification by category and exit.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The category under which a person was identified (set per province; these are common ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DifficultyCategory {
    /// Registered unemployed 6+ months and older (women 45+, men 55+).
    OlderLongRegisteredUnemployed,
    /// Member of a zero-employment household.
    ZeroEmploymentHouseholdMember,
    /// Long-term unemployment-insurance recipient.
    LongTermInsuranceRecipient,
    /// Member of a minimum-living-allowance household.
    MinimumLivingAllowanceHousehold,
    /// Holder of a disability certificate.
    DisabilityCertificate,
}

/// `difficulty_identified`: identified (认定) as a person with employment difficulties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DifficultyIdentified {
    /// The category.
    pub category: DifficultyCategory,
}

/// Why the status ended (退出).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DifficultyExitReason {
    /// In stable work.
    StablyEmployed,
    /// The conditions are no longer met.
    ConditionsNoLongerMet,
    /// Reached retirement age.
    ReachedRetirementAge,
    /// Moved away.
    MovedAway,
}

/// `difficulty_exited`: the employment-difficulty status ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DifficultyExited {
    /// Why.
    pub reason: DifficultyExitReason,
}

super::no_further_rules!(DifficultyIdentified, DifficultyExited);
