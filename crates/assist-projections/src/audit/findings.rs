//! Audit findings: facts that break the domain rules, and steps recorded long after they
//! occurred (backdating), each with the events involved.

use super::finding;
use crate::store::{like_escape, Store, StoreError};
use chrono::Duration;
use serde::Serialize;
use sqlx::Row;

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What kind (see [`finding`]).
    pub kind: String,
    /// The stream it concerns.
    pub subject: String,
    /// The events involved, the offending one first.
    pub events: Vec<String>,
    /// What was found.
    pub detail: String,
}

/// Every finding of generation `gen`; a step counts as backdated when recorded more than
/// `backdated_after` after it occurred.
pub async fn findings(
    store: &Store,
    gen: i64,
    backdated_after: Duration,
) -> Result<Vec<Finding>, StoreError> {
    findings_in(store, gen, "", backdated_after).await
}

/// The findings of generation `gen` about subjects whose case region starts with `region`
/// (`""`: all): the scope is part of each query's SQL, so nothing outside it is read.
pub async fn findings_in(
    store: &Store,
    gen: i64,
    region: &str,
    backdated_after: Duration,
) -> Result<Vec<Finding>, StoreError> {
    let err = |e| store.err(e);
    let scope = format!("{}%", like_escape(region));
    // The subjects in scope: every subject with events has a case row (its region is the
    // first actor's until a registration or transfer says otherwise).
    let in_scope = |column: &str, param: &str| {
        format!("{column} IN (SELECT subject FROM cases WHERE gen = $1 AND region LIKE {param})")
    };
    let mut out = Vec::new();
    let rows = sqlx::query(&format!(
        "SELECT event_id, kind, subject, detail FROM findings WHERE gen = $1 AND {}",
        in_scope("subject", "$2")
    ))
    .bind(gen)
    .bind(&scope)
    .fetch_all(&store.pool)
    .await
    .map_err(err)?;
    for r in rows {
        out.push(Finding {
            kind: r.try_get("kind").map_err(err)?,
            subject: r.try_get("subject").map_err(err)?,
            events: vec![r.try_get("event_id").map_err(err)?],
            detail: r.try_get("detail").map_err(err)?,
        });
    }
    let rows = sqlx::query(&format!(
        "SELECT event_id, stream, event_type, occurred_at, recorded_at, record_delay_ms FROM audit_events
         WHERE gen = $1 AND record_delay_ms > $2 AND {}",
        in_scope("stream", "$3")
    ))
    .bind(gen)
    .bind(backdated_after.num_milliseconds())
    .bind(&scope)
    .fetch_all(&store.pool)
    .await
    .map_err(err)?;
    for r in rows {
        let delay: i64 = r.try_get("record_delay_ms").map_err(err)?;
        let (t, o, rec): (String, String, String) = (
            r.try_get("event_type").map_err(err)?,
            r.try_get("occurred_at").map_err(err)?,
            r.try_get("recorded_at").map_err(err)?,
        );
        out.push(Finding {
            kind: finding::BACKDATED.into(),
            subject: r.try_get("stream").map_err(err)?,
            events: vec![r.try_get("event_id").map_err(err)?],
            detail: format!(
                "{t} occurred {o} but was recorded {rec}, {} hours later",
                delay / 3_600_000
            ),
        });
    }
    out.extend(household_findings(
        &household_facts(store, gen, &in_scope("household", "$2"), &scope).await?,
    ));
    out.sort_by(|a, b| (&a.subject, &a.events, &a.kind).cmp(&(&b.subject, &b.events, &b.kind)));
    Ok(out)
}

/// What a clearing is checked against, as the views hold it: the clearings, and for the
/// members they name only, their household memberships, placements and jobs lost.
///
/// Why at report time, from rows: a clearing is on the household's stream, the member's
/// placements and jobs lost are on the member's own stream, and the two may be on different
/// partitions, folded by different batches (or workers) in any order. No fold sees both
/// without state shared across streams; the rows hold every fact once projected, so a query
/// over them sees the same facts whatever order they arrived in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HouseholdFacts {
    /// The clearings.
    pub clearings: Vec<Clearing>,
    /// Members joining and leaving households (an identification lists its members).
    pub memberships: Vec<Change>,
    /// Placements (a person starting work) and jobs lost (ending it).
    pub employment: Vec<Change>,
}

/// One `household_cleared`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clearing {
    /// Its event.
    pub event_id: String,
    /// The household.
    pub household: String,
    /// The member it names as employed.
    pub member: String,
    /// When it occurred (fixed-width RFC 3339, as stored).
    pub at: String,
}

