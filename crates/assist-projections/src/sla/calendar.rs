//! Working days in China: weekends off, public holidays off, make-up workdays (调休上班) on.
//! One data file per year (`policies/calendars/cn-YYYY.toml`), so a deployment adds a year
//! without code.

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveTime, Utc, Weekday};
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

    /// The calendar as one text, the same for the same days off and on whatever the files'
    /// order or comments: what [`super::Rules::fingerprint`] hashes.
    pub fn canonical(&self) -> String {
        let sorted = |days: &HashSet<NaiveDate>| {
            let mut v: Vec<String> = days.iter().map(|d| d.to_string()).collect();
            v.sort();
            v.join(",")
        };
        let years: Vec<String> = self.years.iter().map(|y| y.to_string()).collect();
        format!(
            "years {}; holidays {}; workdays {}",
            years.join(","),
            sorted(&self.holidays),
            sorted(&self.workdays)
        )
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

    /// The working time inside `[from, to)`: the part of it that falls on working days
    /// (local dates, each counted midnight to midnight, China time). Empty when `to` is not
    /// after `from`.
    pub fn working_time(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
        let mut total = Duration::zero();
        let mut cursor = from;
        while cursor < to {
            let end = next_local_midnight(cursor).min(to);
            if self.is_working_day(local_date(cursor)) {
                total += end - cursor;
            }
            cursor = end;
        }
        total
    }

    /// The earliest instant at which `amount` of working time has passed since `from`
    /// (the inverse of [`Calendar::working_time`]): days that are not working days are
    /// skipped. From a working day at 10:00, 48 hours are two working days later at 10:00.
    pub fn add_working_time(&self, from: DateTime<Utc>, amount: Duration) -> DateTime<Utc> {
        let mut left = amount;
        let mut cursor = from;
        // A calendar in which nothing is a working day for 20 years would never end: the
        // rest then counts in wall-clock time (the shipped calendars are far from that).
        for _ in 0..20 * 366 {
            if left <= Duration::zero() {
                return cursor;
            }
            let next = next_local_midnight(cursor);
            if self.is_working_day(local_date(cursor)) {
                if left <= next - cursor {
                    return cursor + left;
                }
                left -= next - cursor;
            }
            cursor = next;
        }
        cursor + left
    }

    /// The instant `n` calendar days after `start`.
    pub fn add_calendar_days(start: DateTime<Utc>, n: u32) -> DateTime<Utc> {
        start + Duration::days(i64::from(n))
    }
}

/// The local (China time) date of an instant.
fn local_date(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&china_time()).date_naive()
}

/// The first local midnight after `t` (China time), as an instant.
fn next_local_midnight(t: DateTime<Utc>) -> DateTime<Utc> {
    let offset = Duration::seconds(i64::from(china_time().local_minus_utc()));
    match local_date(t).succ_opt() {
        Some(day) => (day.and_time(NaiveTime::MIN) - offset).and_utc(),
        None => DateTime::<Utc>::MAX_UTC,
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

    #[test]
    fn working_time_over_a_weekend_counts_only_the_hours_on_working_days() {
        // Fri 2026-03-06 18:00 to Mon 03-09 09:00: 63 hours, of which 6 on Friday and 9 on Monday.
        assert_eq!(
            shipped().working_time(cst(2026, 3, 6, 18), cst(2026, 3, 9, 9)),
            Duration::hours(15)
        );
    }

    #[test]
    fn working_time_counts_a_make_up_saturday_and_not_a_spring_festival_sunday() {
        // Fri 2026-02-13 12:00 to Sun 02-15 12:00: 12 h on Friday, 24 h on Saturday 02-14
        // (a make-up workday), none on Sunday 02-15 (Spring Festival).
        assert_eq!(
            shipped().working_time(cst(2026, 2, 13, 12), cst(2026, 2, 15, 12)),
            Duration::hours(36)
        );
    }

    #[test]
    fn two_working_days_of_time_from_the_friday_before_qingming_end_on_the_wednesday_after() {
        // Fri 2026-04-03 10:00 + 48 h of working time: 14 h on Friday, Sat 04-04 to Mon 04-06
        // are the Qingming holiday, 24 h on Tuesday 04-07, 10 h on Wednesday 04-08.
        let c = shipped();
        let due = c.add_working_time(cst(2026, 4, 3, 10), Duration::hours(48));
        assert_eq!(due, cst(2026, 4, 8, 10));
        assert_eq!(due, c.add_working_days(cst(2026, 4, 3, 10), 2));
        assert_eq!(
            c.working_time(cst(2026, 4, 3, 10), due),
            Duration::hours(48)
        );
    }
}
