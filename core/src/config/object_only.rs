//! The configuration document read as `serde_json::Value` reads it, except
//! that every section (a Rust struct) must be a JSON object. serde's derived
//! structs also accept an array and fill their fields by position
//! (`{"token": [60]}` would set `token.leeway_seconds`): a configuration
//! nobody meant, accepted silently. Fail closed instead, naming the field.
//! The same holds inside an enum's value: the content of a variant written
//! in serde's map form (`{"variant": content}`) is read through this
//! deserializer too, so a struct there must be an object as well.
//!
//! It also keeps the position of the value being read (`issuers[0].jwks`)
//! and reports where the first error arose, as `serde_path_to_error` did
//! around it: wrapping every visitor a second time cost ~60 KB of the
//! shipped .wasm, a position passed down costs almost nothing.

use serde::de::{
    self, Deserialize, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Unexpected,
    VariantAccess, Visitor,
};
use serde::forward_to_deserialize_any;
use serde_json::{Error, Value};
use std::cell::RefCell;

/// Read `document` as `T`. On error, also the dotted path of the value the
/// error arose in (`policy.patient_search`, `issuers[0].algorithms[1]`);
/// `None` for the document itself.
pub(super) fn deserialize<'de, T: Deserialize<'de>>(
    document: &'de Value,
) -> Result<T, (Option<String>, Error)> {
    let first_error_at = RefCell::new(None);
    T::deserialize(ObjectOnly {
        value: document,
        at: &Position::Root,
        first_error_at: &first_error_at,
    })
    .map_err(|e| (first_error_at.into_inner().flatten(), e))
}

/// Where a value sits: the keys (or a variant's name) and indexes from the
/// document down to it.
enum Position<'a> {
    Root,
    Key(&'a Position<'a>, &'a str),
    Index(&'a Position<'a>, usize),
}

impl Position<'_> {
    /// `a.b[0].c`; `None` for the document itself.
    fn dotted(&self) -> Option<String> {
        let mut steps = Vec::new();
        let mut at = self;
        loop {
            match at {
                Position::Root => break,
                Position::Key(parent, _) | Position::Index(parent, _) => {
                    steps.push(at);
                    at = parent;
                }
            }
        }
        let mut out = String::new();
        for step in steps.into_iter().rev() {
            match step {
                Position::Key(_, key) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                Position::Index(_, index) => {
                    out.push('[');
                    out.push_str(&index.to_string());
                    out.push(']');
                }
                Position::Root => {}
            }
        }
        (!out.is_empty()).then_some(out)
    }
}

/// The innermost position an error passed through (the first one seen
/// while the error travels outwards); `Some(None)` is the document.
type FirstErrorAt = RefCell<Option<Option<String>>>;

/// Note where `error` passed (unless a position nearer to its cause was
/// noted already) and hand it on.
fn noted(first_error_at: &FirstErrorAt, at: &Position<'_>, error: Error) -> Error {
    let mut first = first_error_at.borrow_mut();
    if first.is_none() {
        *first = Some(at.dotted());
    }
    error
}

/// A JSON value whose structs must be objects (at any depth).
struct ObjectOnly<'de, 'a> {
    value: &'de Value,
    at: &'a Position<'a>,
    first_error_at: &'a FirstErrorAt,
}

fn unexpected(v: &Value) -> Unexpected<'_> {
    match v {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(_) => Unexpected::Other("number"),
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

/// A number as serde_json words it in errors (``integer `5` ``).
fn number(n: &serde_json::Number) -> Unexpected<'static> {
    if let Some(u) = n.as_u64() {
        Unexpected::Unsigned(u)
    } else if let Some(i) = n.as_i64() {
        Unexpected::Signed(i)
    } else {
        Unexpected::Float(n.as_f64().unwrap_or(f64::NAN))
    }
}

/// A number as serde_json's `Value` hands it to a visitor.
fn visit_number<'de, V: Visitor<'de>>(
    n: &serde_json::Number,
    visitor: V,
) -> Result<V::Value, Error> {
    if let Some(u) = n.as_u64() {
        visitor.visit_u64(u)
    } else if let Some(i) = n.as_i64() {
        visitor.visit_i64(i)
    } else {
        visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
    }
}

