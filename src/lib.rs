//! fhir-smart-authz: SMART on FHIR enforcement for Envoy (proxy-wasm).
//!
//! Everything that decides lives in pure modules (no `proxy_wasm` import):
//! [`fhir`] classifies requests, [`scope`] parses SMART scopes, [`policy`]
//! decides, [`token`] validates bearer tokens, [`audit`] shapes the audit
//! record and [`config`] validates configuration. [`filter`] is the thin
//! proxy-wasm shell; only `filter::host` calls `proxy_wasm::hostcalls`.

pub mod audit;
pub mod config;
pub mod decision;
pub mod engine;
pub mod fhir;
mod json;
pub mod policy;
pub mod scope;
pub mod token;

pub mod filter;
