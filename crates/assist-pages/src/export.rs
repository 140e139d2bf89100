//! Exports of every list and summary as CSV or XLSX (clocks, the dashboard's figures,
//! the caseload), with the page's column headers in the page's language, scoped like the
//! page: the rows are the API's answers for the same person. Export is a permission of
//! its own: the observer has none. Every export goes to the access log. An XLSX sheet
//! holds at most 1,048,576 rows; a longer list continues on the next sheet.

use crate::answers::{json_of, params};
use crate::catalog::Lang;
use crate::render::problem_page;
use crate::session::Session;
use crate::Pages;
use assist_http::auth::{Caller, Role};
use assist_http::problem::{Kind, Problem};
use assist_http::reads;
use assist_http::reads::{ClockParams, ClockQuery};
use assist_http::zone::show_stored;
use assist_http::App;
use assist_projections::sla::report::ClockLine;
use assist_projections::store::{ts, Access};
use axum::body::Body;
use axum::extract::Query;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bytes::Bytes;
use chrono::FixedOffset;
use chrono::Utc;
use futures::stream::BoxStream;
use futures::StreamExt;
use rust_xlsxwriter::Workbook;
use serde_json::{json, Value};
use std::io::Seek;
use std::sync::Arc;
use tokio::io::AsyncReadExt;

/// The rows an XLSX sheet holds, the header included.
pub const SHEET_ROWS: u32 = 1_048_576;

/// The columns of a clock list, by their header's message key.
const CLOCK_COLUMNS: [&str; 8] = [
    "clock_id",
    "subject",
    "step",
    "region",
    "caseworker",
    "started_at",
    "due_at",
    "status",
];

/// The cells of one clock, in [`CLOCK_COLUMNS`]' order: times as the pages write them,
/// the status by its name.
fn clock_cells(lang: Lang, c: &ClockLine, zone: FixedOffset) -> Vec<String> {
    let time = |stored: &str| lang.when(&show_stored(stored, zone));
    vec![
        c.clock_id.clone(),
        c.subject.clone(),
        c.step.clone(),
        c.region.clone(),
        c.caseworker.clone(),
        time(&c.started_at),
        time(&c.due_at),
        message(lang, "status", c.status),
    ]
}

/// A CSV field, quoted when it must be.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `GET /export/clocks.{csv,xlsx}`: the clock list the same query shows on `/clocks`, all
/// of it, read page by page as it is written (`reads::ClockQuery::walk`, the API's own
/// read).
pub async fn clocks(
    session: Session,
    State(app): State<Arc<App>>,
    Extension(pages): Extension<Arc<Pages>>,
    Path(format): Path<String>,
    uri: Uri,
) -> Response {
    let lang = session.lang;
    if let Some(r) = refusal(&session, &format) {
        return r;
    }
    let asked = unpaged(&uri);
    let p = match params::<ClockParams>(&asked) {
        Ok(Query(p)) => p,
        Err(e) => return problem_page(lang, Some(&session), 400, "bad-parameter", &e.body_text()),
    };
    let query = match ClockQuery::of(&session.caller, &app, p).await {
        Ok(q) => q,
        Err(problem) => return crate::answers::page_of(&session, &problem),
    };
    let walk = match query.walk(&app).await {
        Ok(w) => w,
        Err(problem) => return crate::answers::page_of(&session, &problem),
    };
    let count = match walk.total(&app.views.store).await {
        Ok(n) => n,
        Err(e) => return crate::answers::page_of(&session, &Problem::internal(&e)),
    };
    let (zone, size) = (app.config.zone, pages.export_page_rows.max(1));
    let pages =
        futures::stream::try_unfold((walk, app.clone()), move |(mut walk, app)| async move {
            let page = walk
                .next_page(&app.views.store, &app.views.rules.calendar, size)
                .await
                .map_err(|e| Problem::internal(&e))?;
            if page.is_empty() {
                return Ok(None);
            }
            let rows = page.iter().map(|c| clock_cells(lang, c, zone)).collect();
            Ok(Some((rows, (walk, app))))
        });
    let columns: Vec<(&str, &str)> = CLOCK_COLUMNS.iter().map(|c| ("column", *c)).collect();
    deliver(
        &session,
        &app,
        Export {
            name: "clocks",
            format: &format,
            asked: &asked,
            region: &covered(&session, &asked),
            columns: &columns,
            count,
        },
        pages.boxed(),
    )
    .await
}