impl<'de, 'a> ObjectOnly<'de, 'a> {
    fn noted(&self, error: Error) -> Error {
        noted(self.first_error_at, self.at, error)
    }

    fn members(&self, members: &'de serde_json::Map<String, Value>) -> Members<'de, 'a> {
        Members {
            members: members.iter(),
            value: None,
            at: self.at,
            first_error_at: self.first_error_at,
        }
    }

    fn any<V: Visitor<'de>>(&self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Array(items) => visit_elements(items, self.at, self.first_error_at, visitor),
            Value::Object(members) => visitor.visit_map(self.members(members)),
            // Scalars are handed over here rather than through serde_json's
            // `&Value` deserializer: that one would instantiate every
            // visitor a second time (its own map and seq readers), ~100 KB
            // of the shipped .wasm.
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => visit_number(n, visitor),
            Value::String(s) => visitor.visit_borrowed_str(s),
        }
    }

    fn struct_members<V: Visitor<'de>>(&self, visitor: V) -> Result<V::Value, Error> {
        // Straight to `visit_map`: through `deserialize_any` every section's
        // visitor would also be instantiated for arrays and scalars (serde's
        // by-position `visit_seq` and the type errors), code that is never run.
        match self.value {
            Value::Object(members) => visitor.visit_map(self.members(members)),
            other => Err(de::Error::invalid_type(
                unexpected(other),
                &"a JSON object (the settings of this section by name)",
            )),
        }
    }

    fn variant<V: Visitor<'de>>(&self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::String(variant) => {
                visitor.visit_enum(de::value::BorrowedStrDeserializer::new(variant))
            }
            Value::Object(members) => {
                let mut members = members.iter();
                match (members.next(), members.next()) {
                    (Some((variant, content)), None) => visitor.visit_enum(Variant {
                        variant,
                        content,
                        at: self.at,
                        first_error_at: self.first_error_at,
                    }),
                    _ => Err(de::Error::invalid_value(
                        Unexpected::Map,
                        &"map with a single key",
                    )),
                }
            }
            Value::Number(n) => Err(de::Error::invalid_type(number(n), &"string or map")),
            other => Err(de::Error::invalid_type(unexpected(other), &"string or map")),
        }
    }
}

impl<'de> Deserializer<'de> for ObjectOnly<'de, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.any(visitor).map_err(|e| self.noted(e))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.struct_members(visitor).map_err(|e| self.noted(e))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    /// An enum is its variant's name (`"deny"`), or serde's map form with
    /// one key, the variant, whose value is the variant's content: that
    /// content is read through `ObjectOnly` (a struct in it must be an
    /// object, at any depth). Anything else is refused in serde_json's
    /// words (`expected string or map`, `expected map with a single key`).
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.variant(visitor).map_err(|e| self.noted(e))
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier ignored_any
    }
}

/// The elements of an array, each read through `ObjectOnly`; like
/// serde_json, an array longer than what was read (a tuple) is an error.
fn visit_elements<'de, V: Visitor<'de>>(
    items: &'de [Value],
    at: &Position<'_>,
    first_error_at: &FirstErrorAt,
    visitor: V,
) -> Result<V::Value, Error> {
    let mut elements = Elements {
        items: items.iter(),
        index: 0,
        at,
        first_error_at,
    };
    let value = visitor.visit_seq(&mut elements)?;
    match elements.items.len() {
        0 => Ok(value),
        _ => Err(de::Error::invalid_length(
            items.len(),
            &"fewer elements in array",
        )),
    }
}

struct Elements<'de, 'a> {
    items: std::slice::Iter<'de, Value>,
    index: usize,
    at: &'a Position<'a>,
    first_error_at: &'a FirstErrorAt,
}

