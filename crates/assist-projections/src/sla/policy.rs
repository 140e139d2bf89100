//! SLA policies as data: which fact starts a clock, its steps with their deadlines, what
//! meets each step and what cancels the clock. One TOML file per policy (`policies/`).

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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The step's id, unique in the policy.
    pub id: String,
    /// Days (of the policy's kind) from the start to the deadline.
    pub within_days: u32,
    /// The event type that counts towards meeting it.
    pub met_by: String,
    /// How many such facts meet it (default 1).
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

/// An SLA policy.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
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
    #[serde(default)]
    pub cancelled_by: Vec<String>,
    /// A new start while a clock runs replaces it (household re-identification).
    #[serde(default)]
    pub restart: bool,
    /// A `data` field that tells clocks apart (one clock per claim); facts meet only the
    /// clock with the same value.
    #[serde(default)]
    pub key: Option<String>,
    /// The steps.
    pub steps: Vec<Step>,
}

/// Why a policy file could not be used.
#[derive(Debug, thiserror::Error)]
#[error("policy {file}: {message}")]
pub struct PolicyError {
    /// The file.
    pub file: String,
    /// What is wrong.
    pub message: String,
}

impl Policy {
    /// Whether facts of type `name` start, meet or cancel this policy's clocks.
    pub fn concerns(&self, name: &str) -> bool {
        self.starts_on.iter().any(|t| t == name)
            || self.cancelled_by.iter().any(|t| t == name)
            || self.steps.iter().any(|s| s.met_by == name)
    }

    /// Parses and checks one policy file; event types must exist in the catalog.
    pub fn parse(file: &str, text: &str) -> Result<Self, PolicyError> {
        let err = |message: String| PolicyError {
            file: file.into(),
            message,
        };
        let p: Policy = toml::from_str(text).map_err(|e| err(e.to_string()))?;
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
        if p.steps.iter().any(|s| s.count == 0) {
            return Err(err("a step's count must be at least 1".into()));
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
}
