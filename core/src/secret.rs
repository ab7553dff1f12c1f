//! Secrets by reference. Every secret setting (the introspection client
//! secret, the DPoP nonce key, any future key) uses one grammar:
//!
//! - `{"env": "NAME"}`: an environment variable of the VM or process (Envoy
//!   `vm_config.environment_variables.host_env_keys`, Istio `vmConfig.env`
//!   with `valueFrom: HOST`, the CLI's own environment);
//! - `{"file": "/absolute/path"}`: a file (the native module and the CLI; a
//!   proxy-wasm VM has no file system);
//! - a plain string: the value itself, written in the configuration, which
//!   Envoy's `/config_dump` and the Istio `WasmPlugin` show to their readers.
//!   Refused unless `allow_insecure_inline_secrets` is `true`.
//!
//! The core only parses: the value is looked up through a [`SecretSource`]
//! the host provides (the proxy-wasm shell, the CLI, a test's fake). No
//! message, log line or `Debug` output holds a value: errors name the field
//! and the reference.

use crate::config_error::ConfigError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::borrow::Cow;
use std::ffi::OsString;
use std::fmt;

/// Where the host looks secrets up.
pub trait SecretSource {
    /// The environment variable `name` (`None` when it is not set).
    fn env_var(&self, name: &str) -> Option<OsString>;
    /// The content of the file at `path`, or why it cannot be read (never
    /// the content).
    fn read_file(&self, path: &str) -> Result<Vec<u8>, String>;
}

/// A native process's own environment and files: where the CLI and the
/// native module (Envoy's process) look references up. Not for the
/// proxy-wasm build, whose VM has only what Envoy gives it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessSecrets;

impl SecretSource for ProcessSecrets {
    fn env_var(&self, name: &str) -> Option<OsString> {
        std::env::var_os(name)
    }
    fn read_file(&self, path: &str) -> Result<Vec<u8>, String> {
        std::fs::read(path).map_err(|e| e.to_string())
    }
}

/// A source with nothing in it: every reference is missing. For
/// configurations that hold no secret (tests, benchmarks, tools).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSecrets;

impl SecretSource for NoSecrets {
    fn env_var(&self, _name: &str) -> Option<OsString> {
        None
    }
    fn read_file(&self, _path: &str) -> Result<Vec<u8>, String> {
        Err("this host reads no files".into())
    }
}

/// A secret value. `Debug` never shows it; [`Secret::expose`] is the only way
/// to read it, at the one place that sends it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that uses it (e.g. the `Authorization`
    /// header of the introspection call). Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Where a secret setting's value lives, as written in the configuration.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// `{"env": "NAME"}`.
    Env(String),
    /// `{"file": "/absolute/path"}`.
    File(String),
    /// A plain string: the value itself (insecure; needs the opt-in).
    Inline(Secret),
}

const INLINE_REFUSED: &str = "is a secret written in the configuration, which Envoy's /config_dump and the Istio WasmPlugin show to everyone who can read them; \
     give a reference instead ({\"env\": \"NAME\"} or {\"file\": \"/path\"}), or set allow_insecure_inline_secrets: true";

const ENV_NOT_SET: &str =
    "the environment variable is not set (the .wasm in Envoy: vm_config.environment_variables.host_env_keys; \
     Istio: WasmPlugin vmConfig.env with valueFrom: HOST; the native module: Envoy's own environment; \
     CLI: its own environment)";

/// The grammar, for error messages.
const EXPECTED: &str =
    r#"must be {"env": "NAME"} (an environment variable) or {"file": "/absolute/path"} (a file)"#;

impl SecretRef {
    /// Parse a secret setting from its JSON value. Errors never repeat a
    /// value: a mistyped secret may still be a secret.
    pub fn from_value(value: &Value) -> Result<SecretRef, String> {
        let object = match value {
            Value::String(s) => return Ok(SecretRef::Inline(Secret(s.clone()))),
            Value::Object(o) => o,
            _ => return Err(EXPECTED.into()),
        };
        let mut members = object.iter();
        let (Some((key, value)), None) = (members.next(), members.next()) else {
            return Err(format!("{EXPECTED}: one key, `env` or `file`"));
        };
        let text = value.as_str().unwrap_or_default();
        match key.as_str() {
            "env" if !text.is_empty() && !text.contains(['=', '\0']) => {
                Ok(SecretRef::Env(text.to_string()))
            }
            "env" => Err(
                "`env` must name an environment variable: a non-empty string without `=` or NUL"
                    .into(),
            ),
            "file" if text.starts_with('/') && !text.contains('\0') => {
                Ok(SecretRef::File(text.to_string()))
            }
            "file" => Err("`file` must be an absolute path (a string starting with `/`)".into()),
            _ => Err(format!("{EXPECTED}; found key `{key}`")),
        }
    }

    /// Look the value up. The error names `field` and the reference, never
    /// a value; an inline value is refused unless `allow_inline`.
    pub fn resolve(
        &self,
        field: &str,
        source: &dyn SecretSource,
        allow_inline: bool,
    ) -> Result<Secret, ConfigError> {
        if self.is_inline() && !allow_inline {
            return Err(ConfigError::new(field, INLINE_REFUSED));
        }
        match self.lookup(source) {
            Ok(value) if !value.is_empty() => Ok(Secret(value)),
            Ok(_) => Err(Cow::Borrowed("the value is empty")),
            Err(why) => Err(why),
        }
        .map_err(|why| ConfigError::new(field, format!("{self}: {why}")))
    }

