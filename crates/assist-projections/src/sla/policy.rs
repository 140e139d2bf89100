//! SLA policies as data: which fact starts a clock, its steps with their deadlines, what
//! meets each step and what cancels the clock. One TOML file per policy (`policies/`).

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::Deserialize;

/// Whether a policy counts calendar days or working days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DayKind {
    /// Every day counts.
    Calendar,
    /// Only working days count (see [`super::calendar::Calendar`]).
    Working,
}

/// One step of a policy: met by the `count`-th `met_by` fact within `within_days` of the start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The step's id, unique in the policy.
    pub id: String,
    /// Days (of the policy's kind) from the start to the deadline, at most [`MAX_WITHIN_DAYS`].
    pub within_days: u32,
    /// The event type that counts towards meeting it.
    pub met_by: String,
    /// How many such facts meet it (default 1), 1 to [`MAX_COUNT`].
    pub count: u32,
}

/// The longest deadline a step may have: 3660 days, ten years (leap days included). A
/// deadline further off is a typing error in a policy file; bounding it keeps the working
/// days counted to a deadline (one calendar day at a time) and its instant in range.
pub const MAX_WITHIN_DAYS: i64 = 3660;

/// The most facts a step may need (a policy counts offers, follow-ups: a handful).
pub const MAX_COUNT: i64 = 1000;

/// A step as written: numbers read wide, so that any integer TOML holds is checked
/// against its bound and named in the error, rather than refused by the parser.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    id: String,
    within_days: i64,
    met_by: String,
    #[serde(default = "one")]
    count: i64,
}

fn one() -> i64 {
    1
}

/// An SLA policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Stable id (`response-2473`), referred to by pauses.
    pub id: String,
    /// Human name.
    pub name: String,
    /// Calendar or working days.
    pub days: DayKind,
    /// Event types that start a clock.
    pub starts_on: Vec<String>,
    /// Event types that cancel the running clocks (the person found work alone, ...).
    pub cancelled_by: Vec<String>,
    /// A new start while a clock runs replaces it (household re-identification).
    pub restart: bool,
    /// A `data` field that tells clocks apart (one clock per claim); facts meet only the
    /// clock with the same value.
    pub key: Option<String>,
    /// The steps.
    pub steps: Vec<Step>,
    /// The China date from which this version applies (`None`: from the beginning). A
    /// clock follows the version in force when it started.
    pub effective_from: Option<NaiveDate>,
    /// The file it was read from.
    pub file: String,
}

/// The earliest and latest dates a policy may take effect: a date outside is a typing
/// error in a policy file.
pub const EFFECTIVE_FROM_RANGE: (i32, i32) = (2000, 2100);

/// A policy file as written (its steps unchecked).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    id: String,
    name: String,
    days: DayKind,
    starts_on: Vec<String>,
    #[serde(default)]
    cancelled_by: Vec<String>,
    #[serde(default)]
    restart: bool,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    effective_from: Option<String>,
    steps: Vec<StepFile>,
}

/// Why a policy file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Not TOML of the expected shape, or a rule broken (unknown event type, ...).
    #[error("policy {file}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// A number outside its bounds.
    #[error("policy {file}: {field} is {value}, out of range: {rule}")]
    OutOfRange {
        /// The file.
        file: String,
        /// The field, as a path in the file (`steps[2].within_days`, with the step's id).
        field: String,
        /// The value written.
        value: i64,
        /// What is allowed.
        rule: &'static str,
    },
}

impl Policy {
    /// The instant this version takes effect: 00:00 China time of its date (the start of
    /// time for a version without one).
    pub fn effective_instant(&self) -> DateTime<Utc> {
        match self.effective_from {
            Some(day) => (day.and_time(NaiveTime::MIN) - chrono::Duration::hours(8)).and_utc(),
            None => DateTime::<Utc>::MIN_UTC,
        }
    }

    /// Whether facts of type `name` start, meet or cancel this policy's clocks.
    pub fn concerns(&self, name: &str) -> bool {
        self.starts_on.iter().any(|t| t == name)
            || self.cancelled_by.iter().any(|t| t == name)
            || self.steps.iter().any(|s| s.met_by == name)
    }

