//! The projection runner: reads each partition of the log in batches, folds the events
//! into the views, and commits the rows and that partition's checkpoint in one SQL
//! transaction, so a crash at any point neither loses nor doubles an effect.

use crate::audit::{chain_hash, finding, next_digest};
use crate::caseload::{self, Case, Stage};
use crate::sla::{Clock, Rules};
use crate::store::{insert_rows, parse_ts, ts, Store, StoreError, Val};
use assist_catalog::{decode, decode_wire_event, Event, EventData, Form, WireEvent};
use assist_log::{LogError, PartitionReader, Record};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use std::collections::{HashMap, HashSet};

/// Why projecting stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The log could not be read.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Folds the log into one generation of the views.
pub struct Runner<'a> {
    /// The log to read.
    pub log: &'a dyn PartitionReader,
    /// The views.
    pub store: &'a Store,
    /// SLA policies and calendar.
    pub rules: &'a Rules,
    /// Events per batch (and per transaction).
    pub batch: usize,
}

/// What one catch-up did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RunStats {
    /// Records read and committed.
    pub records: u64,
    /// Of those, events applied.
    pub applied: u64,
    /// Of those, event ids applied before (skipped).
    pub duplicates: u64,
    /// Of those, records sent to the dead-letter table.
    pub dead_letters: u64,
}

/// Decodes a stored record into an event, or says why it cannot be projected.
pub fn decode_record(r: &Record) -> Result<Event, String> {
    // Straight from the bytes when they read as an event; through a JSON value otherwise,
    // which says precisely what is wrong.
    let direct = r.payload.trim_ascii_start().first() == Some(&b'{');
    let event = match direct.then(|| serde_json::from_slice::<WireEvent>(&r.payload)) {
        Some(Ok(wire)) => decode_wire_event(wire, Form::Stored).map_err(|e| e.to_string())?,
        _ => {
            let value: serde_json::Value =
                serde_json::from_slice(&r.payload).map_err(|e| format!("not JSON: {e}"))?;
            decode(value, Form::Stored)
                .map_err(|e| e.to_string())?
                .event
        }
    };
    if event.meta.stream.to_string() != r.stream {
        return Err(format!(
            "keyed as {} but the event is on {}",
            r.stream, event.meta.stream
        ));
    }
    Ok(event)
}

/// What a runner remembers of one partition between its batches, so that it need not read
/// back the rows it wrote itself. It is trusted only while the partition's checkpoint is
/// still the one this runner committed: another runner's commit, a failed batch or a
/// rebuild makes the runner read the rows again.
struct Memory {
    /// The checkpoint this memory belongs to.
    next_offset: u64,
    /// This runner projected the partition from offset 0: every subject of it, and every
    /// event id applied from it, is here. A subject not here is new unless it has rows from
    /// another partition (checked once per subject); an id not here is new unless the audit
    /// table's unique key says otherwise.
    complete: bool,
    /// Subjects as they stand after `next_offset`.
    subjects: HashMap<String, SubjectState>,
    /// Event ids applied from the partition (kept only while `complete`).
    seen: HashSet<uuid::Uuid>,
}

/// Subjects (about 1 KiB each) and event ids (about 32 B each) a runner keeps in memory per
/// partition before it forgets them and reads rows again.
const MEMORY_SUBJECTS: usize = 2_000_000;
const MEMORY_IDS: usize = 20_000_000;

impl Memory {
    fn new(next_offset: u64, complete: bool) -> Memory {
        Memory {
            next_offset,
            complete,
            subjects: HashMap::new(),
            seen: HashSet::new(),
        }
    }
}

/// One subject as its rows stand: its case, its open clocks, and the head of its chain.
#[derive(Clone, Default)]
struct SubjectState {
    case: Option<Case>,
    clocks: Vec<Clock>,
    chain: (i64, String),
}

/// Why one batch was not committed.
enum BatchError {
    /// The batch failed.
    Failed(ProjectionError),
    /// An event id new to the partition was already in the views (applied from another
    /// stream): the batch is redone reading the rows.
    IdReused(sqlx::Error),
}

