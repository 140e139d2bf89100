//! Vocational skills training (职业技能培训): referral to subsidy.

use crate::violation::{Validate, Violations};
use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `training_referred`: the person was referred to a course.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainingReferred {
    /// The course's id.
    pub course_id: String,
    /// The course's name.
    pub course_name: String,
    /// The training provider.
    pub provider: String,
    /// Whether the course is subsidised.
    pub subsidised: bool,
}

impl Validate for TrainingReferred {
    fn validate(&self, at: &str, v: &mut Violations) {
        v.label(&self.course_id, &format!("{at}.course_id"), 64);
        v.label(&self.course_name, &format!("{at}.course_name"), 200);
        v.label(&self.provider, &format!("{at}.provider"), 200);
    }
}

/// `training_enrolled`: the person enrolled in a course.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainingEnrolled {
    /// The course's id.
    pub course_id: String,
    /// First day of the course.
    pub starts_on: NaiveDate,
    /// Last day of the course.
    pub ends_on: NaiveDate,
}

impl Validate for TrainingEnrolled {
    fn validate(&self, at: &str, v: &mut Violations) {
        v.label(&self.course_id, &format!("{at}.course_id"), 64);
        v.check(
            self.ends_on >= self.starts_on,
            format!("{at}.ends_on"),
            format!("{} is before starts_on {}", self.ends_on, self.starts_on),
        );
    }
}

/// `training_session_attended`: one session attended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainingSessionAttended {
    /// The course's id.
    pub course_id: String,
    /// The day of the session.
    pub session_on: NaiveDate,
    /// Hours attended, more than 0 and at most 24.
    #[schemars(range(min = 0, max = 24))]
    pub hours: f64,
}

impl Validate for TrainingSessionAttended {
    fn validate(&self, at: &str, v: &mut Violations) {
        v.label(&self.course_id, &format!("{at}.course_id"), 64);
        v.check(
            self.hours > 0.0 && self.hours <= 24.0,
            format!("{at}.hours"),
            format!(
                "must be more than 0 and at most 24, got {}",
                crate::violation::number(self.hours)
            ),
        );
    }
}

/// `training_completed`: the course was completed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainingCompleted {
    /// The course's id.
    pub course_id: String,
    /// Hours attended in all.
    #[schemars(range(min = 0))]
    pub total_hours: f64,
}

impl Validate for TrainingCompleted {
    fn validate(&self, at: &str, v: &mut Violations) {
        v.label(&self.course_id, &format!("{at}.course_id"), 64);
        v.non_negative(self.total_hours, &format!("{at}.total_hours"));
    }
}

/// `training_certified`: a vocational skill level certificate (职业技能等级证书) was awarded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainingCertified {
    /// The course's id.
    pub course_id: String,
    /// The occupation certified.
    pub occupation: String,
    /// The skill level, 1 (senior technician) to 5 (junior).
    #[schemars(range(min = 1, max = 5))]
    pub level: u8,
}

impl Validate for TrainingCertified {
    fn validate(&self, at: &str, v: &mut Violations) {
        v.label(&self.course_id, &format!("{at}.course_id"), 64);
        v.label(&self.occupation, &format!("{at}.occupation"), 200);
        v.check(
            (1..=5).contains(&self.level),
            format!("{at}.level"),
            format!("must be 1 to 5, got {}", self.level),
        );
    }
}

/// Why a person left a course early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DropoutReason {
    /// Found work.
    FoundWork,
    /// Health.
    Health,
    /// Family duties.
    Family,
    /// Lost interest.
    LostInterest,
}

/// `training_dropped_out`: the person left the course.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainingDroppedOut {
    /// The course's id.
    pub course_id: String,
    /// Why.
    pub reason: DropoutReason,
}

impl Validate for TrainingDroppedOut {
    fn validate(&self, at: &str, v: &mut Violations) {
        v.label(&self.course_id, &format!("{at}.course_id"), 64);
    }
}

/// `training_subsidy_claimed`: a training subsidy was claimed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainingSubsidyClaimed {
    /// The course's id.
    pub course_id: String,
    /// Id of the claim, referred to when it is paid.
    pub claim_id: Uuid,
    /// Amount in yuan.
    #[schemars(range(min = 0))]
    pub amount: f64,
}

/// `training_subsidy_paid`: a claimed subsidy was paid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainingSubsidyPaid {
    /// The course's id.
    pub course_id: String,
    /// The claim paid.
    pub claim_id: Uuid,
    /// Amount in yuan.
    #[schemars(range(min = 0))]
    pub amount: f64,
}

impl Validate for TrainingSubsidyClaimed {
    fn validate(&self, at: &str, v: &mut Violations) {
        v.label(&self.course_id, &format!("{at}.course_id"), 64);
        v.non_negative(self.amount, &format!("{at}.amount"));
    }
}

impl Validate for TrainingSubsidyPaid {
    fn validate(&self, at: &str, v: &mut Violations) {
        v.label(&self.course_id, &format!("{at}.course_id"), 64);
        v.non_negative(self.amount, &format!("{at}.amount"));
    }
}
