//! Broken rules found in an event, each with the path of the field that breaks it.

use std::fmt;

/// One broken rule, with the JSON path of the offending field (`data.wage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Dotted path of the field, as a service would write it (`data.members[0].person`).
    pub path: String,
    /// What is wrong, phrased so the sender knows what to change.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Collects violations while the rules of an event are checked.
#[derive(Debug, Default)]
pub struct Violations(Vec<Violation>);

impl Violations {
    /// Records that the field at `path` breaks a rule.
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Violation {
            path: path.into(),
            message: message.into(),
        });
    }

    /// Records `message` at `path` unless `ok` holds.
    pub fn check(&mut self, ok: bool, path: impl Into<String>, message: impl Into<String>) {
        if !ok {
            self.push(path, message);
        }
    }

    /// Like [`Violations::check`], with the message built only when the check fails: every
    /// event read is checked, and most messages quote values that take time to format.
    pub fn check_with(
        &mut self,
        ok: bool,
        path: impl Into<String>,
        message: impl FnOnce() -> String,
    ) {
        if !ok {
            self.push(path, message());
        }
    }

    /// Checks that an amount of money or hours is a finite number `>= 0`.
    pub fn non_negative(&mut self, value: f64, path: &str) {
        self.check_with(value.is_finite() && value >= 0.0, path, || {
            format!("must be >= 0, got {value}")
        });
    }

    /// Checks that a short label (a name of a course, an employer, a job) is not blank and at most `max` characters.
    pub fn label(&mut self, value: &str, path: &str, max: usize) {
        if value.trim().is_empty() {
            self.push(path, "must not be empty");
        } else if value.chars().count() > max {
            self.push(
                path,
                format!(
                    "must be at most {max} characters, got {}",
                    value.chars().count()
                ),
            );
        }
    }

    /// True when no rule was broken.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The violations found, in the order they were found.
    pub fn into_vec(self) -> Vec<Violation> {
        self.0
    }
}

/// The rules of one payload type beyond what its Rust type already enforces.
pub trait Validate {
    /// Checks the rules, reporting each broken one under the path prefix `at` (`data`).
    fn validate(&self, at: &str, v: &mut Violations);
}

/// serde's path to an unknown field ends in that field, which the message names already:
/// report it at the object that has it (`data`, not `data.colour`; `.` for the root).
pub(crate) fn parent_of_unknown_field(path: String, err: &serde_json::Error) -> String {
    let msg = err.to_string();
    let Some(field) = msg
        .strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next())
    else {
        return path;
    };
    match path.strip_suffix(field).map(|p| p.trim_end_matches('.')) {
        Some("") => ".".to_string(),
        Some(parent) => parent.to_string(),
        None => path,
    }
}