impl From<StoreError> for BatchError {
    fn from(e: StoreError) -> Self {
        BatchError::Failed(e.into())
    }
}

impl Runner<'_> {
    /// Brings generation `gen` up to the log's current end; `on_batch` hears of every
    /// committed batch with its number of records.
    pub async fn catch_up(
        &self,
        gen: i64,
        on_batch: impl FnMut(u64),
    ) -> Result<RunStats, ProjectionError> {
        let all: Vec<u32> = (0..self.log.partition_count()).collect();
        self.catch_up_partitions(gen, &all, on_batch).await
    }

    /// Brings the given partitions of generation `gen` up to the log's end: what a worker
    /// owning some partitions of a consumer group does.
    pub async fn catch_up_partitions(
        &self,
        gen: i64,
        partitions: &[u32],
        mut on_batch: impl FnMut(u64),
    ) -> Result<RunStats, ProjectionError> {
        let mut stats = RunStats::default();
        let mut next_analyze = 1_000;
        for &p in partitions {
            let mut memory: Option<Memory> = None;
            loop {
                let from = match &memory {
                    Some(m) => m.next_offset,
                    None => checkpoint(self.store, gen, p).await?.0,
                };
                let records = self.log.read_partition(p, from, self.batch.max(1)).await?;
                if records.is_empty() {
                    break;
                }
                let n = records.len() as u64;
                let mut careful = false;
                let s = loop {
                    let given = if careful {
                        Some(Memory::new(from, false))
                    } else {
                        memory.take()
                    };
                    match self.apply_batch(gen, p, &records, given).await {
                        Ok((s, m)) => {
                            memory = Some(m);
                            break s;
                        }
                        Err(BatchError::IdReused(_)) if !careful => {
                            tracing::info!(
                                partition = p,
                                "an event id was already applied from another stream; redoing the batch from the stored rows"
                            );
                            careful = true;
                        }
                        Err(BatchError::IdReused(e)) => return Err(self.store.err(e).into()),
                        Err(BatchError::Failed(e)) => return Err(e),
                    }
                };
                stats.records += s.records;
                stats.applied += s.applied;
                stats.duplicates += s.duplicates;
                stats.dead_letters += s.dead_letters;
                on_batch(n);
                let looks_up = memory.as_ref().is_some_and(|m| !m.complete);
                if looks_up && stats.records >= next_analyze {
                    // Fresh PostgreSQL tables have no statistics: without them the planner
                    // scans whole tables for the per-batch lookups as they grow. (A complete
                    // memory looks nothing up.)
                    self.store.analyze().await?;
                    next_analyze = stats.records * 4;
                }
            }
        }
        Ok(stats)
    }

    async fn apply_batch(
        &self,
        gen: i64,
        partition: u32,
        records: &[Record],
        memory: Option<Memory>,
    ) -> Result<(RunStats, Memory), BatchError> {
        let store = self.store;
        let err = |e| BatchError::Failed(store.err(e).into());
        // Two workers may briefly own one partition during a consumer-group rebalance: the
        // batch takes the partition's checkpoint row for itself (SQLite: the write lock
        // up front; PostgreSQL: the row locked FOR UPDATE), then re-reads it.
        let mut tx = match store.dialect() {
            crate::store::Dialect::Sqlite => store.pool.begin_with("BEGIN IMMEDIATE").await,
            crate::store::Dialect::Postgres => store.pool.begin().await,
        }
        .map_err(err)?;
        if store.dialect() == crate::store::Dialect::Postgres {
            sqlx::query("INSERT INTO checkpoints (gen, part, next_offset, digest) VALUES ($1, $2, 0, '') ON CONFLICT (gen, part) DO NOTHING")
                .bind(gen)
                .bind(i64::from(partition))
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            sqlx::query(
                "SELECT next_offset FROM checkpoints WHERE gen = $1 AND part = $2 FOR UPDATE",
            )
            .bind(gen)
            .bind(i64::from(partition))
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        }
        store.check_gen(&mut tx, gen).await?;
        let (from, mut digest) = checkpoint_in(&mut tx, store, gen, partition).await?;
        // What this runner remembers holds only if nobody else committed since.
        let mut mem = match memory {
            Some(m) if m.next_offset == from => m,
            _ => Memory::new(from, from == 0),
        };
        // Another runner may have committed this range meanwhile: take only what is still new.
        let records: Vec<&Record> = records
            .iter()
            .filter(|r| r.position.offset >= from)
            .collect();
        let Some(last) = records.last().map(|r| r.position.offset) else {
            return Ok((RunStats::default(), mem));
        };
        let mut stats = RunStats {
            records: records.len() as u64,
            ..RunStats::default()
        };

        let decoded: Vec<(&Record, Result<Event, String>)> =
            records.into_iter().map(|r| (r, decode_record(r))).collect();
        // The batch's subjects this memory does not hold. A complete memory takes them for
        // new, unless one has rows already: a stream on a partition not its own (a foreign
        // producer) is projected from more than one partition. Then this partition reads its
        // subjects' rows from now on.
        let unseen: Vec<String> = decoded
            .iter()
            .filter_map(|(_, e)| e.as_ref().ok())
            .map(|e| e.meta.stream.to_string())
            .filter(|s| !mem.subjects.contains_key(s))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut chains = HashMap::new();
        if mem.complete {
            chains = load_chains(&mut tx, store.dialect(), gen, &unseen)
                .await
                .map_err(err)?;
            mem.complete = chains.is_empty();
        }

        // Otherwise the unseen subjects are read from their rows, and the ids looked up.
        let mut seen_before: HashSet<String> = HashSet::new();
        if !mem.complete {
            mem.seen.clear();
            let ids: Vec<String> = decoded
                .iter()
                .filter_map(|(_, e)| e.as_ref().ok())
                .map(|e| e.meta.event_id.to_string())
                .collect();
            seen_before = load_seen(&mut tx, store.dialect(), gen, &ids)
                .await
                .map_err(err)?;
            let mut cases = load_cases(&mut tx, store.dialect(), gen, &unseen)
                .await
                .map_err(err)?;
            let mut clocks = load_open_clocks(&mut tx, store.dialect(), gen, &unseen)
                .await
                .map_err(err)?;
            if chains.is_empty() {
                chains = load_chains(&mut tx, store.dialect(), gen, &unseen)
                    .await
                    .map_err(err)?;
            }
            for s in unseen {
                let state = SubjectState {
                    case: cases.remove(&s),
                    clocks: clocks.remove(&s).unwrap_or_default(),
                    chain: chains.remove(&s).unwrap_or((0, String::new())),
                };
                mem.subjects.insert(s, state);
            }
        }

        let mut rows = Rows::default();
        // The clocks of each subject this batch touches, as they stood before it.
        let mut before: HashMap<String, Vec<Clock>> = HashMap::new();
        for (rec, event) in decoded {
            digest = next_digest(&digest, &rec.payload);
            let event = match event {
                Ok(e) => e,
                Err(reason) => {
                    stats.dead_letters += 1;
                    tracing::warn!(partition, offset = rec.position.offset, %reason, "dead letter");
                    rows.dead.push(vec![
                        Val::Int(gen),
                        Val::Int(i64::from(partition)),
                        Val::Int(rec.position.offset as i64),
                        Val::Bytes(rec.payload.clone()),
                        // PostgreSQL refuses NUL in text; a reason may quote the raw bytes.
                        Val::Text(
                            reason
                                .chars()
                                .map(|c| if c.is_control() { '\u{fffd}' } else { c })
                                .collect(),
                        ),
                    ]);
                    continue;
                }
            };
            let id = event.meta.event_id.to_string();
            let new = if mem.complete {
                mem.seen.insert(event.meta.event_id)
            } else {
                seen_before.insert(id.clone())
            };
            if !new {
                stats.duplicates += 1;
                continue;
            }
            stats.applied += 1;
            let subject = event.meta.stream.to_string();
            let state = mem.subjects.entry(subject.clone()).or_default();
            if !before.contains_key(&subject) {
                before.insert(subject.clone(), state.clocks.clone());
            }

            let (prev_seq, prev_hash) = state.chain.clone();
            let hash = chain_hash(&prev_hash, &rec.payload);
            let seq = prev_seq + 1;
            state.chain = (seq, hash.clone());
            rows.audit.push(vec![
                Val::Int(gen),
                Val::Text(id.clone()),
                Val::Text(subject.clone()),
                Val::Int(seq),
                Val::Int(i64::from(partition)),
                Val::Int(rec.position.offset as i64),
                Val::Text(event.data.type_name().to_string()),
                Val::Text(ts(event.meta.occurred_at)),
                Val::Text(ts(event.meta.recorded_at)),
                Val::Text(event.meta.actor.id.to_string()),
                Val::Int((event.meta.recorded_at - event.meta.occurred_at).num_milliseconds()),
                Val::Text(hash),
                Val::Text(prev_hash),
            ]);

            for (kind, detail) in rule_findings(state.case.as_ref(), &event) {
                rows.findings.push(vec![
                    Val::Int(gen),
                    Val::Text(id.clone()),
                    Val::Text(kind.into()),
                    Val::Text(subject.clone()),
                    Val::Text(detail),
                ]);
            }
            crate::subject::apply(self.rules, &mut state.case, &mut state.clocks, &event);
            if let EventData::HouseholdCleared(h) = &event.data {
                rows.clearings.push(vec![
                    Val::Int(gen),
                    Val::Text(id.clone()),
                    Val::Text(subject.clone()),
                    Val::Text(h.employed_member.to_string()),
                    Val::Text(ts(event.meta.occurred_at)),
                ]);
            }
            if let Some(kind) = placement_kind(&event.data) {
                rows.placements.push(vec![
                    Val::Int(gen),
                    Val::Text(id),
                    Val::Text(subject),
                    Val::Text(kind.into()),
                    Val::Text(ts(event.meta.occurred_at)),
                ]);
            }
        }
        rows.digests.push(vec![
            Val::Int(gen),
            Val::Int(i64::from(partition)),
            Val::Int(last as i64 + 1),
            Val::Text(digest.clone()),
        ]);

        // Every subject the batch touched: its case, its clocks that changed, its chain head.
        let mut touched: Vec<(&String, &SubjectState)> = before
            .keys()
            .filter_map(|s| mem.subjects.get_key_value(s))
            .collect();
        touched.sort_by(|a, b| a.0.cmp(b.0));
        let case_rows: Vec<Vec<Val>> = touched
            .iter()
            .filter_map(|(_, st)| st.case.as_ref())
            .map(|c| case_row(gen, c))
            .collect();
        let clock_rows: Vec<Vec<Val>> = touched
            .iter()
            .flat_map(|(s, st)| {
                let old = before.get(*s);
                st.clocks
                    .iter()
                    .filter(move |c| !old.is_some_and(|o| o.contains(c)))
            })
            .map(|c| clock_row(gen, c))
            .collect();
        let chain_rows: Vec<Vec<Val>> = touched
            .iter()
            .map(|(s, st)| {
                vec![
                    Val::Int(gen),
                    Val::Text((*s).clone()),
                    Val::Int(st.chain.0),
                    Val::Text(st.chain.1.clone()),
                ]
            })
            .collect();

        // An id the memory has not seen may have been applied from another partition: the
        // audit table's unique key says so, and the batch is redone reading the rows.
        let audit = std::mem::take(&mut rows.audit);
        if let Err(e) = insert_rows(&mut tx, store.dialect(), AUDIT_INSERT, audit, "").await {
            let reused = e
                .as_database_error()
                .is_some_and(|d| d.is_unique_violation());
            if reused && mem.complete {
                tx.rollback().await.map_err(err)?;
                return Err(BatchError::IdReused(e));
            }
            return Err(err(e));
        }
        let conn: &mut AnyConnection = &mut tx;
        rows.write(conn, store.dialect()).await.map_err(err)?;
        insert_rows(conn, store.dialect(), "INSERT INTO cases (gen, subject, kind, is_open, stage, key_groups, caseworker, region, opened_at, closed_at, last_activity_at)", case_rows,
            "ON CONFLICT (gen, subject) DO UPDATE SET kind = excluded.kind, is_open = excluded.is_open, stage = excluded.stage, key_groups = excluded.key_groups, caseworker = excluded.caseworker, region = excluded.region, opened_at = excluded.opened_at, closed_at = excluded.closed_at, last_activity_at = excluded.last_activity_at").await.map_err(err)?;
        insert_rows(conn, store.dialect(), "INSERT INTO clocks (gen, clock_id, subject, policy, step, clock_key, region, caseworker, started_at, due_at, met_count, needed, met_at, cancelled_at, start_event, end_event, pauses, is_open)", clock_rows,
            "ON CONFLICT (gen, clock_id) DO UPDATE SET region = excluded.region, caseworker = excluded.caseworker, met_count = excluded.met_count, met_at = excluded.met_at, cancelled_at = excluded.cancelled_at, end_event = excluded.end_event, pauses = excluded.pauses, is_open = excluded.is_open").await.map_err(err)?;
        insert_rows(
            conn,
            store.dialect(),
            "INSERT INTO chains (gen, stream, seq, hash)",
            chain_rows,
            "ON CONFLICT (gen, stream) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        )
        .await
        .map_err(err)?;
        sqlx::query("INSERT INTO checkpoints (gen, part, next_offset, digest) VALUES ($1, $2, $3, $4) ON CONFLICT (gen, part) DO UPDATE SET next_offset = excluded.next_offset, digest = excluded.digest")
            .bind(gen)
            .bind(i64::from(partition))
            .bind(last as i64 + 1)
            .bind(digest)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;

        // The rows now hold only the open clocks; so does the memory.
        for s in before.keys() {
            if let Some(st) = mem.subjects.get_mut(s) {
                st.clocks.retain(Clock::is_open);
            }
        }
        mem.next_offset = last + 1;
        if mem.subjects.len() > MEMORY_SUBJECTS || mem.seen.len() > MEMORY_IDS {
            mem = Memory::new(mem.next_offset, false);
        }
        Ok((stats, mem))
    }
}

