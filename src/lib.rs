//! fhir-smart-authz: the proxy-wasm shell of the SMART on FHIR filter for
//! Envoy. Everything that decides lives in `fhir_smart_authz_core`; this
//! crate reads the request from the host, drives the core and carries out
//! its decision. Only [`host`]'s `ProxyHost` (and the entry points in
//! `wasm`) touch `proxy_wasm`; everything else is host-agnostic and tested
//! natively against a fake host (feature `testing`).

pub mod audit_property;
pub mod core_adapter;
pub mod failed_request;
#[cfg(feature = "testing")]
pub mod fake;
#[cfg(feature = "fault-injection")]
pub mod fault_injection;
pub mod host;
pub mod jwks_sync;
pub mod metrics;
pub mod ports;
pub mod replay_store;
pub mod root;
pub mod shared;
pub mod stream;

#[cfg(target_arch = "wasm32")]
mod wasm;

pub use host::Flow;
pub use shared::Shared;
pub use stream::Stream;
