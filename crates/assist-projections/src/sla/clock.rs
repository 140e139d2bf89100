//! An SLA clock: one step of one policy for one subject, and its status at any time.
//!
//! Status is computed at query time from the clock's facts and `at`; nothing here reads
//! the wall clock.

use super::Calendar;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A time the clock waited on the person: it moves the deadline by its length, measured
/// as the clock's policy counts time. Under a calendar-day policy that is its wall-clock
/// length; under a working-day policy ([`Pause::in_working_time`]) it is the working time
/// inside `[paused, resumed)`, and the deadline moves by as much working time: a pause over
/// a weekend or holiday moves it by less than its wall-clock length (by nothing, if it lies
/// wholly on days off), and a pause of two working days moves it two working days later,
/// past the days off that follow it (see [`Calendar::working_time`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    /// When it started.
    pub paused_at: DateTime<Utc>,
    /// When it ended, if it has.
    pub resumed_at: Option<DateTime<Utc>>,
    /// The `clock_paused` event.
    pub pause_event: Uuid,
    /// The `clock_resumed` event.
    pub resume_event: Option<Uuid>,
    /// Counted in working time: set by the fold when the clock's policy counts working
    /// days, and stored with the pause, so that a query needs only the calendar.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_working_time: bool,
}

/// A paused clock after its last pause fact: see [`Clock::after_pauses`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfterPauses {
    /// Its last pause fact: when a pause started or ended.
    pub since: DateTime<Utc>,
    /// The deadline from then on (unless waiting).
    pub due: DateTime<Utc>,
    /// Whether a pause that moved the deadline is still open then.
    pub waiting: bool,
}

/// One clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clock {
    /// `policy/step/start-event-id`.
    pub clock_id: String,
    /// The stream it runs for.
    pub subject: String,
    /// The policy's id.
    pub policy: String,
    /// The step's id.
    pub step: String,
    /// The instance key (a claim id), or empty.
    pub key: String,
    /// The region responsible (the case's, kept current while the clock runs).
    pub region: String,
    /// The caseworker responsible, if assigned.
    pub caseworker: String,
    /// When the starting fact occurred.
    pub started_at: DateTime<Utc>,
    /// The deadline before pauses.
    pub due_at: DateTime<Utc>,
    /// Facts counted towards the step so far.
    pub count: u32,
    /// Facts needed.
    pub needed: u32,
    /// When the step was met.
    pub met_at: Option<DateTime<Utc>>,
    /// When the clock was cancelled.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// The fact that started it.
    pub start_event: Uuid,
    /// The fact that met or cancelled it.
    pub end_event: Option<Uuid>,
    /// The pauses.
    pub pauses: Vec<Pause>,
}

/// Where a clock stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Running, deadline not near.
    OnTrack,
    /// Running, deadline within the risk window.
    AtRisk,
    /// Waiting on the person.
    Paused,
    /// Deadline passed, step not met.
    Breached,
    /// Met by the deadline.
    Met,
    /// Met after the deadline.
    MetLate,
    /// Cancelled (the person found work alone, the case closed, ...).
    Cancelled,
}

impl Status {
    /// Every status, in report order.
    pub const ALL: [Status; 7] = [
        Status::OnTrack,
        Status::AtRisk,
        Status::Paused,
        Status::Breached,
        Status::Met,
        Status::MetLate,
        Status::Cancelled,
    ];

    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Status::OnTrack => "on_track",
            Status::AtRisk => "at_risk",
            Status::Paused => "paused",
            Status::Breached => "breached",
            Status::Met => "met",
            Status::MetLate => "met_late",
            Status::Cancelled => "cancelled",
        }
    }
}

impl Clock {
    /// Whether the clock still runs (neither met nor cancelled).
    pub fn is_open(&self) -> bool {
        self.met_at.is_none() && self.cancelled_at.is_none()
    }

    /// Whether a pause is open.
    pub fn is_paused(&self) -> bool {
        self.pauses.last().is_some_and(|p| p.resumed_at.is_none())
    }

    /// The deadline as of `at`: the base deadline moved by the time paused before it
    /// (in working time on `calendar` for a pause [`Pause::in_working_time`]). Only waiting
    /// that starts after the clock started and before the (moving) deadline counts: a pause
    /// after a breach does not undo it. While a pause is open, the deadline is not before
    /// `at`: a clock does not breach while it waits on the person.
    pub fn effective_due(&self, at: DateTime<Utc>, calendar: &Calendar) -> DateTime<Utc> {
        self.deadline(at, calendar).0
    }