/// The rule breaches an event shows against its subject's case before it is applied.
pub fn rule_findings(case: Option<&Case>, event: &Event) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let closed = case.is_some_and(|c| !c.open);
    if matches!(event.data, EventData::JobOfferPushed(_)) && case.is_none_or(|c| !c.open) {
        out.push((
            finding::OFFER_WITHOUT_OPEN_CASE,
            "a job offer was pushed while the person had no open case".to_string(),
        ));
    } else if closed && caseload::is_assistance_step(&event.data) {
        let at = case.and_then(|c| c.closed_at).map(ts).unwrap_or_default();
        out.push((
            finding::STEP_AFTER_CLOSE,
            format!(
                "{} recorded after the case closed at {at}",
                event.data.type_name()
            ),
        ));
    }
    out
}

fn placement_kind(data: &EventData) -> Option<&'static str> {
    match data {
        EventData::Hired(h) if h.public_welfare_post => Some("public_welfare_post"),
        EventData::Hired(_) => Some("hired"),
        EventData::SelfEmployed(_) => Some("self_employed"),
        EventData::FlexibleWorkStarted(_) => Some("flexible_work"),
        _ => None,
    }
}

const AUDIT_INSERT: &str = "INSERT INTO audit_events (gen, event_id, stream, seq, part, log_offset, event_type, occurred_at, recorded_at, actor, record_delay_ms, hash, prev_hash)";

