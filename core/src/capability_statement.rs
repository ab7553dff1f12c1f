//! The SMART security section of the FHIR server's CapabilityStatement: what
//! the filter writes into the JSON answer to `GET [base]/metadata` when
//! `discovery` is configured, so that clients which read `/metadata` (rather
//! than `.well-known/smart-configuration`) find the authorization server.
//!
//! Shape (SMART App Launch 2.2, "Conformance"; FHIR R4
//! `CapabilityStatement.rest.security`): `service` carries the coding
//! `restful-security-service#SMART-on-FHIR`, and the `oauth-uris` extension
//! carries `authorize`, `token` and, where configured, `register`, `manage`,
//! `introspect`, `revoke` as `valueUri` sub-extensions. The gateway owns
//! authorization, so an existing `security` of a server `rest` entry is
//! replaced, never merged.

use crate::config::{Config, DiscoveryConfig};
use crate::decision::Decision;
use crate::fhir::InteractionKind;
use crate::json::from_slice_strict;
use serde_json::{Map, Value};

/// `CapabilityStatement.rest.security.service` code system.
pub const SECURITY_SERVICE_SYSTEM: &str =
    "http://terminology.hl7.org/CodeSystem/restful-security-service";
/// The SMART code in [`SECURITY_SERVICE_SYSTEM`].
pub const SMART_ON_FHIR: &str = "SMART-on-FHIR";
/// The SMART extension listing the OAuth endpoints.
pub const OAUTH_URIS: &str =
    "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris";

/// Why an answer is passed on as the server wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unchanged {
    /// Not a JSON object (or one with a repeated key).
    NotJson,
    /// JSON, but not a `CapabilityStatement` (e.g. `TerminologyCapabilities`
    /// for `mode=terminology`, or an OperationOutcome).
    NotCapabilityStatement,
    /// No `rest` entry in server mode (e.g. `_elements` left it out).
    NoServerRest,
}

impl Unchanged {
    pub fn as_str(&self) -> &'static str {
        match self {
            Unchanged::NotJson => "not a JSON object",
            Unchanged::NotCapabilityStatement => "not a CapabilityStatement",
            Unchanged::NoServerRest => "no rest entry in server mode",
        }
    }
}

/// Whether a `Content-Type` names FHIR JSON (`application/fhir+json`,
/// `application/json`, the DSTU2 `application/json+fhir`), any parameters.
pub fn is_json_content_type(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or("").trim();
    [
        "application/fhir+json",
        "application/json",
        "application/json+fhir",
    ]
    .iter()
    .any(|m| media.eq_ignore_ascii_case(m))
}

/// Whether the answer to the request of decision `d` (`method`) gets the
/// SMART section: an allowed `GET [base]/metadata` with `discovery`.
pub fn rewrites_answer(config: &Config, d: &Decision, method: &str) -> bool {
    let capabilities = d
        .interaction
        .as_ref()
        .is_some_and(|it| it.kind == InteractionKind::Capabilities);
    config.discovery.is_some() && d.is_allow() && capabilities && method == "GET"
}

/// What the answer's headers make of the rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewriteGate {
    /// Not a `200`: passes as it is, silently.
    Pass,
    /// Passes unmodified, counted and logged, why.
    Unmodified(&'static str),
    /// A JSON `200` without an encoding: buffer the body and rewrite it.
    Buffer,
}

/// The gate of an answer with these headers.
pub fn rewrite_gate(headers: &[(String, String)]) -> RewriteGate {
    let value = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    if value(":status") != Some("200") {
        RewriteGate::Pass
    } else if !value("content-type").is_some_and(is_json_content_type) {
        RewriteGate::Unmodified("not JSON (XML is passed as the server wrote it)")
    } else if value("content-encoding").is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity"))
    {
        RewriteGate::Unmodified("the server sent it encoded despite Accept-Encoding: identity")
    } else {
        RewriteGate::Buffer
    }
}

