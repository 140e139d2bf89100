//! JSON Lines ingest: every line checked on its own, valid lines appended in batches,
//! each rejection reported with its line and exact reason.

use crate::{Pending, Ready, RecordError, Recorder, SealOutcome};
use assist_catalog::{decode, Form};
use assist_log::{Appended, Position};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};
use uuid::Uuid;

/// The largest event accepted, in bytes of its line.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// The UTF-8 byte order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// How to ingest.
#[derive(Debug, Clone, Copy)]
pub struct IngestOptions {
    /// Reject the whole input when any line is bad.
    pub atomic: bool,
    /// Lines per append (ignored when atomic: then the input is one append).
    pub batch_lines: usize,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            atomic: false,
            batch_lines: 10_000,
        }
    }
}

/// One line that was not stored, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// 1-based line number.
    pub line: usize,
    /// The event id, when the line had a readable one.
    pub event_id: Option<Uuid>,
    /// The exact reason.
    pub reason: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.event_id {
            Some(id) => write!(f, "line {}: {id}: {}", self.line, self.reason),
            None => write!(f, "line {}: {}", self.line, self.reason),
        }
    }
}

/// One line whose event id is taken by another fact: stored before (or earlier in the
/// input) with other content. Not stored; a new fact needs a new id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// 1-based line number.
    pub line: usize,
    /// The reused id.
    pub event_id: Uuid,
    /// Where the id's fact is stored; `None` when its first use is an earlier line of an
    /// input that `--atomic` did not store.
    pub original: Option<Position>,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}: ", self.line, self.event_id)?;
        match self.original {
            Some(at) => write!(
                f,
                "this event id is stored already with other content (at {at}); a new fact needs a new id"
            ),
            None => f.write_str(
                "this event id is used on an earlier line with other content; a new fact needs a new id",
            ),
        }
    }
}

/// What an ingest did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Lines stored now, with their positions.
    pub accepted: Vec<(usize, Position)>,
    /// Lines whose event id was stored before (or earlier in the input) with the same
    /// content: retries, with the original position.
    pub duplicates: Vec<(usize, Position)>,
    /// Lines whose event id was stored before (or earlier in the input) with other content.
    pub conflicts: Vec<Conflict>,
    /// Lines not stored.
    pub rejected: Vec<Rejection>,
    /// Nothing was stored because `--atomic` was asked and a line was bad.
    pub rolled_back: bool,
}

impl IngestReport {
    /// `accepted N, duplicate N, conflicting N, rejected N`
    pub fn summary(&self) -> String {
        format!(
            "accepted {}, duplicate {}, conflicting {}, rejected {}",
            self.accepted.len(),
            self.duplicates.len(),
            self.conflicts.len(),
            self.rejected.len()
        )
    }

    /// True when every line was stored or was a retry: nothing rejected, no id reused.
    pub fn is_clean(&self) -> bool {
        self.rejected.is_empty() && self.conflicts.is_empty()
    }
}

/// Checks one line; `Ok(None)` for a blank line.
fn check_line(
    line_no: usize,
    raw: &[u8],
    length: usize,
    now: DateTime<Utc>,
) -> Result<Option<Pending>, Rejection> {
    let reject = |event_id, reason: String| Rejection {
        line: line_no,
        event_id,
        reason,
    };
    if length > MAX_LINE_BYTES {
        return Err(reject(
            None,
            format!("line is {length} bytes; an event may have at most {MAX_LINE_BYTES}"),
        ));
    }
    let text = std::str::from_utf8(raw).map_err(|e| {
        reject(
            None,
            format!("invalid UTF-8 at byte {}", e.valid_up_to() + 1),
        )
    })?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    // Each key once per object, as the schemas (and any JSON reader that keeps the first
    // key) read it: a line whose meaning depends on the reader is not a fact.
    let value: Value =
        assist_catalog::wire::parse(text).map_err(|e| reject(None, e.to_string()))?;
    let event_id = value
        .get("event_id")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::try_parse(s).ok());
    let recorded_at_given = value.get("recorded_at").is_some_and(|v| !v.is_null());
    let decoded =
        decode(value, Form::Ingest { now }).map_err(|e| reject(event_id, e.to_string()))?;
    Ok(Some(Pending {
        origin: line_no,
        decoded,
        recorded_at_given,
    }))
}