/// The rows one batch adds, by table.
#[derive(Default)]
struct Rows {
    audit: Vec<Vec<Val>>,
    placements: Vec<Vec<Val>>,
    clearings: Vec<Vec<Val>>,
    findings: Vec<Vec<Val>>,
    dead: Vec<Vec<Val>>,
    digests: Vec<Vec<Val>>,
}

impl Rows {
    async fn write(
        self,
        conn: &mut AnyConnection,
        dialect: crate::store::Dialect,
    ) -> Result<(), sqlx::Error> {
        let tables: [(&str, Vec<Vec<Val>>, &str); 6] = [
            (AUDIT_INSERT, self.audit, ""),
            (
                "INSERT INTO placements (gen, event_id, subject, kind, occurred_at)",
                self.placements,
                "",
            ),
            (
                "INSERT INTO household_clearings (gen, event_id, household, member, occurred_at)",
                self.clearings,
                "",
            ),
            (
                "INSERT INTO findings (gen, event_id, kind, subject, detail)",
                self.findings,
                "ON CONFLICT (gen, event_id, kind) DO NOTHING",
            ),
            (
                "INSERT INTO dead_letters (gen, part, log_offset, raw, reason)",
                self.dead,
                "",
            ),
            (
                "INSERT INTO digests (gen, part, next_offset, digest)",
                self.digests,
                "",
            ),
        ];
        for (head, rows, tail) in tables {
            insert_rows(conn, dialect, head, rows, tail).await?;
        }
        Ok(())
    }
}

