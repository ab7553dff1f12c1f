//! Configuration of the proxy-wasm shell: upstream headers, deny responses,
//! the discovery document, the audit record and metrics. Pure data + validation.

use super::ConfigError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A verified fact the filter can forward to the upstream FHIR server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
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
}

impl Fact {
    pub const ALL: [Fact; 6] = [
        Fact::Patient,
        Fact::FhirUser,
        Fact::ClientId,
        Fact::Scopes,
        Fact::Subject,
        Fact::Issuer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Fact::Patient => "patient",
            Fact::FhirUser => "fhir_user",
            Fact::ClientId => "client_id",
            Fact::Scopes => "scopes",
            Fact::Subject => "subject",
            Fact::Issuer => "issuer",
        }
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
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// Remove the `Authorization` header before forwarding.
    pub strip_authorization: bool,
    /// Which verified facts to forward as request headers. Default: all six
    /// (`patient`, `fhir_user`, `client_id`, `scopes`, `subject`, `issuer`).
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

fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
        })
}

impl UpstreamConfig {
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
        (!self.header_prefix.is_empty() && lower_name.starts_with(&self.header_prefix))
            || Fact::ALL
                .iter()
                .any(|f| self.is_header_name_of(*f, lower_name))
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
            if matches!(
                lower.as_str(),
                "authorization" | "host" | "content-length" | "content-type" | "transfer-encoding"
            ) {
                return Err(ConfigError::new(
                    format!("{field}.header_names.{}", fact.as_str()),
                    format!("{name:?} is a protocol header; choose a dedicated name such as \"x-smart-{}\"", fact.header_suffix()),
                ));
            }
        }
        for (i, h) in self.remove_headers.iter().enumerate() {
            let lower = h.to_ascii_lowercase();
            if !is_header_name(&lower)
                || matches!(
                    lower.as_str(),
                    "authorization"
                        | "host"
                        | "content-length"
                        | "content-type"
                        | "transfer-encoding"
                )
            {
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponsesConfig {
    /// `realm` in `WWW-Authenticate`.
    pub realm: String,
    /// Status that replaces a response which fails an obligation check
    /// (patient compartment / granular scope): 403 (default) or 404 (hide existence).
    pub obligation_denied_status: u16,
}

impl Default for ResponsesConfig {
    fn default() -> Self {
        ResponsesConfig {
            realm: "fhir".into(),
            obligation_denied_status: 403,
        }
    }
}

impl ResponsesConfig {
    pub fn validate(&self, field: &str) -> Result<(), ConfigError> {
        if self.realm.chars().any(|c| c.is_control()) {
            return Err(ConfigError::new(
                format!("{field}.realm"),
                "must not contain control characters",
            ));
        }
        if !matches!(self.obligation_denied_status, 403 | 404) {
            return Err(ConfigError::new(
                format!("{field}.obligation_denied_status"),
                format!("must be 403 or 404 (got {})", self.obligation_denied_status),
            ));
        }
        Ok(())
    }
}

/// The SMART discovery document served at `[base]/.well-known/smart-configuration`
/// (SMART App Launch 2.2 §Conformance). Present = the filter answers it itself.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoveryConfig {
    /// `issuer`: required when `sso-openid-connect` is among the capabilities.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Required (absolute URL).
    pub authorization_endpoint: String,
    /// Required (absolute URL).
    pub token_endpoint: String,
    /// Default `["authorization_code"]`.
    pub grant_types_supported: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub management_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub response_types_supported: Vec<String>,
    /// SMART capabilities, e.g. `launch-standalone`, `permission-v2`.
    pub capabilities: Vec<String>,
    /// Always `["S256"]` unless overridden (`plain` is refused).
    pub code_challenge_methods_supported: Vec<String>,
}

fn is_abs_url(u: &str) -> bool {
    (u.starts_with("https://") || u.starts_with("http://"))
        && u.len() > "https://".len()
        && !u.contains(char::is_whitespace)
}

impl DiscoveryConfig {
    pub fn validate(&self, field: &str) -> Result<(), ConfigError> {
        for (name, value) in [
            ("authorization_endpoint", Some(&self.authorization_endpoint)),
            ("token_endpoint", Some(&self.token_endpoint)),
            ("issuer", self.issuer.as_ref()),
            ("jwks_uri", self.jwks_uri.as_ref()),
            ("registration_endpoint", self.registration_endpoint.as_ref()),
            (
                "introspection_endpoint",
                self.introspection_endpoint.as_ref(),
            ),
            ("revocation_endpoint", self.revocation_endpoint.as_ref()),
            ("management_endpoint", self.management_endpoint.as_ref()),
        ] {
            if let Some(v) = value {
                if !is_abs_url(v) {
                    return Err(ConfigError::new(
                        format!("{field}.{name}"),
                        format!("must be an absolute http(s) URL such as \"https://auth.example.org/{name}\" (got {v:?})"),
                    ));
                }
            }
        }
        if self
            .code_challenge_methods_supported
            .iter()
            .any(|m| m == "plain")
        {
            return Err(ConfigError::new(
                format!("{field}.code_challenge_methods_supported"),
                "SMART App Launch 2.2 forbids `plain`; use [\"S256\"]",
            ));
        }
        if self.capabilities.iter().any(|c| c == "sso-openid-connect") && self.issuer.is_none() {
            return Err(ConfigError::new(
                format!("{field}.issuer"),
                "is required when capabilities include `sso-openid-connect`",
            ));
        }
        Ok(())
    }

    /// The JSON document served to clients.
    pub fn document(&self) -> serde_json::Value {
        let mut d = self.clone();
        if d.code_challenge_methods_supported.is_empty() {
            d.code_challenge_methods_supported = vec!["S256".into()];
        }
        if d.grant_types_supported.is_empty() {
            d.grant_types_supported = vec!["authorization_code".into()];
        }
        serde_json::to_value(&d).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Write the audit record into filter state (access log). Default true.
    pub enabled: bool,
    /// `source` of the record: the name of this gateway. Default `fhir-smart-authz`.
    pub source: String,
    /// How the record is stored in filter state: `"struct"` (default; a
    /// `google.protobuf.Struct`, rendered by `:TYPED` as a nested object) or
    /// `"json"` (JSON text, rendered by `:PLAIN` as a string; cheaper).
    pub encoding: String,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            enabled: true,
            source: "fhir-smart-authz".into(),
            encoding: AUDIT_ENCODINGS[0].into(),
        }
    }
}