impl<'de> SeqAccess<'de> for Elements<'de, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        let Some(value) = self.items.next() else {
            return Ok(None);
        };
        let at = Position::Index(self.at, self.index);
        self.index += 1;
        seed.deserialize(ObjectOnly {
            value,
            at: &at,
            first_error_at: self.first_error_at,
        })
        .map(Some)
        .map_err(|e| noted(self.first_error_at, &at, e))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Members<'de, 'a> {
    members: serde_json::map::Iter<'de>,
    value: Option<(&'de str, &'de Value)>,
    at: &'a Position<'a>,
    first_error_at: &'a FirstErrorAt,
}

impl<'de> MapAccess<'de> for Members<'de, '_> {
    type Error = Error;

    /// A key's error (an unknown field) is about that key.
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some((key, value)) = self.members.next() else {
            return Ok(None);
        };
        self.value = Some((key, value));
        seed.deserialize(de::value::BorrowedStrDeserializer::new(key))
            .map(Some)
            .map_err(|e| noted(self.first_error_at, &Position::Key(self.at, key), e))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        match self.value.take() {
            // An error of the value's own reader (not only of this
            // deserializer) is about the value too.
            Some((key, value)) => {
                let at = Position::Key(self.at, key);
                seed.deserialize(ObjectOnly {
                    value,
                    at: &at,
                    first_error_at: self.first_error_at,
                })
                .map_err(|e| noted(self.first_error_at, &at, e))
            }
            None => Err(de::Error::custom("a value without its key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.members.len())
    }
}

/// One variant in serde's map form: `{"variant": content}`.
struct Variant<'de, 'a> {
    variant: &'de str,
    content: &'de Value,
    at: &'a Position<'a>,
    first_error_at: &'a FirstErrorAt,
}

impl<'de, 'a> EnumAccess<'de> for Variant<'de, 'a> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Error> {
        seed.deserialize(de::value::BorrowedStrDeserializer::new(self.variant))
            .map(|v| (v, self))
    }
}

impl Variant<'_, '_> {
    /// An error about the content is at the variant (`mode.fixed`).
    fn noted(&self, error: Error) -> Error {
        noted(
            self.first_error_at,
            &Position::Key(self.at, self.variant),
            error,
        )
    }
}