    /// [`Clock::effective_due`], and whether a pause still open at `at` moved it (then it
    /// moves on with `at`).
    fn deadline(&self, at: DateTime<Utc>, calendar: &Calendar) -> (DateTime<Utc>, bool) {
        let mut due = self.due_at;
        let mut moving = false;
        let mut pauses: Vec<&Pause> = self.pauses.iter().filter(|p| p.paused_at <= at).collect();
        pauses.sort_by_key(|p| p.paused_at);
        for p in pauses {
            let start = p.paused_at.max(self.started_at);
            if start >= due {
                break;
            }
            let resumed = p.resumed_at.filter(|r| *r <= at);
            moving |= resumed.is_none();
            let end = resumed.unwrap_or(at).max(start);
            if p.in_working_time {
                due = calendar.add_working_time(due, calendar.working_time(start, end));
                if resumed.is_none() {
                    due = due.max(at);
                }
            } else {
                due += end - start;
            }
        }
        (due, moving)
    }

    /// A paused clock after its last pause fact (`None` if never paused): at any time
    /// after [`AfterPauses::since`] it is paused until settled when
    /// [`AfterPauses::waiting`], else its deadline is [`AfterPauses::due`], so that its
    /// status needs no calendar then (the SLA figures compute it in SQL).
    pub fn after_pauses(&self, calendar: &Calendar) -> Option<AfterPauses> {
        let since = self
            .pauses
            .iter()
            .map(|p| p.resumed_at.map_or(p.paused_at, |r| r.max(p.paused_at)))
            .max()?;
        let (due, waiting) = self.deadline(since, calendar);
        Some(AfterPauses {
            since,
            due,
            waiting,
        })
    }

    /// When the clock was settled (met or cancelled) and its status from then on (which no
    /// later time changes), so that the SLA figures count settled clocks in SQL
    /// (`clocks.settled_at`, `outcome`). A paused clock's outcome depends on `calendar`
    /// (its working-time pauses): the views compute it with their generation's. `None`
    /// while open.
    pub fn outcome(&self, calendar: &Calendar) -> Option<(DateTime<Utc>, Status)> {
        let settled = self.met_at.or(self.cancelled_at)?;
        Some((settled, self.status(settled, Duration::zero(), calendar)))
    }

    /// The status at `at`, with `risk` the window before the deadline that counts as at
    /// risk; `calendar` measures the pauses counted in working time.
    pub fn status(&self, at: DateTime<Utc>, risk: Duration, calendar: &Calendar) -> Status {
        if let Some(met) = self.met_at.filter(|m| *m <= at) {
            return if met <= self.effective_due(met, calendar) {
                Status::Met
            } else {
                Status::MetLate
            };
        }
        if let Some(c) = self.cancelled_at.filter(|c| *c <= at) {
            // A clock cancelled after its deadline had already breached: that stays counted.
            return if c > self.effective_due(c, calendar) {
                Status::Breached
            } else {
                Status::Cancelled
            };
        }
        let due = self.effective_due(at, calendar);
        if at > due {
            return Status::Breached;
        }
        let paused = self
            .pauses
            .iter()
            .any(|p| p.paused_at <= at && p.resumed_at.is_none_or(|r| r > at));
        if paused {
            Status::Paused
        } else if due - at <= risk {
            Status::AtRisk
        } else {
            Status::OnTrack
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, day, hour, 0, 0).unwrap()
    }

    fn cal() -> Calendar {
        Calendar::default()
    }

    fn clock(started: DateTime<Utc>, due: DateTime<Utc>) -> Clock {
        Clock {
            clock_id: "response-2473/contact/x".into(),
            subject: "person-x".into(),
            policy: "response-2473".into(),
            step: "contact".into(),
            key: String::new(),
            region: "350121".into(),
            caseworker: "cw-1".into(),
            started_at: started,
            due_at: due,
            count: 0,
            needed: 1,
            met_at: None,
            cancelled_at: None,
            start_event: Uuid::nil(),
            end_event: None,
            pauses: vec![],
        }
    }

    #[test]
    fn given_an_alert_at_ten_on_day_0_when_contact_is_made_at_eleven_on_day_2_then_it_is_met_late()
    {
        let mut c = clock(t(2, 10), t(4, 10));
        c.met_at = Some(t(4, 11));
        assert_eq!(
            c.status(t(9, 0), Duration::hours(24), &cal()),
            Status::MetLate
        );
        assert_eq!(
            c.met_at.unwrap() - c.effective_due(t(4, 11), &cal()),
            Duration::hours(1)
        );
    }

    #[test]
    fn a_clock_met_before_its_deadline_is_met() {
        let mut c = clock(t(2, 10), t(4, 10));
        c.met_at = Some(t(3, 9));
        assert_eq!(c.status(t(9, 0), Duration::hours(24), &cal()), Status::Met);
    }

    #[test]
    fn a_running_clock_is_on_track_then_at_risk_then_breached() {
        let c = clock(t(2, 10), t(4, 10));
        let risk = Duration::hours(24);
        assert_eq!(c.status(t(2, 12), risk, &cal()), Status::OnTrack);
        assert_eq!(c.status(t(3, 11), risk, &cal()), Status::AtRisk);
        assert_eq!(c.status(t(4, 11), risk, &cal()), Status::Breached);
    }