/// An export's rows, a page at a time, read as they are written.
type RowPages = BoxStream<'static, Result<Vec<Vec<String>>, Problem>>;

/// What an export is: its name and format, the query it answers and the region it
/// covers, its columns (each a message's section and key) and how many rows it has.
struct Export<'a> {
    name: &'a str,
    format: &'a str,
    asked: &'a str,
    region: &'a str,
    columns: &'a [(&'a str, &'a str)],
    count: usize,
}

/// Records export `e` in the access log, then answers its rows as CSV or XLSX under the
/// columns' headers in the session's language. CSV is sent as its pages are read; an
/// XLSX workbook is written to an unnamed temporary file (its sheets in constant-memory
/// mode) and sent from there, so memory holds a page, not the list.
async fn deliver(session: &Session, app: &App, e: Export<'_>, rows: RowPages) -> Response {
    let lang = session.lang;
    let access = Access {
        at: ts(Utc::now()),
        actor: session.caller.sub.clone(),
        role: session.caller.role.name().to_string(),
        stream: String::new(),
        command: format!(
            "GET export {}.{} rows={} {}",
            e.name, e.format, e.count, e.asked
        ),
        reason: None,
        region: Some(e.region.to_string()),
    };
    if let Err(err) = app.views.store.record_access(&access).await {
        tracing::error!(error = %err, "recording an export failed");
        return problem_page(lang, Some(session), 500, "internal", "");
    }
    let headers: Vec<String> = e
        .columns
        .iter()
        .map(|(section, key)| message(lang, section, key))
        .collect();
    let (body, content_type) = if e.format == "csv" {
        (
            Body::from_stream(csv_stream(headers, rows)),
            "text/csv; charset=utf-8",
        )
    } else {
        match xlsx_file(headers, rows).await {
            Ok(file) => (
                Body::from_stream(file_stream(file)),
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ),
            Err(Failed::Read(problem)) => return crate::answers::page_of(session, &problem),
            Err(Failed::Write(err)) => {
                tracing::error!(error = %err, "writing an XLSX export failed");
                return problem_page(lang, Some(session), 500, "internal", "");
            }
        }
    };
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) =
        HeaderValue::from_str(&format!("attachment; filename=\"{}.{}\"", e.name, e.format))
    {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Why an XLSX export was not written: a page could not be read, or the file not written.
enum Failed {
    Read(Problem),
    Write(String),
}

/// The CSV of `rows` under `headers` as a body's chunks: the byte order mark and the
/// headers, then a chunk per page. A page that cannot be read ends the body with an error
/// (the download breaks rather than passing for complete).
fn csv_stream(
    headers: Vec<String>,
    rows: RowPages,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    let head =
        futures::stream::once(async move { Ok(Bytes::from(csv(&headers, std::iter::empty()))) });
    let body = rows.map(|page| match page {
        Ok(page) => {
            let mut out = String::new();
            for line in page {
                csv_line(&mut out, &line);
            }
            Ok(Bytes::from(out))
        }
        Err(problem) => {
            tracing::error!(kind = ?problem.kind, "reading a page of a CSV export failed");
            Err(std::io::Error::other(
                "a page of the export could not be read",
            ))
        }
    });
    head.chain(body)
}

/// The XLSX workbook of `rows` under `headers` in an unnamed temporary file (gone once
/// closed), read back from its start: the pages go to a blocking task that writes them.
async fn xlsx_file(headers: Vec<String>, mut rows: RowPages) -> Result<tokio::fs::File, Failed> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Vec<String>>>(2);
    let writer = tokio::task::spawn_blocking(move || {
        let mut file = tempfile::tempfile().map_err(|e| e.to_string())?;
        let rows = std::iter::from_fn(move || rx.blocking_recv()).flatten();
        xlsx(&headers, rows, SHEET_ROWS, &mut file).map_err(|e| e.to_string())?;
        file.rewind().map_err(|e| e.to_string())?;
        Ok::<_, String>(file)
    });
    let mut failed = None;
    while let Some(page) = rows.next().await {
        match page {
            Ok(page) => {
                if tx.send(page).await.is_err() {
                    break;
                }
            }
            Err(problem) => {
                failed = Some(problem);
                break;
            }
        }
    }
    drop(tx);
    let written = writer.await.map_err(|e| Failed::Write(e.to_string()))?;
    if let Some(problem) = failed {
        return Err(Failed::Read(problem));
    }
    written
        .map(tokio::fs::File::from_std)
        .map_err(Failed::Write)
}

