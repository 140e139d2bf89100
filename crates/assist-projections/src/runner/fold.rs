//! The fold of a batch: decoded records into the memory and the rows they make (the
//! audit chain and digest in log order, each subject in its fold order).

use super::*;

/// Folds a batch read from `from` = `mem.next_offset` into rows, from the memory alone
/// (and the `history` of its late subjects, else it returns them: see [`fold_decoded`]).
/// Its subjects new to the memory are listed for the write to check.
#[allow(clippy::too_many_arguments)]
pub(super) fn fold(
    rules: &Rules,
    limits: MemoryLimits,
    gen: i64,
    partition: u32,
    records: &[Record],
    mem: &mut Memory,
    history: &HashMap<StreamId, History>,
) -> Result<Folded, Vec<StreamId>> {
    let decoded: Vec<(&Record, Result<Event, String>)> =
        records.iter().map(|r| (r, decode_record(r))).collect();
    let unseen = unseen_subjects(&decoded, mem)
        .iter()
        .map(StreamId::name)
        .collect();
    Ok(Folded {
        unseen,
        ..fold_decoded(rules, limits, gen, partition, decoded, mem, None, history)?
    })
}

/// Folds decoded records into the memory and the rows that record the result. Ids are
/// told new by `seen_before` (the stored ids among them) when given, else by the
/// memory's complete set.
///
/// The audit chain and the digest follow the records' log order; each subject's state
/// follows its events' [`FoldKey`] order. A subject with an event below its greatest key
/// so far (a fact that arrived late) is folded again from `history`, and its clock and
/// finding rows replaced; a late subject without a history there is returned instead,
/// with nothing changed, for the caller to read it and fold again.
#[allow(clippy::too_many_arguments)]
pub(super) fn fold_decoded(
    rules: &Rules,
    limits: MemoryLimits,
    gen: i64,
    partition: u32,
    decoded: Vec<(&Record, Result<Event, String>)>,
    mem: &mut Memory,
    seen_before: Option<HashSet<String>>,
    history: &HashMap<StreamId, History>,
) -> Result<Folded, Vec<StreamId>> {
    let missing: Vec<StreamId> = late_subjects(&decoded, mem)
        .into_iter()
        .filter(|s| !history.contains_key(s))
        .collect();
    if !missing.is_empty() {
        return Err(missing);
    }
    let from = mem.next_offset;
    let after_deferred = mem.deferring && from > 0;
    let last = decoded
        .last()
        .map_or(from.saturating_sub(1), |(r, _)| r.position.offset);
    let mut digest = std::mem::take(&mut mem.digest);
    let mut seen_before = seen_before;
    let mut stats = RunStats {
        records: decoded.len() as u64,
        ..RunStats::default()
    };
    let mut rows = Rows::default();
    // Each subject this batch touches, as it stood before it.
    let mut before: HashMap<StreamId, Before> = HashMap::new();
    // Each subject's events of this batch with their offsets, subjects in the order met.
    let mut applied: HashMap<StreamId, Vec<(FoldKey, u64, Event)>> = HashMap::new();
    let mut order: Vec<StreamId> = Vec::new();
    // First the log order: digest, dead letters, duplicates, the audit chain, and the rows
    // that depend on one event alone.
    for (rec, event) in decoded {
        digest = next_digest(&digest, &rec.payload);
        let event = match event {
            Ok(e) => e,
            Err(reason) => {
                stats.dead_letters += 1;
                tracing::warn!(partition, offset = rec.position.offset, %reason, "dead letter");
                // Never personal values in clear (see `dead_letter`), and a reason of a
                // redacted record shows no quoted value either.
                let kept = crate::dead_letter::kept(&rec.payload);
                let reason = match kept.redacted {
                    true => assist_catalog::redact(&reason),
                    false => reason,
                };
                rows.dead.push(vec![
                    Val::Int(gen),
                    Val::Int(i64::from(partition)),
                    Val::Int(rec.position.offset as i64),
                    Val::Bytes(kept.bytes),
                    // PostgreSQL refuses NUL in text; a reason may quote the raw bytes.
                    Val::Text(
                        reason
                            .chars()
                            .map(|c| if c.is_control() { '\u{fffd}' } else { c })
                            .collect(),
                    ),
                    Val::Text(rec.stream.clone()),
                    Val::Text(kept.sha256),
                    Val::Int(i64::from(kept.redacted)),
                ]);
                continue;
            }
        };
        let id = event.meta.event_id.to_string();
        let new = match &mut seen_before {
            Some(stored) => stored.insert(id.clone()),
            None => mem.seen.insert(event.meta.event_id),
        };
        if !new {
            stats.duplicates += 1;
            continue;
        }
        stats.applied += 1;
        let key = event.meta.stream;
        let subject = key.name();
        let state = mem.subjects.entry(key).or_default();
        if let std::collections::hash_map::Entry::Vacant(v) = before.entry(key) {
            v.insert(if mem.deferring {
                Before::default()
            } else {
                Before {
                    clocks: state.clocks.clone(),
                    case: state.case.is_some(),
                    chain: state.chain.0 > 0,
                }
            });
            order.push(key);
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
        event_rows(gen, &id, &subject, &event, &mut rows);
        applied
            .entry(key)
            .or_default()
            .push((fold_key(&event), rec.position.offset, event));
    }
    // Then each subject's fold, in the order its facts occurred.
    let mut refolded: HashSet<StreamId> = HashSet::new();
    let (mut replaced_clocks, mut replaced_findings) = (Vec::new(), Vec::new());
    for s in &order {
        let Some(mut events) = applied.remove(s) else {
            continue;
        };
        events.sort_unstable_by_key(|(k, _, _)| *k);
        let Some(state) = mem.subjects.get_mut(s) else {
            continue;
        };
        let newest = events.last().map(|(k, _, _)| *k);
        let late = match (state.last, events.first()) {
            (Some(last), Some((first, _, _))) => *first < last,
            _ => false,
        };
        if mem.complete {
            state.offsets.extend(events.iter().map(|(_, o, _)| *o));
        }
        let subject = s.name();
        let mut fold_one = |state: &mut SubjectState, event: &Event| {
            for (kind, detail) in rule_findings(state.case.as_ref(), event) {
                rows.findings.push(vec![
                    Val::Int(gen),
                    Val::Text(event.meta.event_id.to_string()),
                    Val::Text(kind.into()),
                    Val::Text(subject.clone()),
                    Val::Text(detail),
                ]);
            }
            crate::subject::apply(rules, &mut state.case, &mut state.clocks, event);
        };
        match history.get(s).filter(|_| late) {
            None => {
                for (_, _, event) in &events {
                    fold_one(state, event);
                }
            }
            Some(h) => {
                // The rows the earlier fold made go; the fold of every event replaces them.
                replaced_clocks.extend(match &h.clock_ids {
                    Some(ids) => ids.clone(),
                    None => {
                        let (mut case, mut clocks) = (None, Vec::new());
                        let mut earlier: Vec<&Event> = h.events.iter().collect();
                        earlier.sort_unstable_by_key(|e| fold_key(e));
                        for e in earlier {
                            crate::subject::apply(rules, &mut case, &mut clocks, e);
                        }
                        clocks.into_iter().map(|c| c.clock_id).collect()
                    }
                });
                replaced_findings.extend(h.events.iter().map(|e| e.meta.event_id.to_string()));
                let mut all: Vec<&Event> = h.events.iter().collect();
                all.extend(events.iter().map(|(_, _, e)| e));
                all.sort_unstable_by_key(|e| fold_key(e));
                (state.case, state.clocks) = (None, Vec::new());
                // Anew from the events (a subject with rows from before fold keys had
                // the greatest key there is).
                state.last = all.last().map(|e| fold_key(e));
                for event in all {
                    fold_one(state, event);
                }
                refolded.insert(*s);
            }
        }
        state.last = state.last.max(newest);
    }
    rows.digests.push(vec![
        Val::Int(gen),
        Val::Int(i64::from(partition)),
        Val::Int(last as i64 + 1),
        Val::Text(digest.clone()),
    ]);

    // Every subject the batch touched: its case, its clocks that changed, its chain head;
    // while they are deferred, only its clocks that closed (the memory keeps only open
    // ones: the rest go in at the partition's end).
    let mut touched: Vec<(&StreamId, &SubjectState)> = before
        .keys()
        .filter_map(|s| mem.subjects.get_key_value(s))
        .collect();
    touched.sort_unstable_by_key(|(s, _)| name_order(s));
    // Rows new to the table go in as plain inserts (PostgreSQL: COPY), the others as
    // upserts. A clock made by this batch is new: its id holds its start event's.
    let (mut cases_new, mut cases_changed) = (Vec::new(), Vec::new());
    let (mut clocks_new, mut clocks_changed) = (Vec::new(), Vec::new());
    let (mut chains_new, mut chains_changed) = (Vec::new(), Vec::new());
    for (s, st) in &touched {
        if mem.deferring {
            let closed = st.clocks.iter().filter(|c| !c.is_open());
            clocks_new.extend(closed.map(|c| clock_row(gen, c, &rules.calendar)));
            continue;
        }
        let Some(was) = before.get(*s) else { continue };
        if let Some(c) = &st.case {
            let to = if was.case {
                &mut cases_changed
            } else {
                &mut cases_new
            };
            to.push(case_row(gen, c, &st.clocks, &rules.calendar));
        }
        // A subject folded again had its clock rows deleted: every clock is new.
        let was_clocks: &[Clock] = if refolded.contains(*s) {
            &[]
        } else {
            &was.clocks
        };
        for c in st.clocks.iter().filter(|c| !was_clocks.contains(c)) {
            let existed = was_clocks.iter().any(|o| o.clock_id == c.clock_id);
            let to = if existed {
                &mut clocks_changed
            } else {
                &mut clocks_new
            };
            to.push(clock_row(gen, c, &rules.calendar));
        }
        let to = if was.chain {
            &mut chains_changed
        } else {
            &mut chains_new
        };
        to.push(chain_row(gen, s, st));
    }

    // The memory now holds what the rows will: only the open clocks.
    for s in before.keys() {
        if let Some(st) = mem.subjects.get_mut(s) {
            st.clocks.retain(Clock::is_open);
        }
    }
    mem.next_offset = last + 1;
    mem.digest = digest.clone();
    let forget = mem.subjects.len() > limits.subjects || mem.seen.len() > limits.ids;
    if forget && mem.deferring {
        // What the memory holds goes into rows before it is forgotten.
        subject_rows(
            gen,
            &rules.calendar,
            mem,
            &mut cases_new,
            &mut clocks_new,
            &mut chains_new,
        );
        mem.deferring = false;
    }
    sort_by_clock_id(&mut clocks_new);
    sort_by_clock_id(&mut clocks_changed);
    let (checkpoint, expects) = mem.checkpoint(gen, partition);
    let defers = mem.deferring;
    if forget {
        // Emptied, under the same token: the checkpoint above carries it.
        *mem = Memory {
            token: std::mem::take(&mut mem.token),
            expects: std::mem::take(&mut mem.expects),
            ..Memory::new(mem.next_offset, false)
        };
        mem.digest = digest;
    }
    Ok(Folded {
        gen,
        from,
        expects,
        after_deferred,
        defers,
        unseen: Vec::new(),
        stats,
        replaced_clocks,
        replaced_findings,
        audit: rows.audit,
        rest: vec![
            (&PLACEMENTS, rows.placements),
            (&CLEARINGS, rows.clearings),
            (&MEMBERS, rows.members),
            (&JOB_LOSSES, rows.job_losses),
            (&FINDINGS, rows.findings),
            (&DEAD_LETTERS, rows.dead),
            (&DIGESTS, rows.digests),
            (&CASES_NEW, cases_new),
            (&CASES, cases_changed),
            (&CLOCKS_NEW, clocks_new),
            (&CLOCKS, clocks_changed),
            (&CHAINS_NEW, chains_new),
            (&CHAINS, chains_changed),
            (&CHECKPOINTS, checkpoint),
        ],
    })
}

/// The batch's subjects with an event below the greatest fold key the memory holds for
/// them: facts that arrived after facts that occurred later. In the order of their names.
pub(super) fn late_subjects(
    decoded: &[(&Record, Result<Event, String>)],
    mem: &Memory,
) -> Vec<StreamId> {
    let late: HashSet<StreamId> = decoded
        .iter()
        .filter_map(|(_, e)| e.as_ref().ok())
        .filter(|e| {
            mem.subjects
                .get(&e.meta.stream)
                .and_then(|s| s.last)
                .is_some_and(|last| fold_key(e) < last)
        })
        .map(|e| e.meta.stream)
        .collect();
    let mut late: Vec<StreamId> = late.into_iter().collect();
    late.sort_unstable_by_key(name_order);
    late
}

/// A partition caught up with its subjects' rows deferred: those rows, and its checkpoint
/// saying they are there.
pub(super) fn flush(gen: i64, partition: u32, calendar: &Calendar, mem: &mut Memory) -> Folded {
    let (mut cases, mut clocks, mut chains) = (Vec::new(), Vec::new(), Vec::new());
    subject_rows(gen, calendar, mem, &mut cases, &mut clocks, &mut chains);
    sort_by_clock_id(&mut clocks);
    mem.deferring = false;
    let (checkpoint, expects) = mem.checkpoint(gen, partition);
    Folded {
        gen,
        from: mem.next_offset,
        expects,
        after_deferred: true,
        defers: false,
        unseen: Vec::new(),
        stats: RunStats::default(),
        replaced_clocks: Vec::new(),
        replaced_findings: Vec::new(),
        audit: Vec::new(),
        rest: vec![
            (&CASES_NEW, cases),
            (&CLOCKS_NEW, clocks),
            (&CHAINS_NEW, chains),
            (&CHECKPOINTS, checkpoint),
            (&CAUGHT_UP, caught_up_row(gen, partition)),
        ],
    }
}

/// The batch's subjects the memory does not hold, in the order of their names.
pub(super) fn unseen_subjects(
    decoded: &[(&Record, Result<Event, String>)],
    mem: &Memory,
) -> Vec<StreamId> {
    let streams: HashSet<StreamId> = decoded
        .iter()
        .filter_map(|(_, e)| e.as_ref().ok())
        .map(|e| e.meta.stream)
        .filter(|s| !mem.subjects.contains_key(s))
        .collect();
    let mut unseen: Vec<StreamId> = streams.into_iter().collect();
    unseen.sort_unstable_by_key(name_order);
    unseen
}

/// A key that sorts streams as their names sort (`household-…` before `person-…`, then
/// the uuid, whose bytes sort as its lower-case hex): rows go in in their key's order.
pub(super) fn name_order(s: &StreamId) -> (&'static str, uuid::Uuid) {
    (s.kind.prefix(), s.id)
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

pub(super) fn placement_kind(data: &EventData) -> Option<&'static str> {
    match data {
        EventData::Hired(h) if h.public_welfare_post => Some("public_welfare_post"),
        EventData::Hired(_) => Some("hired"),
        EventData::SelfEmployed(_) => Some("self_employed"),
        EventData::FlexibleWorkStarted(_) => Some("flexible_work"),
        _ => None,
    }
}
