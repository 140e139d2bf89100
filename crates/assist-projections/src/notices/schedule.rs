//! When a clock's next notice is due and to whom it goes: pure functions of the clock, its
//! policy's notice rule and the notices already sent; no clock read, no I/O.

use super::rules::{Audience, NoticeRule};
use crate::sla::{Calendar, Clock};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A notice's kind: the reminder, or the n-th escalation (from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Before the deadline.
    Reminder,
    /// After the deadline: the first, second, ... escalation of the rule.
    Escalation(u8),
}

impl Kind {
    /// `reminder`, `escalation-1`, `escalation-2`, ...
    pub fn name(self) -> String {
        match self {
            Kind::Reminder => "reminder".into(),
            Kind::Escalation(n) => format!("escalation-{n}"),
        }
    }

    /// A kind by its name.
    pub fn parse(name: &str) -> Option<Kind> {
        if name == "reminder" {
            return Some(Kind::Reminder);
        }
        let n: u8 = name.strip_prefix("escalation-")?.parse().ok()?;
        (n >= 1).then_some(Kind::Escalation(n))
    }
}

/// A notice that a clock has coming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    /// Which one.
    pub kind: Kind,
    /// When it is due.
    pub moment: DateTime<Utc>,
    /// The clock's deadline it is reckoned from.
    pub deadline: DateTime<Utc>,
}

/// The namespace of notice ids (a UUID v5 of `clock_id/kind`).
const NOTICE_NAMESPACE: Uuid = Uuid::from_u128(0x6a2f_1c3e_9b7d_4e51_a0c8_2d47_3b19_e605);

/// A notice's id: derived from its clock and kind, so that a notice sent again (after a
/// crash between sending and recording) carries the same id and a receiver can drop it.
pub fn notice_id(clock_id: &str, kind: Kind) -> Uuid {
    Uuid::new_v5(
        &NOTICE_NAMESPACE,
        format!("{clock_id}/{}", kind.name()).as_bytes(),
    )
}

/// The deadline of a clock that runs and is not paused: fixed until its next fact (a
/// pause moves it; while a pause is open there is none). `None` for a met, cancelled or
/// paused clock: it has no notice coming until a fact reopens the question.
pub fn fixed_deadline(c: &Clock, calendar: &Calendar) -> Option<DateTime<Utc>> {
    if !c.is_open() || c.is_paused() {
        return None;
    }
    // Every pause has ended by the latest instant the clock knows of: the deadline as of
    // then counts them all, and stays so until the next fact.
    let latest = c
        .pauses
        .iter()
        .flat_map(|p| [Some(p.paused_at), p.resumed_at])
        .flatten()
        .chain([c.started_at, c.due_at])
        .max()
        .unwrap_or(c.due_at);
    Some(c.effective_due(latest, calendar))
}

/// The first notice of `rule` that clock `c` has not had (`sent`), with its moment: the
/// reminder `before` the deadline (not before the start), then each escalation `after`
/// it. `None` when the clock is met, cancelled or paused, or every notice went out.
pub fn next_notice(
    c: &Clock,
    rule: &NoticeRule,
    calendar: &Calendar,
    sent: &[Kind],
) -> Option<Planned> {
    let deadline = fixed_deadline(c, calendar)?;
    let reminder = rule.reminder.as_ref().map(|r| {
        (
            Kind::Reminder,
            (deadline - r.before).max(c.started_at).min(deadline),
        )
    });
    let escalations = rule
        .escalations
        .iter()
        .zip(1u8..)
        .map(|(e, n)| (Kind::Escalation(n), deadline + e.after));
    reminder
        .into_iter()
        .chain(escalations)
        .find(|(kind, _)| !sent.contains(kind))
        .map(|(kind, moment)| Planned {
            kind,
            moment,
            deadline,
        })
}