/// Lines that passed the checks, and the rejected ones.
type Checked = (Vec<Pending>, Vec<Rejection>);

/// Reads up to `max` lines (numbering them on from `line_no`); true when the input ended.
async fn read_chunk<R: AsyncBufRead + Unpin>(
    input: &mut R,
    max: usize,
    line_no: &mut usize,
) -> Result<(Vec<RawLine>, bool), RecordError> {
    let io = |e: std::io::Error| assist_log::LogError::Backend(format!("cannot read input: {e}"));
    let mut out = Vec::with_capacity(max.min(100_000));
    while out.len() < max {
        // Never hold more than the limit (plus the newline) of one line in memory.
        let mut buf = Vec::new();
        let n = (&mut *input)
            .take(MAX_LINE_BYTES as u64 + 2)
            .read_until(b'\n', &mut buf)
            .await
            .map_err(io)?;
        if n == 0 {
            return Ok((out, true));
        }
        *line_no += 1;
        // Editors on Windows begin a UTF-8 file with a byte order mark: it is no part of
        // the first line (anywhere else it stays, and the line is refused).
        if *line_no == 1 && buf.starts_with(BOM) {
            buf.drain(..BOM.len());
        }
        let mut length = buf.len();
        if buf.last() != Some(&b'\n') && buf.len() > MAX_LINE_BYTES {
            // An oversized line: count the rest of it without keeping it.
            loop {
                let mut skipped = Vec::new();
                let m = (&mut *input)
                    .take(1 << 16)
                    .read_until(b'\n', &mut skipped)
                    .await
                    .map_err(io)?;
                length += m;
                if skipped.ends_with(b"\r\n") {
                    length -= 2;
                } else if skipped.ends_with(b"\n") {
                    length -= 1;
                }
                if m == 0 || skipped.last() == Some(&b'\n') {
                    break;
                }
            }
            buf.clear();
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
            length -= 1;
        }
        if buf.last() == Some(&b'\r') {
            buf.pop();
            length -= 1;
        }
        out.push(RawLine {
            line_no: *line_no,
            bytes: buf,
            length,
        });
    }
    Ok((out, false))
}

/// One input line: its bytes (empty when it was too long to keep) and its full length.
struct RawLine {
    line_no: usize,
    bytes: Vec<u8>,
    length: usize,
}

fn check_chunk(raw: Vec<RawLine>, now: DateTime<Utc>) -> Checked {
    let mut pending = Vec::with_capacity(raw.len());
    let mut rejected = Vec::new();
    for line in raw {
        match check_line(line.line_no, &line.bytes, line.length, now) {
            Ok(Some(p)) => pending.push(p),
            Ok(None) => {}
            Err(r) => rejected.push(r),
        }
    }
    (pending, rejected)
}

async fn join(handle: tokio::task::JoinHandle<Checked>) -> Result<Checked, RecordError> {
    handle.await.map_err(|e| {
        RecordError::Log(assist_log::LogError::Backend(format!(
            "line checking stopped: {e}"
        )))
    })
}

