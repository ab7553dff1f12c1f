//! FHIR R4 REST request classification (pure; no proxy_wasm).
//!
//! [`classify()`] turns method + path + query (+ the few headers that change
//! meaning, + the body where it matters) into exactly one [`Interaction`], or
//! refuses the request as `400 invalid_request`. It never guesses.

mod interaction;
pub use interaction::*;

pub mod classify;
mod query;
pub mod r4;
pub mod resource_types;

pub use classify::{body_needed, classify, is_valid_id, ClassifyError};
