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
            format!("must be >= 0, got {}", number(value))
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

/// How a value the sender wrote appears in a message: by its kind and length, never
/// whole. The one rule for every message that would show a user value: the value may be
/// personal (a name typed into the wrong field), huge (60 KB) or full of terminal control
/// characters, and the sender has it already. Only the catalog's own words (field and
/// variant names, expected formats) and values assist computed itself (normalised times,
/// short numbers, see [`number`]) are shown.
pub fn text(s: &str) -> String {
    format!("text, {}", length(s))
}

/// The length of a text in characters: `1 char`, `7 chars`.
pub fn length(s: &str) -> String {
    let n = s.chars().count();
    format!("{n} {}", if n == 1 { "char" } else { "chars" })
}

/// The longest field name a message shows; longer ones end in `…`.
pub const NAME_MAX: usize = 40;

/// A field name as written by the sender, safe to print: control, bidi and zero-width
/// characters escaped (`\u{1b}`), at most [`NAME_MAX`] characters.
pub fn name(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == NAME_MAX {
            out.push('…');
            break;
        }
        if is_dangerous(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Escapes what must not reach a terminal raw anywhere in a finished message (a safety net:
/// messages quote no user text, but a library's message might).
pub fn escaped(message: &str) -> String {
    if !message.chars().any(is_dangerous) {
        return message.to_string();
    }
    message
        .chars()
        .flat_map(|c| {
            let mut buf = Vec::new();
            if is_dangerous(c) {
                buf.extend(c.escape_unicode());
            } else {
                buf.push(c);
            }
            buf
        })
        .collect()
}

fn is_dangerous(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// A number for a message: shown when its text has at most 6 characters (too short to be
/// a phone number, an ID number or a birth date), else described by its kind and length.
pub fn number(n: impl fmt::Display) -> String {
    let t = n.to_string();
    if t.chars().count() <= 6 {
        t
    } else {
        let digits = t.bytes().filter(u8::is_ascii_digit).count();
        format!("a number of {digits} digits")
    }
}
