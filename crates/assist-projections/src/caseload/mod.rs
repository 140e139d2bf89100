//! The caseload: per case subject, where the case stands, who holds it, and since when.

use assist_catalog::events::person::Group;
use assist_catalog::{Event, EventData, SubjectKind};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Where a case stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Known (registered, or a fact recorded) but no assistance opened.
    Registered,
    /// An alert or identification; nobody reached yet.
    Alerted,
    /// The person was reached.
    Contacted,
    /// Visited, needs assessed.
    Assessed,
    /// Job offers pushed.
    OffersPushed,
    /// In training.
    InTraining,
    /// In work (hired, self-employed, flexible work; a household cleared).
    Placed,
    /// In work and being followed up.
    InFollowUp,
    /// On hold.
    Suspended,
    /// Closed.
    Closed,
}

impl Stage {
    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Registered => "registered",
            Stage::Alerted => "alerted",
            Stage::Contacted => "contacted",
            Stage::Assessed => "assessed",
            Stage::OffersPushed => "offers_pushed",
            Stage::InTraining => "in_training",
            Stage::Placed => "placed",
            Stage::InFollowUp => "in_follow_up",
            Stage::Suspended => "suspended",
            Stage::Closed => "closed",
        }
    }

    /// The stage with this name.
    pub fn parse(name: &str) -> Option<Stage> {
        [
            Stage::Registered,
            Stage::Alerted,
            Stage::Contacted,
            Stage::Assessed,
            Stage::OffersPushed,
            Stage::InTraining,
            Stage::Placed,
            Stage::InFollowUp,
            Stage::Suspended,
            Stage::Closed,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }
}

/// One case: the subject's current state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Case {
    /// The stream.
    pub subject: String,
    /// person or household.
    pub kind: &'static str,
    /// Whether assistance is open (not closed).
    pub open: bool,
    /// Where it stands.
    pub stage: Stage,
    /// Key groups, sorted.
    pub groups: Vec<String>,
    /// The caseworker holding it, or empty.
    pub caseworker: String,
    /// The region responsible.
    pub region: String,
    /// When it was (last) opened.
    pub opened_at: DateTime<Utc>,
    /// When it was closed, if it is.
    pub closed_at: Option<DateTime<Utc>>,
    /// The last fact about it.
    pub last_activity_at: DateTime<Utc>,
}

impl Case {
    fn new(event: &Event) -> Case {
        Case {
            subject: event.meta.stream.to_string(),
            kind: match event.meta.stream.kind {
                SubjectKind::Person => "person",
                SubjectKind::Household => "household",
            },
            open: false,
            stage: Stage::Registered,
            groups: Vec::new(),
            caseworker: String::new(),
            region: event.meta.actor.region.to_string(),
            opened_at: event.meta.occurred_at,
            closed_at: None,
            last_activity_at: event.meta.occurred_at,
        }
    }

    fn add_groups(&mut self, groups: &[Group]) {
        for g in groups {
            let name = serde_json::to_value(g)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            if !self.groups.contains(&name) {
                self.groups.push(name);
            }
        }
        self.groups.sort();
    }

    fn reopen(&mut self, at: DateTime<Utc>) {
        if !self.open {
            self.open = true;
            self.opened_at = at;
            self.closed_at = None;
        }
        self.stage = Stage::Alerted;
    }
}

/// Whether an event is an assistance step (as opposed to lifecycle or personal records):
/// such a step on a closed case is an audit finding.
pub fn is_assistance_step(data: &EventData) -> bool {
    !matches!(
        data,
        EventData::CaseOpened(_)
            | EventData::CaseReopened(_)
            | EventData::CaseClosed(_)
            | EventData::AlertRaised(_)
            | EventData::JobLost(_)
            | EventData::CaseAssigned(_)
            | EventData::CaseTransferred(_)
            | EventData::HouseholdIdentified(_)
            | EventData::HouseholdReidentified(_)
            | EventData::PersonRegistered(_)
            | EventData::PersonalDetailsCorrected(_)
            | EventData::PersonalDataErased(_)
            | EventData::DifficultyIdentified(_)
            | EventData::DifficultyExited(_)
    )
}

