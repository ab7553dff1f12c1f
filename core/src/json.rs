//! Strict JSON parsing for request bodies, JOSE segments and the plugin
//! configuration: like
//! `serde_json::from_slice` into a [`Value`], but an object with a repeated
//! key is an error.
//!
//! Why: JSON parsers disagree on duplicate keys (first wins, last wins, or
//! error). If the gateway read `"subject"` (or a token's `aud`) from one copy
//! and the FHIR server (or another verifier) from another, a request could be
//! authorized for one patient and executed for another. Refusing duplicates
//! removes the disagreement.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// Parses `bytes` as one JSON value, refusing duplicate object keys.
pub(crate) fn from_slice_strict(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// [`from_slice_strict`] that also says where it failed: the path of the
/// value being read (empty for the document itself; a repeated key is
/// reported at the object holding it).
pub(crate) fn from_slice_strict_at(
    bytes: &[u8],
) -> Result<Value, (serde_path_to_error::Path, serde_json::Error)> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let mut track = serde_path_to_error::Track::new();
    let value = StrictValue
        .deserialize(serde_path_to_error::Deserializer::new(&mut de, &mut track))
        .map_err(|e| (track.path(), e))?;
    de.end()
        .map_err(|e| (serde_path_to_error::Track::new().path(), e))?;
    Ok(value)
}

/// Start of the error message for a repeated key (see [`is_duplicate_key`]).
const DUPLICATE_KEY: &str = "duplicate key";

/// Whether a [`from_slice_strict`] error is a repeated object key.
pub(crate) fn is_duplicate_key(e: &serde_json::Error) -> bool {
    e.to_string().starts_with(DUPLICATE_KEY)
}

struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(StrictValue)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(StrictValue)?;
            // One search of the map per member, not two.
            match out.entry(key) {
                serde_json::map::Entry::Vacant(slot) => {
                    slot.insert(value);
                }
                serde_json::map::Entry::Occupied(dup) => {
                    return Err(de::Error::custom(format_args!(
                        "{DUPLICATE_KEY} `{}` in a JSON object",
                        dup.key().chars().take(64).collect::<String>()
                    )));
                }
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_serde_json() {
        for text in [
            r#"{"a":[1,-2,3.5,true,null,"x"],"b":{"c":{}}}"#,
            "[]",
            "\"s\"",
            "12345678901234567890",
            r#"{"big":1e300,"neg":-0.0}"#,
        ] {
            let strict = from_slice_strict(text.as_bytes()).unwrap();
            let plain: Value = serde_json::from_str(text).unwrap();
            assert_eq!(strict, plain, "{text}");
        }
    }

    #[test]
    fn refuses_duplicates_and_trailing_data() {
        for text in [
            r#"{"a":1,"a":2}"#,
            r#"{"x":{"subject":{"reference":"Patient/1"},"subject":{"reference":"Patient/2"}}}"#,
            r#"[{"k":1,"k":1}]"#,
            r#"{"a":1} {"a":2}"#,
            "{",
            "",
        ] {
            assert!(from_slice_strict(text.as_bytes()).is_err(), "{text}");
        }
        let e = from_slice_strict(br#"{"id":"1","id":"2"}"#).unwrap_err();
        assert!(e.to_string().contains("duplicate key `id`"), "{e}");
        assert!(is_duplicate_key(&e));
        assert!(!is_duplicate_key(&from_slice_strict(b"{").unwrap_err()));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        assert!(from_slice_strict(deep.as_bytes()).is_err());
    }
}