/// A file's bytes as a body's chunks, from where it stands to its end.
fn file_stream(
    file: tokio::fs::File,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::try_unfold(file, |mut file| async move {
        let mut chunk = vec![0u8; 64 * 1024];
        let n = file.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        chunk.truncate(n);
        Ok(Some((Bytes::from(chunk), file)))
    })
}

/// The region an export of query `asked` covers: the one it names (the read has checked
/// that it lies in the person's), else the person's own.
fn covered(session: &Session, asked: &str) -> String {
    params::<std::collections::HashMap<String, String>>(asked)
        .ok()
        .and_then(|Query(q)| q.get("region").cloned())
        .unwrap_or_else(|| session.caller.region.as_str().to_string())
}

/// The page's query without its page (`limit`, `offset`): an export takes all of it.
fn unpaged(uri: &Uri) -> String {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("offset=") && !p.starts_with("limit="))
        .collect::<Vec<_>>()
        .join("&")
}

/// The page that refuses an export: the observer has no export at all, and there is
/// none but CSV and XLSX.
fn refusal(session: &Session, format: &str) -> Option<Response> {
    if session.caller.role == Role::Observer {
        return Some(problem_page(
            session.lang,
            Some(session),
            403,
            "forbidden",
            "",
        ));
    }
    if format != "csv" && format != "xlsx" {
        return Some(problem_page(
            session.lang,
            Some(session),
            404,
            "not-found",
            "",
        ));
    }
    None
}

/// `GET /export/summary.{csv,xlsx}`: the dashboard's figures for the same query (the
/// API's `/v1/sla`): the region looked at and every region and caseworker below it, each
/// with its counts per status, on-time rate and rating.
pub async fn summary(
    session: Session,
    State(app): State<Arc<App>>,
    Extension(pages): Extension<Arc<Pages>>,
    Path(format): Path<String>,
    uri: Uri,
) -> Response {
    if let Some(r) = refusal(&session, &format) {
        return r;
    }
    let asked = unpaged(&uri);
    let mut lines: Vec<(String, Value)> = Vec::new();
    let mut offset = 0usize;
    loop {
        let q = format!("{asked}&limit={}&offset={offset}", reads::MAX_LIMIT);
        let answer = reads::sla(session.caller.clone(), State(app.clone()), params(&q)).await;
        let doc = match json_of(&session, answer).await {
            Ok(doc) => doc,
            Err(page) => return page,
        };
        if offset == 0 {
            lines.push((
                "total".to_string(),
                json!({"key": "", "counts": doc["total"]}),
            ));
            for l in doc["by_region"].as_array().into_iter().flatten() {
                lines.push((
                    l["level"].as_str().unwrap_or_default().to_string(),
                    l.clone(),
                ));
            }
        }
        let workers = doc["by_caseworker"].as_array().cloned().unwrap_or_default();
        offset += workers.len();
        for l in workers {
            lines.push(("caseworker".to_string(), l));
        }
        if offset >= doc["caseworkers"].as_u64().unwrap_or(0) as usize {
            break;
        }
    }
    let lang = session.lang;
    let rows = lines.iter().map(|(level, l)| {
        let counts = &l["counts"];
        let mut row = vec![message(lang, "level", level), text(&l["key"])];
        for s in crate::dashboard::STATUSES {
            row.push(counts["by_status"][s].as_u64().unwrap_or(0).to_string());
        }
        row.push(counts["total"].as_u64().unwrap_or(0).to_string());
        row.push(match counts["on_time_rate"].as_f64() {
            Some(r) => format!("{:.1}%", r * 100.0),
            None => "—".to_string(),
        });
        let rating = pages.ratings.rate(counts["on_time_rate"].as_f64());
        row.push(message(lang, "rating", rating));
        row
    });
    let mut columns: Vec<(&str, &str)> = vec![("column", "level"), ("column", "key")];
    columns.extend(crate::dashboard::STATUSES.iter().map(|s| ("status", *s)));
    columns.extend([
        ("dashboard", "total"),
        ("dashboard", "on_time"),
        ("dashboard", "rating"),
    ]);
    let rows: Vec<Vec<String>> = rows.collect();
    let count = rows.len();
    deliver(
        &session,
        &app,
        Export {
            name: "summary",
            format: &format,
            asked: &asked,
            region: &covered(&session, &asked),
            columns: &columns,
            count,
        },
        futures::stream::iter([Ok(rows)]).boxed(),
    )
    .await
}

