//! Why a request could not be classified, and how untrusted text appears in
//! the message.

use std::fmt;

/// Why a request could not be classified (always `400 invalid_request`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassifyError {
    pub message: String,
}

impl ClassifyError {
    pub fn new(message: impl Into<String>) -> Self {
        ClassifyError {
            message: message.into(),
        }
    }
}

impl fmt::Display for ClassifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ClassifyError {}

pub(crate) fn err<T>(message: impl Into<String>) -> Result<T, ClassifyError> {
    Err(ClassifyError::new(message))
}

/// Untrusted text for an error message: at most 80 characters, with
/// non-printable characters (controls, bidi overrides) escaped.
pub(crate) fn short(s: &str) -> String {
    let cut = match s.char_indices().nth(80) {
        Some((i, _)) => s.get(..i).unwrap_or(s),
        None => s,
    };
    cut.escape_debug().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_text_is_shortened_and_escaped() {
        assert_eq!(short("abc"), "abc");
        assert_eq!(short(&"x".repeat(200)).len(), 80);
        assert_eq!(short("a\u{202e}b"), "a\\u{202e}b");
        assert_eq!(short("é"), "é");
    }
}
