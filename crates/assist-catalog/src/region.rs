//! Administrative division codes (行政区划代码): 2 digits province, 2 city, 2 county.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// The two-digit province codes of the national standard (GB/T 2260).
const PROVINCES: [&str; 34] = [
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41",
    "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "71",
    "81", "82",
];

/// A 6-digit region code, checked to name a real province; roll-ups use its 2- and 4-digit prefixes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RegionCode(String);

/// Why a text is not a region code. Holds no part of the text: a wrong "region" may be a
/// national ID number, which begins with one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionError {
    /// Not exactly six ASCII digits.
    #[error("region code (text, {} {}) must have 6 digits (province+city+county)", .chars, if *.chars == 1 { "char" } else { "chars" })]
    NotSixDigits {
        /// The length of the refused text, in characters.
        chars: usize,
    },
    /// The first two digits are not a province.
    #[error("region code (6 digits) does not start with a province code (GB/T 2260: 11 to 82)")]
    UnknownProvince,
}

impl RegionCode {
    /// Checks and wraps a region code.
    pub fn new(code: &str) -> Result<Self, RegionError> {
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RegionError::NotSixDigits {
                chars: code.chars().count(),
            });
        }
        if !PROVINCES.contains(&&code[..2]) {
            return Err(RegionError::UnknownProvince);
        }
        Ok(Self(code.to_string()))
    }

    /// The six digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The province code (first two digits).
    pub fn province(&self) -> &str {
        &self.0[..2]
    }

    /// The city code (first four digits).
    pub fn city(&self) -> &str {
        &self.0[..4]
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RegionCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RegionCode::new(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for RegionCode {
    fn schema_name() -> String {
        "RegionCode".into()
    }

    fn json_schema(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        crate::schema::string_pattern(
            "^(1[1-5]|2[1-3]|3[1-7]|4[1-6]|5[0-4]|6[1-5]|71|8[12])[0-9]{4}$",
            "6-digit administrative division code: 2 digits province, 2 city, 2 county",
        )
    }
}

/// A region prefix that selects a subtree: 2 digits (a province), 4 (a city) or 6 (a
/// county), whose first two digits name a province. Every filter by region (caseload, SLA,
/// and what a caller's scope allows) is checked by this one type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RegionPrefix(String);

/// Why a text is not a region prefix. The text itself is never repeated: a mistyped
/// filter may be anything, a phone number included.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionPrefixError {
    /// Not 2, 4 or 6 ASCII digits.
    #[error("a region prefix must be 2, 4 or 6 digits (province, city, county); got {0}")]
    Shape(String),
    /// The first two digits are not a province.
    #[error("a region prefix must start with a province code; {0:?} is none")]
    UnknownProvince(String),
}

impl RegionPrefix {
    /// Checks a prefix.
    pub fn new(text: &str) -> Result<Self, RegionPrefixError> {
        let digits = text.bytes().all(|b| b.is_ascii_digit());
        if !digits || !matches!(text.len(), 2 | 4 | 6) {
            let what = if digits { "digits" } else { "characters" };
            return Err(RegionPrefixError::Shape(format!(
                "{} {what}",
                text.chars().count()
            )));
        }
        if !PROVINCES.contains(&&text[..2]) {
            return Err(RegionPrefixError::UnknownProvince(text[..2].to_string()));
        }
        Ok(Self(text.to_string()))
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The level it selects: `province`, `city` or `county`.
    pub fn level(&self) -> &'static str {
        match self.0.len() {
            2 => "province",
            4 => "city",
            _ => "county",
        }
    }

    /// Whether `region` (a 2-, 4- or 6-digit code) lies in this subtree.
    pub fn contains(&self, region: &str) -> bool {
        region.starts_with(&self.0)
    }
}

impl fmt::Display for RegionPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for RegionPrefix {
    type Err = RegionPrefixError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RegionPrefix::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_a_county_code() {
        let r = RegionCode::new("350102").unwrap();
        assert_eq!((r.province(), r.city()), ("35", "3501"));
    }

    #[test]
    fn rejects_four_digits_with_the_reason() {
        assert_eq!(
            RegionCode::new("3501").unwrap_err().to_string(),
            "region code (text, 4 chars) must have 6 digits (province+city+county)"
        );
    }

    #[test]
    fn rejects_an_unknown_province() {
        assert_eq!(
            RegionCode::new("990101").unwrap_err().to_string(),
            "region code (6 digits) does not start with a province code (GB/T 2260: 11 to 82)"
        );
    }

    #[test]
    fn a_region_prefix_is_two_four_or_six_digits_of_a_province() {
        for ok in ["35", "3501", "350121"] {
            assert_eq!(RegionPrefix::new(ok).unwrap().as_str(), ok);
        }
        assert_eq!(RegionPrefix::new("3501").unwrap().level(), "city");
    }

    #[test]
    fn a_bad_region_prefix_is_refused_without_repeating_it() {
        let e = RegionPrefix::new("13812345678").unwrap_err().to_string();
        assert_eq!(
            e,
            "a region prefix must be 2, 4 or 6 digits (province, city, county); got 11 digits"
        );
        assert!(RegionPrefix::new("abc").is_err());
        assert!(RegionPrefix::new("35012100").is_err());
        assert!(RegionPrefix::new("").is_err());
        assert_eq!(
            RegionPrefix::new("99").unwrap_err().to_string(),
            r#"a region prefix must start with a province code; "99" is none"#
        );
    }
}
