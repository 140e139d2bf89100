//! The payloads of every event type, grouped by what caseworkers do (DOMAIN.md).

pub mod case;
pub mod difficulty;
pub mod household;
pub mod monitoring;
pub mod person;
pub mod placement;
pub mod response;
pub mod training;

/// Declares payload types whose Rust types already hold all their rules.
macro_rules! no_further_rules {
    ($($t:ty),* $(,)?) => {
        $(impl $crate::violation::Validate for $t {
            fn validate(&self, _at: &str, _v: &mut $crate::violation::Violations) {}
        })*
    };
}
pub(crate) use no_further_rules;
