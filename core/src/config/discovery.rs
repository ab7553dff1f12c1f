//! `discovery`: the SMART configuration document the filter serves itself.

use crate::config_error::ConfigError;
use crate::fhir::r4;
use crate::scope::{parse_scope, Scope};
use crate::url::HttpUrl;
use serde::{Deserialize, Serialize};

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

/// Why a granular scope's parameter is not an R4 search parameter of its
/// type (the filter would never narrow a search with it, and a server might
/// ignore it), if so. Other scope strings are not judged here.
fn unknown_granular_parameter(scope: &str) -> Option<String> {
    let Ok(Scope::Resource(r)) = parse_scope(scope) else {
        return None;
    };
    let q = r.query.iter().find(|q| match &r.resource_type {
        Some(t) => r4::search_param(t, &q.name).is_none(),
        None => r4::common_param(&q.name).is_none(),
    })?;
    Some(format!(
        "`{}` is not an R4 search parameter of {}: a granular scope restricts a search parameter (e.g. patient/Observation.rs?category=...)",
        q.name,
        r.resource_type.as_deref().unwrap_or("every type")
    ))
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
                if HttpUrl::parse(v).is_none() {
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
        for (i, scope) in self.scopes_supported.iter().enumerate() {
            if let Some(why) = unknown_granular_parameter(scope) {
                return Err(ConfigError::new(
                    format!("{field}.scopes_supported[{i}]"),
                    why,
                ));
            }
        }
        self.consistent(field)?;
        if self.capabilities.iter().any(|c| c == "sso-openid-connect") && self.issuer.is_none() {
            return Err(ConfigError::new(
                format!("{field}.issuer"),
                "is required when capabilities include `sso-openid-connect`",
            ));
        }
        Ok(())
    }

    /// `grant_types_supported` as published (default `authorization_code`).
    fn grants(&self) -> Vec<String> {
        if self.grant_types_supported.is_empty() {
            vec!["authorization_code".into()]
        } else {
            self.grant_types_supported.clone()
        }
    }

    /// The document does not contradict itself: scopes and capabilities
    /// need the grant that issues them (`system/` scopes: the
    /// `client_credentials` grant of SMART Backend Services; `patient/`,
    /// `user/`, launch and OpenID scopes, `launch-*` capabilities: the
    /// `authorization_code` grant), and with that grant the response type
    /// `code` is published.
    fn consistent(&self, field: &str) -> Result<(), ConfigError> {
        let grants = self.grants();
        let has = |g: &str| grants.iter().any(|x| x == g);
        let needs = |s: &str| {
            if s.starts_with("system/") {
                Some("client_credentials")
            } else if ["patient/", "user/", "launch"]
                .iter()
                .any(|p| s.starts_with(p))
                || matches!(
                    s,
                    "openid" | "fhirUser" | "profile" | "offline_access" | "online_access"
                )
            {
                Some("authorization_code")
            } else {
                None
            }
        };
        for s in self.scopes_supported.iter().chain(&self.capabilities) {
            if let Some(grant) = needs(s).filter(|g| !has(g)) {
                return Err(ConfigError::new(
                    format!("{field}.grant_types_supported"),
                    format!("`{s}` (scopes_supported, capabilities) needs the `{grant}` grant: add it, or remove `{s}`"),
                ));
            }
        }
        let code = self.response_types_supported.iter().any(|r| r == "code");
        if has("authorization_code") && !self.response_types_supported.is_empty() && !code {
            return Err(ConfigError::new(
                format!("{field}.response_types_supported"),
                "the authorization_code grant answers the response type `code`: include \"code\" (or leave the list out: it defaults to [\"code\"])",
            ));
        }
        Ok(())
    }

    /// The JSON document served to clients (SMART App Launch 2.2
    /// §Conformance): `code_challenge_methods_supported` defaults to `S256`,
    /// `grant_types_supported` to `authorization_code`, and with that grant
    /// `response_types_supported` to `code`.
    pub fn document(&self) -> serde_json::Value {
        let mut d = self.clone();
        if d.code_challenge_methods_supported.is_empty() {
            d.code_challenge_methods_supported = vec!["S256".into()];
        }
        d.grant_types_supported = self.grants();
        if d.response_types_supported.is_empty()
            && d.grant_types_supported
                .iter()
                .any(|g| g == "authorization_code")
        {
            d.response_types_supported = vec!["code".into()];
        }
        serde_json::to_value(&d).unwrap_or(serde_json::Value::Null)
    }
}
