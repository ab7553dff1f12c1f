//! Configuration warnings: a configuration that is valid (the filter loads it)
//! but most likely not what the operator meant. Errors refuse the
//! configuration; warnings only inform (`check-config` exits 3 on them, 1
//! with `--strict`). The filter does not compute them: the code would cost
//! ~5 KB of the module's 1 MiB budget, and `check-config` is where they are read. Each names the dotted JSON
//! path, what is wrong and the fix, like a [`ConfigError`](super::ConfigError).

use super::Config;
use crate::policy::default_operations;
use serde::Serialize;
use std::fmt;

/// One warning about a valid configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigWarning {
    /// JSON path of the field, e.g. `issuers[0].jwks_uri`.
    pub field: String,
    /// What is most likely wrong.
    pub message: String,
    /// How to fix it (or to say it is meant).
    pub fix: String,
}

impl ConfigWarning {
    pub fn new(
        field: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        ConfigWarning {
            field: field.into(),
            message: message.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at `{}`: {}; {}", self.field, self.message, self.fix)
    }
}

/// Audiences identity providers put in tokens by default, which name the
/// provider's own API rather than this FHIR server: a token for any client
/// of the realm carries them.
const PROVIDER_DEFAULT_AUDIENCES: &[(&str, &str)] = &[
    (
        "account",
        "Keycloak's default audience (its account console), in every token of the realm",
    ),
    (
        "api://default",
        "the audience of Okta's default authorization server, shared by every API it serves",
    ),
];

/// The capabilities SMART App Launch 2.2 defines (§Conformance, Capabilities).
const SMART_CAPABILITIES: &[&str] = &[
    "authorize-post",
    "client-confidential-asymmetric",
    "client-confidential-symmetric",
    "client-public",
    "context-banner",
    "context-ehr-encounter",
    "context-ehr-patient",
    "context-passthrough-banner",
    "context-passthrough-style",
    "context-standalone-encounter",
    "context-standalone-patient",
    "context-style",
    "launch-ehr",
    "launch-standalone",
    "permission-offline",
    "permission-online",
    "permission-patient",
    "permission-user",
    "permission-v1",
    "permission-v2",
    "smart-app-state",
    "sso-openid-connect",
];

impl Config {
    /// Every warning about this (valid) configuration, in document order.
    pub fn warnings(&self) -> Vec<ConfigWarning> {
        let mut out = Vec::new();
        for field in &self.inline_secrets {
            out.push(ConfigWarning::new(
                field.clone(),
                "is a secret written in the configuration (allow_insecure_inline_secrets: true), which Envoy's /config_dump and the Istio WasmPlugin show",
                "give a reference such as {\"env\": \"NAME\"} instead (docs/secrets.md)",
            ));
        }
        self.issuer_warnings(&mut out);
        self.operations_warnings(&mut out);
        self.discovery_warnings(&mut out);
        out
    }

    fn issuer_warnings(&self, out: &mut Vec<ConfigWarning>) {
        for (i, issuer) in self.issuers.iter().enumerate() {
            let field = format!("issuers[{i}]");
            if let Some(uri) = &issuer.jwks_uri {
                if uri
                    .get(..7)
                    .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
                {
                    out.push(ConfigWarning::new(
                        format!("{field}.jwks_uri"),
                        "the signing keys are fetched over plain HTTP: anyone on the path can replace them and mint accepted tokens",
                        "use the https:// URL and give jwks_cluster a TLS transport_socket (docs/configuration.md, TLS to the identity provider)",
                    ));
                }
            }
            for (j, aud) in issuer.audiences.iter().enumerate() {
                if let Some((_, why)) = PROVIDER_DEFAULT_AUDIENCES.iter().find(|(a, _)| a == aud) {
                    out.push(ConfigWarning::new(
                        format!("{field}.audiences[{j}]"),
                        format!("{aud:?} is {why}: tokens meant for other services would be accepted here"),
                        "give this FHIR server its own audience (Keycloak: an audience mapper on the client scope; README, Configure for your identity provider) and list that",
                    ));
                }
            }
        }
    }

    /// `policy.operations` replaces the default table: name the default
    /// operations the replacement no longer permits.
    fn operations_warnings(&self, out: &mut Vec<ConfigWarning>) {
        let defaults = default_operations();
        for (i, name) in self.policy.operations_dropped.iter().enumerate() {
            let why = if !defaults.iter().any(|r| &r.name == name) {
                "is not an operation of the default table"
            } else if self.policy.operations.iter().any(|r| &r.name == name) {
                "has a row in `operations`: it is not dropped"
            } else {
                continue;
            };
            out.push(ConfigWarning::new(
                format!("policy.operations_dropped[{i}]"),
                format!("{name:?} {why}, so listing it silences nothing"),
                "list only default operations the `operations` table leaves out",
            ));
        }
        let mut dropped: Vec<String> = Vec::new();
        for rule in default_operations() {
            let kept = self.policy.operations.iter().any(|r| r.name == rule.name);
            let meant = self.policy.operations_dropped.contains(&rule.name);
            if !kept && !meant && !dropped.contains(&rule.name) {
                dropped.push(rule.name);
            }
        }
        if dropped.is_empty() {
            return;
        }
        out.push(ConfigWarning::new(
            "policy.operations",
            format!(
                "replaces the default operations table: {} are no longer permitted (403)",
                dropped.join(", ")
            ),
            "copy the default rows you still need into the table (`fhir-smart-authz check-config --print-effective` of `{}` prints them), or list the operations you mean to drop in policy.operations_dropped to silence this",
        ));
    }

    fn discovery_warnings(&self, out: &mut Vec<ConfigWarning>) {
        let Some(d) = &self.discovery else { return };
        for (i, c) in d.capabilities.iter().enumerate() {
            if !SMART_CAPABILITIES.contains(&c.as_str()) {
                out.push(ConfigWarning::new(
                    format!("discovery.capabilities[{i}]"),
                    format!("{c:?} is not a SMART App Launch 2.2 capability: clients will not recognise it"),
                    "check the spelling against SMART App Launch 2.2 §Conformance (e.g. \"launch-standalone\", \"permission-v2\")",
                ));
            }
        }
    }
}
