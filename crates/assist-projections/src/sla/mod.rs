//! SLA clocks: policies as data, a holiday calendar, and the fold that starts, meets,
//! pauses and cancels clocks from facts.

pub mod calendar;
pub mod clock;
pub mod policy;

pub use calendar::Calendar;
pub use clock::{Clock, Pause, Status};
pub use policy::{DayKind, Policy};

use assist_catalog::{Event, EventData};
use serde_json::Value;

/// The policies in force and the calendar their working days use.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// The policies.
    pub policies: Vec<Policy>,
    /// The holiday calendar.
    pub calendar: Calendar,
}

/// The shipped policies and calendars (`policies/`), compiled in; a deployment may load
/// others from files with [`Rules::from_files`].
pub const SHIPPED_POLICIES: &[(&str, &str)] = &[
    (
        "response-2473.toml",
        include_str!("../../../../policies/response-2473.toml"),
    ),
    (
        "household-clearing.toml",
        include_str!("../../../../policies/household-clearing.toml"),
    ),
    (
        "retention-followup.toml",
        include_str!("../../../../policies/retention-followup.toml"),
    ),
    (
        "training-subsidy.toml",
        include_str!("../../../../policies/training-subsidy.toml"),
    ),
];

/// The shipped holiday calendars, one per year.
pub const SHIPPED_CALENDARS: &[(&str, &str)] = &[
    (
        "cn-2025.toml",
        include_str!("../../../../policies/calendars/cn-2025.toml"),
    ),
    (
        "cn-2026.toml",
        include_str!("../../../../policies/calendars/cn-2026.toml"),
    ),
];

/// Why rules could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// A policy file is wrong.
    #[error(transparent)]
    Policy(#[from] policy::PolicyError),
    /// A calendar file is wrong.
    #[error(transparent)]
    Calendar(#[from] calendar::CalendarError),
    /// Two policies share an id.
    #[error("two policies have the id {0:?}")]
    DuplicateId(String),
}

impl Rules {
    /// Rules from (file name, text) pairs of policies and calendars.
    pub fn from_files(
        policies: &[(&str, &str)],
        calendars: &[(&str, &str)],
    ) -> Result<Self, RulesError> {
        let mut rules = Rules::default();
        for (file, text) in calendars {
            rules.calendar.add_year(file, text)?;
        }
        for (file, text) in policies {
            let p = Policy::parse(file, text)?;
            if rules.policies.iter().any(|q| q.id == p.id) {
                return Err(RulesError::DuplicateId(p.id));
            }
            rules.policies.push(p);
        }
        Ok(rules)
    }

    /// The shipped rules.
    pub fn shipped() -> Result<Self, RulesError> {
        Self::from_files(SHIPPED_POLICIES, SHIPPED_CALENDARS)
    }

    fn due(
        &self,
        policy: &Policy,
        start: chrono::DateTime<chrono::Utc>,
        days: u32,
    ) -> chrono::DateTime<chrono::Utc> {
        match policy.days {
            DayKind::Calendar => Calendar::add_calendar_days(start, days),
            DayKind::Working => self.calendar.add_working_days(start, days),
        }
    }
}

/// Who is responsible for a subject's clocks right now.
#[derive(Debug, Clone, Default)]
pub struct Responsibility {
    /// The region code.
    pub region: String,
    /// The caseworker, or empty.
    pub caseworker: String,
}

fn key_of(data: &Value, key: &Option<String>) -> String {
    match key {
        None => String::new(),
        Some(k) => match data.get(k) {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        },
    }
}

/// Applies one fact to a subject's clocks: cancels, meets, pauses and resumes running
/// clocks, then starts new ones. `clocks` holds the subject's open clocks (and receives
/// the new ones); it is a pure fold: no clock, no I/O.
pub fn apply(rules: &Rules, clocks: &mut Vec<Clock>, event: &Event, who: &Responsibility) {
    let name = event.data.type_name();
    let at = event.meta.occurred_at;
    let id = event.meta.event_id;
    let data = event.data.to_data();
    for policy in &rules.policies {
        let key = key_of(&data, &policy.key);
        let mine = |c: &Clock| {
            c.policy == policy.id && c.is_open() && (policy.key.is_none() || c.key == key)
        };
        if policy.cancelled_by.iter().any(|t| t == name) {
            for c in clocks.iter_mut().filter(|c| mine(c)) {
                c.cancelled_at = Some(at);
                c.end_event = Some(id);
            }
        }
        for step in policy.steps.iter().filter(|s| s.met_by == name) {
            for c in clocks.iter_mut().filter(|c| mine(c) && c.step == step.id) {
                c.count += 1;
                if c.count >= c.needed {
                    c.met_at = Some(at);
                    c.end_event = Some(id);
                }
            }
        }
        if policy.starts_on.iter().any(|t| t == name) {
            let running = clocks.iter().any(&mine);
            if running && !policy.restart {
                continue;
            }
            for c in clocks.iter_mut().filter(|c| mine(c)) {
                c.cancelled_at = Some(at);
                c.end_event = Some(id);
            }
            for step in &policy.steps {
                clocks.push(Clock {
                    clock_id: format!("{}/{}/{}", policy.id, step.id, id),
                    subject: event.meta.stream.to_string(),
                    policy: policy.id.clone(),
                    step: step.id.clone(),
                    key: key.clone(),
                    region: who.region.clone(),
                    caseworker: who.caseworker.clone(),
                    started_at: at,
                    due_at: rules.due(policy, at, step.within_days),
                    count: 0,
                    needed: step.count,
                    met_at: None,
                    cancelled_at: None,
                    start_event: id,
                    end_event: None,
                    pauses: Vec::new(),
                });
            }
        }
    }
    match &event.data {
        EventData::ClockPaused(p) => {
            for c in clocks.iter_mut().filter(|c| c.is_open() && !c.is_paused()) {
                if p.policy.as_ref().is_none_or(|pol| *pol == c.policy) {
                    c.pauses.push(Pause {
                        paused_at: at,
                        resumed_at: None,
                        pause_event: id,
                        resume_event: None,
                    });
                }
            }
        }
        EventData::ClockResumed(r) => {
            for c in clocks.iter_mut().filter(|c| c.is_open() && c.is_paused()) {
                if r.policy.as_ref().is_none_or(|pol| *pol == c.policy) {
                    if let Some(p) = c.pauses.last_mut() {
                        p.resumed_at = Some(at.max(p.paused_at));
                        p.resume_event = Some(id);
                    }
                }
            }
        }
        EventData::CaseAssigned(a) => {
            for c in clocks.iter_mut().filter(|c| c.is_open()) {
                c.caseworker = a.caseworker.to_string();
            }
        }
        EventData::CaseTransferred(t) => {
            for c in clocks.iter_mut().filter(|c| c.is_open()) {
                if let Some(cw) = &t.to_caseworker {
                    c.caseworker = cw.to_string();
                }
                if let Some(r) = &t.to_region {
                    c.region = r.to_string();
                }
            }
        }
        _ => {}
    }
}

pub mod report;
