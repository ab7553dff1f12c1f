//! `upstream`: what the filter forwards to the FHIR server (the verified
//! facts as headers, which incoming headers it removes) and how it reaches it.

use crate::audit::Identity;
use crate::config_error::ConfigError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A verified fact the filter can forward to the upstream FHIR server.
/// Read from a string (not serde's enum form) so that, as a key of
/// `upstream.header_names`, an error names the key it is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum Fact {
    /// The launch patient id (`patient` claim, or from `fhirUser` when configured).
    Patient,
    /// The `fhirUser` claim.
    FhirUser,
    /// `client_id` (else `azp`).
    ClientId,
    /// The granted scopes, space-delimited.
    Scopes,
    /// The `sub` claim.
    Subject,
    /// The `iss` claim.
    Issuer,
    /// How the token is sender-constrained: `dpop`, `mtls` or `dpop+mtls`
    /// (absent for a bearer token).
    Binding,
    /// The thumbprint it is bound to (`cnf.jkt`, else `cnf.x5t#S256`).
    BindingThumbprint,
}

impl TryFrom<String> for Fact {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        Fact::from_name(&name).ok_or_else(|| {
            let known: Vec<String> = Fact::ALL
                .iter()
                .map(|f| format!("`{}`", f.as_str()))
                .collect();
            format!(
                "unknown variant `{name}`, expected one of {}",
                known.join(", ")
            )
        })
    }
}

impl Fact {
    pub const ALL: [Fact; 8] = [
        Fact::Patient,
        Fact::FhirUser,
        Fact::ClientId,
        Fact::Scopes,
        Fact::Subject,
        Fact::Issuer,
        Fact::Binding,
        Fact::BindingThumbprint,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Fact::Patient => "patient",
            Fact::FhirUser => "fhir_user",
            Fact::ClientId => "client_id",
            Fact::Scopes => "scopes",
            Fact::Subject => "subject",
            Fact::Issuer => "issuer",
            Fact::Binding => "binding",
            Fact::BindingThumbprint => "binding_thumbprint",
        }
    }

    fn from_name(name: &str) -> Option<Fact> {
        Fact::ALL.into_iter().find(|fact| fact.as_str() == name)
    }

    /// Header suffix after the prefix (`x-smart-` + `fhir-user`).
    fn header_suffix(self) -> &'static str {
        match self {
            Fact::Patient => "patient",
            Fact::FhirUser => "fhir-user",
            Fact::ClientId => "client-id",
            Fact::Scopes => "scope",
            Fact::Subject => "subject",
            Fact::Issuer => "issuer",
            Fact::Binding => "binding",
            Fact::BindingThumbprint => "binding-thumbprint",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// Remove the `Authorization` header before forwarding.
    pub strip_authorization: bool,
    /// Which verified facts to forward as request headers. Default: all
    /// (`patient`, `fhir_user`, `client_id`, `scopes`, `subject`, `issuer`,
    /// `binding`, `binding_thumbprint`); a fact the token lacks is not sent.
    /// Incoming copies of every fact header are always removed, forwarded or not.
    pub forward_headers: Vec<Fact>,
    /// Prefix of the fact headers. Default `x-smart-`.
    pub header_prefix: String,
    /// Per-fact header name overrides, e.g. `{"patient": "x-patient-id"}`.
    pub header_names: BTreeMap<Fact, String>,
    /// Envoy cluster of the FHIR server. Used when a decision carries response
    /// obligations: the filter fetches the response itself to check it before
    /// relaying it. Default `fhir`.
    pub cluster: String,
    /// Timeout of that fetch (milliseconds). Default 30000.
    pub timeout_ms: u64,
    /// More request headers to remove from every request, e.g. identity
    /// headers a legacy FHIR server trusts (`x-forwarded-user`). Every header
    /// starting with `header_prefix` is always removed.
    pub remove_headers: Vec<String>,
    /// Hold the request headers while the body a decision needs is buffered:
    /// `on_http_request_headers` pauses until the decision, so a denied
    /// request never reaches the upstream. Requires Envoy's wasm
    /// `PluginConfig.allow_on_headers_stop_iteration: true` (Envoy >= 1.35);
    /// without it a held request stalls until the stream timeout. Default
    /// `false`: headers are released once the token is verified.
    pub hold_headers_for_body: bool,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            strip_authorization: false,
            forward_headers: Fact::ALL.to_vec(),
            header_prefix: "x-smart-".into(),
            header_names: BTreeMap::new(),
            cluster: "fhir".into(),
            timeout_ms: 30_000,
            remove_headers: Vec::new(),
            hold_headers_for_body: false,
        }
    }
}

/// Headers the filter and Envoy need intact: never a fact header, never removed.
fn is_protocol_header(lower: &str) -> bool {
    matches!(
        lower,
        "authorization" | "host" | "content-length" | "content-type" | "transfer-encoding"
    )
}

fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
        })
}

