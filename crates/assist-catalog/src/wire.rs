//! Reading the JSON wire form strictly, as the published JSON Schemas read it.
//!
//! serde, left to itself, is more lenient than the schemas: a struct may be sent as an
//! array of its fields (`"actor": [id, role, region]`), a key may appear twice (the last
//! one wins), and its messages quote the offending value whole (a name, a phone number, a
//! 60 KB string, terminal escapes). [`parse`] reads text into a JSON value refusing
//! duplicate keys; [`from_value`] deserializes a value refusing arrays where objects are
//! required and NUL characters in text, with messages that describe values instead of
//! repeating them (see [`crate::violation::text`]).

use crate::violation::{self, Violation};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::RefCell;
use std::fmt;

/// Why a text is not one JSON value with each key once per object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not JSON.
    #[error("invalid JSON at column {column}: {message}")]
    Syntax {
        /// 1-based column (of the line) where the parser stopped.
        column: usize,
        /// What the parser found (never the text itself).
        message: String,
    },
    /// An object names a key twice; the path ends in that key.
    #[error("{path}: the key appears twice in one object; each key may appear once")]
    DuplicateKey {
        /// Dotted path of the key (`data.channel`), escaped and truncated for printing.
        path: String,
    },
}

/// Parses one JSON text into a value, refusing an object that names a key twice.
pub fn parse(text: &str) -> Result<Value, ParseError> {
    let path = RefCell::new(Vec::new());
    let duplicate = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = ValueSeed {
        path: &path,
        duplicate: &duplicate,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    parsed.map_err(|e| match duplicate.into_inner() {
        Some(path) => ParseError::DuplicateKey { path },
        None => {
            let msg = e.to_string();
            let msg = msg
                .rsplit_once(" at line ")
                .map_or(msg.as_str(), |(m, _)| m)
                .to_string();
            ParseError::Syntax {
                column: e.column(),
                message: violation::escaped(&msg),
            }
        }
    })
}

enum Step {
    Key(String),
    Index(usize),
}

fn path_text<'a>(steps: impl IntoIterator<Item = &'a Step>) -> String {
    let mut out = String::new();
    for step in steps {
        match step {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&violation::name(k));
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Builds a [`Value`] like serde_json does, tracking the path so that a duplicate key can
/// be named; the path is kept in one shared stack (keys are moved in and out, not copied).
#[derive(Clone, Copy)]
struct ValueSeed<'a> {
    path: &'a RefCell<Vec<Step>>,
    duplicate: &'a RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        Ok(Number::from_f64(n).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        loop {
            self.path.borrow_mut().push(Step::Index(out.len()));
            let next = seq.next_element_seed(self);
            self.path.borrow_mut().pop();
            match next? {
                Some(v) => out.push(v),
                None => return Ok(Value::Array(out)),
            }
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                let mut path = self.path.borrow_mut();
                path.push(Step::Key(key));
                *self.duplicate.borrow_mut() = Some(path_text(path.iter()));
                return Err(de::Error::custom("duplicate key"));
            }
            self.path.borrow_mut().push(Step::Key(key));
            let value = map.next_value_seed(self);
            let key = match self.path.borrow_mut().pop() {
                Some(Step::Key(k)) => k,
                _ => String::new(),
            };
            out.insert(key, value?);
        }
        Ok(Value::Object(out))
    }
}

/// Deserializes `T` from `value` strictly, with the path of the first mismatch
/// (`data.employer.name`, or empty for the value itself) prefixed by `at` (`data`).
/// With `refuse_nul`, a text holding a NUL character is refused (what ingest wants; events
/// stored before that rule are still read).
pub fn from_value<T: de::DeserializeOwned>(
    value: Value,
    at: &str,
    refuse_nul: bool,
) -> Result<T, Violation> {
    serde_path_to_error::deserialize(Strict { value, refuse_nul }).map_err(|e| {
        let steps: Vec<Step> = e
            .path()
            .iter()
            .map(|s| match s {
                serde_path_to_error::Segment::Seq { index } => Step::Index(*index),
                serde_path_to_error::Segment::Map { key } => Step::Key(key.clone()),
                serde_path_to_error::Segment::Enum { variant } => Step::Key(variant.clone()),
                serde_path_to_error::Segment::Unknown => Step::Key("?".into()),
            })
            .collect();
        let inner = e.into_inner();
        // An unknown field is reported at the object that has it: the message names it.
        let keep = match inner.kind {
            Kind::UnknownField => steps.len().saturating_sub(1),
            Kind::Other => steps.len(),
        };
        let rest = path_text(&steps[..keep]);
        let path = match (at.is_empty(), rest.is_empty()) {
            (_, true) => at.to_string(),
            (true, false) => rest,
            (false, false) if rest.starts_with('[') => format!("{at}{rest}"),
            (false, false) => format!("{at}.{rest}"),
        };
        Violation {
            path,
            message: violation::escaped(&inner.message),
        }
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    UnknownField,
    Other,
}

/// A deserialization error whose messages describe the values they are about instead of
/// quoting them.
#[derive(Debug)]
struct StrictError {
    kind: Kind,
    message: String,
}

impl fmt::Display for StrictError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StrictError {}

fn unexpected(u: &de::Unexpected<'_>) -> String {
    use de::Unexpected as U;
    match u {
        U::Str(s) => format!("text ({})", violation::length(s)),
        U::Unsigned(n) => short_number("integer", &n.to_string()),
        U::Signed(n) => short_number("integer", &n.to_string()),
        U::Float(n) => short_number("floating point", &n.to_string()),
        U::Char(_) => "a character".into(),
        U::Bytes(b) => format!("bytes ({})", b.len()),
        U::Seq => "array".into(),
        U::Map => "object".into(),
        other => other.to_string(),
    }
}

/// A number as serde shows it (`integer \`12\``) when it is short, else its kind and
/// length (the rule of [`violation::number`]).
fn short_number(kind: &str, text: &str) -> String {
    if text.chars().count() <= 6 {
        format!("{kind} `{text}`")
    } else {
        let digits = text.bytes().filter(u8::is_ascii_digit).count();
        format!("{kind} ({digits} digits)")
    }
}

fn one_of(names: &[&str]) -> String {
    names.join(", ")
}

impl de::Error for StrictError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        StrictError {
            kind: Kind::Other,
            message: msg.to_string(),
        }
    }
    fn invalid_type(u: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::custom(format_args!(
            "invalid type: {}, expected {exp}",
            unexpected(&u)
        ))
    }
    fn invalid_value(u: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::custom(format_args!(
            "invalid value: {}, expected {exp}",
            unexpected(&u)
        ))
    }
    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Self::custom(format_args!(
            "unknown value ({}); expected one of: {}",
            violation::text(variant),
            one_of(expected)
        ))
    }
    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let expected = match expected {
            [] => "there are no fields".to_string(),
            [one] => format!("expected `{one}`"),
            [a, b] => format!("expected `{a}` or `{b}`"),
            more => format!(
                "expected one of {}",
                more.iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        StrictError {
            kind: Kind::UnknownField,
            message: format!("unknown field `{}`, {expected}", violation::name(field)),
        }
    }
}

