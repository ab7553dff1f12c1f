//! RFC 9728 protected-resource metadata of the FHIR endpoint: what a client
//! learns about this resource server (its authorization servers, scopes,
//! how tokens may be sent and bound). Built from the configuration, as the
//! SMART discovery document is; served by the filter with `discovery`, and
//! named in the `resource_metadata` parameter of its `401` challenges.

use super::Config;
use crate::token::binding::{CertificateBinding, DpopMode};
use serde_json::{json, Map, Value};

/// The well-known suffix (RFC 9728 §3).
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// `https://host/path` → (`https://host`, `/path`).
fn split_origin(url: &str) -> Option<(&str, &str)> {
    let after_scheme = url.find("://")? + 3;
    match url.get(after_scheme..)?.find('/') {
        Some(i) => Some(url.split_at(after_scheme + i)),
        None => Some((url, "")),
    }
}

impl Config {
    /// Whether the filter serves the metadata: `discovery` and `fhir_base_url` are set.
    fn serves_resource_metadata(&self) -> Option<&str> {
        self.discovery.as_ref()?;
        self.base.url.as_deref()
    }

    /// The metadata's URL (RFC 9728 §3.1: the well-known segment between the
    /// host and the resource's path), when the filter serves it.
    pub fn resource_metadata_url(&self) -> Option<String> {
        let (origin, path) = split_origin(self.serves_resource_metadata()?)?;
        Some(format!("{origin}{WELL_KNOWN}{path}"))
    }

    /// Whether a request path (without query) asks for the metadata: the
    /// RFC 9728 form (for the public URL's path and this listener's base
    /// path) or next to the SMART configuration (`[base]/.well-known/…`).
    pub fn is_resource_metadata_path(&self, path: &str) -> bool {
        let Some(url) = self.serves_resource_metadata() else {
            return false;
        };
        let base = self.base.path.as_str();
        // `<well-known><public path>`, `<well-known><base>` or
        // `<base><well-known>`, compared without building them, and the
        // public URL split only for a path under the well-known segment:
        // every request asks (docs/performance.md, "Issue 18").
        match path.strip_prefix(WELL_KNOWN) {
            Some(rest) => rest == base || rest == split_origin(url).map_or("", |(_, p)| p),
            None => path.strip_prefix(base) == Some(WELL_KNOWN),
        }
    }

    /// The metadata document (`None` unless the filter serves it).
    pub fn resource_metadata(&self) -> Option<Value> {
        let resource = self.serves_resource_metadata()?;
        let mut servers: Vec<&str> = Vec::new();
        for i in &self.issuers {
            if !servers.contains(&i.issuer.as_str()) {
                servers.push(&i.issuer);
            }
        }
        let mut bearer_methods = vec!["header"];
        if self.token.allow_query_parameter {
            bearer_methods.push("query");
        }
        let mut doc = Map::new();
        doc.insert("resource".into(), json!(resource));
        doc.insert("authorization_servers".into(), json!(servers));
        if let Some(scopes) = self
            .discovery
            .as_ref()
            .map(|d| &d.scopes_supported)
            .filter(|s| !s.is_empty())
        {
            doc.insert("scopes_supported".into(), json!(scopes));
        }
        doc.insert("bearer_methods_supported".into(), json!(bearer_methods));
        let algs = self.binding().dpop_algorithms();
        if !algs.is_empty() {
            doc.insert("dpop_signing_alg_values_supported".into(), json!(algs));
        }
        let all = |f: &dyn Fn(&crate::token::IssuerConfig) -> bool| {
            !self.issuers.is_empty() && self.issuers.iter().all(f)
        };
        doc.insert(
            "dpop_bound_access_tokens_required".into(),
            json!(all(&|i| i.dpop.mode == DpopMode::Required)),
        );
        doc.insert(
            "tls_client_certificate_bound_access_tokens".into(),
            json!(self
                .issuers
                .iter()
                .any(|i| i.certificate_binding != CertificateBinding::Off)),
        );
        Some(Value::Object(doc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: Value) -> Config {
        let mut j = json!({
            "fhir_base_url": "https://fhir.example.org/r4",
            "discovery": {"authorization_endpoint": "https://auth.example.org/authorize",
                          "token_endpoint": "https://auth.example.org/token",
                          "scopes_supported": ["patient/*.rs", "openid"]},
            "issuers": [
                {"issuer": "https://auth.example.org", "jwks_uri": "https://auth.example.org/jwks", "jwks_cluster": "idp",
                 "dpop": {"mode": "required", "algorithms": ["ES256", "PS256"]}},
            ],
        });
        for (k, v) in extra.as_object().unwrap() {
            j[k] = v.clone();
        }
        Config::from_json(j.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn document_and_url() {
        let c = config(json!({"fhir_base_path": "/fhir"}));
        assert_eq!(
            c.resource_metadata_url().as_deref(),
            Some("https://fhir.example.org/.well-known/oauth-protected-resource/r4")
        );
        assert_eq!(
            c.resource_metadata().unwrap(),
            json!({
                "resource": "https://fhir.example.org/r4",
                "authorization_servers": ["https://auth.example.org"],
                "scopes_supported": ["patient/*.rs", "openid"],
                "bearer_methods_supported": ["header"],
                "dpop_signing_alg_values_supported": ["ES256", "PS256"],
                "dpop_bound_access_tokens_required": true,
                "tls_client_certificate_bound_access_tokens": true,
            })
        );
        for (path, served) in [
            ("/.well-known/oauth-protected-resource/r4", true),
            ("/.well-known/oauth-protected-resource/fhir", true),
            ("/fhir/.well-known/oauth-protected-resource", true),
            ("/.well-known/oauth-protected-resource", false),
            ("/fhir/.well-known/smart-configuration", false),
        ] {
            assert_eq!(c.is_resource_metadata_path(path), served, "{path}");
        }
        let without =
            Config::from_json(br#"{"fhir_base_url": "https://fhir.example.org/r4"}"#).unwrap();
        assert_eq!(without.resource_metadata_url(), None);
        assert!(!without.is_resource_metadata_path("/.well-known/oauth-protected-resource/r4"));
    }
}
