//! Job referral and placement (岗位推送, 就业安置), retention follow-ups, and jobs lost again.

use super::response::{Employer, WagePeriod};
use crate::violation::{Validate, Violations};
use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How an interview went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InterviewOutcome {
    /// Passed.
    Passed,
    /// Failed.
    Failed,
    /// The person did not come.
    NoShow,
    /// Not decided yet.
    Pending,
}

/// `interview_held`: an interview with an employer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InterviewHeld {
    /// The offer it came from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_id: Option<Uuid>,
    /// The employer.
    pub employer: Employer,
    /// How it went.
    pub outcome: InterviewOutcome,
}

impl Validate for InterviewHeld {
    fn validate(&self, at: &str, v: &mut Violations) {
        self.employer.validate(&format!("{at}.employer"), v);
    }
}

/// The kind of employment contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContractKind {
    /// Open-ended contract.
    OpenEnded,
    /// Fixed-term contract.
    FixedTerm,
    /// Seasonal work.
    Seasonal,
    /// No written contract.
    None,
}

/// `hired`: the person was hired, possibly on a public-welfare post (公益性岗位).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Hired {
    /// The offer it came from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_id: Option<Uuid>,
    /// The employer.
    pub employer: Employer,
    /// The job's title.
    pub job_title: String,
    /// Wage in yuan per `wage_period`.
    #[schemars(range(min = 0))]
    pub wage: f64,
    /// What the wage is paid for.
    pub wage_period: WagePeriod,
    /// The contract.
    pub contract: ContractKind,
    /// A public-welfare post created by the government.
    pub public_welfare_post: bool,
    /// First working day.
    pub starts_on: NaiveDate,
}

impl Validate for Hired {
    fn validate(&self, at: &str, v: &mut Violations) {
        self.employer.validate(&format!("{at}.employer"), v);
        v.label(&self.job_title, &format!("{at}.job_title"), 200);
        v.non_negative(self.wage, &format!("{at}.wage"));
    }
}

/// The kind of business a self-employed person runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BusinessKind {
    /// A shop.
    Retail,
    /// Food and drink.
    Catering,
    /// Farming, breeding.
    Agriculture,
    /// Transport.
    Transport,
    /// Services.
    Services,
    /// Online shop or live-streaming.
    Online,
}

/// `self_employed`: the person started their own business.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SelfEmployed {
    /// The kind of business.
    pub business: BusinessKind,
    /// Registered as an individual business.
    pub registered: bool,
    /// First day of business.
    pub starts_on: NaiveDate,
}

/// The kind of flexible or gig work (零工).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FlexibleKind {
    /// Delivery rider.
    Delivery,
    /// Ride-hailing driver.
    RideHailing,
    /// Domestic work.
    Domestic,
    /// Day labour on building sites.
    Construction,
    /// Found at a gig market (零工市场).
    GigMarket,
}

/// `flexible_work_started`: the person started flexible work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlexibleWorkStarted {
    /// The kind of work.
    pub kind: FlexibleKind,
    /// First day.
    pub starts_on: NaiveDate,
}

/// `retention_followed_up`: a job retention follow-up (稳岗回访).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionFollowedUp {
    /// The person is still in work.
    pub still_employed: bool,
    /// Whole months in work so far.
    pub months_in_work: u32,
}

/// Why a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobLossReason {
    /// Dismissed.
    Dismissed,
    /// The contract ended.
    ContractEnded,
    /// The employer closed.
    EmployerClosed,
    /// The person quit.
    Quit,
    /// Health.
    Health,
}

/// `job_lost`: the person lost the job again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobLost {
    /// Why.
    pub reason: JobLossReason,
}

super::no_further_rules!(
    SelfEmployed,
    FlexibleWorkStarted,
    RetentionFollowedUp,
    JobLost
);