/// A start or an end: a member joining or leaving a household, a person starting work or
/// losing a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Its event.
    pub event_id: String,
    /// The household, for a membership; empty for employment.
    pub household: String,
    /// The person.
    pub person: String,
    /// A start (joined, placed) or an end (left, job lost).
    pub starts: bool,
    /// When it occurred (fixed-width RFC 3339, as stored).
    pub at: String,
}

/// The facts behind the clearings of households matching `households` (an SQL condition
/// on `household` with `scope` as `$2`).
async fn household_facts(
    store: &Store,
    gen: i64,
    households: &str,
    scope: &str,
) -> Result<HouseholdFacts, StoreError> {
    let err = |e| store.err(e);
    let text = |r: &sqlx::any::AnyRow, c: &str| r.try_get::<String, _>(c).map_err(err);
    let mut facts = HouseholdFacts::default();
    let rows = sqlx::query(&format!(
        "SELECT event_id, household, member, occurred_at FROM household_clearings WHERE gen = $1 AND {households}"
    ))
    .bind(gen)
    .bind(scope)
    .fetch_all(&store.pool)
    .await
    .map_err(err)?;
    for r in &rows {
        facts.clearings.push(Clearing {
            event_id: text(r, "event_id")?,
            household: text(r, "household")?,
            member: text(r, "member")?,
            at: text(r, "occurred_at")?,
        });
    }
    if facts.clearings.is_empty() {
        return Ok(facts);
    }
    // Only the rows of people named by a clearing.
    let named = format!("SELECT member FROM household_clearings WHERE gen = $1 AND {households}");
    let rows = sqlx::query(&format!(
        "SELECT event_id, household, person, membership, occurred_at FROM household_members
         WHERE gen = $1 AND person IN ({named})"
    ))
    .bind(gen)
    .bind(scope)
    .fetch_all(&store.pool)
    .await
    .map_err(err)?;
    for r in &rows {
        facts.memberships.push(Change {
            event_id: text(r, "event_id")?,
            household: text(r, "household")?,
            person: text(r, "person")?,
            starts: text(r, "membership")? == "joined",
            at: text(r, "occurred_at")?,
        });
    }
    let rows = sqlx::query(&format!(
        "SELECT event_id, subject, occurred_at, 1 AS starts FROM placements
         WHERE gen = $1 AND subject IN ({named})
         UNION ALL
         SELECT event_id, subject, occurred_at, 0 AS starts FROM job_losses
         WHERE gen = $1 AND subject IN ({named})"
    ))
    .bind(gen)
    .bind(scope)
    .fetch_all(&store.pool)
    .await
    .map_err(err)?;
    for r in &rows {
        facts.employment.push(Change {
            event_id: text(r, "event_id")?,
            household: String::new(),
            person: text(r, "subject")?,
            starts: r.try_get::<i64, _>("starts").map_err(err)? == 1,
            at: text(r, "occurred_at")?,
        });
    }
    Ok(facts)
}

/// The last of `changes` at or before `at`: where a start and an end fall on the same
/// instant, the start counts as the later (a member who leaves and joins again at once is
/// a member; a job lost and a new one started at once leaves the person in work). Ties of
/// the same kind go by event id, so the answer is the same whatever order the rows came in.
fn standing_at<'a>(changes: impl Iterator<Item = &'a Change>, at: &str) -> Option<&'a Change> {
    changes
        .filter(|c| c.at.as_str() <= at)
        .max_by(|a, b| (&a.at, a.starts, &a.event_id).cmp(&(&b.at, b.starts, &b.event_id)))
}

