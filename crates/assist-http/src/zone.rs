//! Times as people read them: stored times are UTC; responses (and the command line) show
//! them in one display zone, China time (`+08:00`) unless configured otherwise.

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, SecondsFormat, TimeZone, Utc};
use serde_json::Value;

/// China time, `+08:00`: the default display zone.
pub fn china() -> FixedOffset {
    assist_projections::sla::calendar::china_time()
}

/// Parses a zone: `+08:00`, `-05:00`, `UTC` or `Z`.
pub fn parse_zone(s: &str) -> Result<FixedOffset, String> {
    if s.eq_ignore_ascii_case("utc") || s == "Z" {
        return FixedOffset::east_opt(0).ok_or_else(|| "UTC".to_string());
    }
    let bad = || format!("time zone {s:?} must be an offset such as +08:00, or UTC");
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    let valid = |p: &str| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit());
    if !valid(h) || !valid(m) {
        return Err(bad());
    }
    let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 14 || m > 59 {
        return Err(bad());
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60)).ok_or_else(bad)
}

/// A time in `zone`, RFC 3339 with its offset (fractions of a second only when there are any).
pub fn show_time<Tz: TimeZone>(t: &DateTime<Tz>, zone: FixedOffset) -> String {
    t.with_timezone(&zone)
        .to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A stored time (RFC 3339 text) in `zone`; text that is not a time is returned as it is.
pub fn show_stored(stored: &str, zone: FixedOffset) -> String {
    match DateTime::parse_from_rfc3339(stored) {
        Ok(t) => show_time(&t, zone),
        Err(_) => stored.to_string(),
    }
}

/// Rewrites every UTC time in a JSON document (`2026-03-05T06:30:00.000Z`) into `zone`.
pub fn rewrite_times(v: &mut Value, zone: FixedOffset) {
    match v {
        Value::String(s) if looks_like_utc_time(s) => *s = show_stored(s, zone),
        Value::Array(items) => items.iter_mut().for_each(|i| rewrite_times(i, zone)),
        Value::Object(map) => map.values_mut().for_each(|i| rewrite_times(i, zone)),
        _ => {}
    }
}

/// `YYYY-MM-DDTHH:MM:SS…Z`: the shape of every time the views and the log store.
fn looks_like_utc_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b.len() <= 35
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b.ends_with(b"Z")
        && DateTime::parse_from_rfc3339(s).is_ok()
}

/// A time given as RFC 3339, or as a date meaning the end of that day in China time
/// (`2026-03-31` is `2026-03-31T23:59:59.999+08:00`). The error never repeats the text.
pub fn parse_when(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let bad = || {
        format!(
            "a time ({} chars) is neither a date (2026-03-31) nor an RFC 3339 time",
            s.chars().count()
        )
    };
    let day = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| bad())?;
    let next = day.succ_opt().ok_or_else(bad)?;
    let midnight = china()
        .from_local_datetime(&next.and_hms_opt(0, 0, 0).ok_or_else(bad)?)
        .single()
        .ok_or_else(bad)?;
    Ok(midnight.with_timezone(&Utc) - Duration::milliseconds(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_in_a_document_are_shown_in_the_zone_and_nothing_else_changes() {
        let mut v = serde_json::json!({"at": "2026-03-05T06:30:00.000Z", "id": "cw-1Z", "n": 3});
        rewrite_times(&mut v, china());
        assert_eq!(
            v,
            serde_json::json!({"at": "2026-03-05T14:30:00+08:00", "id": "cw-1Z", "n": 3})
        );
    }

    #[test]
    fn a_bare_date_means_the_end_of_that_day_in_china_time() {
        let t = parse_when("2026-03-31").unwrap();
        assert_eq!(show_time(&t, china()), "2026-03-31T23:59:59.999+08:00");
        assert!(parse_when("yesterday").is_err());
    }
}
