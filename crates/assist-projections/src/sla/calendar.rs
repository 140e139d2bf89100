//! Working days in China: weekends off, public holidays off, make-up workdays (调休上班) on.
//! One data file per year (`policies/calendars/cn-YYYY.toml`), so a deployment adds a year
//! without code.

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, Utc, Weekday};
use serde::Deserialize;
use std::collections::{BTreeSet, HashSet};

/// Why a calendar file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    /// Not valid TOML of the expected shape.
    #[error("calendar {file}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YearFile {
    year: i32,
    holidays: Vec<NaiveDate>,
    workdays: Vec<NaiveDate>,
}

/// The holiday calendar: which days are working days.
#[derive(Debug, Clone, Default)]
pub struct Calendar {
    holidays: HashSet<NaiveDate>,
    workdays: HashSet<NaiveDate>,
    years: BTreeSet<i32>,
}

/// China Standard Time: working days are counted on local dates.
pub fn china_time() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| FixedOffset::east_opt(0).expect("UTC"))
}

impl Calendar {
    /// Adds one year's file (`file` names it in errors).
    pub fn add_year(&mut self, file: &str, text: &str) -> Result<(), CalendarError> {
        let y: YearFile = toml::from_str(text).map_err(|e| CalendarError::Invalid {
            file: file.into(),
            message: e.to_string(),
        })?;
        for d in y.holidays.iter().chain(&y.workdays) {
            if d.year() != y.year {
                return Err(CalendarError::Invalid {
                    file: file.into(),
                    message: format!("{d} is not in year {}", y.year),
                });
            }
        }
        self.holidays.extend(y.holidays);
        self.workdays.extend(y.workdays);
        self.years.insert(y.year);
        Ok(())
    }

    /// The years with a calendar file.
    pub fn years(&self) -> impl Iterator<Item = i32> + '_ {
        self.years.iter().copied()
    }

    /// Whether `day` is a working day (weekends and holidays are not, make-up days are).
    pub fn is_working_day(&self, day: NaiveDate) -> bool {
        if self.workdays.contains(&day) {
            return true;
        }
        if self.holidays.contains(&day) {
            return false;
        }
        !matches!(day.weekday(), Weekday::Sat | Weekday::Sun)
    }

    /// The instant `n` working days after `start`, at the same local time of day.
    pub fn add_working_days(&self, start: DateTime<Utc>, n: u32) -> DateTime<Utc> {
        let local = start.with_timezone(&china_time());
        let mut day = local.date_naive();
        let mut left = n;
        while left > 0 {
            day = day.succ_opt().unwrap_or(day);
            if self.is_working_day(day) {
                left -= 1;
            }
        }
        let shift = day - local.date_naive();
        start + shift
    }

    /// The instant `n` calendar days after `start`.
    pub fn add_calendar_days(start: DateTime<Utc>, n: u32) -> DateTime<Utc> {
        start + Duration::days(i64::from(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn shipped() -> Calendar {
        let mut c = Calendar::default();
        c.add_year(
            "cn-2025",
            include_str!("../../../../policies/calendars/cn-2025.toml"),
        )
        .unwrap();
        c.add_year(
            "cn-2026",
            include_str!("../../../../policies/calendars/cn-2026.toml"),
        )
        .unwrap();
        c
    }

    fn cst(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        china_time()
            .with_ymd_and_hms(y, m, d, h, 0, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_make_up_saturday_is_a_working_day() {
        assert!(shipped().is_working_day(NaiveDate::from_ymd_opt(2026, 2, 14).unwrap()));
    }

    #[test]
    fn a_spring_festival_weekday_is_not() {
        assert!(!shipped().is_working_day(NaiveDate::from_ymd_opt(2026, 2, 17).unwrap()));
    }

    #[test]
    fn two_working_days_from_a_friday_end_on_tuesday_at_the_same_hour() {
        // 2026-03-06 is a Friday.
        assert_eq!(
            shipped().add_working_days(cst(2026, 3, 6, 10), 2),
            cst(2026, 3, 10, 10)
        );
    }

    #[test]
    fn working_days_skip_the_national_day_week_and_count_the_make_up_saturday() {
        // Alert on Tue 2026-09-29: working days after it are 09-30, then 10-08, 10-09, 10-10 (Sat, make-up).
        assert_eq!(
            shipped().add_working_days(cst(2026, 9, 29, 9), 4),
            cst(2026, 10, 10, 9)
        );
    }

    #[test]
    fn a_day_outside_the_year_is_refused() {
        let err = Calendar::default()
            .add_year(
                "bad",
                "year = 2027\nholidays = [\"2026-01-01\"]\nworkdays = []",
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "calendar bad: 2026-01-01 is not in year 2027"
        );
    }
}