    /// The value, or why there is none (a phrase without the value).
    fn lookup(&self, source: &dyn SecretSource) -> Result<String, Cow<'static, str>> {
        match self {
            SecretRef::Inline(secret) => Ok(secret.0.clone()),
            SecretRef::Env(name) => source
                .env_var(name)
                .ok_or(Cow::Borrowed(ENV_NOT_SET))?
                .into_string()
                .map_err(|_| Cow::Borrowed("the value is not valid UTF-8")),
            SecretRef::File(path) => {
                let bytes = source
                    .read_file(path)
                    .map_err(|why| Cow::Owned(format!("the file cannot be read: {why}")))?;
                String::from_utf8(bytes)
                    .map(strip_line_end)
                    .map_err(|_| Cow::Borrowed("the content is not valid UTF-8"))
            }
        }
    }

    /// Whether the value is written in the configuration.
    pub fn is_inline(&self) -> bool {
        matches!(self, SecretRef::Inline(_))
    }
}

/// A file written by `echo` or an editor ends with a line break that is not
/// part of the secret; a Kubernetes Secret volume holds the bytes exactly.
fn strip_line_end(mut text: String) -> String {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    text
}

/// The reference as written (`{"env": "NAME"}`); an inline value is not shown.
impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "{{\"env\": {name:?}}}"),
            SecretRef::File(path) => write!(f, "{{\"file\": {path:?}}}"),
            SecretRef::Inline(_) => f.write_str("an inline value"),
        }
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => f.debug_tuple("Env").field(name).finish(),
            SecretRef::File(path) => f.debug_tuple("File").field(path).finish(),
            SecretRef::Inline(secret) => f.debug_tuple("Inline").field(secret).finish(),
        }
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        SecretRef::from_value(&value).map_err(serde::de::Error::custom)
    }
}

/// What a configuration section holds for a secret: the reference as
/// written (none when the setting is absent: `Default`) and, once the
/// configuration is loaded, the value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretSetting {
    reference: Option<SecretRef>,
    value: Option<Secret>,
}

impl SecretSetting {
    /// A setting not loaded yet.
    pub fn new(reference: SecretRef) -> SecretSetting {
        SecretSetting {
            reference: Some(reference),
            value: None,
        }
    }

    /// Whether the configuration gives this setting.
    pub fn is_set(&self) -> bool {
        self.reference.is_some()
    }

    pub fn reference(&self) -> Option<&SecretRef> {
        self.reference.as_ref()
    }

    /// Look the value up through `secrets` (see [`SecretRef::resolve`]);
    /// nothing to do for an absent setting.
    pub fn load(&mut self, field: &str, secrets: &mut SecretLoader<'_>) -> Result<(), ConfigError> {
        if let Some(reference) = &self.reference {
            self.value = Some(secrets.resolve(field, reference)?);
        }
        Ok(())
    }

    /// The value; `None` until [`SecretSetting::load`] succeeded.
    pub fn value(&self) -> Option<&Secret> {
        self.value.as_ref()
    }
}

impl fmt::Debug for SecretSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretSetting")
            .field("reference", &self.reference)
            .field("loaded", &self.value.is_some())
            .finish()
    }
}

/// The reference as written (`{"env": NAME}`, `{"file": PATH}`); an inline
/// value is never serialized (`check-config --print-effective` prints the
/// placeholder instead).
impl Serialize for SecretSetting {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (key, text) = match &self.reference {
            None => return serializer.serialize_none(),
            Some(SecretRef::Inline(_)) => {
                return serializer.serialize_str("(an inline secret, not printed)")
            }
            Some(SecretRef::Env(name)) => ("env", name),
            Some(SecretRef::File(path)) => ("file", path),
        };
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(key, text)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for SecretSetting {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        SecretRef::deserialize(deserializer).map(SecretSetting::new)
    }
}

/// Loads every secret setting of one configuration: the host's source, the
/// operator's `allow_insecure_inline_secrets`, and the fields that were
/// given inline (for `check-config`'s warning).
pub struct SecretLoader<'a> {
    source: &'a dyn SecretSource,
    allow_inline: bool,
    inline_fields: Vec<String>,
}

impl<'a> SecretLoader<'a> {
    pub fn new(source: &'a dyn SecretSource, allow_inline: bool) -> SecretLoader<'a> {
        SecretLoader {
            source,
            allow_inline,
            inline_fields: Vec::new(),
        }
    }

    pub fn resolve(&mut self, field: &str, reference: &SecretRef) -> Result<Secret, ConfigError> {
        let secret = reference.resolve(field, self.source, self.allow_inline)?;
        if reference.is_inline() {
            self.inline_fields.push(field.to_string());
        }
        Ok(secret)
    }

    /// The fields whose value was written in the configuration.
    pub fn into_inline_fields(self) -> Vec<String> {
        self.inline_fields
    }
}

#[cfg(test)]
mod tests;