    /// Parses and checks one policy file; event types must exist in the catalog, numbers
    /// must be within their bounds ([`MAX_WITHIN_DAYS`], [`MAX_COUNT`]).
    pub fn parse(file: &str, text: &str) -> Result<Self, PolicyError> {
        let err = |message: String| PolicyError::Invalid {
            file: file.into(),
            message,
        };
        let f: PolicyFile = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        let mut steps = Vec::with_capacity(f.steps.len());
        for (i, s) in f.steps.into_iter().enumerate() {
            let bounded = |field: &str, value: i64, min: i64, max: i64, rule: &'static str| {
                u32::try_from(value)
                    .ok()
                    .filter(|_| (min..=max).contains(&value))
                    .ok_or_else(|| PolicyError::OutOfRange {
                        file: file.into(),
                        field: format!("steps[{i}].{field} (step {:?})", s.id),
                        value,
                        rule,
                    })
            };
            let within_days = bounded(
                "within_days",
                s.within_days,
                0,
                MAX_WITHIN_DAYS,
                "a step's deadline is 0 to 3660 days after its start",
            )?;
            let count = bounded(
                "count",
                s.count,
                1,
                MAX_COUNT,
                "a step is met by 1 to 1000 facts",
            )?;
            steps.push(Step {
                id: s.id,
                within_days,
                met_by: s.met_by,
                count,
            });
        }
        let effective_from = match &f.effective_from {
            None => None,
            Some(text) => {
                let day = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
                    err(format!(
                        "effective_from is {text:?}, not a date (YYYY-MM-DD, China time)"
                    ))
                })?;
                let (from, to) = EFFECTIVE_FROM_RANGE;
                if !(from..=to).contains(&chrono::Datelike::year(&day)) {
                    return Err(PolicyError::OutOfRange {
                        file: file.into(),
                        field: "effective_from".into(),
                        value: i64::from(chrono::Datelike::year(&day)),
                        rule: "a policy takes effect in a year from 2000 to 2100",
                    });
                }
                Some(day)
            }
        };
        let p = Policy {
            effective_from,
            file: file.into(),
            id: f.id,
            name: f.name,
            days: f.days,
            starts_on: f.starts_on,
            cancelled_by: f.cancelled_by,
            restart: f.restart,
            key: f.key,
            steps,
        };
        let known = |t: &str| assist_catalog::event_type(t).is_some();
        for t in p
            .starts_on
            .iter()
            .chain(&p.cancelled_by)
            .chain(p.steps.iter().map(|s| &s.met_by))
        {
            if !known(t) {
                return Err(err(format!("unknown event type {t:?}")));
            }
        }
        if p.steps.is_empty() {
            return Err(err("a policy needs at least one step".into()));
        }
        let mut ids: Vec<&str> = p.steps.iter().map(|s| s.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != p.steps.len() {
            return Err(err("step ids must be unique".into()));
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_2473_policy_has_its_three_steps() {
        let p = Policy::parse(
            "response-2473",
            include_str!("../../../../policies/response-2473.toml"),
        )
        .unwrap();
        let steps: Vec<(&str, u32, u32)> = p
            .steps
            .iter()
            .map(|s| (s.id.as_str(), s.within_days, s.count))
            .collect();
        assert_eq!(
            steps,
            vec![("contact", 2, 1), ("visit", 4, 1), ("offers", 7, 3)]
        );
        assert_eq!(p.days, DayKind::Working);
    }

    #[test]
    fn a_policy_naming_an_unknown_event_type_is_refused() {
        let text = "id='x'\nname='x'\ndays='calendar'\nstarts_on=['alert']\n[[steps]]\nid='a'\nwithin_days=1\nmet_by='contact_made'";
        assert_eq!(
            Policy::parse("x", text).unwrap_err().to_string(),
            r#"policy x: unknown event type "alert""#
        );
    }

    fn with_step(within_days: &str, count: &str) -> String {
        format!("id='x'\nname='x'\ndays='working'\nstarts_on=['alert_raised']\n[[steps]]\nid='a'\nwithin_days=1\nmet_by='contact_made'\n[[steps]]\nid='b'\nwithin_days={within_days}\nmet_by='job_offer_pushed'\ncount={count}")
    }

    #[test]
    fn a_deadline_of_a_trillion_days_is_an_out_of_range_error_naming_the_file_and_field() {
        let e = Policy::parse("x.toml", &with_step("1000000000000", "3")).unwrap_err();
        assert!(
            matches!(&e, PolicyError::OutOfRange { file, field, value: 1_000_000_000_000, .. }
                if file == "x.toml" && field == r#"steps[1].within_days (step "b")"#),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            r#"policy x.toml: steps[1].within_days (step "b") is 1000000000000, out of range: a step's deadline is 0 to 3660 days after its start"#
        );
    }

    #[test]
    fn a_deadline_that_fits_in_u32_but_not_in_ten_years_is_refused_not_counted_day_by_day() {
        // 4,000,000,000 days: a u32, which the working-day count would walk one day at a time.
        let e = Policy::parse("x.toml", &with_step("4000000000", "3")).unwrap_err();
        assert!(
            matches!(
                e,
                PolicyError::OutOfRange {
                    value: 4_000_000_000,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn deadlines_are_bounded_at_ten_years_and_negative_ones_are_refused() {
        assert_eq!(
            Policy::parse("x.toml", &with_step("3660", "3"))
                .unwrap()
                .steps[1]
                .within_days,
            3660
        );
        for v in ["3661", "-1"] {
            let e = Policy::parse("x.toml", &with_step(v, "3")).unwrap_err();
            assert!(matches!(e, PolicyError::OutOfRange { .. }), "{v}: {e:?}");
        }
    }

    #[test]
    fn an_effective_date_is_read_as_00_00_china_time_and_bounded() {
        let text = |d: &str| format!("effective_from = '{d}'\n{}", with_step("7", "3"));
        let p = Policy::parse("x.toml", &text("2027-01-01")).unwrap();
        assert_eq!(
            p.effective_instant().to_rfc3339(),
            "2026-12-31T16:00:00+00:00"
        );
        assert!(Policy::parse("x.toml", &text("2027-13-01"))
            .unwrap_err()
            .to_string()
            .contains(r#"effective_from is "2027-13-01", not a date"#));
        assert_eq!(
            Policy::parse("x.toml", &text("9999-01-01")).unwrap_err().to_string(),
            "policy x.toml: effective_from is 9999, out of range: a policy takes effect in a year from 2000 to 2100"
        );
    }

    #[test]
    fn a_count_is_one_to_a_thousand_facts() {
        assert_eq!(
            Policy::parse("x.toml", &with_step("7", "1000"))
                .unwrap()
                .steps[1]
                .count,
            1000
        );
        for v in ["0", "1001", "1000000000000"] {
            let e = Policy::parse("x.toml", &with_step("7", v)).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    r#"policy x.toml: steps[1].count (step "b") is {v}, out of range: a step is met by 1 to 1000 facts"#
                )
            );
        }
    }
}
