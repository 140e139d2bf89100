//! The reference projection: an oracle for the runner that shares nothing with it but the
//! pure folds (`subject::apply`, `runner::rule_findings`), the hashes (`audit::chain_hash`,
//! `audit::next_digest`) and the decoding of a stored record (`runner::decode_record`, the
//! catalog's rules for what a valid fact is).
//!
//! It reads the whole log into plain memory and writes down, as text in the form of
//! `Store::dump`, the rows the views must hold:
//! - an event id counts once, the first time it is met reading partition 0 to the last,
//!   each in offset order (what one catch-up of a fresh store does);
//! - a stream's audit chain follows that log order;
//! - a subject's case, clocks, placements, household rows, job losses and findings are
//!   the fold of its events in the order they occurred (ties: recorded time, then event
//!   id): what the views must show whatever order the facts arrived in.

use assist_catalog::{Event, EventData};
use assist_log::{PartitionReader, Record};
use assist_projections::audit::{chain_hash, next_digest};
use assist_projections::caseload::Case;
use assist_projections::runner::{decode_record, rule_findings};
use assist_projections::sla::{Clock, Rules};
use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::{BTreeMap, HashSet};

/// One applied event with where it was read.
struct Applied {
    partition: u32,
    offset: u64,
    payload: Vec<u8>,
    event: Event,
}

/// Every record of `log`, partition by partition, in offset order.
pub async fn read_all(log: &dyn PartitionReader) -> Vec<Vec<Record>> {
    let mut parts = Vec::new();
    for p in 0..log.partition_count() {
        parts.push(log.read_partition(p, 0, usize::MAX).await.unwrap());
    }
    parts
}

/// The rows the views of `log` must hold under `rules`, as `Store::dump` prints them.
pub async fn reference_dump(log: &dyn PartitionReader, rules: &Rules) -> String {
    project(&read_all(log).await, rules)
}

