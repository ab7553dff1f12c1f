//! fhir-smart-authz-core: everything that decides, with no `proxy_wasm`
//! dependency (the crate does not link it, so the compiler keeps the host out).
//!
//! [`fhir`] classifies requests, [`scope`] parses SMART scopes, [`policy`]
//! decides ([`rewrite`] turns a narrowed allow into the request the upstream
//! receives), [`token`] validates bearer tokens, [`audit`] shapes the audit
//! record and [`config`] validates configuration ([`secret`]: secrets by
//! reference, looked up through the host). The proxy-wasm shell is the
//! `fhir-smart-authz` crate; the CLI is `fhir-smart-authz-cli`.

pub mod audit;
pub mod batch;
pub mod bulk;
pub mod capability_statement;
pub mod claims;
pub mod config;
pub mod config_error;
pub mod decision;
pub mod disposition;
pub mod engine;
pub mod fhir;
pub mod internal_failure;
mod json;
pub mod policy;
pub mod precheck;
pub mod public_answer;
pub mod relay;
pub mod reply;
pub mod rewrite;
pub mod scope;
pub mod secret;
pub mod shadow;
pub mod token;
pub mod url;