fn case_row(gen: i64, c: &Case) -> Vec<Val> {
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
    ]
}

fn clock_row(gen: i64, c: &Clock) -> Vec<Val> {
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
    ]
}

/// Reads a case row.
pub(crate) fn case_from(row: &AnyRow) -> Result<Case, sqlx::Error> {
    let kind: String = row.try_get("kind")?;
    let groups: String = row.try_get("key_groups")?;
    let closed: Option<String> = row.try_get("closed_at")?;
    let ts_of = |col: &str| -> Result<chrono::DateTime<chrono::Utc>, sqlx::Error> {
        let s: String = row.try_get(col)?;
        parse_ts(&s)
            .ok_or_else(|| sqlx::Error::Decode(format!("{col} is not a timestamp: {s}").into()))
    };
    Ok(Case {
        subject: row.try_get("subject")?,
        kind: if kind == "household" {
            "household"
        } else {
            "person"
        },
        open: row.try_get::<i64, _>("is_open")? != 0,
        stage: Stage::parse(&row.try_get::<String, _>("stage")?).unwrap_or(Stage::Alerted),
        groups: groups
            .split(',')
            .filter(|g| !g.is_empty())
            .map(str::to_string)
            .collect(),
        caseworker: row.try_get("caseworker")?,
        region: row.try_get("region")?,
        opened_at: ts_of("opened_at")?,
        closed_at: closed.as_deref().and_then(parse_ts),
        last_activity_at: ts_of("last_activity_at")?,
    })
}

