//! SLA clocks: policies as data, a holiday calendar, and the fold that starts, meets,
//! pauses and cancels clocks from facts.

pub mod calendar;
pub mod clock;
pub mod policy;

pub use calendar::Calendar;
pub use clock::{AfterPauses, Clock, Pause, Status};
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
    /// Two policies share an id and the date they take effect.
    #[error("two policies have the id {0:?} and take effect on the same date; give one a later effective_from")]
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
            if rules
                .policies
                .iter()
                .any(|q| q.id == p.id && q.effective_from == p.effective_from)
            {
                return Err(RulesError::DuplicateId(p.id));
            }
            rules.policies.push(p);
        }
        // By id, then by date: a policy's versions next to each other, oldest first.
        rules
            .policies
            .sort_by(|a, b| (&a.id, a.effective_from).cmp(&(&b.id, b.effective_from)));
        Ok(rules)
    }

    /// The version of policy `id` in force at `t`: the latest whose date is not after it.
    pub fn version_at(&self, id: &str, t: chrono::DateTime<chrono::Utc>) -> Option<&Policy> {
        self.policies
            .iter()
            .rfind(|p| p.id == id && p.effective_instant() <= t)
    }

    /// Whether `policy` is the version that governs clock `c` (the one in force when it
    /// started).
    pub fn governs(&self, policy: &Policy, c: &Clock) -> bool {
        c.policy == policy.id
            && self
                .version_at(&c.policy, c.started_at)
                .is_some_and(|v| v.effective_from == policy.effective_from)
    }

    /// The policy version that governs clock `c`.
    pub fn policy_of(&self, c: &Clock) -> Option<&Policy> {
        self.version_at(&c.policy, c.started_at)
    }

    /// A stable hash of the policies and the calendar as read (not of their files' bytes:
    /// a comment changes nothing), recorded with each view generation.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for p in &self.policies {
            h.update(
                format!(
                    "{:?}\n",
                    (
                        &p.id,
                        &p.name,
                        p.days,
                        &p.starts_on,
                        &p.cancelled_by,
                        p.restart,
                        &p.key,
                        &p.steps,
                        p.effective_from
                    )
                )
                .as_bytes(),
            );
        }
        h.update(self.calendar.canonical().as_bytes());
        hex::encode(&h.finalize()[..8])
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

/// Who is responsible for a subject's clocks right now (borrowed from its case: copied
/// only into the clocks a fact starts).
#[derive(Debug, Clone, Copy, Default)]
pub struct Responsibility<'a> {
    /// The region code.
    pub region: &'a str,
    /// The caseworker, or empty.
    pub caseworker: &'a str,
}

fn key_of(data: &Value, key: &str) -> String {
    match data.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => String::new(),
    }
}