impl Recorder {
    /// Ingests JSON Lines from `input`: checks every line, appends the valid ones, and
    /// reports each rejection. With `atomic`, stores nothing when any line is bad.
    pub async fn ingest<R: AsyncBufRead + Unpin>(
        &self,
        mut input: R,
        options: IngestOptions,
    ) -> Result<IngestReport, RecordError> {
        let now = Utc::now();
        let mut report = IngestReport::default();
        let chunk_lines = options.batch_lines.max(1);
        let mut line_no = 0;
        let mut all = Vec::new(); // atomic: everything is appended at once, at the end
                                  // Two cores: while one chunk is parsed and checked on a blocking thread, the one
                                  // before it is sealed and appended. Chunks are still appended in input order.
        let mut in_flight: Option<tokio::task::JoinHandle<Checked>> = None;
        loop {
            let (raw, eof) = read_chunk(&mut input, chunk_lines, &mut line_no).await?;
            let next = (!raw.is_empty())
                .then(|| tokio::task::spawn_blocking(move || check_chunk(raw, now)));
            if let Some(done) = std::mem::replace(&mut in_flight, next) {
                let (pending, rejected) = join(done).await?;
                report.rejected.extend(rejected);
                if options.atomic {
                    all.extend(pending);
                } else {
                    self.append_lines(pending, now, &mut report).await?;
                }
            }
            if eof && in_flight.is_none() {
                break;
            }
        }
        if options.atomic {
            // Sealing can still reject (a person whose data was erased): find out before storing.
            let sealed = self.seal(all, now).await?;
            let conflicts = self.atomic_conflicts(&sealed).await?;
            if !report.rejected.is_empty() || !sealed.erased.is_empty() || !conflicts.is_empty() {
                report
                    .rejected
                    .extend(sealed.erased.into_iter().map(erased_rejection));
                report.conflicts.extend(conflicts);
                report.rolled_back = true;
            } else {
                self.add_known(sealed.known, &mut report).await?;
                self.append_ready(sealed.ready, &mut report).await?;
            }
        }
        report.rejected.sort_by_key(|r| r.line);
        report.conflicts.sort_by_key(|c| c.line);
        report.duplicates.sort_unstable();
        report.accepted.sort_unstable();
        tracing::info!(
            accepted = report.accepted.len(),
            duplicate = report.duplicates.len(),
            conflicting = report.conflicts.len(),
            rejected = report.rejected.len(),
            rolled_back = report.rolled_back,
            "ingest finished"
        );
        Ok(report)
    }

