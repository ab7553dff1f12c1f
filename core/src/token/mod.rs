//! Bearer token extraction and validation (pure; the clock, key fetches and
//! introspection calls are injected by the caller).
//!
//! Flow for the filter shell:
//! 1. [`extract_bearer`] pulls the one credential out of the request.
//! 2. [`TokenVerifier::authenticate`] answers from the [`TokenCache`], or
//!    verifies a JWT against the issuer's keys (through a
//!    [`SignatureVerifier`]: pure Rust or Envoy's `verify_signature`), or asks
//!    for an RFC 7662 introspection call ([`Authenticated::Introspect`]).
//! 3. Key sets are fetched by the shell when [`TokenVerifier::fetches_due`]
//!    says so and handed back with [`TokenVerifier::on_jwks_response`].

pub mod alg;
pub mod bearer;
pub mod binding;
pub mod cache;
mod ecdsa;
mod error;
pub mod fetch_lease;
pub mod host_crypto;
pub mod introspection;
pub mod jose;
pub mod keys;
mod modular;
pub mod offline;
mod rsassa;
pub mod service;
mod settings;
pub mod shared_cache;
mod signature;
mod verified;
pub mod verify;

pub use alg::{JwsAlgorithm, PublicKey};
pub use bearer::{extract_bearer, BearerToken, Scheme, TokenLocation};
pub use cache::{CacheEntry, CacheHit, CacheKey, TokenCache, TokenStore};
pub use error::TokenError;
pub use host_crypto::HostAssistedVerifier;
pub use introspection::IntrospectionRequest;
pub use jose::TimeClaims;
pub use keys::{
    decode_shared_jwks, encode_shared_jwks, FetchReason, Jwk, JwksUpdate, KeySet, KeyStore,
    SkippedKey,
};
pub use service::{CallPurpose, OutboundCall, TokenService, TokenStep};
pub use settings::{
    load_issuer_secrets, validate_issuers, IntrospectionConfig, IssuerConfig, TokenSettings,
    TrustConfig,
};
pub use shared_cache::SharedTokenCache;
pub use signature::{RustCryptoVerifier, SignatureVerifier, VerifierError};
pub use verified::{TokenSource, VerifiedToken};
pub use verify::{Authenticated, KeyFetch, TokenVerifier};
