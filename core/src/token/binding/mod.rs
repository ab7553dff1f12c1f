//! Sender-constrained tokens: DPoP (RFC 9449) and certificate-bound tokens
//! (RFC 8705). After a token verifies, [`check_binding`] decides whether
//! this request proves possession of what the token is bound to.
//!
//! `proof` (a DPoP proof on its own) → `check` (against the request, the
//! token, the clock, the issuer's settings) → `htu` (the external URI),
//! `thumbprint` (RFC 7638), `certificate` (RFC 8705 thumbprints, trusted
//! hops), `nonce` (RFC 9449 §8), `replay` (the `jti` cache behind a store
//! trait); `challenge` (the `DPoP` challenge of a 401); `settings`.

pub mod certificate;
pub mod challenge;
pub mod check;
pub mod htu;
pub mod nonce;
pub mod proof;
pub mod replay;
pub mod settings;
pub mod thumbprint;

pub use certificate::ConnectionFacts;
pub use check::{
    check_binding, check_binding_with, Binding, BindingContext, BindingRequest, Confirmation,
};
pub use proof::ProofKeys;
pub use replay::{MemoryReplayStore, ReplayLayout, ReplayStore, StoreError};
pub use settings::{
    CertificateBinding, CertificateSource, DpopConfig, DpopMode, SenderConstraintConfig,
};
