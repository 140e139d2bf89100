//! Exports of a list as CSV or XLSX, with the page's column headers in the page's
//! language, scoped like the page: the rows are the API's answers for the same person,
//! page after page. Every export goes to the access log. An XLSX sheet holds at most
//! 1,048,576 rows; a longer list continues on the next sheet.

use crate::answers::{json_of, params};
use crate::catalog::Lang;
use crate::render::problem_page;
use crate::session::Session;
use assist_http::reads;
use assist_http::App;
use assist_projections::store::{ts, Access};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use rust_xlsxwriter::Workbook;
use serde_json::Value;
use std::sync::Arc;

/// The rows an XLSX sheet holds, the header included.
pub const SHEET_ROWS: u32 = 1_048_576;

/// The columns of a clock list: the field of each line and its header's message key.
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

/// The text of one cell: times as the pages write them, statuses by their name.
fn cell(lang: Lang, column: &str, line: &Value) -> String {
    let v = line[column].as_str().unwrap_or_default();
    match column {
        "started_at" | "due_at" => lang.when(v),
        "status" => lang.messages()["status"][v]
            .as_str()
            .unwrap_or(v)
            .to_string(),
        _ => v.to_string(),
    }
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
/// of it.
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
    // The page's query without its page: the export pages through it all.
    let asked: Vec<&str> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("offset=") && !p.starts_with("limit="))
        .collect();
    let asked = asked.join("&");
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut offset = 0usize;
    loop {
        let q = format!(
            "{asked}{}limit={}&offset={offset}",
            if asked.is_empty() { "" } else { "&" },
            reads::MAX_LIMIT
        );
        let answer = reads::clocks(session.caller.clone(), State(app.clone()), params(&q)).await;
        let doc = match json_of(&session, answer).await {
            Ok(doc) => doc,
            Err(page) => return page,
        };
        let lines = doc["clocks"].as_array().cloned().unwrap_or_default();
        offset += lines.len();
        rows.extend(lines.iter().map(|l| {
            CLOCK_COLUMNS
                .iter()
                .map(|c| cell(lang, c, l))
                .collect::<Vec<_>>()
        }));
        if lines.is_empty() || offset >= doc["total"].as_u64().unwrap_or(0) as usize {
            break;
        }
    }
    let access = Access {
        at: ts(Utc::now()),
        actor: session.caller.sub.clone(),
        role: session.caller.role.name().to_string(),
        stream: String::new(),
        command: format!("GET export clocks.{format} rows={} {asked}", rows.len()),
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
    let (body, content_type) = if format == "csv" {
        (csv(&headers, &rows).into_bytes(), "text/csv; charset=utf-8")
    } else {
        match xlsx(&headers, &rows, SHEET_ROWS) {
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
pub fn csv(headers: &[String], rows: &[Vec<String>]) -> String {
    let mut out = String::from("\u{feff}");
    for line in std::iter::once(headers).chain(rows.iter().map(Vec::as_slice)) {
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
    rows: &[Vec<String>],
    per_sheet: u32,
) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    let mut book = Workbook::new();
    let per_sheet = per_sheet.max(2) as usize - 1;
    let mut chunks = rows.chunks(per_sheet).peekable();
    if chunks.peek().is_none() {
        book.add_worksheet_with_constant_memory()?
            .write_row(0, 0, headers)?;
    }
    for chunk in chunks {
        let sheet = book.add_worksheet_with_constant_memory()?;
        sheet.write_row(0, 0, headers)?;
        for (i, row) in chunk.iter().enumerate() {
            sheet.write_row(i as u32 + 1, 0, row)?;
        }
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
            &[vec!["x,y".to_string(), "say \"hi\"".to_string()]],
        );
        assert_eq!(out, "\u{feff}编号,b\r\n\"x,y\",\"say \"\"hi\"\"\"\r\n");
    }
}