    /// Ingests events handed over one by one (the JSON text of each, e.g. the items of
    /// an HTTP body) with the checks, sealing and idempotency of [`Recorder::ingest`];
    /// item `i` is reported as line `i + 1`. The valid items are appended in one batch
    /// under `expected`: when a stream is not at its expected version the call fails with
    /// [`assist_log::LogError::WrongExpectedVersion`] and nothing is stored. With `atomic`,
    /// nothing is stored when any item is bad.
    pub async fn ingest_items(
        &self,
        items: &[&[u8]],
        atomic: bool,
        expected: HashMap<assist_catalog::StreamId, assist_log::ExpectedVersion>,
    ) -> Result<IngestReport, RecordError> {
        let now = Utc::now();
        let mut report = IngestReport::default();
        let mut pending = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match check_line(i + 1, item, item.len(), now) {
                Ok(Some(p)) => pending.push(p),
                Ok(None) => {}
                Err(r) => report.rejected.push(r),
            }
        }
        let expected: HashMap<String, assist_log::ExpectedVersion> = expected
            .into_iter()
            .map(|(s, e)| (s.to_string(), e))
            .collect();
        let sealed = self.seal(pending, now).await?;
        if atomic {
            let conflicts = self.atomic_conflicts(&sealed).await?;
            if !report.rejected.is_empty() || !sealed.erased.is_empty() || !conflicts.is_empty() {
                report
                    .rejected
                    .extend(sealed.erased.into_iter().map(erased_rejection));
                report.conflicts.extend(conflicts);
                report.rolled_back = true;
            } else {
                self.add_known(sealed.known, &mut report).await?;
                self.append_expecting(sealed.ready, expected, &mut report)
                    .await?;
            }
        } else {
            report
                .rejected
                .extend(sealed.erased.into_iter().map(erased_rejection));
            self.add_known(sealed.known, &mut report).await?;
            self.append_expecting(sealed.ready, expected, &mut report)
                .await?;
        }
        report.rejected.sort_by_key(|r| r.line);
        report.conflicts.sort_by_key(|c| c.line);
        report.duplicates.sort_unstable();
        report.accepted.sort_unstable();
        Ok(report)
    }

    async fn append_lines(
        &self,
        pending: Vec<Pending>,
        now: DateTime<Utc>,
        report: &mut IngestReport,
    ) -> Result<(), RecordError> {
        let sealed = self.seal(pending, now).await?;
        report
            .rejected
            .extend(sealed.erased.into_iter().map(erased_rejection));
        self.add_known(sealed.known, report).await?;
        self.append_ready(sealed.ready, report).await
    }

    /// Events stored before their subject was erased: a retry is a duplicate, other
    /// content under the id a conflict.
    async fn add_known(
        &self,
        known: Vec<(usize, Position, crate::Fact)>,
        report: &mut IngestReport,
    ) -> Result<(), RecordError> {
        for (line, pos, fact) in known {
            self.sort_repeat(line, pos, &fact, report).await?;
        }
        Ok(())
    }

    /// Files a line whose id is stored at `pos` as a duplicate or a conflict.
    async fn sort_repeat(
        &self,
        line: usize,
        pos: Position,
        fact: &crate::Fact,
        report: &mut IngestReport,
    ) -> Result<(), RecordError> {
        if self.same_as_stored(pos, fact).await? {
            report.duplicates.push((line, pos));
        } else {
            report.conflicts.push(Conflict {
                line,
                event_id: fact.event.meta.event_id,
                original: Some(pos),
            });
        }
        Ok(())
    }

    /// The conflicts an atomic ingest must find before it stores anything: ids stored
    /// before with other content, and ids used twice in the input with other content.
    async fn atomic_conflicts(&self, sealed: &SealOutcome) -> Result<Vec<Conflict>, RecordError> {
        let ids: Vec<Uuid> = sealed.ready.iter().map(|r| r.event.event_id).collect();
        let stored = if ids.is_empty() {
            HashMap::new()
        } else {
            self.log.find_ids(&ids).await?
        };
        let mut conflicts = Vec::new();
        let mut first: HashMap<Uuid, &crate::Fact> = HashMap::new();
        let known = sealed
            .known
            .iter()
            .map(|(line, pos, fact)| (*line, Some(*pos), fact));
        let ready = sealed
            .ready
            .iter()
            .map(|r| (r.origin, stored.get(&r.event.event_id).copied(), &r.fact));
        for (line, pos, fact) in known.chain(ready) {
            let id = fact.event.meta.event_id;
            let same = match (pos, first.get(&id)) {
                (Some(pos), _) => self.same_as_stored(pos, fact).await?,
                (None, Some(earlier)) => self.same_fact(earlier.event.clone(), fact).await?,
                (None, None) => {
                    first.insert(id, fact);
                    true
                }
            };
            if !same {
                conflicts.push(Conflict {
                    line,
                    event_id: id,
                    original: pos,
                });
            }
        }
        Ok(conflicts)
    }

    async fn append_ready(
        &self,
        ready: Vec<Ready>,
        report: &mut IngestReport,
    ) -> Result<(), RecordError> {
        self.append_expecting(ready, HashMap::new(), report).await
    }

    async fn append_expecting(
        &self,
        ready: Vec<Ready>,
        expected: HashMap<String, assist_log::ExpectedVersion>,
        report: &mut IngestReport,
    ) -> Result<(), RecordError> {
        for o in self.append(ready, expected).await? {
            match o.appended {
                Appended::Stored(pos) => report.accepted.push((o.origin, pos)),
                // The log knows only ids; whether the content is the same is read back.
                Appended::Duplicate(pos) => {
                    self.sort_repeat(o.origin, pos, &o.fact, report).await?
                }
            }
        }
        Ok(())
    }
}

fn erased_rejection(e: crate::ErasedSubject) -> Rejection {
    Rejection {
        line: e.origin,
        event_id: Some(e.event_id),
        reason: format!(
            "personal data of {} was erased at {}; it cannot be recorded again",
            e.stream,
            e.at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        ),
    }
}