/// `GET /export/caseload.{csv,xlsx}`: the worklist's cases (the API's `/v1/caseload` for
/// the same query), by next step due.
pub async fn caseload(
    session: Session,
    State(app): State<Arc<App>>,
    Path(format): Path<String>,
    uri: Uri,
) -> Response {
    let list = ApiList {
        name: "caseload",
        key: "cases",
        columns: &[
            ("column", "subject"),
            ("worklist", "stage"),
            ("worklist", "next_step"),
            ("column", "due_at"),
            ("column", "caseworker"),
            ("column", "region"),
            ("column", "opened_at"),
        ],
        cells: case_cells,
    };
    let read = |caller: Caller, app: Arc<App>, q: String| async move {
        reads::caseload(caller, State(app), params(&q)).await
    };
    list.export(session, app, &format, &uri, read).await
}

/// `GET /export/findings.{csv,xlsx}`: the findings of `/audit/findings` for the same
/// query (the API's `/v1/audit/findings`), each with its events.
pub async fn findings(
    session: Session,
    State(app): State<Arc<App>>,
    Path(format): Path<String>,
    uri: Uri,
) -> Response {
    let list = ApiList {
        name: "findings",
        key: "findings",
        columns: &[
            ("audit", "kind"),
            ("column", "subject"),
            ("audit", "detail"),
            ("audit", "events"),
        ],
        cells: |lang, f| {
            let events: Vec<&str> = f["events"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            vec![
                message(lang, "finding", &text(&f["kind"])),
                text(&f["subject"]),
                text(&f["detail"]),
                events.join(" "),
            ]
        },
    };
    let read = |caller: Caller, app: Arc<App>, q: String| async move {
        assist_http::audit::findings(caller, State(app), params(&q)).await
    };
    list.export(session, app, &format, &uri, read).await
}

/// `GET /export/access.{csv,xlsx}`: the access log of `/audit/access` (the API's
/// `/v1/access-log` for the same auditor).
pub async fn access(
    session: Session,
    State(app): State<Arc<App>>,
    Path(format): Path<String>,
    uri: Uri,
) -> Response {
    let list = ApiList {
        name: "access",
        key: "entries",
        columns: &[
            ("audit", "when"),
            ("audit", "who"),
            ("audit", "role"),
            ("column", "subject"),
            ("audit", "scope"),
            ("audit", "what"),
            ("audit", "reason"),
        ],
        cells: |lang, a| {
            vec![
                lang.when(&text(&a["at"])),
                text(&a["actor"]),
                message(lang, "role", &text(&a["role"])),
                text(&a["stream"]),
                text(&a["region"]),
                text(&a["command"]),
                text(&a["reason"]),
            ]
        },
    };
    let read = |caller: Caller, app: Arc<App>, q: String| async move {
        reads::access_log(caller, State(app), params(&q)).await
    };
    list.export(session, app, &format, &uri, read).await
}

/// An export of a list an API handler pages (`limit`, `offset`, its `total`, the items
/// under `key`): its name, its columns (each a message's section and key) and the cells
/// of one item.
struct ApiList {
    name: &'static str,
    key: &'static str,
    columns: &'static [(&'static str, &'static str)],
    cells: fn(Lang, &Value) -> Vec<String>,
}

impl ApiList {
    /// The export for `session` of the list `read` (the handler called as the caller with
    /// a query) gives for the page's query, `format` CSV or XLSX.
    async fn export<R, F>(
        &self,
        session: Session,
        app: Arc<App>,
        format: &str,
        uri: &Uri,
        read: R,
    ) -> Response
    where
        R: Fn(Caller, Arc<App>, String) -> F + Send + Sync + 'static,
        F: std::future::Future<Output = Result<Response, Problem>> + Send,
    {
        if let Some(r) = refusal(&session, format) {
            return r;
        }
        let asked = unpaged(uri);
        let (count, pages) =
            match api_list(&session, &app, &asked, self.key, read, self.cells).await {
                Ok(list) => list,
                Err(page) => return page,
            };
        deliver(
            &session,
            &app,
            Export {
                name: self.name,
                format,
                asked: &asked,
                region: &covered(&session, &asked),
                columns: self.columns,
                count,
            },
            pages,
        )
        .await
    }
}

/// A JSON string's text, empty for anything else.
fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// Message `key` of catalog section `section` in `lang`, or the key itself.
fn message(lang: Lang, section: &str, key: &str) -> String {
    lang.messages()[section][key]
        .as_str()
        .unwrap_or(key)
        .to_string()
}

/// A list an API handler pages (`limit`, `offset`, its `total`, the items under `key`),
/// for an export: how many items it has and its rows (`cells` of each item), a page of
/// 1,000 at a time. `read` calls the handler as the caller with a query. The first page
/// is read here, so the caller's own problems (scope, parameters) become their page; the
/// others as the export is written.
async fn api_list<R, F>(
    session: &Session,
    app: &Arc<App>,
    asked: &str,
    key: &'static str,
    read: R,
    cells: fn(Lang, &Value) -> Vec<String>,
) -> Result<(usize, RowPages), Response>
where
    R: Fn(Caller, Arc<App>, String) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = Result<Response, Problem>> + Send,
{
    let query = format!("{asked}&limit={}&offset=0", reads::MAX_LIMIT);
    let first = read(session.caller.clone(), app.clone(), query).await;
    let first = json_of(session, first).await?;
    let count = first["total"].as_u64().unwrap_or(0) as usize;
    let (lang, caller, app, asked) = (
        session.lang,
        session.caller.clone(),
        app.clone(),
        asked.to_string(),
    );
    let read = Arc::new(read);
    let pages = futures::stream::try_unfold((Some(first), 0usize), move |(doc, offset)| {
        let (caller, app, read) = (caller.clone(), app.clone(), read.clone());
        let query = format!("{asked}&limit={}&offset={offset}", reads::MAX_LIMIT);
        async move {
            let doc = match doc {
                Some(doc) => doc,
                None => answer_json(read(caller, app, query).await).await?,
            };
            let items = doc[key].as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                return Ok(None);
            }
            let next = offset + items.len();
            let rows = items.iter().map(|item| cells(lang, item)).collect();
            // Past the total: the next call ends the list without asking again.
            let done = (next >= count).then(|| json!({ key: [] }));
            Ok(Some((rows, (done, next))))
        }
    });
    Ok((count, pages.boxed()))
}