/// The reference projection of records already read (`parts[p]` is partition `p`).
pub fn project(parts: &[Vec<Record>], rules: &Rules) -> String {
    let mut checkpoints = Vec::new();
    let mut dead = Vec::new();
    let mut seen: HashSet<uuid::Uuid> = HashSet::new();
    // Applied events by stream, in log order.
    let mut streams: BTreeMap<String, Vec<Applied>> = BTreeMap::new();
    for (p, records) in parts.iter().enumerate() {
        let mut digest = String::new();
        for r in records {
            digest = next_digest(&digest, &r.payload);
            match decode_record(r) {
                Err(reason) => {
                    // What the table keeps: the bytes, or their redacted form (a pure
                    // function with tests of its own), never personal values in clear.
                    let kept = assist_projections::dead_letter::kept(&r.payload);
                    let reason = match kept.redacted {
                        true => assist_catalog::redact(&reason),
                        false => reason,
                    };
                    dead.push(vec![
                        ("part", p.to_string()),
                        ("log_offset", r.position.offset.to_string()),
                        ("raw", format!("bytes:{}", hex(&kept.bytes))),
                        (
                            "reason",
                            reason
                                .chars()
                                .map(|c| if c.is_control() { '\u{fffd}' } else { c })
                                .collect(),
                        ),
                        ("stream", r.stream.clone()),
                        ("sha256", kept.sha256),
                        ("redacted", u8::from(kept.redacted).to_string()),
                    ])
                }
                Ok(event) => {
                    if seen.insert(event.meta.event_id) {
                        streams
                            .entry(event.meta.stream.name())
                            .or_default()
                            .push(Applied {
                                partition: p as u32,
                                offset: r.position.offset,
                                payload: r.payload.clone(),
                                event,
                            });
                    }
                }
            }
        }
        if !records.is_empty() {
            checkpoints.push(vec![
                ("part", p.to_string()),
                ("next_offset", records.len().to_string()),
                ("digest", digest),
                ("subjects_deferred", "0".into()),
            ]);
        }
    }

    let mut audit = BTreeMap::new();
    let mut chains = Vec::new();
    let mut cases = Vec::new();
    let mut clocks = BTreeMap::new();
    let mut placements = BTreeMap::new();
    let mut clearings = BTreeMap::new();
    let mut members = BTreeMap::new();
    let mut job_losses = BTreeMap::new();
    let mut findings = BTreeMap::new();
    for (stream, events) in &streams {
        // The chain, in log order.
        let (mut seq, mut hash) = (0i64, String::new());
        for a in events {
            let next = chain_hash(&hash, &a.payload);
            let prev = std::mem::replace(&mut hash, next);
            seq += 1;
            let m = &a.event.meta;
            audit.insert(
                m.event_id.to_string(),
                vec![
                    ("event_id", m.event_id.to_string()),
                    ("stream", stream.clone()),
                    ("seq", seq.to_string()),
                    ("part", a.partition.to_string()),
                    ("log_offset", a.offset.to_string()),
                    ("event_type", a.event.data.type_name().to_string()),
                    ("occurred_at", ts(m.occurred_at)),
                    ("recorded_at", ts(m.recorded_at)),
                    ("actor", m.actor.id.to_string()),
                    (
                        "record_delay_ms",
                        (m.recorded_at - m.occurred_at)
                            .num_milliseconds()
                            .to_string(),
                    ),
                    ("hash", hash.clone()),
                    ("prev_hash", prev),
                ],
            );
        }
        // The greatest (occurred, recorded, id) among the stream's facts, as text.
        let newest = events
            .iter()
            .map(|a| {
                let m = &a.event.meta;
                (m.occurred_at, m.recorded_at, m.event_id)
            })
            .max()
            .map(|(o, r, id)| format!("{} {} {id}", ts(o), ts(r)))
            .unwrap_or_default();
        chains.push(vec![
            ("stream", stream.clone()),
            ("seq", seq.to_string()),
            ("hash", hash),
            ("fold_key", newest),
        ]);

        // The subject, in the order its facts occurred.
        let mut in_time: Vec<&Event> = events.iter().map(|a| &a.event).collect();
        in_time.sort_by_key(|e| (e.meta.occurred_at, e.meta.recorded_at, e.meta.event_id));
        let mut case: Option<Case> = None;
        let mut subject_clocks: Vec<Clock> = Vec::new();
        for e in in_time {
            let id = e.meta.event_id.to_string();
            for (kind, detail) in rule_findings(case.as_ref(), e) {
                findings.insert(
                    (id.clone(), kind.to_string()),
                    vec![
                        ("event_id", id.clone()),
                        ("kind", kind.to_string()),
                        ("subject", stream.clone()),
                        ("detail", detail),
                    ],
                );
            }
            assist_projections::subject::apply(rules, &mut case, &mut subject_clocks, e);
            let at = ts(e.meta.occurred_at);
            let kind = match &e.data {
                EventData::Hired(h) if h.public_welfare_post => Some("public_welfare_post"),
                EventData::Hired(_) => Some("hired"),
                EventData::SelfEmployed(_) => Some("self_employed"),
                EventData::FlexibleWorkStarted(_) => Some("flexible_work"),
                _ => None,
            };
            if let Some(kind) = kind {
                placements.insert(
                    id.clone(),
                    vec![
                        ("event_id", id.clone()),
                        ("subject", stream.clone()),
                        ("kind", kind.to_string()),
                        ("occurred_at", at.clone()),
                    ],
                );
            }
            let mut member = |person: String, membership: &str| {
                members.insert(
                    (id.clone(), person.clone()),
                    vec![
                        ("event_id", id.clone()),
                        ("household", stream.clone()),
                        ("person", person),
                        ("membership", membership.to_string()),
                        ("occurred_at", at.clone()),
                    ],
                );
            };
            match &e.data {
                EventData::HouseholdCleared(h) => {
                    clearings.insert(
                        id.clone(),
                        vec![
                            ("event_id", id.clone()),
                            ("household", stream.clone()),
                            ("member", h.employed_member.to_string()),
                            ("occurred_at", at.clone()),
                        ],
                    );
                }
                EventData::HouseholdIdentified(h) => {
                    for m in &h.members {
                        member(m.person.to_string(), "joined");
                    }
                }
                EventData::HouseholdMemberLinked(l) => {
                    member(l.member.person.to_string(), "joined")
                }
                EventData::HouseholdMemberUnlinked(u) => member(u.person.to_string(), "left"),
                EventData::JobLost(_) => {
                    job_losses.insert(
                        id.clone(),
                        vec![
                            ("event_id", id.clone()),
                            ("subject", stream.clone()),
                            ("occurred_at", at.clone()),
                        ],
                    );
                }
                _ => {}
            }
        }
        if let Some(c) = case {
            cases.push(vec![
                ("subject", c.subject.clone()),
                ("kind", c.kind.to_string()),
                ("is_open", u8::from(c.open).to_string()),
                ("stage", c.stage.name().to_string()),
                ("key_groups", c.groups.join(",")),
                ("caseworker", c.caseworker.clone()),
                ("region", c.region.clone()),
                ("opened_at", ts(c.opened_at)),
                ("closed_at", opt_ts(c.closed_at)),
                ("last_activity_at", ts(c.last_activity_at)),
            ]);
            // The next deadline: the open clock due first (ties: its id), unless one is
            // paused (then computed when read).
            let open: Vec<&Clock> = subject_clocks
                .iter()
                .filter(|k| k.met_at.is_none() && k.cancelled_at.is_none())
                .collect();
            let paused = open
                .iter()
                .any(|k| k.pauses.iter().any(|p| p.resumed_at.is_none()));
            let first = open
                .iter()
                .map(|k| {
                    (
                        ts(k.effective_due(DateTime::<Utc>::MAX_UTC, &rules.calendar)),
                        k,
                    )
                })
                .min_by(|(a, x), (b, y)| (a, &x.clock_id).cmp(&(b, &y.clock_id)));
            let row = cases.last_mut().expect("pushed above");
            match first.filter(|_| !paused) {
                Some((due, k)) => {
                    row.push(("next_step", format!("{}/{}", k.policy, k.step)));
                    row.push(("next_due", due));
                }
                None => {
                    row.push(("next_step", "NULL".into()));
                    row.push(("next_due", "NULL".into()));
                }
            }
            row.push(("next_moves", u8::from(paused).to_string()));
        }
        for c in subject_clocks {
            // A settled clock: when, and how, against its deadline as it stood then (moved
            // by the pauses before it, measured on the rules' calendar).
            let settled = c.met_at.or(c.cancelled_at);
            let due = |t| c.effective_due(t, &rules.calendar);
            let outcome = match (c.met_at, c.cancelled_at) {
                _ if settled.is_none() => "NULL",
                (Some(m), _) if m <= due(m) => "met",
                (Some(_), _) => "met_late",
                (None, Some(x)) if x > due(x) => "breached",
                _ => "cancelled",
            };
            // After its last pause fact: the deadline then, and whether a pause that moved
            // it is still open (the deadline a month later is later still).
            let pauses_end = c
                .pauses
                .iter()
                .flat_map(|p| [Some(p.paused_at), p.resumed_at])
                .flatten()
                .max();
            let moved_due = pauses_end.map(&due);
            let waiting = pauses_end.is_some_and(|e| due(e + chrono::Duration::days(30)) > due(e));
            clocks.insert(
                c.clock_id.clone(),
                vec![
                    ("clock_id", c.clock_id.clone()),
                    ("subject", c.subject.clone()),
                    ("policy", c.policy.clone()),
                    ("step", c.step.clone()),
                    ("clock_key", c.key.clone()),
                    ("region", c.region.clone()),
                    ("caseworker", c.caseworker.clone()),
                    ("started_at", ts(c.started_at)),
                    ("due_at", ts(c.due_at)),
                    ("met_count", c.count.to_string()),
                    ("needed", c.needed.to_string()),
                    ("met_at", opt_ts(c.met_at)),
                    ("cancelled_at", opt_ts(c.cancelled_at)),
                    ("start_event", c.start_event.to_string()),
                    (
                        "end_event",
                        c.end_event.map_or("NULL".into(), |e| e.to_string()),
                    ),
                    ("pauses", serde_json::to_string(&c.pauses).unwrap()),
                    ("is_open", u8::from(c.is_open()).to_string()),
                    ("settled_at", opt_ts(settled)),
                    ("outcome", outcome.to_string()),
                    ("plain", u8::from(c.pauses.is_empty()).to_string()),
                    ("pauses_end", opt_ts(pauses_end)),
                    ("moved_due", opt_ts(moved_due)),
                    ("waiting", u8::from(waiting).to_string()),
                ],
            );
        }
    }

    let mut out = String::new();
    let mut section = |name: &str, rows: Vec<Vec<(&str, String)>>| {
        out.push_str(&format!("## {name}\n"));
        for row in rows {
            let cells: Vec<String> = row.iter().map(|(c, v)| format!("{c}={v}")).collect();
            out.push_str(&cells.join(" | "));
            out.push('\n');
        }
    };
    section("checkpoints", checkpoints);
    section("dead_letters", dead);
    section("audit_events", audit.into_values().collect());
    section("chains", chains);
    section("cases", cases);
    section("clocks", clocks.into_values().collect());
    section("placements", placements.into_values().collect());
    section("household_clearings", clearings.into_values().collect());
    section("household_members", members.into_values().collect());
    section("job_losses", job_losses.into_values().collect());
    section("findings", findings.into_values().collect());
    out
}

/// A stored time: fixed-width RFC 3339 in UTC, to the millisecond.
fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn opt_ts(t: Option<DateTime<Utc>>) -> String {
    t.map_or("NULL".into(), ts)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
