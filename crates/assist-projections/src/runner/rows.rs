//! The rows a batch writes: the tables' columns and keys, and the row of each case,
//! clock, chain head, checkpoint and per-event fact; the case and clock read back.

use super::*;

/// The rows one event makes whatever its subject's state: a clearing, household
/// membership, a job loss, a placement. The household findings compare them at report
/// time (`audit::findings`).
pub(super) fn event_rows(gen: i64, id: &str, subject: &str, event: &Event, rows: &mut Rows) {
    let occurred = || Val::Text(ts(event.meta.occurred_at));
    if let EventData::HouseholdCleared(h) = &event.data {
        rows.clearings.push(vec![
            Val::Int(gen),
            Val::Text(id.into()),
            Val::Text(subject.into()),
            Val::Text(h.employed_member.to_string()),
            occurred(),
        ]);
    }
    let member = |person: &StreamId, membership: &str| {
        vec![
            Val::Int(gen),
            Val::Text(id.into()),
            Val::Text(subject.into()),
            Val::Text(person.to_string()),
            Val::Text(membership.into()),
            occurred(),
        ]
    };
    match &event.data {
        EventData::HouseholdIdentified(h) => rows
            .members
            .extend(h.members.iter().map(|m| member(&m.person, "joined"))),
        EventData::HouseholdMemberLinked(l) => {
            rows.members.push(member(&l.member.person, "joined"))
        }
        EventData::HouseholdMemberUnlinked(u) => rows.members.push(member(&u.person, "left")),
        EventData::JobLost(_) => rows.job_losses.push(vec![
            Val::Int(gen),
            Val::Text(id.into()),
            Val::Text(subject.into()),
            occurred(),
        ]),
        _ => {}
    }
    if let Some(kind) = placement_kind(&event.data) {
        rows.placements.push(vec![
            Val::Int(gen),
            Val::Text(id.into()),
            Val::Text(subject.into()),
            Val::Text(kind.into()),
            occurred(),
        ]);
    }
}

/// The rows of every subject in `mem`, sorted, as new rows: what a partition whose
/// subjects' rows were deferred writes once.
pub(super) fn subject_rows(
    gen: i64,
    calendar: &Calendar,
    mem: &Memory,
    cases: &mut Vec<Vec<Val>>,
    clocks: &mut Vec<Vec<Val>>,
    chains: &mut Vec<Vec<Val>>,
) {
    let mut all: Vec<(&StreamId, &SubjectState)> = mem.subjects.iter().collect();
    all.sort_unstable_by_key(|(s, _)| name_order(s));
    for (s, st) in all {
        cases.extend(
            st.case
                .iter()
                .map(|c| case_row(gen, c, &st.clocks, calendar)),
        );
        clocks.extend(st.clocks.iter().map(|c| clock_row(gen, c, calendar)));
        if st.chain.0 > 0 {
            chains.push(chain_row(gen, s, st));
        }
    }
}

/// Clock rows in the order of their key, the clock id (the subject's order is not its
/// clocks'): the inserts then walk the table's key in order instead of all over it.
pub(super) fn sort_by_clock_id(rows: &mut [Vec<Val>]) {
    fn clock_id(row: &[Val]) -> &str {
        match row.get(1) {
            Some(Val::Text(id)) => id,
            _ => "",
        }
    }
    rows.sort_unstable_by(|a, b| clock_id(a).cmp(clock_id(b)));
}

/// The partition's checkpoint as the memory leaves it.
pub(super) fn checkpoint_row(gen: i64, partition: u32, mem: &Memory) -> Vec<Val> {
    vec![
        Val::Int(gen),
        Val::Int(i64::from(partition)),
        Val::Int(mem.next_offset as i64),
        Val::Text(mem.digest.clone()),
        Val::Int(i64::from(mem.deferring)),
        Val::Text(mem.token.clone()),
    ]
}

