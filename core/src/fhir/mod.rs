//! FHIR R4 REST request classification (pure; no proxy_wasm).
//!
//! [`classify()`] turns method + path + query (+ the few headers that change
//! meaning, + the body where it matters) into exactly one [`Interaction`], or
//! refuses the request as `400 invalid_request`. It never guesses.

mod base;
pub mod classify;
mod error;
mod interaction;
mod query;
pub mod resource_types;

pub use base::FhirBase;
pub use classify::{body_needed, classify, is_valid_id};
pub use error::ClassifyError;
pub use interaction::*;