/// An owned JSON value as a deserializer that refuses what the schemas refuse.
struct Strict {
    value: Value,
    refuse_nul: bool,
}

const NUL: &str = "contains a NUL character (U+0000), which no text may hold";

impl<'de> de::Deserializer<'de> for Strict {
    type Error = StrictError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, StrictError> {
        let refuse_nul = self.refuse_nul;
        match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) if refuse_nul && s.contains('\0') => Err(de::Error::custom(NUL)),
            Value::String(s) => visitor.visit_string(s),
            Value::Array(a) => visitor.visit_seq(Seq {
                iter: a.into_iter(),
                refuse_nul,
            }),
            Value::Object(m) => visitor.visit_map(Entries {
                iter: m.into_iter(),
                value: None,
                refuse_nul,
            }),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, StrictError> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, StrictError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, StrictError> {
        match self.value {
            Value::Array(_) => Err(de::Error::custom(
                "must be a JSON object, found an array (fields are named, never positional)",
            )),
            Value::Object(_) => self.deserialize_any(visitor),
            other => Err(de::Error::invalid_type(unexpected_of(&other), &visitor)),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, StrictError> {
        match self.value {
            // Every enum of the catalog is a plain name: no variant carries data.
            Value::String(s) => visitor.visit_enum(s.into_deserializer()),
            other => Err(de::Error::custom(format_args!(
                "invalid type: {}; expected one of: {}",
                unexpected(&unexpected_of(&other)),
                one_of(variants)
            ))),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, StrictError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier
    }
}

fn unexpected_of(v: &Value) -> de::Unexpected<'_> {
    use de::Unexpected as U;
    match v {
        Value::Null => U::Unit,
        Value::Bool(b) => U::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => U::Unsigned(u),
            (None, Some(i)) => U::Signed(i),
            _ => U::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => U::Str(s),
        Value::Array(_) => U::Seq,
        Value::Object(_) => U::Map,
    }
}

struct Seq {
    iter: std::vec::IntoIter<Value>,
    refuse_nul: bool,
}

impl<'de> SeqAccess<'de> for Seq {
    type Error = StrictError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, StrictError> {
        let refuse_nul = self.refuse_nul;
        self.iter
            .next()
            .map(|value| seed.deserialize(Strict { value, refuse_nul }))
            .transpose()
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct Entries {
    iter: serde_json::map::IntoIter,
    value: Option<Value>,
    refuse_nul: bool,
}

impl<'de> MapAccess<'de> for Entries {
    type Error = StrictError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, StrictError> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(de::value::StringDeserializer::<StrictError>::new(k))
                    .map(Some)
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, StrictError> {
        seed.deserialize(Strict {
            value: self.value.take().unwrap_or(Value::Null),
            refuse_nul: self.refuse_nul,
        })
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_named_twice_is_refused_with_its_path() {
        assert_eq!(
            parse(r#"{"a": {"b": [1, {"c": 1, "c": 2}]}}"#)
                .unwrap_err()
                .to_string(),
            "a.b[1].c: the key appears twice in one object; each key may appear once"
        );
    }

    #[test]
    fn a_value_parses_as_serde_json_parses_it() {
        let text = r#"{"z": 1, "a": [true, null, -2, 1.5, "x"], "m": {}}"#;
        assert_eq!(
            parse(text).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
    }

    #[test]
    fn syntax_errors_name_their_column() {
        assert_eq!(
            parse(r#"{"a": }"#).unwrap_err().to_string(),
            "invalid JSON at column 7: expected value"
        );
    }
}
