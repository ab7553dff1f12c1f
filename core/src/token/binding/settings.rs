//! The sender-constraint settings: per issuer (`issuers[].dpop`,
//! `issuers[].certificate_binding`) and for the whole filter
//! (`sender_constraint`: the replay cache, nonces, where client certificates
//! come from, whether the `DPoP` header goes upstream).

use crate::config_error::ConfigError;
use crate::secret::{SecretLoader, SecretSetting};
use crate::token::alg::JwsAlgorithm;
use serde::Deserialize;

/// Whether an issuer's tokens may, or must, be DPoP-bound (RFC 9449).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DpopMode {
    /// The `DPoP` scheme is not accepted; a token that is DPoP-bound anyway
    /// (`cnf.jkt`) is refused, never used as a bearer token. The default.
    #[default]
    Off,
    /// DPoP-bound tokens are accepted with their proof; unbound tokens as
    /// bearer tokens.
    Accepted,
    /// Every token of the issuer must be DPoP-bound.
    Required,
}

/// Whether an issuer's tokens may, or must, be certificate-bound (RFC 8705 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateBinding {
    /// A certificate-bound token (`cnf.x5t#S256`) is refused.
    Off,
    /// A certificate-bound token must come over a connection with that
    /// client certificate; unbound tokens are accepted. The default.
    #[default]
    WhenBound,
    /// Every token of the issuer must be certificate-bound.
    Required,
}

/// `issuers[].dpop`: how the issuer's DPoP proofs are checked.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DpopConfig {
    pub mode: DpopMode,
    /// Accepted proof algorithms. Default: every supported asymmetric one
    /// (`none` and HMAC can never be named).
    pub algorithms: Vec<String>,
    /// How old a proof may be (its `iat`, seconds). Default 60.
    pub max_age_seconds: u64,
    /// How far in the future a proof's `iat` may be (clock skew, seconds).
    /// Default 5.
    pub clock_skew_seconds: u64,
    /// Require server nonces (RFC 9449 §8; needs `sender_constraint.nonce_secret`).
    pub nonce: bool,
}

impl Default for DpopConfig {
    fn default() -> Self {
        DpopConfig {
            mode: DpopMode::Off,
            algorithms: Vec::new(),
            max_age_seconds: 60,
            clock_skew_seconds: 5,
            nonce: false,
        }
    }
}

impl DpopConfig {
    /// The accepted proof algorithms (validated names; default all supported).
    pub fn effective_algorithms(&self) -> Vec<JwsAlgorithm> {
        crate::token::alg::configured_algorithms(&self.algorithms)
    }

    /// How long a proof's `jti` must be remembered after its `iat`: past
    /// that the proof is too old anyway.
    pub fn replay_window_seconds(&self) -> u64 {
        self.max_age_seconds.saturating_add(1)
    }

    pub fn validate(&self, field: &str) -> Result<(), ConfigError> {
        for (pos, name) in self.algorithms.iter().enumerate() {
            if JwsAlgorithm::from_name(name).is_none() {
                return Err(ConfigError::new(
                    format!("{field}.algorithms[{pos}]"),
                    format!(
                        "{name:?} is not an accepted proof algorithm (never `none` or HMAC); supported: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA"
                    ),
                ));
            }
        }
        if self.max_age_seconds == 0 || self.max_age_seconds > 600 {
            return Err(ConfigError::new(
                format!("{field}.max_age_seconds"),
                "must be between 1 and 600 (default 60): proofs are fresh per request, and their `jti`s are remembered this long",
            ));
        }
        if self.clock_skew_seconds > 300 {
            return Err(ConfigError::new(
                format!("{field}.clock_skew_seconds"),
                "must be at most 300 (default 5)",
            ));
        }
        Ok(())
    }
}

/// Where the client certificate of a request comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateSource {
    /// The TLS connection Envoy terminated (its peer certificate digest).
    #[default]
    Connection,
    /// `X-Forwarded-Client-Cert` (`Hash=`) set by a trusted hop in front.
    XForwardedClientCert,
    /// RFC 9440 `Client-Cert` set by a trusted hop in front.
    ClientCert,
}

impl CertificateSource {
    /// The request header it is read from, if any.
    pub fn header(self) -> Option<&'static str> {
        match self {
            CertificateSource::Connection => None,
            CertificateSource::XForwardedClientCert => Some("x-forwarded-client-cert"),
            CertificateSource::ClientCert => Some("client-cert"),
        }
    }
}