/// Who notice `kind` of clock `c` goes to, as (audience, recipient): (`caseworker`, the
/// staff id) or (`supervisor`, the region prefix of the county, city or province).
pub fn recipient(c: &Clock, rule: &NoticeRule, kind: Kind) -> (&'static str, String) {
    let to = match kind {
        Kind::Reminder => rule.reminder.as_ref().map(|r| r.to),
        Kind::Escalation(n) => rule
            .escalations
            .get(usize::from(n.saturating_sub(1)))
            .map(|e| e.to),
    }
    .unwrap_or(Audience::County);
    let region = |digits: usize| c.region.get(..digits).unwrap_or(&c.region).to_string();
    match to {
        Audience::Caseworker if !c.caseworker.is_empty() => ("caseworker", c.caseworker.clone()),
        // A case nobody is assigned to: its county's supervisors hear of it instead.
        Audience::Caseworker | Audience::County => ("supervisor", region(6)),
        Audience::City => ("supervisor", region(4)),
        Audience::Province => ("supervisor", region(2)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notices::rules::NoticeRules;
    use crate::sla::Pause;
    use chrono::TimeZone;

    fn t(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, day, hour, 0, 0).unwrap()
    }

    fn clock() -> Clock {
        Clock {
            clock_id: "response-2473/contact/x".into(),
            subject: "person-x".into(),
            policy: "response-2473".into(),
            step: "contact".into(),
            key: String::new(),
            region: "350121".into(),
            caseworker: "cw-7".into(),
            started_at: t(2, 1),
            due_at: t(4, 1),
            count: 0,
            needed: 1,
            met_at: None,
            cancelled_at: None,
            start_event: Uuid::nil(),
            end_event: None,
            pauses: vec![],
        }
    }

    fn rule() -> NoticeRule {
        NoticeRules::shipped()
            .unwrap()
            .of("response-2473")
            .unwrap()
            .clone()
    }

    #[test]
    fn kinds_come_in_order_reminder_then_each_escalation() {
        let cal = Calendar::default();
        let c = clock();
        let plan = |sent: &[Kind]| next_notice(&c, &rule(), &cal, sent).map(|p| (p.kind, p.moment));
        assert_eq!(plan(&[]), Some((Kind::Reminder, t(3, 1))));
        assert_eq!(
            plan(&[Kind::Reminder]),
            Some((Kind::Escalation(1), t(4, 1)))
        );
        assert_eq!(
            plan(&[Kind::Reminder, Kind::Escalation(1)]),
            Some((Kind::Escalation(2), t(6, 1)))
        );
        assert_eq!(
            plan(&[Kind::Reminder, Kind::Escalation(1), Kind::Escalation(2)]),
            None
        );
    }

    #[test]
    fn a_met_a_cancelled_or_a_paused_clock_has_nothing_coming() {
        let cal = Calendar::default();
        let mut met = clock();
        met.met_at = Some(t(2, 5));
        let mut cancelled = clock();
        cancelled.cancelled_at = Some(t(2, 5));
        let mut paused = clock();
        paused.pauses.push(Pause {
            paused_at: t(2, 5),
            resumed_at: None,
            pause_event: Uuid::nil(),
            resume_event: None,
            in_working_time: false,
        });
        for c in [met, cancelled, paused] {
            assert_eq!(next_notice(&c, &rule(), &cal, &[]), None);
        }
    }

    #[test]
    fn a_pause_that_ended_moves_every_moment_by_its_length() {
        let cal = Calendar::default();
        let mut c = clock();
        c.pauses.push(Pause {
            paused_at: t(2, 5),
            resumed_at: Some(t(3, 5)),
            pause_event: Uuid::nil(),
            resume_event: None,
            in_working_time: false,
        });
        let p = next_notice(&c, &rule(), &cal, &[]).unwrap();
        assert_eq!((p.deadline, p.moment), (t(5, 1), t(4, 1)));
    }

    #[test]
    fn a_reminder_window_longer_than_the_step_is_due_at_the_start() {
        let cal = Calendar::default();
        let mut c = clock();
        c.due_at = t(2, 13);
        assert_eq!(
            next_notice(&c, &rule(), &cal, &[]).map(|p| p.moment),
            Some(t(2, 1))
        );
    }

    #[test]
    fn reminders_go_to_the_caseworker_or_without_one_to_the_county_and_escalations_up() {
        let r = rule();
        let mut c = clock();
        assert_eq!(
            recipient(&c, &r, Kind::Reminder),
            ("caseworker", "cw-7".into())
        );
        assert_eq!(
            recipient(&c, &r, Kind::Escalation(1)),
            ("supervisor", "350121".into())
        );
        assert_eq!(
            recipient(&c, &r, Kind::Escalation(2)),
            ("supervisor", "3501".into())
        );
        c.caseworker.clear();
        assert_eq!(
            recipient(&c, &r, Kind::Reminder),
            ("supervisor", "350121".into())
        );
    }

    #[test]
    fn a_notice_id_is_the_same_for_the_same_clock_and_kind_and_differs_otherwise() {
        let a = notice_id("p/s/1", Kind::Reminder);
        assert_eq!(a, notice_id("p/s/1", Kind::Reminder));
        assert_ne!(a, notice_id("p/s/1", Kind::Escalation(1)));
        assert_ne!(a, notice_id("p/s/2", Kind::Reminder));
        assert_eq!(
            Kind::parse(&Kind::Escalation(2).name()),
            Some(Kind::Escalation(2))
        );
        assert_eq!(Kind::parse("escalation-0"), None);
    }
}