/// The `rest.security` element for this discovery configuration.
pub fn smart_security(discovery: &DiscoveryConfig) -> Value {
    let endpoints = [
        ("authorize", Some(&discovery.authorization_endpoint)),
        ("token", Some(&discovery.token_endpoint)),
        ("register", discovery.registration_endpoint.as_ref()),
        ("manage", discovery.management_endpoint.as_ref()),
        ("introspect", discovery.introspection_endpoint.as_ref()),
        ("revoke", discovery.revocation_endpoint.as_ref()),
    ];
    let uris = endpoints
        .iter()
        .filter_map(|(name, url)| {
            url.map(|u| object([("url", (*name).into()), ("valueUri", u.as_str().into())]))
        })
        .collect();
    let coding = object([
        ("system", SECURITY_SERVICE_SYSTEM.into()),
        ("code", SMART_ON_FHIR.into()),
    ]);
    let service = object([
        ("coding", Value::Array(vec![coding])),
        (
            "text",
            "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)".into(),
        ),
    ]);
    let oauth_uris = object([
        ("url", OAUTH_URIS.into()),
        ("extension", Value::Array(uris)),
    ]);
    object([
        ("service", Value::Array(vec![service])),
        ("extension", Value::Array(vec![oauth_uris])),
    ])
}

/// A JSON object from its members (built by hand: cheaper in the .wasm than `json!`).
fn object<const N: usize>(members: [(&str, Value); N]) -> Value {
    let mut map = Map::new();
    for (k, v) in members {
        map.insert(k.to_string(), v);
    }
    Value::Object(map)
}

/// The CapabilityStatement `body` with the SMART security section on every
/// `rest` entry in server mode (an entry without `mode` counts as one),
/// re-serialized compactly with `resourceType` first.
pub fn with_smart_security(body: &[u8], discovery: &DiscoveryConfig) -> Result<Vec<u8>, Unchanged> {
    let Ok(Value::Object(mut statement)) = from_slice_strict(body) else {
        return Err(Unchanged::NotJson);
    };
    if statement.remove("resourceType") != Some(Value::from("CapabilityStatement")) {
        return Err(Unchanged::NotCapabilityStatement);
    }
    let security = smart_security(discovery);
    let mut changed = false;
    if let Some(Value::Array(rest)) = statement.get_mut("rest") {
        for entry in rest.iter_mut().filter_map(Value::as_object_mut) {
            let server = entry
                .get("mode")
                .map_or(true, |m| m.as_str() == Some("server"));
            if server {
                entry.insert("security".into(), security.clone());
                changed = true;
            }
        }
    }
    if !changed {
        return Err(Unchanged::NoServerRest);
    }
    Ok(resource_json("CapabilityStatement", statement))
}

