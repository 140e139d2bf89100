//! Exports of a list as CSV or XLSX, with the page's column headers in the page's
//! language, scoped like the page: the rows are the API's answers for the same person,
//! page after page. Every export goes to the access log. An XLSX sheet holds at most
//! 1,048,576 rows; a longer list continues on the next sheet.

use crate::answers::{json_of, params};
use crate::catalog::Lang;
use crate::render::problem_page;
use crate::session::Session;
use assist_http::reads;
use assist_http::reads::ClockParams;
use assist_http::zone::show_stored;
use assist_http::App;
use assist_projections::sla::report::ClockLine;
use assist_projections::store::{ts, Access};
use axum::extract::Query;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use chrono::FixedOffset;
use chrono::Utc;
use rust_xlsxwriter::Workbook;
use std::sync::Arc;

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
        lang.messages()["status"][c.status]
            .as_str()
            .unwrap_or(c.status)
            .to_string(),
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
/// of it, read once (`reads::clock_list`, the API's own read, without its page).
pub async fn clocks(
    session: Session,
    State(app): State<Arc<App>>,
    Path(format): Path<String>,
    uri: Uri,
) -> Response {
    let lang = session.lang;
    if format != "csv" && format != "xlsx" {
        return problem_page(lang, Some(&session), 404, "not-found", "");
    }
    // The page's query without its page.
    let asked: Vec<&str> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("offset=") && !p.starts_with("limit="))
        .collect();
    let asked = asked.join("&");
    let p = match params::<ClockParams>(&asked) {
        Ok(Query(p)) => p,
        Err(e) => return problem_page(lang, Some(&session), 400, "bad-parameter", &e.body_text()),
    };
    let list = match reads::clock_list(&session.caller, &app, p, (usize::MAX, 0)).await {
        Ok(list) => list,
        Err(problem) => {
            return json_of(&session, Err(problem))
                .await
                .err()
                .unwrap_or_default()
        }
    };
    let access = Access {
        at: ts(Utc::now()),
        actor: session.caller.sub.clone(),
        role: session.caller.role.name().to_string(),
        stream: String::new(),
        command: format!(
            "GET export clocks.{format} rows={} {asked}",
            list.clocks.len()
        ),
        reason: None,
    };
    if let Err(e) = app.views.store.record_access(&access).await {
        tracing::error!(error = %e, "recording an export failed");
        return problem_page(lang, Some(&session), 500, "internal", "");
    }
    let headers: Vec<String> = CLOCK_COLUMNS
        .iter()
        .map(|c| {
            lang.messages()["column"][c]
                .as_str()
                .unwrap_or(c)
                .to_string()
        })
        .collect();
    let zone = app.config.zone;
    let rows = list.clocks.iter().map(|c| clock_cells(lang, c, zone));
    let (body, content_type) = if format == "csv" {
        (csv(&headers, rows).into_bytes(), "text/csv; charset=utf-8")
    } else {
        match xlsx(&headers, rows, SHEET_ROWS) {
            Ok(bytes) => (
                bytes,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ),
            Err(e) => {
                tracing::error!(error = %e, "writing an XLSX export failed");
                return problem_page(lang, Some(&session), 500, "internal", "");
            }
        }
    };
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"clocks.{format}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// CSV with a byte order mark, which Excel needs to read UTF-8 (Chinese) text.
pub fn csv(headers: &[String], rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut out = String::from("\u{feff}");
    for line in std::iter::once(headers.to_vec()).chain(rows) {
        let fields: Vec<String> = line.iter().map(|f| csv_field(f)).collect();
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

/// An XLSX workbook of `rows` under `headers`, at most `per_sheet` rows a sheet (the
/// header included; the next sheet repeats it), written row by row in constant memory.
pub fn xlsx(
    headers: &[String],
    rows: impl Iterator<Item = Vec<String>>,
    per_sheet: u32,
) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
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
    book.save_to_buffer()
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
        let bytes = xlsx(&headers, rows, 3).unwrap();
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
