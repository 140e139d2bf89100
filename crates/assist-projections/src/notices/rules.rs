//! Who is told, and when, about a policy's clocks: notice rules as data, one TOML file per
//! policy (`policies/notices/<policy>.toml`), next to the policy it concerns.

use chrono::Duration;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The shipped notice rules, compiled in like the shipped policies.
pub const SHIPPED_NOTICES: &[(&str, &str)] = &[
    (
        "response-2473.toml",
        include_str!("../../../../policies/notices/response-2473.toml"),
    ),
    (
        "household-clearing.toml",
        include_str!("../../../../policies/notices/household-clearing.toml"),
    ),
    (
        "retention-followup.toml",
        include_str!("../../../../policies/notices/retention-followup.toml"),
    ),
    (
        "training-subsidy.toml",
        include_str!("../../../../policies/notices/training-subsidy.toml"),
    ),
];

/// The longest offset a notice may have from its deadline: a year, in hours.
pub const MAX_HOURS: i64 = 8784;

/// The most escalations one policy may have.
pub const MAX_ESCALATIONS: usize = 5;

/// Who a notice goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// The clock's caseworker (the county's supervisors when the case has none).
    Caseworker,
    /// The supervisors of the clock's county (its 6-digit region).
    County,
    /// The supervisors of its city (4 digits).
    City,
    /// The supervisors of its province (2 digits).
    Province,
}

/// A notice before the deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reminder {
    /// How long before the (paused-adjusted) deadline it goes out.
    pub before: Duration,
    /// To whom.
    pub to: Audience,
}

/// A notice after a breach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    /// How long after the deadline it goes out (0: at the breach).
    pub after: Duration,
    /// To whom.
    pub to: Audience,
}

/// The notice rules of one policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeRule {
    /// The policy's id.
    pub policy: String,
    /// The reminder, if any.
    pub reminder: Option<Reminder>,
    /// The escalations, latest last.
    pub escalations: Vec<Escalation>,
}