/// A resource as compact JSON with `resourceType` first (the order FHIR's
/// examples and many parsers expect; the rest as serde_json orders it).
fn resource_json(resource_type: &str, members: Map<String, Value>) -> Vec<u8> {
    let rest = Value::Object(members).to_string();
    let mut out = format!("{{\"resourceType\":{}", Value::from(resource_type));
    match rest.get(1..) {
        Some(tail) if tail != "}" => {
            out.push(',');
            out.push_str(tail);
        }
        _ => out.push('}'),
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use serde_json::json;

    fn discovery(all: bool) -> DiscoveryConfig {
        let mut d = DiscoveryConfig {
            authorization_endpoint: "https://as.example/authorize".into(),
            token_endpoint: "https://as.example/token".into(),
            ..DiscoveryConfig::default()
        };
        if all {
            d.registration_endpoint = Some("https://as.example/register".into());
            d.management_endpoint = Some("https://as.example/manage".into());
            d.introspection_endpoint = Some("https://as.example/introspect".into());
            d.revocation_endpoint = Some("https://as.example/revoke".into());
        }
        d
    }

    fn rewrite(body: Value, all: bool) -> Result<Value, Unchanged> {
        with_smart_security(body.to_string().as_bytes(), &discovery(all))
            .map(|b| serde_json::from_slice(&b).unwrap())
    }

    fn oauth_uris(security: &Value) -> Vec<(String, String)> {
        security["extension"][0]["extension"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["url"].as_str().unwrap().to_string(),
                    e["valueUri"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn adds_service_and_oauth_uris_to_the_server_rest_entry() {
        let out = rewrite(
            json!({"resourceType": "CapabilityStatement", "status": "active", "kind": "instance",
                   "fhirVersion": "4.0.1", "rest": [{"mode": "server", "resource": [{"type": "Patient"}]}]}),
            false,
        )
        .unwrap();
        let security = &out["rest"][0]["security"];
        assert_eq!(
            security["service"][0]["coding"][0],
            json!({"system": SECURITY_SERVICE_SYSTEM, "code": "SMART-on-FHIR"})
        );
        assert_eq!(security["extension"][0]["url"], OAUTH_URIS);
        assert_eq!(
            oauth_uris(security),
            vec![
                ("authorize".into(), "https://as.example/authorize".into()),
                ("token".into(), "https://as.example/token".into())
            ]
        );
        // everything else is kept
        assert_eq!(out["rest"][0]["resource"][0]["type"], "Patient");
        assert_eq!(out["fhirVersion"], "4.0.1");
    }

    #[test]
    fn lists_every_configured_endpoint_in_spec_order() {
        let out = rewrite(
            json!({"resourceType": "CapabilityStatement", "rest": [{"mode": "server"}]}),
            true,
        )
        .unwrap();
        let names: Vec<String> = oauth_uris(&out["rest"][0]["security"])
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            names,
            [
                "authorize",
                "token",
                "register",
                "manage",
                "introspect",
                "revoke"
            ]
        );
    }

    #[test]
    fn replaces_an_existing_security_section() {
        let out = rewrite(
            json!({"resourceType": "CapabilityStatement", "rest": [{"mode": "server", "security": {
                "cors": true, "service": [{"coding": [{"code": "SMART-on-FHIR"}]}, {"text": "Basic"}],
                "extension": [{"url": OAUTH_URIS, "extension": [{"url": "authorize", "valueUri": "https://old/authorize"}]}]}}]}),
            false,
        )
        .unwrap();
        let security = &out["rest"][0]["security"];
        assert_eq!(security.as_object().unwrap().len(), 2, "{security}");
        assert_eq!(security["service"].as_array().unwrap().len(), 1);
        assert_eq!(security["extension"].as_array().unwrap().len(), 1);
        assert_eq!(oauth_uris(security)[0].1, "https://as.example/authorize");
    }

    #[test]
    fn client_mode_entries_are_left_alone() {
        let out = rewrite(
            json!({"resourceType": "CapabilityStatement", "rest": [{"mode": "client"}, {}]}),
            false,
        )
        .unwrap();
        assert!(out["rest"][0].get("security").is_none());
        assert!(out["rest"][1].get("security").is_some());
    }

    #[test]
    fn resource_type_comes_first_and_the_output_is_compact() {
        let body = json!({"rest": [{"mode": "server"}], "resourceType": "CapabilityStatement", "date": "2026"});
        let out = with_smart_security(body.to_string().as_bytes(), &discovery(false)).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(
                "{\"resourceType\":\"CapabilityStatement\",\"date\":\"2026\",\"rest\":"
            ),
            "{text}"
        );
        assert!(!text.contains('\n'));
    }

    #[test]
    fn other_answers_pass_unchanged() {
        let cases: Vec<(&[u8], Unchanged)> = vec![
            (b"<CapabilityStatement xmlns=\"http://hl7.org/fhir\"/>", Unchanged::NotJson),
            (b"[1,2]", Unchanged::NotJson),
            (b"{\"resourceType\":\"CapabilityStatement\",\"resourceType\":\"CapabilityStatement\"}", Unchanged::NotJson),
            (b"{\"resourceType\":\"TerminologyCapabilities\",\"rest\":[{}]}", Unchanged::NotCapabilityStatement),
            (b"{\"resourceType\":\"OperationOutcome\"}", Unchanged::NotCapabilityStatement),
            (b"{\"rest\":[{}]}", Unchanged::NotCapabilityStatement),
            (b"{\"resourceType\":\"CapabilityStatement\",\"software\":{\"name\":\"x\"}}", Unchanged::NoServerRest),
            (b"{\"resourceType\":\"CapabilityStatement\",\"rest\":[{\"mode\":\"client\"}]}", Unchanged::NoServerRest),
            (b"{\"resourceType\":\"CapabilityStatement\",\"rest\":[{\"mode\":1}]}", Unchanged::NoServerRest),
        ];
        for (body, why) in cases {
            assert_eq!(
                with_smart_security(body, &discovery(false)),
                Err(why),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn json_content_types() {
        for (ct, json) in [
            ("application/fhir+json", true),
            ("application/fhir+json;charset=UTF-8", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/json+fhir", true),
            ("application/fhir+xml", false),
            ("text/xml", false),
            ("text/html", false),
            ("", false),
        ] {
            assert_eq!(is_json_content_type(ct), json, "{ct}");
        }
    }
}