    #[test]
    fn a_pause_moves_the_deadline_by_its_length() {
        let mut c = clock(t(2, 10), t(4, 10));
        c.pauses.push(Pause {
            paused_at: t(3, 10),
            resumed_at: Some(t(5, 10)),
            pause_event: Uuid::nil(),
            resume_event: None,
            in_working_time: false,
        });
        assert_eq!(
            c.status(t(4, 0), Duration::hours(1), &cal()),
            Status::Paused
        );
        assert_eq!(c.effective_due(t(9, 0), &cal()), t(6, 10));
        assert_eq!(
            c.status(t(6, 9), Duration::hours(0), &cal()),
            Status::OnTrack
        );
        assert_eq!(
            c.status(t(6, 11), Duration::hours(0), &cal()),
            Status::Breached
        );
    }

    #[test]
    fn a_pause_that_starts_after_the_deadline_does_not_undo_the_breach() {
        let mut c = clock(t(2, 10), t(4, 10));
        c.pauses.push(Pause {
            paused_at: t(5, 10),
            resumed_at: None,
            pause_event: Uuid::nil(),
            resume_event: None,
            in_working_time: false,
        });
        assert_eq!(
            c.status(t(6, 0), Duration::hours(1), &cal()),
            Status::Breached
        );
        assert_eq!(c.effective_due(t(6, 0), &cal()), t(4, 10));
    }

    #[test]
    fn a_backdated_pause_counts_only_from_the_start_of_the_clock() {
        let mut c = clock(t(2, 10), t(4, 10));
        c.pauses.push(Pause {
            paused_at: t(1, 10),
            resumed_at: Some(t(3, 10)),
            pause_event: Uuid::nil(),
            resume_event: None,
            in_working_time: false,
        });
        assert_eq!(
            c.effective_due(t(9, 0), &cal()),
            t(5, 10),
            "one day of waiting after the start, not two"
        );
    }

    #[test]
    fn a_clock_cancelled_after_its_deadline_stays_breached() {
        let mut c = clock(t(2, 10), t(4, 10));
        c.cancelled_at = Some(t(9, 0));
        assert_eq!(
            c.status(t(10, 0), Duration::hours(1), &cal()),
            Status::Breached
        );
        c.cancelled_at = Some(t(3, 0));
        assert_eq!(
            c.status(t(10, 0), Duration::hours(1), &cal()),
            Status::Cancelled
        );
    }

    #[test]
    fn status_before_a_later_fact_ignores_that_fact() {
        let mut c = clock(t(2, 10), t(4, 10));
        c.met_at = Some(t(5, 10));
        assert_eq!(
            c.status(t(4, 12), Duration::hours(1), &cal()),
            Status::Breached
        );
        c.cancelled_at = Some(t(6, 0));
        c.met_at = None;
        assert_eq!(
            c.status(t(5, 0), Duration::hours(1), &cal()),
            Status::Breached
        );
        assert_eq!(
            c.status(t(6, 0), Duration::hours(1), &cal()),
            Status::Breached,
            "cancelled only after it breached"
        );
    }

    proptest::proptest! {
        /// The SQL's reading of a paused clock after its last pause fact (paused while
        /// waiting, else the status of its moved deadline) agrees with [`Clock::status`],
        /// on random pauses counted in calendar or working time, open or closed, some
        /// after the deadline.
        #[test]
        fn after_its_last_pause_fact_a_clock_is_paused_while_waiting_else_has_the_status_of_its_moved_deadline(
            working: bool,
            pauses in proptest::collection::vec((0i64..400, 0i64..200, proptest::bool::weighted(0.8)), 1..4),
            later in proptest::collection::vec(1i64..2000, 1..6),
            risk_h in 0i64..48,
        ) {
            let calendar = crate::sla::Rules::shipped().unwrap().calendar;
            let mut c = clock(t(2, 10), t(4, 10));
            let mut from = t(2, 10) - Duration::hours(30);
            for (gap, length, closed) in pauses {
                let paused_at = from + Duration::hours(gap);
                let resumed_at = closed.then(|| paused_at + Duration::hours(length));
                c.pauses.push(Pause {
                    paused_at,
                    resumed_at,
                    pause_event: Uuid::nil(),
                    resume_event: None,
                    in_working_time: working,
                });
                match resumed_at {
                    Some(r) => from = r,
                    None => break,
                }
            }
            let after = c.after_pauses(&calendar).unwrap();
            let risk = Duration::hours(risk_h);
            for hours in later {
                let at = after.since + Duration::minutes(hours * 7);
                let expected = if after.waiting {
                    Status::Paused
                } else if after.due < at {
                    Status::Breached
                } else if after.due <= at + risk {
                    Status::AtRisk
                } else {
                    Status::OnTrack
                };
                proptest::prop_assert_eq!(c.status(at, risk, &calendar), expected);
                if !after.waiting {
                    proptest::prop_assert_eq!(c.effective_due(at, &calendar), after.due);
                }
            }
        }
    }
}
