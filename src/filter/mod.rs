//! The proxy-wasm shell (wasm32 only).
