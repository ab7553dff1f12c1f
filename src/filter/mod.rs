//! The proxy-wasm shell. Everything here except [`host`]'s `ProxyHost` and
//! the entry points in `wasm` is host-agnostic and tested natively with
//! [`fake::FakeHost`].

pub mod core_adapter;
pub mod fake;
pub mod host;
pub mod metrics;
pub mod pbstruct;
pub mod ports;
pub mod response;
pub mod root;
pub mod stream;

#[cfg(target_arch = "wasm32")]
mod wasm;

pub use stream::{Flow, Shared, Stream, AUDIT_PROPERTY};