/// Allowed values of `audit.encoding`; the first is the default.
pub const AUDIT_ENCODINGS: [&str; 2] = ["struct", "json"];

impl AuditConfig {
    pub fn validate(&self, field: &str) -> Result<(), ConfigError> {
        if self.source.trim().is_empty() {
            return Err(ConfigError::new(
                format!("{field}.source"),
                "must name this gateway, e.g. \"fhir-gw-eu1\"",
            ));
        }
        if !AUDIT_ENCODINGS.contains(&self.encoding.as_str()) {
            return Err(ConfigError::new(
                format!("{field}.encoding"),
                format!(
                    "must be \"struct\" (nested object, access log `:TYPED`) or \"json\" (JSON text, access log `:PLAIN`) (got {:?})",
                    self.encoding
                ),
            ));
        }
        Ok(())
    }

    /// `true` when the record is written as JSON text (`"encoding": "json"`).
    pub fn json_text(&self) -> bool {
        self.encoding == "json"
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Prefix of every metric. Default `fhir_smart_authz`.
    pub prefix: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            prefix: "fhir_smart_authz".into(),
        }
    }
}

impl MetricsConfig {
    pub fn validate(&self, field: &str) -> Result<(), ConfigError> {
        let ok = !self.prefix.is_empty()
            && self
                .prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
            && !self.prefix.starts_with('.')
            && !self.prefix.ends_with('.');
        if !ok {
            return Err(ConfigError::new(
                format!("{field}.prefix"),
                format!("must be [A-Za-z0-9_.] without leading/trailing `.`, e.g. \"fhir_smart_authz\" (got {:?})", self.prefix),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn shell_defaults() {
        let c = Config::default_config().unwrap();
        assert_eq!(
            c.upstream.header_name(super::Fact::FhirUser),
            "x-smart-fhir-user"
        );
        assert_eq!(c.upstream.forward_headers.len(), 6);
        assert_eq!(c.responses.obligation_denied_status, 403);
        assert_eq!(c.metrics.prefix, "fhir_smart_authz");
        assert_eq!(c.audit.source, "fhir-smart-authz");
        assert!(!c.upstream.hold_headers_for_body);
        let held = Config::from_json(br#"{"upstream":{"hold_headers_for_body":true}}"#).unwrap();
        assert!(held.upstream.hold_headers_for_body);
    }

    #[test]
    fn audit_encoding_parses_and_validates() {
        for (json, encoding, json_text) in [
            (r#"{}"#, "struct", false),
            (r#"{"audit":{"encoding":"struct"}}"#, "struct", false),
            (r#"{"audit":{"encoding":"json"}}"#, "json", true),
        ] {
            let c = Config::from_json(json.as_bytes()).unwrap();
            assert_eq!(c.audit.encoding, encoding, "{json}");
            assert_eq!(c.audit.json_text(), json_text, "{json}");
        }
        let e = Config::from_json(br#"{"audit":{"encoding":"text"}}"#).unwrap_err();
        assert_eq!(e.field, "audit.encoding");
        assert!(e.message.contains("\"struct\""), "{e}");
        assert!(e.message.contains("\"json\""), "{e}");
        assert!(e.message.contains("\"text\""), "{e}");
    }

    #[test]
    fn shell_errors_name_the_field() {
        for (json, field) in [
            (
                r#"{"responses":{"obligation_denied_status":500}}"#,
                "responses.obligation_denied_status",
            ),
            (r#"{"metrics":{"prefix":"a b"}}"#, "metrics.prefix"),
            (
                r#"{"upstream":{"header_names":{"patient":"Authorization"}}}"#,
                "upstream.header_names.patient",
            ),
            (
                r#"{"upstream":{"header_names":{"patient":"x-smart-subject"}}}"#,
                "upstream.header_names",
            ),
            (
                r#"{"discovery":{"authorization_endpoint":"/auth","token_endpoint":"https://a/t"}}"#,
                "discovery.authorization_endpoint",
            ),
            (
                r#"{"discovery":{"authorization_endpoint":"https://a/a","token_endpoint":"https://a/t","code_challenge_methods_supported":["plain"]}}"#,
                "discovery.code_challenge_methods_supported",
            ),
            (r#"{"audit":{"source":" "}}"#, "audit.source"),
            (r#"{"audit":{"encoding":"JSON"}}"#, "audit.encoding"),
            (r#"{"audit":{"encoding":""}}"#, "audit.encoding"),
            (
                r#"{"upstream":{"remove_headers":["Host"]}}"#,
                "upstream.remove_headers[0]",
            ),
            (r#"{"upstream":{"cluster":""}}"#, "upstream.cluster"),
        ] {
            let e = Config::from_json(json.as_bytes()).unwrap_err();
            assert_eq!(e.field, field, "{json}: {e}");
        }
    }

    #[test]
    fn discovery_document_defaults() {
        let c = Config::from_json(
            br#"{"discovery":{"authorization_endpoint":"https://a/authorize","token_endpoint":"https://a/token","capabilities":["launch-standalone"]}}"#,
        )
        .unwrap();
        let d = c.discovery.unwrap().document();
        assert_eq!(
            d,
            serde_json::json!({
                "authorization_endpoint": "https://a/authorize",
                "token_endpoint": "https://a/token",
                "grant_types_supported": ["authorization_code"],
                "capabilities": ["launch-standalone"],
                "code_challenge_methods_supported": ["S256"]
            })
        );
    }
}