impl UpstreamConfig {
    /// The verified facts as upstream request headers (`forward_headers`
    /// under their configured names), values reduced to printable ASCII.
    pub fn fact_headers(&self, id: &Identity) -> Vec<(String, String)> {
        self.forward_headers
            .iter()
            .filter_map(|fact| {
                let value = match fact {
                    Fact::Patient => id.patient.as_deref(),
                    Fact::FhirUser => id.fhir_user.as_deref(),
                    Fact::ClientId => id.client_id.as_deref(),
                    Fact::Scopes => id.scopes.as_deref(),
                    Fact::Subject => id.sub.as_deref(),
                    Fact::Issuer => id.iss.as_deref(),
                    Fact::Binding => id.binding,
                    Fact::BindingThumbprint => id.binding_thumbprint.as_deref(),
                }?;
                // Usually printable already: one copy, not a char-by-char rebuild.
                let clean: String = if value.bytes().all(|b| (b' '..=b'~').contains(&b)) {
                    value.to_string()
                } else {
                    value
                        .chars()
                        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
                        .collect()
                };
                Some((self.header_name(*fact), clean))
            })
            .collect()
    }

    /// The (lower-case) header name of a fact.
    pub fn header_name(&self, fact: Fact) -> String {
        match self.header_names.get(&fact) {
            Some(n) => n.to_ascii_lowercase(),
            None => format!("{}{}", self.header_prefix, fact.header_suffix()),
        }
    }

    /// `header_name(fact) == lower_name`, without allocating (runs for every
    /// incoming header).
    fn is_header_name_of(&self, fact: Fact, lower_name: &str) -> bool {
        match self.header_names.get(&fact) {
            Some(n) => {
                n.eq_ignore_ascii_case(lower_name)
                    && !lower_name.bytes().any(|b| b.is_ascii_uppercase())
            }
            None => lower_name
                .strip_prefix(self.header_prefix.as_str())
                .is_some_and(|rest| rest == fact.header_suffix()),
        }
    }

    /// All fact header names.
    pub fn all_header_names(&self) -> Vec<String> {
        Fact::ALL.iter().map(|f| self.header_name(*f)).collect()
    }

    /// Whether an incoming header (lower-case name) must be removed before
    /// anything else: a fact header, anything under `header_prefix`, or one
    /// of `remove_headers`.
    pub fn is_reserved(&self, lower_name: &str) -> bool {
        let prefixed = lower_name.starts_with(self.header_prefix.as_str());
        (prefixed && !self.header_prefix.is_empty())
            // A fact not renamed in `header_names` is `header_prefix` + its
            // suffix: only a prefixed name can be one (skips the lookups
            // for almost every header).
            || ((prefixed || !self.header_names.is_empty())
                && Fact::ALL
                    .iter()
                    .any(|f| self.is_header_name_of(*f, lower_name)))
            || self
                .remove_headers
                .iter()
                .any(|h| h.eq_ignore_ascii_case(lower_name))
    }

    pub fn validate(&self, field: &str) -> Result<(), ConfigError> {
        if self.cluster.trim().is_empty() {
            return Err(ConfigError::new(
                format!("{field}.cluster"),
                "must name the Envoy cluster of the FHIR server, e.g. \"fhir\"",
            ));
        }
        if self.timeout_ms == 0 {
            return Err(ConfigError::new(
                format!("{field}.timeout_ms"),
                "must be greater than 0 (default 30000)",
            ));
        }
        if !self.header_prefix.is_empty() && !is_header_name(&self.header_prefix) {
            return Err(ConfigError::new(
                format!("{field}.header_prefix"),
                "must be a lower-case header name prefix of [a-z0-9-_.], e.g. \"x-smart-\"",
            ));
        }
        for (fact, name) in &self.header_names {
            let lower = name.to_ascii_lowercase();
            if !is_header_name(&lower) {
                return Err(ConfigError::new(
                    format!("{field}.header_names.{}", fact.as_str()),
                    format!("{name:?} is not a valid header name (use [a-z0-9-_.])"),
                ));
            }
            if is_protocol_header(&lower) {
                return Err(ConfigError::new(
                    format!("{field}.header_names.{}", fact.as_str()),
                    format!("{name:?} is a protocol header; choose a dedicated name such as \"x-smart-{}\"", fact.header_suffix()),
                ));
            }
        }
        for (i, h) in self.remove_headers.iter().enumerate() {
            let lower = h.to_ascii_lowercase();
            if !is_header_name(&lower) || is_protocol_header(&lower) {
                return Err(ConfigError::new(
                    format!("{field}.remove_headers[{i}]"),
                    format!("{h:?} is not a removable header name (use [a-z0-9-_.]; protocol headers cannot be removed)"),
                ));
            }
        }
        let names = self.all_header_names();
        for (i, n) in names.iter().enumerate() {
            if names.iter().skip(i + 1).any(|m| m == n) {
                return Err(ConfigError::new(
                    format!("{field}.header_names"),
                    format!("two facts map to the same header {n:?}"),
                ));
            }
        }
        Ok(())
    }
}
