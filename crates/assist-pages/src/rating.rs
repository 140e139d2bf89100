//! The dashboard's red / amber / green rating of an on-time rate, by thresholds in a file
//! (`policies/dashboard/ratings.toml`); a page always writes the rating as a word too, never as
//! colour alone.

use serde::Deserialize;

/// Thresholds of the on-time rate.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ratings {
    /// At or above: green.
    pub green: f64,
    /// At or above (and below green): amber; below: red.
    pub amber: f64,
}

/// Why a ratings file was refused.
#[derive(Debug, thiserror::Error)]
pub enum RatingsError {
    /// Not TOML of the expected shape.
    #[error("the ratings file is not valid: {0}")]
    Invalid(String),
    /// Thresholds out of order or outside 0 to 1.
    #[error("the ratings need 0 <= amber <= green <= 1")]
    OutOfOrder,
}

impl Ratings {
    /// The thresholds shipped in `policies/dashboard/ratings.toml`.
    pub fn shipped() -> Self {
        Self::parse(include_str!("../../../policies/dashboard/ratings.toml")).unwrap_or(Ratings {
            green: 0.9,
            amber: 0.75,
        })
    }

    /// Thresholds from a ratings file's text.
    pub fn parse(text: &str) -> Result<Self, RatingsError> {
        let r: Ratings =
            toml::from_str(text).map_err(|e| RatingsError::Invalid(e.message().to_string()))?;
        if !(0.0..=1.0).contains(&r.amber) || !(r.amber..=1.0).contains(&r.green) {
            return Err(RatingsError::OutOfOrder);
        }
        Ok(r)
    }

    /// `green`, `amber` or `red` for an on-time rate; `none` when nothing is decided.
    pub fn rate(&self, on_time: Option<f64>) -> &'static str {
        match on_time {
            None => "none",
            Some(r) if r >= self.green => "green",
            Some(r) if r >= self.amber => "amber",
            Some(_) => "red",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_is_rated_by_the_shipped_thresholds_at_their_edges() {
        let r = Ratings::shipped();
        assert_eq!(
            r,
            Ratings {
                green: 0.9,
                amber: 0.75
            }
        );
        assert_eq!(r.rate(Some(0.9)), "green");
        assert_eq!(r.rate(Some(0.8999)), "amber");
        assert_eq!(r.rate(Some(0.75)), "amber");
        assert_eq!(r.rate(Some(0.7499)), "red");
        assert_eq!(r.rate(None), "none");
    }

    #[test]
    fn thresholds_out_of_order_are_refused() {
        assert!(matches!(
            Ratings::parse("green = 0.5\namber = 0.8"),
            Err(RatingsError::OutOfOrder)
        ));
        assert!(matches!(
            Ratings::parse("green = 0.9"),
            Err(RatingsError::Invalid(_))
        ));
    }
}