/// The tables a batch writes, with their columns in the order of the rows' values.
pub(super) const AUDIT: Table = Table {
    name: "audit_events",
    columns: &[
        "gen",
        "event_id",
        "stream",
        "seq",
        "part",
        "log_offset",
        "event_type",
        "occurred_at",
        "recorded_at",
        "actor",
        "record_delay_ms",
        "hash",
        "prev_hash",
    ],
    conflict: Conflict::Fail,
};
pub(super) const PLACEMENTS: Table = Table {
    name: "placements",
    columns: &["gen", "event_id", "subject", "kind", "occurred_at"],
    conflict: Conflict::Fail,
};
pub(super) const CLEARINGS: Table = Table {
    name: "household_clearings",
    columns: &["gen", "event_id", "household", "member", "occurred_at"],
    conflict: Conflict::Fail,
};
pub(super) const MEMBERS: Table = Table {
    name: "household_members",
    columns: &[
        "gen",
        "event_id",
        "household",
        "person",
        "membership",
        "occurred_at",
    ],
    conflict: Conflict::Fail,
};
pub(super) const JOB_LOSSES: Table = Table {
    name: "job_losses",
    columns: &["gen", "event_id", "subject", "occurred_at"],
    conflict: Conflict::Fail,
};
pub(super) const FINDINGS: Table = Table {
    name: "findings",
    columns: &["gen", "event_id", "kind", "subject", "detail"],
    conflict: Conflict::Ignore("gen, event_id, kind"),
};
pub(super) const DEAD_LETTERS: Table = Table {
    name: "dead_letters",
    columns: &[
        "gen",
        "part",
        "log_offset",
        "raw",
        "reason",
        "stream",
        "sha256",
        "redacted",
    ],
    conflict: Conflict::Fail,
};
pub(super) const DIGESTS: Table = Table {
    name: "digests",
    columns: &["gen", "part", "next_offset", "digest"],
    conflict: Conflict::Fail,
};
pub(super) const CASES: Table = Table {
    name: "cases",
    columns: &[
        "gen",
        "subject",
        "kind",
        "is_open",
        "stage",
        "key_groups",
        "caseworker",
        "region",
        "opened_at",
        "closed_at",
        "last_activity_at",
        "next_step",
        "next_due",
        "next_moves",
    ],
    conflict: Conflict::Update("gen, subject"),
};
pub(super) const CLOCKS: Table = Table {
    name: "clocks",
    columns: &[
        "gen",
        "clock_id",
        "subject",
        "policy",
        "step",
        "clock_key",
        "region",
        "caseworker",
        "started_at",
        "due_at",
        "met_count",
        "needed",
        "met_at",
        "cancelled_at",
        "start_event",
        "end_event",
        "pauses",
        "is_open",
        "settled_at",
        "outcome",
        "plain",
        "pauses_end",
        "moved_due",
        "waiting",
    ],
    conflict: Conflict::Update("gen, clock_id"),
};
pub(super) const CHAINS: Table = Table {
    name: "chains",
    columns: &["gen", "stream", "seq", "hash", "fold_key"],
    conflict: Conflict::Update("gen, stream"),
};
pub(super) const CASES_NEW: Table = CASES.new_rows();
pub(super) const CLOCKS_NEW: Table = CLOCKS.new_rows();
pub(super) const CHAINS_NEW: Table = CHAINS.new_rows();
/// A partition of a generation nobody reads that has been projected to the log's end once
/// (migration 0020): a first build is swapped in only when every partition holding
/// records has such a row.
pub(super) const CAUGHT_UP: Table = Table {
    name: "partitions_caught_up",
    columns: &["gen", "part"],
    conflict: Conflict::Ignore("gen, part"),
};

/// The row of [`CAUGHT_UP`] for partition `partition` of `gen`.
pub(super) fn caught_up_row(gen: i64, partition: u32) -> Vec<Vec<Val>> {
    vec![vec![Val::Int(gen), Val::Int(i64::from(partition))]]
}

pub(super) const CHECKPOINTS: Table = Table {
    name: "checkpoints",
    columns: &[
        "gen",
        "part",
        "next_offset",
        "digest",
        "subjects_deferred",
        "writer",
    ],
    conflict: Conflict::Update("gen, part"),
};

/// The rows one batch adds, by table.
#[derive(Default)]
pub(super) struct Rows {
    pub(super) audit: Vec<Vec<Val>>,
    pub(super) placements: Vec<Vec<Val>>,
    pub(super) clearings: Vec<Vec<Val>>,
    pub(super) members: Vec<Vec<Val>>,
    pub(super) job_losses: Vec<Vec<Val>>,
    pub(super) findings: Vec<Vec<Val>>,
    pub(super) dead: Vec<Vec<Val>>,
    pub(super) digests: Vec<Vec<Val>>,
}

/// A case's row, with its next deadline among `clocks` (the subject's).
pub(super) fn case_row(gen: i64, c: &Case, clocks: &[Clock], calendar: &Calendar) -> Vec<Val> {
    let (next_step, next_due, moves) = match next_deadline(clocks, calendar) {
        NextDeadline::None => (None, None, 0),
        NextDeadline::Fixed(k, due) => (Some(format!("{}/{}", k.policy, k.step)), Some(ts(due)), 0),
        NextDeadline::Moving => (None, None, 1),
    };
    vec![
        Val::Int(gen),
        Val::Text(c.subject.clone()),
        Val::Text(c.kind.to_string()),
        Val::Int(i64::from(c.open)),
        Val::Text(c.stage.name().into()),
        Val::Text(c.groups.join(",")),
        Val::Text(c.caseworker.clone()),
        Val::Text(c.region.clone()),
        Val::Text(ts(c.opened_at)),
        Val::OptText(c.closed_at.map(ts)),
        Val::Text(ts(c.last_activity_at)),
        Val::OptText(next_step),
        Val::OptText(next_due),
        Val::Int(moves),
    ]
}