/// Reads a clock row.
pub(crate) fn clock_from(row: &AnyRow) -> Result<Clock, sqlx::Error> {
    let ts_of = |col: &str| -> Result<chrono::DateTime<chrono::Utc>, sqlx::Error> {
        let s: String = row.try_get(col)?;
        parse_ts(&s)
            .ok_or_else(|| sqlx::Error::Decode(format!("{col} is not a timestamp: {s}").into()))
    };
    let opt_ts = |col: &str| -> Result<Option<chrono::DateTime<chrono::Utc>>, sqlx::Error> {
        Ok(row
            .try_get::<Option<String>, _>(col)?
            .as_deref()
            .and_then(parse_ts))
    };
    let uuid_of = |s: &str| uuid::Uuid::parse_str(s).map_err(|e| sqlx::Error::Decode(Box::new(e)));
    let end: Option<String> = row.try_get("end_event")?;
    let pauses: String = row.try_get("pauses")?;
    Ok(Clock {
        clock_id: row.try_get("clock_id")?,
        subject: row.try_get("subject")?,
        policy: row.try_get("policy")?,
        step: row.try_get("step")?,
        key: row.try_get("clock_key")?,
        region: row.try_get("region")?,
        caseworker: row.try_get("caseworker")?,
        started_at: ts_of("started_at")?,
        due_at: ts_of("due_at")?,
        count: row.try_get::<i64, _>("met_count")? as u32,
        needed: row.try_get::<i64, _>("needed")? as u32,
        met_at: opt_ts("met_at")?,
        cancelled_at: opt_ts("cancelled_at")?,
        start_event: uuid_of(&row.try_get::<String, _>("start_event")?)?,
        end_event: end.as_deref().map(uuid_of).transpose()?,
        pauses: serde_json::from_str(&pauses).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
    })
}