/// Applies one fact to a subject's case; creates the case on its first fact.
pub fn apply(case: &mut Option<Case>, event: &Event) {
    let c = case.get_or_insert_with(|| Case::new(event));
    let at = event.meta.occurred_at;
    c.last_activity_at = c.last_activity_at.max(at);
    // A step on a subject without an open case is recorded (and found by the auditors)
    // but does not move a case that is not there.
    if !c.open && is_assistance_step(&event.data) {
        return;
    }
    match &event.data {
        EventData::CaseOpened(o) => {
            c.reopen(at);
            c.add_groups(&o.groups);
        }
        EventData::AlertRaised(_)
        | EventData::CaseReopened(_)
        | EventData::JobLost(_)
        | EventData::HouseholdReidentified(_) => c.reopen(at),
        EventData::HouseholdIdentified(h) => {
            c.reopen(at);
            c.region = h.region.to_string();
            c.add_groups(&[Group::ZeroEmploymentHousehold]);
        }
        EventData::PersonRegistered(p) => {
            c.region = p.region.to_string();
            c.add_groups(&p.groups);
        }
        EventData::DifficultyIdentified(_) => c.add_groups(&[Group::EmploymentDifficulty]),
        EventData::CaseAssigned(a) => c.caseworker = a.caseworker.to_string(),
        EventData::CaseTransferred(t) => {
            if let Some(cw) = &t.to_caseworker {
                c.caseworker = cw.to_string();
            }
            if let Some(r) = &t.to_region {
                c.region = r.to_string();
            }
        }
        EventData::ContactMade(_) => c.stage = Stage::Contacted,
        EventData::HomeVisitCompleted(_) => c.stage = Stage::Assessed,
        EventData::JobOfferPushed(_) | EventData::InterviewHeld(_) => c.stage = Stage::OffersPushed,
        EventData::TrainingEnrolled(_) | EventData::TrainingSessionAttended(_) => {
            c.stage = Stage::InTraining
        }
        EventData::TrainingCompleted(_)
        | EventData::TrainingCertified(_)
        | EventData::TrainingDroppedOut(_)
            if c.stage == Stage::InTraining =>
        {
            c.stage = Stage::Assessed
        }
        EventData::Hired(_)
        | EventData::SelfEmployed(_)
        | EventData::FlexibleWorkStarted(_)
        | EventData::HouseholdCleared(_) => c.stage = Stage::Placed,
        EventData::RetentionFollowedUp(r) => {
            c.stage = if r.still_employed {
                Stage::InFollowUp
            } else {
                Stage::Alerted
            }
        }
        EventData::CaseSuspended(_) => c.stage = Stage::Suspended,
        EventData::CaseClosed(_) | EventData::HouseholdExited(_) => {
            c.open = false;
            c.stage = Stage::Closed;
            c.closed_at = Some(at);
        }
        _ => {}
    }
}

pub mod query;

/// A case's next deadline as the views keep it (`cases.next_step`, `next_due`,
/// `next_moves`): the earliest deadline among its open clocks, ties by clock id, so that a
/// caseload is paged in deadline order by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextDeadline<'a> {
    /// No clock runs.
    None,
    /// This clock is due first, at this deadline (pauses included).
    Fixed(&'a crate::sla::Clock, DateTime<Utc>),
    /// A clock is paused, so its deadline moves with the time: computed when read.
    Moving,
}

/// The next deadline of a case with `clocks` (any of them; the open ones count), for facts
/// that have all occurred: a resumed pause has moved a deadline for good.
pub fn next_deadline<'a>(
    clocks: &'a [crate::sla::Clock],
    calendar: &crate::sla::Calendar,
) -> NextDeadline<'a> {
    let open = || clocks.iter().filter(|c| c.is_open());
    if open().any(|c| c.pauses.iter().any(|p| p.resumed_at.is_none())) {
        return NextDeadline::Moving;
    }
    open()
        .map(|c| (c.effective_due(DateTime::<Utc>::MAX_UTC, calendar), c))
        .min_by(|(a, x), (b, y)| (a, &x.clock_id).cmp(&(b, &y.clock_id)))
        .map_or(NextDeadline::None, |(due, c)| NextDeadline::Fixed(c, due))
}