/// `sender_constraint`: settings shared by every issuer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SenderConstraintConfig {
    /// Most DPoP proof `jti`s remembered across all workers (shared data).
    /// Default 65536; when full of unexpired entries, proofs are refused
    /// (503 `replay_cache_unavailable`), never accepted unchecked.
    pub replay_cache_entries: usize,
    /// Forward the `DPoP` header to the FHIR server. Default false.
    pub forward_dpop_header: bool,
    /// The key of server nonces (RFC 9449 §8), at least 32 bytes: a secret
    /// reference (`{"env": "NAME"}`, `{"file": "/path"}`; see
    /// [`crate::secret`]). Required when an issuer sets `dpop.nonce`.
    pub nonce_secret: SecretSetting,
    /// Earlier nonce keys still accepted (key rotation), as references.
    pub nonce_previous_secrets: Vec<SecretSetting>,
    /// How long a nonce is current (seconds); the one before it is still
    /// accepted. Default 300.
    pub nonce_lifetime_seconds: u64,
    /// Where client certificates come from. Default `connection`.
    pub certificate_source: CertificateSource,
    /// The addresses (IP, or CIDR) of the hops allowed to set the
    /// certificate header (with a header `certificate_source`). The header
    /// from anyone else is ignored and removed before the request goes
    /// upstream.
    pub trusted_hops: Vec<String>,
}

impl Default for SenderConstraintConfig {
    fn default() -> Self {
        SenderConstraintConfig {
            replay_cache_entries: 65536,
            forward_dpop_header: false,
            nonce_secret: SecretSetting::default(),
            nonce_previous_secrets: Vec::new(),
            nonce_lifetime_seconds: 300,
            certificate_source: CertificateSource::Connection,
            trusted_hops: Vec::new(),
        }
    }
}

/// Fewest bytes of a nonce key.
pub const MIN_NONCE_SECRET_BYTES: usize = 32;

impl SenderConstraintConfig {
    pub fn validate(&self, field: &str) -> Result<(), ConfigError> {
        if !(64..=1 << 20).contains(&self.replay_cache_entries) {
            return Err(ConfigError::new(
                format!("{field}.replay_cache_entries"),
                "must be between 64 and 1048576 (default 65536): peak DPoP requests per second × (dpop.max_age_seconds + 1), with room to spare",
            ));
        }
        if !(10..=86_400).contains(&self.nonce_lifetime_seconds) {
            return Err(ConfigError::new(
                format!("{field}.nonce_lifetime_seconds"),
                "must be between 10 and 86400 (default 300)",
            ));
        }
        for (i, hop) in self.trusted_hops.iter().enumerate() {
            if super::certificate::AddressRange::parse(hop).is_none() {
                return Err(ConfigError::new(
                    format!("{field}.trusted_hops[{i}]"),
                    format!(
                        "{hop:?} is not an IP address or CIDR range (e.g. \"10.0.0.0/8\", \"::1\")"
                    ),
                ));
            }
        }
        if self.certificate_source.header().is_some() && self.trusted_hops.is_empty() {
            return Err(ConfigError::new(
                format!("{field}.trusted_hops"),
                "must name the hops allowed to set the certificate header (certificate_source is a header): anyone else could claim any certificate",
            ));
        }
        Ok(())
    }

    /// Look the nonce keys up (after [`Self::validate`]); each must be at
    /// least [`MIN_NONCE_SECRET_BYTES`] long.
    pub fn load_secrets(
        &mut self,
        field: &str,
        secrets: &mut SecretLoader<'_>,
    ) -> Result<(), ConfigError> {
        let named = std::iter::once(("nonce_secret".to_string(), &mut self.nonce_secret)).chain(
            self.nonce_previous_secrets
                .iter_mut()
                .enumerate()
                .map(|(i, s)| (format!("nonce_previous_secrets[{i}]"), s)),
        );
        for (name, setting) in named {
            let path = format!("{field}.{name}");
            setting.load(&path, secrets)?;
            if setting.is_set()
                && setting.value().map_or(0, |v| v.expose().len()) < MIN_NONCE_SECRET_BYTES
            {
                return Err(ConfigError::new(
                    path,
                    format!("must be at least {MIN_NONCE_SECRET_BYTES} bytes of random (e.g. `openssl rand -hex 32`)"),
                ));
            }
        }
        Ok(())
    }
}