/// The findings about clearings, a pure function of the facts (their order does not
/// matter). A clearing at time `t` naming person `m`:
/// - [`finding::CLEARED_BY_NON_MEMBER`] when `m` is not a member of the household at `t`:
///   the last membership change of `m` in that household at or before `t` is not a join
///   (an identification listing `m`, or a link);
/// - [`finding::CLEARED_WITHOUT_EMPLOYED_MEMBER`] when `m` has no placement at or before `t`;
/// - [`finding::CLEARED_AFTER_JOB_ENDED`] when `m` has one, but the last employment fact at
///   or before `t` is a job lost: `job_lost` carries no job, so it ends the person's work,
///   whatever placements came before it.
///
/// Facts that occurred after `t` do not count, whenever they were recorded.
pub fn household_findings(facts: &HouseholdFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    for c in &facts.clearings {
        let (m, t) = (&c.member, c.at.as_str());
        let membership = standing_at(
            facts
                .memberships
                .iter()
                .filter(|x| x.household == c.household && x.person == *m),
            t,
        );
        match membership {
            Some(j) if j.starts => {}
            Some(left) => out.push(Finding {
                kind: finding::CLEARED_BY_NON_MEMBER.into(),
                subject: c.household.clone(),
                events: vec![c.event_id.clone(), left.event_id.clone()],
                detail: format!(
                    "cleared at {t} for {m}, who had left the household at {}",
                    left.at
                ),
            }),
            None => out.push(Finding {
                kind: finding::CLEARED_BY_NON_MEMBER.into(),
                subject: c.household.clone(),
                events: vec![c.event_id.clone()],
                detail: format!(
                    "cleared at {t} for {m}, who was not a member of the household by then"
                ),
            }),
        }
        let work = || facts.employment.iter().filter(|x| x.person == *m);
        if !work().any(|x| x.starts && x.at.as_str() <= t) {
            out.push(Finding {
                kind: finding::CLEARED_WITHOUT_EMPLOYED_MEMBER.into(),
                subject: c.household.clone(),
                events: vec![c.event_id.clone()],
                detail: format!("cleared at {t} for {m}, who has no placement recorded by then"),
            });
        } else if let Some(lost) = standing_at(work(), t).filter(|x| !x.starts) {
            out.push(Finding {
                kind: finding::CLEARED_AFTER_JOB_ENDED.into(),
                subject: c.household.clone(),
                events: vec![c.event_id.clone(), lost.event_id.clone()],
                detail: format!("cleared at {t} for {m}, whose job had ended at {}", lost.at),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(n: u32, household: &str, starts: bool, at: &str) -> Change {
        Change {
            event_id: format!("e{n}"),
            household: household.into(),
            person: "person-m".into(),
            starts,
            at: at.into(),
        }
    }

    fn cleared_at(at: &str) -> Clearing {
        Clearing {
            event_id: "clear".into(),
            household: "household-h".into(),
            member: "person-m".into(),
            at: at.into(),
        }
    }

    fn kinds(facts: &HouseholdFacts) -> Vec<String> {
        household_findings(facts)
            .into_iter()
            .map(|f| f.kind)
            .collect()
    }

    const T: &str = "2026-03-17T01:00:00.000Z";

    #[test]
    fn a_member_who_leaves_and_joins_again_at_one_instant_is_a_member_whatever_the_row_order() {
        let at = "2026-03-16T01:00:00.000Z";
        let mut facts = HouseholdFacts {
            clearings: vec![cleared_at(T)],
            memberships: vec![
                change(1, "household-h", true, "2026-03-10T01:00:00.000Z"),
                change(2, "household-h", false, at),
                change(3, "household-h", true, at),
            ],
            employment: vec![change(4, "", true, at)],
        };
        assert_eq!(kinds(&facts), Vec::<String>::new());
        facts.memberships.reverse();
        assert_eq!(kinds(&facts), Vec::<String>::new());
    }

    #[test]
    fn a_job_lost_and_a_new_one_started_at_one_instant_leave_the_member_in_work() {
        let at = "2026-03-16T01:00:00.000Z";
        let mut facts = HouseholdFacts {
            clearings: vec![cleared_at(T)],
            memberships: vec![change(1, "household-h", true, at)],
            employment: vec![
                change(2, "", true, "2026-03-10T01:00:00.000Z"),
                change(3, "", true, at),
                change(4, "", false, at),
            ],
        };
        assert_eq!(kinds(&facts), Vec::<String>::new());
        facts.employment.reverse();
        assert_eq!(kinds(&facts), Vec::<String>::new());
    }

    #[test]
    fn membership_of_another_household_does_not_count() {
        let facts = HouseholdFacts {
            clearings: vec![cleared_at(T)],
            memberships: vec![change(
                1,
                "household-other",
                true,
                "2026-03-10T01:00:00.000Z",
            )],
            employment: vec![change(2, "", true, "2026-03-10T01:00:00.000Z")],
        };
        assert_eq!(kinds(&facts), vec![finding::CLEARED_BY_NON_MEMBER]);
    }

    #[test]
    fn a_job_lost_at_the_very_instant_of_the_clearing_has_ended_it() {
        let facts = HouseholdFacts {
            clearings: vec![cleared_at(T)],
            memberships: vec![change(1, "household-h", true, "2026-03-10T01:00:00.000Z")],
            employment: vec![
                change(2, "", true, "2026-03-10T01:00:00.000Z"),
                change(3, "", false, T),
            ],
        };
        assert_eq!(kinds(&facts), vec![finding::CLEARED_AFTER_JOB_ENDED]);
    }
}
