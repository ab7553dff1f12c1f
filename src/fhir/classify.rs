//! Request classification.
use super::{Interaction, RequestParts};
use crate::config::Config;

/// Why a request could not be classified (always `400 invalid_request`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassifyError {
    pub message: String,
}

/// Whether the classifier needs the body to classify this request.
pub fn body_needed(_config: &Config, _req: &RequestParts) -> bool {
    false
}

pub fn classify(_config: &Config, _req: &RequestParts) -> Result<Interaction, ClassifyError> {
    Err(ClassifyError {
        message: "not implemented".into(),
    })
}