pub(super) fn chain_row(gen: i64, stream: &StreamId, st: &SubjectState) -> Vec<Val> {
    vec![
        Val::Int(gen),
        Val::Text(stream.name()),
        Val::Int(st.chain.0),
        Val::Text(st.chain.1.clone()),
        Val::Text(st.last.as_ref().map(fold_key_text).unwrap_or_default()),
    ]
}

pub(super) fn clock_row(gen: i64, c: &Clock, calendar: &Calendar) -> Vec<Val> {
    let outcome = c.outcome(calendar);
    let after = c.after_pauses(calendar);
    vec![
        Val::Int(gen),
        Val::Text(c.clock_id.clone()),
        Val::Text(c.subject.clone()),
        Val::Text(c.policy.clone()),
        Val::Text(c.step.clone()),
        Val::Text(c.key.clone()),
        Val::Text(c.region.clone()),
        Val::Text(c.caseworker.clone()),
        Val::Text(ts(c.started_at)),
        Val::Text(ts(c.due_at)),
        Val::Int(i64::from(c.count)),
        Val::Int(i64::from(c.needed)),
        Val::OptText(c.met_at.map(ts)),
        Val::OptText(c.cancelled_at.map(ts)),
        Val::Text(c.start_event.to_string()),
        Val::OptText(c.end_event.map(|e| e.to_string())),
        Val::Text(serde_json::to_string(&c.pauses).unwrap_or_else(|_| "[]".into())),
        Val::Int(i64::from(c.is_open())),
        Val::OptText(outcome.map(|(at, _)| ts(at))),
        Val::OptText(outcome.map(|(_, s)| s.name().to_string())),
        Val::Int(i64::from(c.pauses.is_empty())),
        Val::OptText(after.map(|a| ts(a.since))),
        Val::OptText(after.map(|a| ts(a.due))),
        Val::Int(i64::from(after.is_some_and(|a| a.waiting))),
    ]
}

/// Reads a case row.
pub(crate) fn case_from(row: &dyn Cols) -> Result<Case, sqlx::Error> {
    let kind = row.text("kind")?;
    let groups = row.text("key_groups")?;
    let closed = row.opt_text("closed_at")?;
    let ts_of = |col: &str| -> Result<chrono::DateTime<chrono::Utc>, sqlx::Error> {
        let s = row.text(col)?;
        parse_ts(&s)
            .ok_or_else(|| sqlx::Error::Decode(format!("{col} is not a timestamp: {s}").into()))
    };
    Ok(Case {
        subject: row.text("subject")?,
        kind: if kind == "household" {
            "household"
        } else {
            "person"
        },
        open: row.int("is_open")? != 0,
        stage: Stage::parse(&row.text("stage")?).unwrap_or(Stage::Alerted),
        groups: groups
            .split(',')
            .filter(|g| !g.is_empty())
            .map(str::to_string)
            .collect(),
        caseworker: row.text("caseworker")?,
        region: row.text("region")?,
        opened_at: ts_of("opened_at")?,
        closed_at: closed.as_deref().and_then(parse_ts),
        last_activity_at: ts_of("last_activity_at")?,
    })
}

/// Reads a clock row.
pub(crate) fn clock_from(row: &dyn Cols) -> Result<Clock, sqlx::Error> {
    let ts_of = |col: &str| -> Result<chrono::DateTime<chrono::Utc>, sqlx::Error> {
        let s = row.text(col)?;
        parse_ts(&s)
            .ok_or_else(|| sqlx::Error::Decode(format!("{col} is not a timestamp: {s}").into()))
    };
    let opt_ts = |col: &str| -> Result<Option<chrono::DateTime<chrono::Utc>>, sqlx::Error> {
        Ok(row.opt_text(col)?.as_deref().and_then(parse_ts))
    };
    let uuid_of = |s: &str| uuid::Uuid::parse_str(s).map_err(|e| sqlx::Error::Decode(Box::new(e)));
    let end = row.opt_text("end_event")?;
    let pauses = row.text("pauses")?;
    Ok(Clock {
        clock_id: row.text("clock_id")?,
        subject: row.text("subject")?,
        policy: row.text("policy")?,
        step: row.text("step")?,
        key: row.text("clock_key")?,
        region: row.text("region")?,
        caseworker: row.text("caseworker")?,
        started_at: ts_of("started_at")?,
        due_at: ts_of("due_at")?,
        count: row.int("met_count")? as u32,
        needed: row.int("needed")? as u32,
        met_at: opt_ts("met_at")?,
        cancelled_at: opt_ts("cancelled_at")?,
        start_event: uuid_of(&row.text("start_event")?)?,
        end_event: end.as_deref().map(uuid_of).transpose()?,
        pauses: serde_json::from_str(&pauses).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
    })
}