/// Applies one fact to a subject's clocks: cancels, meets, pauses and resumes running
/// clocks, then starts new ones. `clocks` holds the subject's open clocks (and receives
/// the new ones); it is a pure fold: no clock, no I/O.
pub fn apply(rules: &Rules, clocks: &mut Vec<Clock>, event: &Event, who: Responsibility<'_>) {
    let name = event.data.type_name();
    let at = event.meta.occurred_at;
    let id = event.meta.event_id;
    // The fact's data as JSON, made only for a keyed policy that the fact concerns (most
    // facts concern none: making it for each was a good share of the fold's time).
    let mut data: Option<Value> = None;
    let versions = rules.policies.iter().any(|p| p.effective_from.is_some());
    for policy in &rules.policies {
        // Under policies with versions, a running clock follows the version it started
        // under, and only the version in force now starts clocks.
        let governs = |c: &Clock| !versions || rules.governs(policy, c);
        let in_force = !versions
            || rules
                .version_at(&policy.id, at)
                .is_some_and(|v| v.effective_from == policy.effective_from);
        let key = match &policy.key {
            Some(k) if policy.concerns(name) => {
                key_of(data.get_or_insert_with(|| event.data.to_data()), k)
            }
            _ => String::new(),
        };
        let same = |c: &Clock| {
            c.policy == policy.id && c.is_open() && (policy.key.is_none() || c.key == key)
        };
        let mine = |c: &Clock| same(c) && governs(c);
        if policy.cancelled_by.iter().any(|t| t == name) {
            // A cancelling fact without the key (a case closed) cancels every clock of the policy.
            let cancels = |c: &Clock| {
                c.policy == policy.id
                    && c.is_open()
                    && (key.is_empty() || c.key == key)
                    && governs(c)
            };
            for c in clocks.iter_mut().filter(|c| cancels(c)) {
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
        if in_force && policy.starts_on.iter().any(|t| t == name) {
            // A clock of an earlier version still running counts as running.
            let running = clocks.iter().any(&same);
            if running && !policy.restart {
                continue;
            }
            for c in clocks.iter_mut().filter(|c| same(c)) {
                c.cancelled_at = Some(at);
                c.end_event = Some(id);
            }
            for step in &policy.steps {
                clocks.push(Clock {
                    clock_id: format!("{}/{}/{}", policy.id, step.id, id),
                    subject: event.meta.stream.name(),
                    policy: policy.id.clone(),
                    step: step.id.clone(),
                    key: key.clone(),
                    region: who.region.to_string(),
                    caseworker: who.caseworker.to_string(),
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
                    // Under a working-day policy the pause counts in working time (see `Pause`).
                    let in_working_time = rules
                        .policy_of(c)
                        .is_some_and(|pol| pol.days == DayKind::Working);
                    c.pauses.push(Pause {
                        paused_at: at,
                        resumed_at: None,
                        pause_event: id,
                        resume_event: None,
                        in_working_time,
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

#[cfg(test)]
mod tests {
    //! Given facts, when one more arrives, then the clocks: the policy text as tests.
    use super::*;
    use assist_catalog::events::case::{CaseClosed, CloseReason};
    use assist_catalog::events::household::{
        HouseholdIdentified, HouseholdReidentified, ReidentifyReason,
    };
    use assist_catalog::events::monitoring::{AlertRaised, AlertSource, AlertTrigger};
    use assist_catalog::events::response::{
        ClockPaused, ClockResumed, ContactChannel, ContactMade, Employer, JobOfferPushed,
        PauseReason, ResumeReason, WagePeriod,
    };
    use assist_catalog::events::training::{TrainingSubsidyClaimed, TrainingSubsidyPaid};
    use assist_catalog::{Actor, RegionCode, Role, StaffId, StreamId};
    use chrono::{Duration, TimeZone, Utc};
    use uuid::Uuid;

    fn at(day: u32, hour: u32) -> chrono::DateTime<Utc> {
        // March 2026, China time (UTC+8): day 2 is a Monday.
        Utc.with_ymd_and_hms(2026, 3, day, hour, 0, 0).unwrap() - Duration::hours(8)
    }

    fn fact(stream: StreamId, data: EventData, when: chrono::DateTime<Utc>) -> Event {
        let actor = Actor {
            id: StaffId::new("cw-1").unwrap(),
            role: Role::Caseworker,
            region: RegionCode::new("350121").unwrap(),
        };
        Event::new(stream, actor, data).occurred_at(when)
    }

    fn alert() -> EventData {
        EventData::AlertRaised(AlertRaised {
            alert_id: Uuid::now_v7(),
            trigger: AlertTrigger::JobLost,
            source: AlertSource::DataSharing,
        })
    }

    fn offer() -> EventData {
        EventData::JobOfferPushed(JobOfferPushed {
            offer_id: Uuid::now_v7(),
            job_id: "J".into(),
            job_title: "packer".into(),
            employer: Employer {
                id: "E".into(),
                name: "E".into(),
            },
            wage: 4000.0,
            wage_period: WagePeriod::Month,
            location: RegionCode::new("350121").unwrap(),
        })
    }

    fn run(facts: &[Event]) -> Vec<Clock> {
        let rules = Rules::shipped().unwrap();
        let mut clocks = Vec::new();
        for f in facts {
            apply(&rules, &mut clocks, f, Responsibility::default());
        }
        clocks
    }

    fn step<'a>(clocks: &'a [Clock], id: &str) -> Vec<&'a Clock> {
        clocks
            .iter()
            .filter(|c| format!("{}/{}", c.policy, c.step) == id)
            .collect()
    }

    #[test]
    fn an_alert_starts_the_three_2473_steps_in_working_days() {
        let p = StreamId::person(Uuid::now_v7());
        // Friday March 6, 10:00: 2 working days is Tuesday March 10, 10:00.
        let clocks = run(&[fact(p, alert(), at(6, 10))]);
        let contact = step(&clocks, "response-2473/contact");
        assert_eq!(contact.len(), 1);
        assert_eq!(contact[0].due_at, at(10, 10));
        assert_eq!(step(&clocks, "response-2473/offers")[0].needed, 3);
    }

    #[test]
    fn the_offers_step_is_met_by_the_third_offer_only() {
        let p = StreamId::person(Uuid::now_v7());
        let facts = [
            fact(p, alert(), at(2, 9)),
            fact(p, offer(), at(3, 9)),
            fact(p, offer(), at(4, 9)),
        ];
        assert!(step(&run(&facts), "response-2473/offers")[0]
            .met_at
            .is_none());
        let mut more = facts.to_vec();
        more.push(fact(p, offer(), at(5, 9)));
        assert_eq!(
            step(&run(&more), "response-2473/offers")[0].met_at,
            Some(at(5, 9))
        );
    }

    #[test]
    fn a_second_alert_while_the_response_runs_starts_no_second_clock() {
        let p = StreamId::person(Uuid::now_v7());
        let clocks = run(&[fact(p, alert(), at(2, 9)), fact(p, alert(), at(3, 9))]);
        assert_eq!(step(&clocks, "response-2473/contact").len(), 1);
    }

    #[test]
    fn a_household_identified_again_restarts_its_clearing_clock() {
        let h = StreamId::household(Uuid::now_v7());
        let identified = EventData::HouseholdIdentified(HouseholdIdentified {
            region: RegionCode::new("350121").unwrap(),
            members: vec![],
        });
        let again = EventData::HouseholdReidentified(HouseholdReidentified {
            reason: ReidentifyReason::MemberLostJob,
        });
        let clocks = run(&[fact(h, identified, at(2, 9)), fact(h, again, at(20, 9))]);
        let clearing = step(&clocks, "household-clearing/cleared");
        assert_eq!(clearing.len(), 2);
        assert_eq!(
            clearing[0].cancelled_at,
            Some(at(20, 9)),
            "the old clock stops"
        );
        assert_eq!(
            clearing[1].due_at,
            at(20, 9) + Duration::days(30),
            "the new one counts 30 days again"
        );
    }

    #[test]
    fn a_subsidy_payment_meets_only_the_clock_of_its_own_claim() {
        let p = StreamId::person(Uuid::now_v7());
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let claim = |id| {
            EventData::TrainingSubsidyClaimed(TrainingSubsidyClaimed {
                course_id: "C".into(),
                claim_id: id,
                amount: 100.0,
            })
        };
        let paid = EventData::TrainingSubsidyPaid(TrainingSubsidyPaid {
            course_id: "C".into(),
            claim_id: b,
            amount: 100.0,
        });
        let clocks = run(&[
            fact(p, claim(a), at(2, 9)),
            fact(p, claim(b), at(2, 10)),
            fact(p, paid, at(5, 9)),
        ]);
        let subsidy = step(&clocks, "training-subsidy/paid");
        assert_eq!(subsidy.len(), 2, "one clock per claim");
        assert!(subsidy
            .iter()
            .find(|c| c.key == a.to_string())
            .unwrap()
            .met_at
            .is_none());
        assert_eq!(
            subsidy
                .iter()
                .find(|c| c.key == b.to_string())
                .unwrap()
                .met_at,
            Some(at(5, 9))
        );
    }

    #[test]
    fn closing_the_case_cancels_the_running_response_and_a_contact_after_it_meets_nothing() {
        let p = StreamId::person(Uuid::now_v7());
        let close = EventData::CaseClosed(CaseClosed {
            reason: CloseReason::MovedAway,
        });
        let contact = EventData::ContactMade(ContactMade {
            alert_id: None,
            channel: ContactChannel::Phone,
        });
        let clocks = run(&[
            fact(p, alert(), at(2, 9)),
            fact(p, close, at(3, 9)),
            fact(p, contact, at(3, 10)),
        ]);
        let c = step(&clocks, "response-2473/contact")[0];
        assert_eq!((c.cancelled_at, c.met_at), (Some(at(3, 9)), None));
    }

    /// 2026, China time (UTC+8).
    fn cst(month: u32, day: u32, hour: u32) -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, month, day, hour, 0, 0).unwrap() - Duration::hours(8)
    }

    fn paused() -> EventData {
        EventData::ClockPaused(ClockPaused {
            reason: PauseReason::PersonUnreachable,
            policy: None,
        })
    }

    fn resumed() -> EventData {
        EventData::ClockResumed(ClockResumed {
            reason: ResumeReason::PersonReachable,
            policy: None,
        })
    }

    #[test]
    fn a_pause_over_a_weekend_moves_a_working_day_deadline_by_the_working_hours_inside_it() {
        let cal = Rules::shipped().unwrap().calendar;
        let p = StreamId::person(Uuid::now_v7());
        // Alert Thu 03-05 10:00: contact due Mon 03-09 10:00 (Fri 6th, Mon 9th). Paused Fri
        // 18:00 to Mon 09:00, 63 hours of wall-clock time of which 15 are working time (6 on
        // Friday, 9 on Monday): due Mon 10:00 + 15 working hours = Tue 03-10 01:00, not
        // Thu 03-12 01:00 as 63 hours would make it.
        let facts = [
            fact(p, alert(), cst(3, 5, 10)),
            fact(p, paused(), cst(3, 6, 18)),
            fact(p, resumed(), cst(3, 9, 9)),
        ];
        let clocks = run(&facts);
        let contact = step(&clocks, "response-2473/contact")[0];
        assert_eq!(contact.due_at, cst(3, 9, 10));
        assert!(contact.pauses[0].in_working_time);
        assert_eq!(contact.effective_due(cst(3, 20, 0), &cal), cst(3, 10, 1));
        assert_eq!(
            contact.status(cst(3, 10, 0), Duration::zero(), &cal),
            Status::OnTrack
        );
        assert_eq!(
            contact.status(cst(3, 10, 2), Duration::zero(), &cal),
            Status::Breached
        );
    }

    #[test]
    fn while_a_working_day_clock_is_paused_its_deadline_moves_only_on_working_days() {
        let cal = Rules::shipped().unwrap().calendar;
        let p = StreamId::person(Uuid::now_v7());
        // As above, the pause still open on Sunday 03-08 at noon: 6 working hours so far
        // (Friday 18:00 - 24:00), so the deadline stands at Mon 03-09 16:00.
        let clocks = run(&[
            fact(p, alert(), cst(3, 5, 10)),
            fact(p, paused(), cst(3, 6, 18)),
        ]);
        let contact = step(&clocks, "response-2473/contact")[0];
        assert_eq!(contact.effective_due(cst(3, 8, 12), &cal), cst(3, 9, 16));
        assert_eq!(
            contact.status(cst(3, 8, 12), Duration::zero(), &cal),
            Status::Paused
        );
    }

    #[test]
    fn a_pause_of_two_working_days_moves_a_working_day_deadline_two_working_days_past_qingming() {
        let cal = Rules::shipped().unwrap().calendar;
        let p = StreamId::person(Uuid::now_v7());
        // Alert Wed 04-01 10:00: contact due Fri 04-03 10:00. Paused Wed 12:00 to Fri 12:00:
        // 48 working hours, two working days. Sat 04-04 to Mon 04-06 are the Qingming
        // holiday, so two working days after Fri 04-03 10:00 is Wed 04-08 10:00.
        let clocks = run(&[
            fact(p, alert(), cst(4, 1, 10)),
            fact(p, paused(), cst(4, 1, 12)),
            fact(p, resumed(), cst(4, 3, 12)),
        ]);
        let contact = step(&clocks, "response-2473/contact")[0];
        assert_eq!(contact.due_at, cst(4, 3, 10));
        assert_eq!(contact.effective_due(cst(4, 30, 0), &cal), cst(4, 8, 10));
    }

    #[test]
    fn a_pause_over_a_weekend_moves_a_calendar_day_deadline_by_its_wall_clock_length() {
        let cal = Rules::shipped().unwrap().calendar;
        let h = StreamId::household(Uuid::now_v7());
        // Identified Fri 03-06 10:00: cleared within 30 calendar days, Sun 04-05 10:00.
        // Paused Fri 18:00 to Mon 03-09 09:00, 63 hours: due Wed 04-08 01:00.
        let identified = EventData::HouseholdIdentified(HouseholdIdentified {
            region: RegionCode::new("350121").unwrap(),
            members: vec![],
        });
        let clocks = run(&[
            fact(h, identified, cst(3, 6, 10)),
            fact(h, paused(), cst(3, 6, 18)),
            fact(h, resumed(), cst(3, 9, 9)),
        ]);
        let clearing = step(&clocks, "household-clearing/cleared")[0];
        assert_eq!(clearing.due_at, cst(4, 5, 10));
        assert!(!clearing.pauses[0].in_working_time);
        assert_eq!(clearing.effective_due(cst(4, 30, 0), &cal), cst(4, 8, 1));
    }

    /// The shipped rules plus a changed 2473 rule from 1 January 2027: contact within 5
    /// working days instead of 2, and being hired no longer cancels the clocks.
    fn with_2473_of_2027() -> Rules {
        let v2 = r#"
id = "response-2473"
name = "2473 response, as changed for 2027"
days = "working"
effective_from = "2027-01-01"
starts_on = ["alert_raised"]
cancelled_by = ["case_closed"]
[[steps]]
id = "contact"
within_days = 5
met_by = "contact_made"
"#;
        let mut files: Vec<(&str, &str)> = SHIPPED_POLICIES.to_vec();
        files.push(("response-2473-2027.toml", v2));
        Rules::from_files(&files, SHIPPED_CALENDARS).unwrap()
    }

    fn cn(y: i32, m: u32, d: u32, h: u32) -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap() - Duration::hours(8)
    }

    fn hired() -> EventData {
        serde_json::from_value::<assist_catalog::events::placement::Hired>(serde_json::json!({
            "offer_id": "01934a5e-0000-7000-8000-00000000f0f1",
            "employer": {"id": "E", "name": "E"}, "job_title": "packer", "wage": 4200,
            "wage_period": "month", "contract": "fixed_term", "public_welfare_post": false,
            "starts_on": "2027-01-11"
        }))
        .map(EventData::Hired)
        .unwrap()
    }

    #[test]
    fn a_clock_follows_the_policy_version_in_force_when_it_started() {
        let rules = with_2473_of_2027();
        let (old, new) = (
            StreamId::person(Uuid::now_v7()),
            StreamId::person(Uuid::now_v7()),
        );
        let mut before = Vec::new();
        let mut after = Vec::new();
        // Wednesday 30 December 2026: the old rule, 2 working days (the shipped calendar
        // has no 2027 file: weekends only). Monday 4 January 2027: the new one, 5.
        apply(
            &rules,
            &mut before,
            &fact(old, alert(), cn(2026, 12, 30, 10)),
            Responsibility::default(),
        );
        apply(
            &rules,
            &mut after,
            &fact(new, alert(), cn(2027, 1, 4, 10)),
            Responsibility::default(),
        );
        let steps = |cs: &[Clock]| -> Vec<(String, chrono::DateTime<Utc>)> {
            cs.iter().map(|c| (c.step.clone(), c.due_at)).collect()
        };
        assert_eq!(
            steps(&before),
            [
                ("contact".to_string(), cn(2027, 1, 1, 10)),
                ("visit".to_string(), cn(2027, 1, 5, 10)),
                ("offers".to_string(), cn(2027, 1, 8, 10)),
            ]
        );
        assert_eq!(
            steps(&after),
            [("contact".to_string(), cn(2027, 1, 11, 10))]
        );
        // Hired in 2027: the old clocks follow the old rule (cancelled), the new one the
        // new rule (not cancelled by a hiring).
        apply(
            &rules,
            &mut before,
            &fact(old, hired(), cn(2027, 1, 6, 9)),
            Responsibility::default(),
        );
        apply(
            &rules,
            &mut after,
            &fact(new, hired(), cn(2027, 1, 6, 9)),
            Responsibility::default(),
        );
        let response = |cs: &[Clock]| {
            cs.iter()
                .filter(|c| c.policy == "response-2473")
                .map(|c| c.is_open())
                .collect::<Vec<_>>()
        };
        assert_eq!(response(&before), [false, false, false]);
        assert_eq!(response(&after), [true]);
    }

    #[test]
    fn a_start_before_every_version_of_a_dated_policy_starts_none_of_its_clocks() {
        let v = "id='late'\nname='late'\ndays='calendar'\neffective_from='2027-01-01'\nstarts_on=['alert_raised']\n[[steps]]\nid='a'\nwithin_days=1\nmet_by='contact_made'";
        let rules = Rules::from_files(&[("late.toml", v)], SHIPPED_CALENDARS).unwrap();
        let mut clocks = Vec::new();
        let p = StreamId::person(Uuid::now_v7());
        apply(
            &rules,
            &mut clocks,
            &fact(p, alert(), cn(2026, 12, 31, 23)),
            Responsibility::default(),
        );
        assert!(clocks.is_empty());
        apply(
            &rules,
            &mut clocks,
            &fact(p, alert(), cn(2027, 1, 1, 0)),
            Responsibility::default(),
        );
        assert_eq!(clocks.len(), 1, "from 00:00 China time of its date");
    }

    #[test]
    fn two_versions_of_a_policy_need_different_dates() {
        let v = "id='response-2473'\nname='x'\ndays='working'\nstarts_on=['alert_raised']\n[[steps]]\nid='a'\nwithin_days=1\nmet_by='contact_made'";
        let mut files: Vec<(&str, &str)> = SHIPPED_POLICIES.to_vec();
        files.push(("again.toml", v));
        let e = Rules::from_files(&files, SHIPPED_CALENDARS).unwrap_err();
        assert!(
            e.to_string().contains("take effect on the same date"),
            "{e}"
        );
    }

    #[test]
    fn the_fingerprint_changes_with_a_rule_or_a_holiday_and_not_with_a_comment() {
        let shipped = Rules::shipped().unwrap();
        assert_eq!(
            shipped.fingerprint(),
            Rules::shipped().unwrap().fingerprint()
        );
        assert_ne!(shipped.fingerprint(), with_2473_of_2027().fingerprint());
        let commented: Vec<(String, String)> = SHIPPED_POLICIES
            .iter()
            .map(|(f, t)| (f.to_string(), format!("# a note\n{t}")))
            .collect();
        let pairs: Vec<(&str, &str)> = commented
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        assert_eq!(
            Rules::from_files(&pairs, SHIPPED_CALENDARS)
                .unwrap()
                .fingerprint(),
            shipped.fingerprint()
        );
        let fewer_holidays = Rules::from_files(SHIPPED_POLICIES, &SHIPPED_CALENDARS[..1]).unwrap();
        assert_ne!(fewer_holidays.fingerprint(), shipped.fingerprint());
    }
}
