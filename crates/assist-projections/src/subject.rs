//! One case subject as the folds keep it: its case and its SLA clocks, moved together by
//! each fact (the clocks need the case's region and caseworker of that moment).
//!
//! A subject's state is the fold of its events in the order they occurred (ties: recorded
//! time, then event id), whatever order they arrived in: [`FoldKey`] is that order. The
//! runner, the as-of caseload and the what-if all fold by it.

use crate::caseload::{self, Case};
use crate::sla::{self, Clock, Responsibility, Rules};
use crate::store::ts;
use assist_catalog::Event;
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// Every subject's case and clocks, by stream.
pub type Subjects = (HashMap<String, Option<Case>>, HashMap<String, Vec<Clock>>);

/// Where an event falls in its subject's fold: occurred time, recorded time, event id.
pub type FoldKey = (DateTime<Utc>, DateTime<Utc>, uuid::Uuid);

/// The event's place in its subject's fold.
pub fn fold_key(event: &Event) -> FoldKey {
    (
        event.meta.occurred_at,
        event.meta.recorded_at,
        event.meta.event_id,
    )
}

/// A fold key as stored (`chains.fold_key`): fixed-width fields, so the texts sort as the
/// keys do.
pub fn fold_key_text((occurred, recorded, id): &FoldKey) -> String {
    format!("{} {} {id}", ts(*occurred), ts(*recorded))
}

/// A stored fold key read back; `None` for an empty or malformed one.
pub fn parse_fold_key(text: &str) -> Option<FoldKey> {
    let mut parts = text.split(' ');
    let occurred = crate::store::parse_ts(parts.next()?)?;
    let recorded = crate::store::parse_ts(parts.next()?)?;
    let id = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((occurred, recorded, id))
}

/// Applies one fact to its subject's case, then to its clocks. Pure: no clock, no I/O.
pub fn apply(rules: &Rules, case: &mut Option<Case>, clocks: &mut Vec<Clock>, event: &Event) {
    caseload::apply(case, event);
    let who = case
        .as_ref()
        .map(|c| Responsibility {
            region: &c.region,
            caseworker: &c.caseworker,
        })
        .unwrap_or_default();
    sla::apply(rules, clocks, event, who);
}

/// Folds events (in any order) into every subject's case and clocks, in memory: each
/// subject's events in the order of their [`FoldKey`].
pub fn fold<'a>(rules: &Rules, events: impl IntoIterator<Item = &'a Event>) -> Subjects {
    let mut events: Vec<&Event> = events.into_iter().collect();
    events.sort_by_key(|e| fold_key(e));
    let (mut cases, mut clocks): Subjects = (HashMap::new(), HashMap::new());
    for e in events {
        let subject = e.meta.stream.name();
        apply(
            rules,
            cases.entry(subject.clone()).or_default(),
            clocks.entry(subject).or_default(),
            e,
        );
    }
    (cases, clocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_keys_stored_as_text_sort_as_the_keys_do_and_read_back() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let id = |n: u128| uuid::Uuid::from_u128(n);
        let keys = [
            (
                at("2026-03-05T06:30:00Z"),
                at("2026-03-05T06:31:00Z"),
                id(2),
            ),
            (
                at("2026-03-05T06:30:00Z"),
                at("2026-03-05T06:31:00Z"),
                id(10),
            ),
            (
                at("2026-03-05T06:30:00Z"),
                at("2026-03-20T00:00:00Z"),
                id(1),
            ),
            (
                at("2026-03-05T06:30:00.5Z"),
                at("2026-03-05T06:31:00Z"),
                id(1),
            ),
            (
                at("2026-11-05T06:30:00Z"),
                at("2026-11-05T06:31:00Z"),
                id(1),
            ),
        ];
        let texts: Vec<String> = keys.iter().map(fold_key_text).collect();
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(texts, sorted);
        for (k, t) in keys.iter().zip(&texts) {
            assert_eq!(parse_fold_key(t), Some(*k));
        }
        assert_eq!(parse_fold_key(""), None);
        assert_eq!(parse_fold_key("not a key"), None);
    }

    #[test]
    fn a_fold_gives_the_same_subjects_whatever_order_the_events_come_in() {
        let rules = Rules::shipped().unwrap();
        let mut events = assist_simulate::simulate(60, 60, 9);
        events.sort_by_key(fold_key);
        let in_order = fold(&rules, &events);
        // As recorded: some facts come days after facts that occurred later.
        events.sort_by_key(|e| (e.meta.recorded_at, e.meta.event_id));
        assert!(events.windows(2).any(|w| fold_key(&w[1]) < fold_key(&w[0])));
        let recorded = fold(&rules, &events);
        events.reverse();
        let reversed = fold(&rules, &events);
        for other in [recorded, reversed] {
            assert_eq!(other.0, in_order.0);
            assert_eq!(other.1, in_order.1);
        }
        assert!(in_order.1.values().flatten().count() > 100);
    }
}
