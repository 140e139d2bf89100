//! The caseworker's worklist: their cases, overdue first, then due today, then this week,
//! then later; each with its next step and how long is left, its timeline one click away.

use crate::answers::{json_of, params, query};
use crate::render::{encode_segment, page};
use crate::session::Session;
use assist_http::reads;
use assist_http::App;
use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use chrono::{DateTime, Datelike, Duration, FixedOffset};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Cases on one worklist page.
const PAGE: usize = 200;

/// Which part of the worklist a deadline puts a case in, seen at `now` (in its zone):
/// `overdue`, `today`, `week` (by Sunday's end), `later`, or `none` without a deadline.
pub fn band(due: Option<DateTime<FixedOffset>>, now: DateTime<FixedOffset>) -> &'static str {
    let Some(due) = due else { return "none" };
    if due < now {
        return "overdue";
    }
    let today = due.with_timezone(now.offset()).date_naive();
    if today == now.date_naive() {
        return "today";
    }
    let sunday =
        now.date_naive() + Duration::days(6 - i64::from(now.weekday().num_days_from_monday()));
    if today <= sunday {
        "week"
    } else {
        "later"
    }
}

/// How long is left (negative: how long overdue), in whole days past two days, else hours.
pub fn left(due: DateTime<FixedOffset>, now: DateTime<FixedOffset>) -> (i64, &'static str) {
    let d = due - now;
    if d.num_hours().abs() >= 48 {
        (d.num_days(), "days")
    } else {
        (d.num_hours(), "hours")
    }
}

#[derive(Deserialize, Default)]
struct Asked {
    offset: Option<usize>,
}

/// `GET /worklist`: the caller's caseload from the API (a caseworker's own cases; a
/// supervisor's region).
pub async fn worklist(session: Session, State(app): State<Arc<App>>, uri: Uri) -> Response {
    let offset = axum::extract::Query::<Asked>::try_from_uri(&uri)
        .map(|q| q.0.offset.unwrap_or(0))
        .unwrap_or(0);
    let q = query(&[
        ("limit", Some(&PAGE.to_string())),
        ("offset", Some(&offset.to_string())),
    ]);
    let answer = reads::caseload(session.caller.clone(), State(app), params(&q)).await;
    let doc = match json_of(&session, answer).await {
        Ok(doc) => doc,
        Err(page) => return page,
    };
    let now = DateTime::parse_from_rfc3339(doc["at"].as_str().unwrap_or_default()).ok();
    let mut bands: Vec<(&str, Vec<Value>)> = ["overdue", "today", "week", "later", "none"]
        .into_iter()
        .map(|b| (b, Vec::new()))
        .collect();
    for c in doc["cases"].as_array().into_iter().flatten() {
        let due = c["next_step"]["due_at"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok());
        let Some(now) = now else { continue };
        let b = band(due, now);
        let mut c = c.clone();
        if let Some(due) = due {
            let (n, unit) = left(due, now);
            c["left"] = json!({"n": n.abs(), "unit": unit, "overdue": n < 0 || due < now});
        }
        c["href"] = json!(format!(
            "/streams/{}",
            encode_segment(c["subject"].as_str().unwrap_or_default())
        ));
        if let Some((_, cases)) = bands.iter_mut().find(|(name, _)| *name == b) {
            cases.push(c);
        }
    }
    let total = doc["total"].as_u64().unwrap_or(0) as usize;
    let shown: usize = bands.iter().map(|(_, c)| c.len()).sum();
    page(
        "worklist.html",
        session.lang,
        Some(&session),
        json!({
            "here": "/worklist",
            "at": doc["at"],
            "total": total,
            "by_stage": doc["by_stage"],
            "bands": bands.into_iter().map(|(b, cases)| json!({"band": b, "cases": cases})).collect::<Vec<_>>(),
            "prev": (offset > 0).then(|| format!("/worklist?offset={}", offset.saturating_sub(PAGE))),
            "next": (offset + shown < total).then(|| format!("/worklist?offset={}", offset + PAGE)),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    #[test]
    fn a_deadline_falls_in_overdue_today_this_week_or_later_in_china_time() {
        // A Thursday afternoon.
        let now = t("2026-03-05T14:30:00+08:00");
        assert_eq!(band(Some(t("2026-03-05T14:29:00+08:00")), now), "overdue");
        assert_eq!(band(Some(t("2026-03-05T23:59:00+08:00")), now), "today");
        // 2026-03-05T16:30Z is past midnight in China: Friday, this week.
        assert_eq!(band(Some(t("2026-03-05T16:30:00Z")), now), "week");
        assert_eq!(band(Some(t("2026-03-08T23:59:00+08:00")), now), "week");
        assert_eq!(band(Some(t("2026-03-09T00:00:00+08:00")), now), "later");
        assert_eq!(band(None, now), "none");
    }

    #[test]
    fn time_left_is_in_hours_under_two_days_and_in_days_beyond() {
        let now = t("2026-03-05T14:30:00+08:00");
        assert_eq!(left(t("2026-03-05T19:30:00+08:00"), now), (5, "hours"));
        assert_eq!(left(t("2026-03-02T14:30:00+08:00"), now), (-3, "days"));
        assert_eq!(left(t("2026-03-07T14:29:00+08:00"), now), (47, "hours"));
    }
}
