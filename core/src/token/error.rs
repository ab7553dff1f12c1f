//! Why a token was refused.

use crate::decision::{Decision, Reason};
use std::fmt;

/// Why a token was refused. `description` is safe to show to the client (it
/// never contains token contents) and ends up in `error_description`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError {
    /// `InvalidToken`, `KeysUnavailable`, `TokenInactive`,
    /// `IntrospectionUnavailable`, `InvalidRequest` or `MultipleCredentials`.
    pub reason: Reason,
    pub description: String,
    /// `Some(issuer index)`: fetching that issuer's keys now (see
    /// [`TokenVerifier::fetches_due`]) may make a retry succeed (unknown `kid`
    /// or keys not loaded yet). The shell may pause the request, fetch, and
    /// retry once; or simply deny.
    pub refetch_keys: Option<usize>,
}

impl TokenError {
    pub fn new(reason: Reason, description: impl Into<String>) -> Self {
        TokenError {
            reason,
            description: description.into(),
            refetch_keys: None,
        }
    }

    /// `401 invalid_token`.
    pub fn invalid(description: impl Into<String>) -> Self {
        TokenError::new(Reason::InvalidToken, description)
    }

    /// The denial the engine returns.
    pub fn into_decision(self) -> Decision {
        Decision::deny(self.reason, self.description)
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason.as_str(), self.description)
    }
}

impl std::error::Error for TokenError {}

impl From<TokenError> for Decision {
    fn from(e: TokenError) -> Decision {
        e.into_decision()
    }
}
