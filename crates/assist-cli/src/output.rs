//! What the command prints: lines on standard output that stop quietly when the reader has
//! gone (`assist sla | head`), times shown in the reader's zone (China time by default), and
//! errors as one line per distinct cause.

use chrono::{DateTime, FixedOffset};
use serde_json::Value;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// Set once standard output is found closed: nothing more is written, the command goes on.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// The zone times are shown in, set once by `main` from `--tz` / `--utc`.
static ZONE: OnceLock<FixedOffset> = OnceLock::new();

/// Writes one line to standard output. A reader that closed the pipe (`| head`) is not an
/// error: the rest of the output is dropped and the command finishes its work and exits
/// with its own status. Any other write failure (a full disk behind a redirect) is.
pub fn line(text: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    match out.write_fmt(text).and_then(|()| out.write_all(b"\n")) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        other => other,
    }
}

/// `outln!("…", args)?`: a line on standard output through [`line`].
#[macro_export]
macro_rules! outln {
    () => {
        $crate::output::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}

/// The zone times are shown in: `+08:00` (China time) unless `main` chose another.
pub fn zone() -> FixedOffset {
    *ZONE.get_or_init(assist_http::zone::china)
}

/// Chooses the display zone; `main` calls it once before any command runs.
pub fn set_zone(zone: FixedOffset) {
    let _ = ZONE.set(zone);
}

/// Parses `--tz`: `+08:00`, `-05:00`, `UTC` or `Z`.
pub fn parse_zone(s: &str) -> Result<FixedOffset, String> {
    assist_http::zone::parse_zone(s)
}

/// A time in the display zone, RFC 3339 with its offset (`2026-03-05T14:30:00+08:00`;
/// fractions of a second only when there are any).
pub fn show_time<Tz: chrono::TimeZone>(t: &DateTime<Tz>) -> String {
    assist_http::zone::show_time(t, zone())
}

/// A stored time (RFC 3339 text, UTC) in the display zone; text that is not a time is
/// returned as it is.
pub fn show(stored: &str) -> String {
    assist_http::zone::show_stored(stored, zone())
}

/// Rewrites every UTC time in a JSON document (a string such as `2026-03-05T06:30:00.000Z`)
/// into the display zone, so `--json` shows the same times as the text output.
pub fn show_json_times(v: &mut Value) {
    assist_http::zone::rewrite_times(v, zone())
}

/// Prints a value as pretty JSON exactly as it is (a history: what was recorded is shown
/// as recorded; the caller puts the envelope's times in the display zone itself).
pub fn print_json_as_is<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    line(format_args!("{}", serde_json::to_string_pretty(v)?))?;
    Ok(())
}

/// Prints a value as pretty JSON, its times in the display zone.
pub fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    let mut doc = serde_json::to_value(v)?;
    show_json_times(&mut doc);
    line(format_args!("{}", serde_json::to_string_pretty(&doc)?))?;
    Ok(())
}

/// An error and its causes, one line each; a cause whose text the line above already ends
/// with (`store x: disk full` caused by `disk full`) is not repeated.
pub fn error_lines(e: &anyhow::Error) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = escape_controls(&cause.to_string());
        let repeated = lines.last().is_some_and(|l| l.ends_with(text.as_str()));
        if !repeated {
            lines.push(text);
        }
    }
    lines
}

/// Control characters (ESC, BEL, DEL, …) as `\u{1b}`, so nothing raw reaches a terminal.
pub fn escape_controls(s: &str) -> String {
    if !s.chars().any(|c| c.is_control() && c != '\n') {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() && c != '\n' {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_utc_time_is_shown_in_china_time_by_default() {
        assert_eq!(
            show("2026-03-05T06:30:00.000Z"),
            "2026-03-05T14:30:00+08:00"
        );
        assert_eq!(
            show("2026-03-05T15:59:59.999Z"),
            "2026-03-05T23:59:59.999+08:00"
        );
    }

    #[test]
    fn text_that_is_not_a_time_is_shown_unchanged() {
        assert_eq!(show("person-1"), "person-1");
        assert_eq!(show("9999"), "9999");
    }

    #[test]
    fn json_times_are_rewritten_wherever_they_are_and_nothing_else() {
        let mut v = serde_json::json!({
            "at": "2026-03-05T06:30:00.000Z",
            "list": [{"due_at": "2026-03-06T16:00:00.000Z", "id": "cw-1Z"}],
            "n": 3
        });
        show_json_times(&mut v);
        assert_eq!(
            v,
            serde_json::json!({
                "at": "2026-03-05T14:30:00+08:00",
                "list": [{"due_at": "2026-03-07T00:00:00+08:00", "id": "cw-1Z"}],
                "n": 3
            })
        );
    }

    #[test]
    fn zones_parse_as_offsets_or_utc_and_anything_else_is_refused() {
        assert_eq!(parse_zone("+08:00").unwrap().local_minus_utc(), 8 * 3600);
        assert_eq!(
            parse_zone("-05:30").unwrap().local_minus_utc(),
            -(5 * 3600 + 1800)
        );
        assert_eq!(parse_zone("UTC").unwrap().local_minus_utc(), 0);
        for bad in ["8", "+8:00", "+15:00", "Asia/Shanghai", "+08:60", ""] {
            assert!(parse_zone(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_cause_its_parent_already_names_is_not_repeated() {
        let e = anyhow::Error::new(std::io::Error::other("database or disk is full"))
            .context("store sqlite:x: database or disk is full")
            .context("cannot open the view store");
        assert_eq!(
            error_lines(&e),
            [
                "cannot open the view store",
                "store sqlite:x: database or disk is full"
            ]
        );
    }

    #[test]
    fn a_cause_that_only_appears_inside_its_parent_is_still_shown() {
        let e = anyhow::Error::new(std::io::Error::other("locked"))
            .context("the key store is locked by erase; try again");
        assert_eq!(
            error_lines(&e),
            ["the key store is locked by erase; try again", "locked"]
        );
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_controls("a\u{1b}[31mb\u{7}"), "a\\u{1b}[31mb\\u{7}");
    }
}