/// The cells of one case of the API's caseload, in the caseload export's column order.
fn case_cells(lang: Lang, c: &Value) -> Vec<String> {
    vec![
        text(&c["subject"]),
        message(lang, "stage", &text(&c["stage"])),
        text(&c["next_step"]["step"]),
        c["next_step"]["due_at"]
            .as_str()
            .map(|t| lang.when(t))
            .unwrap_or_default(),
        text(&c["caseworker"]),
        text(&c["region"]),
        lang.when(&text(&c["opened_at"])),
    ]
}

/// The JSON an API handler answered for a later page of an export; any problem is the
/// server's (the first page answered the caller's own).
async fn answer_json(answer: Result<Response, Problem>) -> Result<Value, Problem> {
    let response = answer?;
    let ok = response.status().is_success();
    let bytes = axum::body::to_bytes(response.into_body(), 64 << 20)
        .await
        .map_err(|e| Problem::internal(&e))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(doc) if ok => Ok(doc),
        _ => Err(Problem::new(
            Kind::Internal,
            "a later page of the export could not be read",
        )),
    }
}

/// CSV with a byte order mark, which Excel needs to read UTF-8 (Chinese) text.
pub fn csv(headers: &[String], rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut out = String::from("\u{feff}");
    for line in std::iter::once(headers.to_vec()).chain(rows) {
        csv_line(&mut out, &line);
    }
    out
}