fn in_list(dialect: crate::store::Dialect, start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| dialect.placeholder(i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `sql_before ($2, $3, …) sql_after` with `gen` as `$1`; on SQLite every placeholder is
/// an anonymous `?` (see [`crate::store::Dialect::placeholder`]).
async fn select_in(
    conn: &mut AnyConnection,
    dialect: crate::store::Dialect,
    sql_before: &str,
    gen: i64,
    keys: &[String],
    sql_after: &str,
) -> Result<Vec<AnyRow>, sqlx::Error> {
    let mut out = Vec::new();
    let before = match dialect {
        crate::store::Dialect::Sqlite => sql_before.replace("$1", "?"),
        crate::store::Dialect::Postgres => sql_before.to_string(),
    };
    for chunk in keys.chunks(1000) {
        let sql = format!(
            "{before} ({}) {sql_after}",
            in_list(dialect, 2, chunk.len())
        );
        let mut q = sqlx::query(&sql).bind(gen);
        for k in chunk {
            q = q.bind(k.clone());
        }
        out.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(out)
}

async fn load_seen(
    conn: &mut AnyConnection,
    dialect: crate::store::Dialect,
    gen: i64,
    ids: &[String],
) -> Result<HashSet<String>, sqlx::Error> {
    let rows = select_in(
        conn,
        dialect,
        "SELECT event_id FROM audit_events WHERE gen = $1 AND event_id IN",
        gen,
        ids,
        "",
    )
    .await?;
    rows.iter().map(|r| r.try_get::<String, _>(0)).collect()
}

async fn load_cases(
    conn: &mut AnyConnection,
    dialect: crate::store::Dialect,
    gen: i64,
    subjects: &[String],
) -> Result<HashMap<String, Case>, sqlx::Error> {
    let rows = select_in(
        conn,
        dialect,
        "SELECT * FROM cases WHERE gen = $1 AND subject IN",
        gen,
        subjects,
        "",
    )
    .await?;
    let mut out = HashMap::new();
    for r in &rows {
        let c = case_from(r)?;
        out.insert(c.subject.clone(), c);
    }
    Ok(out)
}

async fn load_open_clocks(
    conn: &mut AnyConnection,
    dialect: crate::store::Dialect,
    gen: i64,
    subjects: &[String],
) -> Result<HashMap<String, Vec<Clock>>, sqlx::Error> {
    let rows = select_in(
        conn,
        dialect,
        "SELECT * FROM clocks WHERE gen = $1 AND is_open = 1 AND subject IN",
        gen,
        subjects,
        "ORDER BY clock_id",
    )
    .await?;
    let mut out: HashMap<String, Vec<Clock>> = HashMap::new();
    for r in &rows {
        let c = clock_from(r)?;
        out.entry(c.subject.clone()).or_default().push(c);
    }
    Ok(out)
}

async fn load_chains(
    conn: &mut AnyConnection,
    dialect: crate::store::Dialect,
    gen: i64,
    subjects: &[String],
) -> Result<HashMap<String, (i64, String)>, sqlx::Error> {
    let rows = select_in(
        conn,
        dialect,
        "SELECT stream, seq, hash FROM chains WHERE gen = $1 AND stream IN",
        gen,
        subjects,
        "",
    )
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, (r.try_get(1)?, r.try_get(2)?))))
        .collect()
}

