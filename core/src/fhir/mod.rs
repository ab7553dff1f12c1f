//! FHIR R4 REST request classification (pure; no proxy_wasm).
//!
//! [`classify()`] turns method + path + query (+ the few headers that change
//! meaning, + the body where it matters) into exactly one [`Interaction`], or
//! refuses the request as `400 invalid_request`. It never guesses.
//!
//! `classify` reads the request line and headers (`head`), the path
//! (`route`), picks the interaction from the route × method `table`, reads
//! what the body says where it matters (`body`), and classifies a Bundle's
//! entries the same way (`bundle`).

mod base;
mod body;
mod bundle;
pub mod classify;
mod error;
mod head;
mod id;
mod interaction;
mod paging;
mod parameters;
mod query;
pub mod r4;
pub mod resource_types;
mod route;
mod table;

pub use base::FhirBase;
pub use body::MAX_FORM_BYTES;
pub use bundle::MAX_BUNDLE_ENTRIES;
pub use classify::{body_needed, classify};
pub(crate) use error::short;
pub use error::ClassifyError;
pub(crate) use head::preference_is;
pub use id::{is_valid_id, literal, literal_patient, Literal};
pub use interaction::*;
pub use query::parse_query;
pub use query::MAX_PARAMETERS;
pub(crate) use query::{form_encode, split_name};
