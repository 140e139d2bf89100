//! The "2473" response (就业帮扶响应机制): contact, home visit with needs assessment,
//! job offers, and the pauses of its clocks.

use crate::region::RegionCode;
use crate::violation::{Validate, Violations};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How a caseworker reached or tried to reach the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContactChannel {
    /// A phone call.
    Phone,
    /// A visit at home.
    HomeVisit,
    /// At a service window or station.
    ServicePoint,
    /// Online or by message.
    Online,
}

/// `contact_made`: the person was reached (the "2" of 2473).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactMade {
    /// The alert this responds to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_id: Option<Uuid>,
    /// How.
    pub channel: ContactChannel,
}

/// Why a contact attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContactFailure {
    /// Nobody answered.
    NoAnswer,
    /// The number on file is wrong.
    WrongNumber,
    /// Nobody at home.
    NotAtHome,
    /// The person refused to talk.
    Refused,
}

/// `contact_attempt_failed`: a try that did not reach the person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactAttemptFailed {
    /// The alert this responds to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_id: Option<Uuid>,
    /// How it was tried.
    pub channel: ContactChannel,
    /// Why it failed.
    pub reason: ContactFailure,
}

/// A need found in the assessment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Need {
    /// A job.
    JobPlacement,
    /// Skills training.
    Training,
    /// Help to start a business.
    Entrepreneurship,
    /// A public-welfare post.
    PublicWelfarePost,
    /// Childcare so the person can work.
    Childcare,
    /// Emergency relief.
    EmergencyRelief,
}

/// `home_visit_completed`: a visit with a needs assessment (the "4" of 2473).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HomeVisitCompleted {
    /// The alert this responds to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_id: Option<Uuid>,
    /// The needs found; at least one.
    pub needs: Vec<Need>,
    /// The person wants to work.
    pub wants_work: bool,
    /// The person is able to work.
    pub able_to_work: bool,
}

impl Validate for HomeVisitCompleted {
    fn validate(&self, at: &str, v: &mut Violations) {
        v.check(
            !self.needs.is_empty(),
            format!("{at}.needs"),
            "must list at least one need",
        );
    }
}

/// The period a wage is paid for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WagePeriod {
    /// Per month.
    Month,
    /// Per day (gig work).
    Day,
    /// Per hour.
    Hour,
}

/// An employer, by its public registration code and name (organisations are not personal data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Employer {
    /// Unified social credit code or another stable employer id.
    pub id: String,
    /// The employer's name.
    pub name: String,
}

impl Validate for Employer {
    fn validate(&self, at: &str, v: &mut Violations) {
        v.label(&self.id, &format!("{at}.id"), 64);
        v.label(&self.name, &format!("{at}.name"), 200);
    }
}

/// `job_offer_pushed` (version 2): a suitable job pushed to the person (the "3" of 2473).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobOfferPushed {
    /// Id of this offer, referred to by interviews and hires.
    pub offer_id: Uuid,
    /// The job's id in the job board.
    pub job_id: String,
    /// The job's title.
    pub job_title: String,
    /// Who offers it.
    pub employer: Employer,
    /// Wage in yuan per `wage_period`.
    #[schemars(range(min = 0))]
    pub wage: f64,
    /// What the wage is paid for.
    pub wage_period: WagePeriod,
    /// Where the job is.
    pub location: RegionCode,
}

impl Validate for JobOfferPushed {
    fn validate(&self, at: &str, v: &mut Violations) {
        v.label(&self.job_id, &format!("{at}.job_id"), 64);
        v.label(&self.job_title, &format!("{at}.job_title"), 200);
        self.employer.validate(&format!("{at}.employer"), v);
        v.non_negative(self.wage, &format!("{at}.wage"));
    }
}

/// `job_offer_pushed` version 1: the wage was always monthly. Read as version 2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobOfferPushedV1 {
    /// Id of this offer.
    pub offer_id: Uuid,
    /// The job's id in the job board.
    pub job_id: String,
    /// The job's title.
    pub job_title: String,
    /// Who offers it.
    pub employer: Employer,
    /// Monthly wage in yuan.
    #[schemars(range(min = 0))]
    pub monthly_wage: f64,
    /// Where the job is.
    pub location: RegionCode,
}

impl Validate for JobOfferPushedV1 {
    fn validate(&self, at: &str, v: &mut Violations) {
        v.label(&self.job_id, &format!("{at}.job_id"), 64);
        v.label(&self.job_title, &format!("{at}.job_title"), 200);
        self.employer.validate(&format!("{at}.employer"), v);
        v.non_negative(self.monthly_wage, &format!("{at}.monthly_wage"));
    }
}

impl From<JobOfferPushedV1> for JobOfferPushed {
    fn from(v1: JobOfferPushedV1) -> Self {
        JobOfferPushed {
            offer_id: v1.offer_id,
            job_id: v1.job_id,
            job_title: v1.job_title,
            employer: v1.employer,
            wage: v1.monthly_wage,
            wage_period: WagePeriod::Month,
            location: v1.location,
        }
    }
}

/// Why an SLA clock waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PauseReason {
    /// The person cannot be reached.
    PersonUnreachable,
    /// The person is in hospital.
    PersonHospitalised,
    /// The person asked to wait.
    PersonRequested,
    /// Waiting for documents from the person.
    AwaitingDocuments,
}

/// Why an SLA clock runs again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResumeReason {
    /// The person is reachable again.
    PersonReachable,
    /// The person left hospital.
    PersonDischarged,
    /// The person is ready.
    PersonReady,
    /// The documents arrived.
    DocumentsReceived,
}

/// `clock_paused`: the service waits on the person, which is not the service's delay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClockPaused {
    /// Why.
    pub reason: PauseReason,
    /// The policy whose clocks wait (e.g. `response-2473`); all running clocks of the subject when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

/// `clock_resumed`: the clocks paused for the subject run again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClockResumed {
    /// Why.
    pub reason: ResumeReason,
    /// The policy whose clocks run again; all paused clocks of the subject when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

fn check_policy(policy: &Option<String>, at: &str, v: &mut Violations) {
    if let Some(p) = policy {
        let ok = !p.is_empty()
            && p.len() <= 40
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        v.check_with(ok, format!("{at}.policy"), || {
            format!(
                "policy id ({}) must be 1 to 40 characters of a-z 0-9 -",
                crate::violation::text(p)
            )
        });
    }
}

impl Validate for ClockPaused {
    fn validate(&self, at: &str, v: &mut Violations) {
        check_policy(&self.policy, at, v);
    }
}

impl Validate for ClockResumed {
    fn validate(&self, at: &str, v: &mut Violations) {
        check_policy(&self.policy, at, v);
    }
}

super::no_further_rules!(ContactMade, ContactAttemptFailed);