async fn checkpoint_in(
    conn: &mut AnyConnection,
    store: &Store,
    gen: i64,
    partition: u32,
) -> Result<(u64, String), StoreError> {
    let row =
        sqlx::query("SELECT next_offset, digest FROM checkpoints WHERE gen = $1 AND part = $2")
            .bind(gen)
            .bind(i64::from(partition))
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| store.err(e))?;
    Ok(match row {
        Some(r) => (
            r.try_get::<i64, _>(0).map_err(|e| store.err(e))? as u64,
            r.try_get::<String, _>(1).map_err(|e| store.err(e))?,
        ),
        None => (0, String::new()),
    })
}

/// The next offset to project and the digest so far, for one partition of `gen`.
pub async fn checkpoint(
    store: &Store,
    gen: i64,
    partition: u32,
) -> Result<(u64, String), StoreError> {
    let mut conn = store.pool.acquire().await.map_err(|e| store.err(e))?;
    checkpoint_in(&mut conn, store, gen, partition).await
}

/// A log record the projections could not read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    /// Its partition.
    pub partition: u32,
    /// Its offset.
    pub offset: u64,
    /// Why it could not be projected.
    pub reason: String,
    /// Its size in bytes (the bytes themselves are kept in the table).
    pub bytes: usize,
}

/// The dead letters of generation `gen`, by position.
pub async fn dead_letters(store: &Store, gen: i64) -> Result<Vec<DeadLetter>, StoreError> {
    let rows = sqlx::query("SELECT part, log_offset, reason, raw FROM dead_letters WHERE gen = $1 ORDER BY part, log_offset")
        .bind(gen)
        .fetch_all(&store.pool)
        .await
        .map_err(|e| store.err(e))?;
    rows.iter()
        .map(|r| {
            Ok(DeadLetter {
                partition: r.try_get::<i64, _>(0)? as u32,
                offset: r.try_get::<i64, _>(1)? as u64,
                reason: r.try_get(2)?,
                bytes: r.try_get::<Vec<u8>, _>(3)?.len(),
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(|e| store.err(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(payload: &[u8]) -> Record {
        Record {
            position: assist_log::Position {
                partition: 0,
                offset: 0,
            },
            stream: "person-0192f0c1-8a3b-7cde-9f00-0123456789ab".into(),
            event_id: None,
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn a_record_that_is_a_json_array_is_refused_as_not_an_object() {
        // serde reads a struct from an array of its fields too: the direct path must not
        // accept one.
        let payload = br#"["01934a5e-1004-7004-8000-000000000004", "person-0192f0c1-8a3b-7cde-9f00-0123456789ab", "contact_attempt_failed", 1, "2026-03-03T09:04:00+08:00", "2026-03-03T10:04:00+08:00", {"id": "cw-350121-007", "role": "caseworker", "region": "350121"}, "01934a5e-0000-7000-8000-00000000c0c0", null, {"alert_id": "01934a5e-0000-7000-8000-0000000a1e47", "channel": "phone", "reason": "no_answer"}]"#;
        assert!(serde_json::from_slice::<WireEvent>(payload).is_ok());
        assert_eq!(
            decode_record(&record(payload)).unwrap_err(),
            "an event must be a JSON object, found an array"
        );
    }

    #[test]
    fn a_record_with_a_bad_field_gets_the_precise_reason_of_the_json_value_path() {
        let payload = br#"{"event_id": "not-a-uuid"}"#;
        assert_eq!(
            decode_record(&record(payload)).unwrap_err(),
            decode(serde_json::from_slice(payload).unwrap(), Form::Stored)
                .unwrap_err()
                .to_string()
        );
    }
}