/// One CSV line (fields quoted where they must be), ended by CRLF.
fn csv_line(out: &mut String, fields: &[String]) {
    let fields: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
    out.push_str(&fields.join(","));
    out.push_str("\r\n");
}

/// An XLSX workbook of `rows` under `headers`, at most `per_sheet` rows a sheet (the
/// header included; the next sheet repeats it), written row by row in constant memory
/// to `out`.
pub fn xlsx(
    headers: &[String],
    rows: impl Iterator<Item = Vec<String>>,
    per_sheet: u32,
    out: impl std::io::Write + Send,
) -> Result<(), rust_xlsxwriter::XlsxError> {
    let mut book = Workbook::new();
    let per_sheet = per_sheet.max(2);
    let mut sheet = book.add_worksheet_with_constant_memory()?;
    sheet.write_row(0, 0, headers)?;
    let mut row = 1;
    for cells in rows {
        if row == per_sheet {
            sheet = book.add_worksheet_with_constant_memory()?;
            sheet.write_row(0, 0, headers)?;
            row = 1;
        }
        sheet.write_row(row, 0, cells)?;
        row += 1;
    }
    book.save_to_writer(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_starts_with_a_byte_order_mark_and_quotes_what_needs_it() {
        let out = csv(
            &["编号".to_string(), "b".to_string()],
            [vec!["x,y".to_string(), "say \"hi\"".to_string()]].into_iter(),
        );
        assert_eq!(out, "\u{feff}编号,b\r\n\"x,y\",\"say \"\"hi\"\"\"\r\n");
    }
}

#[cfg(test)]
mod sheets {
    use super::*;
    use calamine::Reader;

    #[test]
    fn a_list_longer_than_a_sheet_continues_on_the_next_sheet_under_the_same_headers() {
        let headers = vec!["编号".to_string(), "状态".to_string()];
        let rows = (0..7).map(|i| vec![format!("c{i}"), "已超时".to_string()]);
        // Three rows a sheet: the header and two clocks.
        let mut bytes = Vec::new();
        xlsx(&headers, rows, 3, &mut bytes).unwrap();
        let mut book = calamine::Xlsx::new(std::io::Cursor::new(bytes)).unwrap();
        let sheets: Vec<Vec<Vec<String>>> = book
            .worksheets()
            .into_iter()
            .map(|(_, range)| {
                range
                    .rows()
                    .map(|r| r.iter().map(|c| c.to_string()).collect())
                    .collect()
            })
            .collect();
        assert_eq!(sheets.len(), 4);
        for sheet in &sheets {
            assert_eq!(sheet[0], headers);
        }
        let ids: Vec<&str> = sheets
            .iter()
            .flat_map(|s| s[1..].iter().map(|r| r[0].as_str()))
            .collect();
        assert_eq!(ids, ["c0", "c1", "c2", "c3", "c4", "c5", "c6"]);
    }
}
