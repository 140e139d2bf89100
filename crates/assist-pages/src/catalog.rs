//! The message catalog: every word a page shows, in Simplified Chinese (the default) and
//! English, kept in `messages/*.toml` rather than in code; and times as people in China
//! write them (`2026-03-05 周四 14:30`).

use chrono::{DateTime, Datelike, FixedOffset};
use serde_json::Value;
use std::sync::OnceLock;

/// A language of the pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    /// Simplified Chinese, the default.
    #[default]
    Zh,
    /// English.
    En,
}

impl Lang {
    /// A language by its code (`zh`, `en`).
    pub fn parse(code: &str) -> Option<Lang> {
        match code {
            "zh" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The code of the language in cookies and forms.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    /// The `lang` attribute of the pages.
    pub fn html(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    /// The catalog's messages in this language, as nested tables (`m.dashboard.title`).
    pub fn messages(self) -> &'static Value {
        static ZH: OnceLock<Value> = OnceLock::new();
        static EN: OnceLock<Value> = OnceLock::new();
        match self {
            Lang::Zh => ZH.get_or_init(|| parse(include_str!("../messages/zh.toml"))),
            Lang::En => EN.get_or_init(|| parse(include_str!("../messages/en.toml"))),
        }
    }

    /// A time as the pages show it: date, weekday and minutes in the time's own offset
    /// (the API gives China time), `2026-03-05 周四 14:30`; anything else as it is.
    pub fn when(self, rfc3339: &str) -> String {
        let Ok(t) = DateTime::<FixedOffset>::parse_from_rfc3339(rfc3339) else {
            return rfc3339.to_string();
        };
        let day = t.weekday().num_days_from_monday() as usize;
        let weekday = match self {
            Lang::Zh => ["周一", "周二", "周三", "周四", "周五", "周六", "周日"][day],
            Lang::En => ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][day],
        };
        format!("{} {weekday} {}", t.format("%Y-%m-%d"), t.format("%H:%M"))
    }
}

/// The catalogs are part of the binary and checked by the tests: one that does not parse
/// is a build defect, shown as an empty catalog rather than a panic.
fn parse(text: &str) -> Value {
    match toml::from_str::<toml::Value>(text) {
        Ok(v) => serde_json::to_value(v).unwrap_or(Value::Null),
        Err(e) => {
            tracing::error!(error = %e, "a message catalog does not parse");
            Value::Null
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(v: &Value, prefix: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    keys(v, &format!("{prefix}{k}."), out);
                }
            }
            _ => out.push(prefix.trim_end_matches('.').to_string()),
        }
    }

    #[test]
    fn both_catalogs_parse_and_have_the_same_keys() {
        let (mut zh, mut en) = (Vec::new(), Vec::new());
        keys(Lang::Zh.messages(), "", &mut zh);
        keys(Lang::En.messages(), "", &mut en);
        assert!(
            zh.len() > 50,
            "the Chinese catalog has {} messages",
            zh.len()
        );
        zh.sort();
        en.sort();
        assert_eq!(zh, en);
    }

    #[test]
    fn times_are_written_with_date_weekday_and_minutes_in_their_own_offset() {
        assert_eq!(
            Lang::Zh.when("2026-03-05T14:30:59+08:00"),
            "2026-03-05 周四 14:30"
        );
        assert_eq!(
            Lang::En.when("2026-03-08T00:05:00+08:00"),
            "2026-03-08 Sun 00:05"
        );
        assert_eq!(Lang::Zh.when("not a time"), "not a time");
    }
}
