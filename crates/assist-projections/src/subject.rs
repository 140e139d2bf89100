//! One case subject as the folds keep it: its case and its SLA clocks, moved together by
//! each fact (the clocks need the case's region and caseworker of that moment).

use crate::caseload::{self, Case};
use crate::sla::{self, Clock, Responsibility, Rules};
use assist_catalog::Event;
use std::collections::HashMap;

/// Every subject's case and clocks, by stream.
pub type Subjects = (HashMap<String, Option<Case>>, HashMap<String, Vec<Clock>>);

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

/// Folds events (in log order per stream) into every subject's case and clocks, in memory.
pub fn fold<'a>(rules: &Rules, events: impl IntoIterator<Item = &'a Event>) -> Subjects {
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