/// The content of a variant, as serde_json reads it (a unit variant's is
/// `null`, a tuple variant's an array, a struct variant's an object),
/// except that what is inside is read through `ObjectOnly`.
impl<'de> VariantAccess<'de> for Variant<'de, '_> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        <()>::deserialize(self.content).map_err(|e| self.noted(e))
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        let at = Position::Key(self.at, self.variant);
        seed.deserialize(ObjectOnly {
            value: self.content,
            at: &at,
            first_error_at: self.first_error_at,
        })
        .map_err(|e| noted(self.first_error_at, &at, e))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        let at = Position::Key(self.at, self.variant);
        match self.content {
            Value::Array(items) if items.is_empty() => visitor.visit_unit(),
            Value::Array(items) => visit_elements(items, &at, self.first_error_at, visitor),
            other => Err(de::Error::invalid_type(unexpected(other), &"tuple variant")),
        }
        .map_err(|e| noted(self.first_error_at, &at, e))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.content {
            Value::Object(_) => ObjectOnly {
                value: self.content,
                at: &Position::Key(self.at, self.variant),
                first_error_at: self.first_error_at,
            }
            .deserialize_any(visitor),
            other => Err(self.noted(de::Error::invalid_type(
                unexpected(other),
                &"struct variant",
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse_error;
    use super::{deserialize, ObjectOnly, Position};
    use serde::Deserialize;
    use serde_json::Value;

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Settings {
        seconds: u64,
        #[serde(default)]
        name: String,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Mode {
        Off,
        Fixed(Settings),
        Pair(String, Settings),
        Custom {
            settings: Settings,
            #[serde(default)]
            extra: Vec<Settings>,
        },
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Document {
        mode: Mode,
    }

    fn read(json: &str) -> Result<Mode, (String, String)> {
        let document: Value = serde_json::from_str(json).unwrap();
        deserialize(&document)
            .map(|d: Document| d.mode)
            .map_err(|(at, e)| {
                let e = parse_error(at, &e);
                (e.field, e.message)
            })
    }

    fn settings(seconds: u64) -> Settings {
        Settings {
            seconds,
            name: String::new(),
        }
    }

    #[test]
    fn variants_are_read_as_serde_json_reads_them() {
        for (json, mode) in [
            (r#"{"mode":"off"}"#, Mode::Off),
            (r#"{"mode":{"off":null}}"#, Mode::Off),
            (
                r#"{"mode":{"fixed":{"seconds":5}}}"#,
                Mode::Fixed(settings(5)),
            ),
            (
                r#"{"mode":{"pair":["a",{"seconds":5}]}}"#,
                Mode::Pair("a".into(), settings(5)),
            ),
            (
                r#"{"mode":{"custom":{"settings":{"seconds":5},"extra":[{"seconds":1}]}}}"#,
                Mode::Custom {
                    settings: settings(5),
                    extra: vec![settings(1)],
                },
            ),
        ] {
            assert_eq!(read(json), Ok(mode), "{json}");
        }
    }

    /// A tuple is read from an array of its length, as serde_json reads it.
    #[test]
    fn a_tuple_takes_its_elements_only() {
        #[derive(Debug, Deserialize)]
        struct Pair {
            pair: (u64, u64),
        }
        let read = |json: &str| {
            let document: Value = serde_json::from_str(json).unwrap();
            let first_error_at = Default::default();
            Pair::deserialize(ObjectOnly {
                value: &document,
                at: &Position::Root,
                first_error_at: &first_error_at,
            })
            .map(|p| p.pair)
        };
        assert_eq!(read(r#"{"pair":[1,2]}"#).unwrap(), (1, 2));
        assert_eq!(
            read(r#"{"pair":[1,2,3]}"#).unwrap_err().to_string(),
            "invalid length 3, expected fewer elements in array"
        );
    }

    #[test]
    fn a_struct_inside_a_variant_must_be_an_object() {
        const SEE: &str = "; see the configuration reference (docs/configuration.md)";
        const OBJECT: &str =
            "invalid type: sequence, expected a JSON object (the settings of this section by name)";
        #[rustfmt::skip]
        let cases = [
            // serde_json alone reads these structs from arrays, by position.
            (r#"{"mode":{"fixed":[5]}}"#, "mode.fixed", OBJECT),
            (r#"{"mode":{"fixed":[5,"x"]}}"#, "mode.fixed", OBJECT),
            (r#"{"mode":{"pair":["a",[5]]}}"#, "mode.pair[1]", OBJECT),
            (r#"{"mode":{"custom":{"settings":[5]}}}"#, "mode.custom.settings", OBJECT),
            (r#"{"mode":{"custom":{"settings":{"seconds":5},"extra":[[1]]}}}"#, "mode.custom.extra[0]", OBJECT),
            // Refused before too, with serde_json's words.
            (r#"{"mode":{"custom":[[5]]}}"#, "mode.custom", "invalid type: sequence, expected struct variant"),
            (r#"{"mode":{"pair":{"seconds":5}}}"#, "mode.pair", "invalid type: map, expected tuple variant"),
            (r#"{"mode":{"pair":["a",{"seconds":5},1]}}"#, "mode.pair", "invalid length 3, expected fewer elements in array"),
            (r#"{"mode":{"off":[]}}"#, "mode.off", "invalid type: sequence, expected unit"),
            (r#"{"mode":{"fixed":{"seconds":"5"}}}"#, "mode.fixed.seconds", r#"invalid type: string "5", expected u64"#),
            (r#"{"mode":{"fixed":{"seconds":5},"off":null}}"#, "mode", "invalid value: map, expected map with a single key"),
            (r#"{"mode":["fixed",{"seconds":5}]}"#, "mode", "invalid type: sequence, expected string or map"),
        ];
        for (json, field, message) in cases {
            assert_eq!(
                read(json),
                Err((field.to_string(), format!("{message}{SEE}"))),
                "{json}"
            );
        }
    }
}
