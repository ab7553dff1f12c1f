//! The error every configuration check returns: which field, what to do.
//! A leaf module, so that each module can validate its own settings without
//! depending on the [`crate::config`] aggregate that composes them.

use std::fmt;

/// A configuration error: the JSON path of the offending field and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// JSON path of the field, e.g. `issuers[0].audiences`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid configuration at `{}`: {}",
            self.field, self.message
        )
    }
}

impl std::error::Error for ConfigError {}

/// Start of a value error raised while deserializing (see [`field_value_error`]).
const FIELD_VALUE_ERROR: &str = "invalid value at `";

/// The message a field's own deserializer fails with, so that the error of
/// the whole document still names the field: `Config::from_json` turns it
/// back into a [`ConfigError`] with [`ConfigError::from_field_value_error`].
pub(crate) fn field_value_error(field: &str, message: &str) -> String {
    format!("{FIELD_VALUE_ERROR}{field}`: {message}")
}

impl ConfigError {
    /// The field and message of a [`field_value_error`] inside a serde error
    /// message (`None` for any other message).
    pub(crate) fn from_field_value_error(serde_message: &str) -> Option<ConfigError> {
        let rest = serde_message.strip_prefix(FIELD_VALUE_ERROR)?;
        let (field, message) = rest.split_once("`: ")?;
        Some(ConfigError::new(field, message))
    }
}