/// Every policy's notice rules, by policy id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoticeRules {
    /// By policy id.
    pub by_policy: BTreeMap<String, NoticeRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    policy: String,
    reminder: Option<ReminderFile>,
    #[serde(default)]
    escalations: Vec<EscalationFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReminderFile {
    before_hours: i64,
    to: Audience,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EscalationFile {
    after_hours: i64,
    to: Audience,
}

/// Why notice rules could not be used.
#[derive(Debug, thiserror::Error)]
pub enum NoticeRuleError {
    /// Not TOML of the expected shape, or a rule broken.
    #[error("notice rules {file}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// A number outside its bounds.
    #[error("notice rules {file}: {field} is {value}, out of range: hours are 0 to 8784 (a year)")]
    OutOfRange {
        /// The file.
        file: String,
        /// The field (`escalations[1].after_hours`).
        field: String,
        /// The value written.
        value: i64,
    },
}

impl NoticeRules {
    /// The shipped rules.
    pub fn shipped() -> Result<Self, NoticeRuleError> {
        Self::from_files(SHIPPED_NOTICES)
    }

    /// Rules from (file name, text) pairs.
    pub fn from_files(files: &[(&str, &str)]) -> Result<Self, NoticeRuleError> {
        let mut rules = NoticeRules::default();
        for (file, text) in files {
            let rule = NoticeRule::parse(file, text)?;
            if rules.by_policy.contains_key(&rule.policy) {
                return Err(NoticeRuleError::Invalid {
                    file: file.to_string(),
                    message: format!("a second rule for policy {:?}", rule.policy),
                });
            }
            rules.by_policy.insert(rule.policy.clone(), rule);
        }
        Ok(rules)
    }

    /// Refuses a rule for a policy that is not among `policies`.
    pub fn check_policies(&self, policies: &[&str]) -> Result<(), NoticeRuleError> {
        for id in self.by_policy.keys() {
            if !policies.contains(&id.as_str()) {
                return Err(NoticeRuleError::Invalid {
                    file: format!("{id}.toml"),
                    message: format!("no policy has the id {id:?}"),
                });
            }
        }
        Ok(())
    }

    /// The rule of policy `id`, if it has one.
    pub fn of(&self, id: &str) -> Option<&NoticeRule> {
        self.by_policy.get(id)
    }
}

impl NoticeRule {
    /// Parses and checks one file: hours within 0 ..= [`MAX_HOURS`], escalations later
    /// one after the other, at most [`MAX_ESCALATIONS`].
    pub fn parse(file: &str, text: &str) -> Result<Self, NoticeRuleError> {
        let invalid = |message: String| NoticeRuleError::Invalid {
            file: file.into(),
            message,
        };
        let f: RuleFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let hours = |field: String, value: i64| {
            (0..=MAX_HOURS)
                .contains(&value)
                .then(|| Duration::hours(value))
                .ok_or_else(|| NoticeRuleError::OutOfRange {
                    file: file.into(),
                    field,
                    value,
                })
        };
        let reminder = match f.reminder {
            Some(r) => Some(Reminder {
                before: hours("reminder.before_hours".into(), r.before_hours)?,
                to: r.to,
            }),
            None => None,
        };
        if f.escalations.len() > MAX_ESCALATIONS {
            return Err(invalid(format!(
                "{} escalations; at most {MAX_ESCALATIONS}",
                f.escalations.len()
            )));
        }
        let mut escalations: Vec<Escalation> = Vec::with_capacity(f.escalations.len());
        for (i, e) in f.escalations.into_iter().enumerate() {
            let after = hours(format!("escalations[{i}].after_hours"), e.after_hours)?;
            if escalations.last().is_some_and(|prev| prev.after >= after) {
                return Err(invalid(format!(
                    "escalations[{i}] comes no later than the one before it; list them in order"
                )));
            }
            escalations.push(Escalation { after, to: e.to });
        }
        Ok(NoticeRule {
            policy: f.policy,
            reminder,
            escalations,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_2473_rule_reminds_the_caseworker_and_escalates_to_county_then_city() {
        let rules = NoticeRules::shipped().unwrap();
        let r = rules.of("response-2473").unwrap();
        assert_eq!(
            r.reminder,
            Some(Reminder {
                before: Duration::hours(24),
                to: Audience::Caseworker
            })
        );
        let e: Vec<(i64, Audience)> = r
            .escalations
            .iter()
            .map(|e| (e.after.num_hours(), e.to))
            .collect();
        assert_eq!(e, vec![(0, Audience::County), (48, Audience::City)]);
    }

    #[test]
    fn every_shipped_rule_names_a_shipped_policy() {
        let sla = crate::sla::Rules::shipped().unwrap();
        NoticeRules::shipped()
            .unwrap()
            .check_policies(
                &sla.policies
                    .iter()
                    .map(|p| p.id.as_str())
                    .collect::<Vec<_>>(),
            )
            .unwrap();
    }

    #[test]
    fn hours_out_of_range_are_refused_naming_the_file_and_field() {
        let text = "policy='x'\n[[escalations]]\nafter_hours=0\nto='county'\n[[escalations]]\nafter_hours=100000\nto='city'";
        assert_eq!(
            NoticeRule::parse("x.toml", text).unwrap_err().to_string(),
            "notice rules x.toml: escalations[1].after_hours is 100000, out of range: hours are 0 to 8784 (a year)"
        );
        let text = "policy='x'\n[reminder]\nbefore_hours=-1\nto='caseworker'";
        assert!(matches!(
            NoticeRule::parse("x.toml", text),
            Err(NoticeRuleError::OutOfRange { value: -1, .. })
        ));
    }

    #[test]
    fn escalations_out_of_order_and_unknown_audiences_are_refused() {
        let text = "policy='x'\n[[escalations]]\nafter_hours=48\nto='county'\n[[escalations]]\nafter_hours=0\nto='city'";
        assert!(NoticeRule::parse("x.toml", text)
            .unwrap_err()
            .to_string()
            .contains("escalations[1] comes no later"));
        let text = "policy='x'\n[reminder]\nbefore_hours=1\nto='mayor'";
        assert!(matches!(
            NoticeRule::parse("x.toml", text),
            Err(NoticeRuleError::Invalid { .. })
        ));
    }

    #[test]
    fn a_rule_for_a_policy_that_does_not_exist_is_refused() {
        let rules = NoticeRules::from_files(&[("x.toml", "policy='nope'")]).unwrap();
        let e = rules.check_policies(&["response-2473"]).unwrap_err();
        assert!(
            e.to_string().contains(r#"no policy has the id "nope""#),
            "{e}"
        );
    }
}
