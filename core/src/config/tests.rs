//! Configuration parsing and validation, section by section.

use super::*;
use crate::audit::AuditEncoding;

#[test]
fn defaults() {
    let c = Config::default_config().unwrap();
    assert_eq!(c.base.path, "/fhir");
    assert!(c.enforce);
    assert_eq!(c.max_body_bytes, 1048576);
    assert_eq!(c.claims.scope, "scope");
}

#[test]
fn unknown_field_is_named() {
    let e = Config::from_json(br#"{"enforse": false}"#).unwrap_err();
    assert_eq!(e.field, "enforse");
    assert!(e.message.contains("unknown field"), "{}", e.message);
}

#[test]
fn base_path_rules() {
    for (input, ok) in [
        ("/fhir", Some("/fhir")),
        ("/fhir/R4/", Some("/fhir/R4")),
        ("/", Some("")),
        ("fhir", None),
        ("/a/../b", None),
        ("/a//b", None),
        ("/a%2Fb", None),
    ] {
        let raw = format!(r#"{{"fhir_base_path": {input:?}}}"#);
        match (Config::from_json(raw.as_bytes()), ok) {
            (Ok(c), Some(expected)) => assert_eq!(c.base.path, expected, "{input}"),
            (Err(e), None) => assert_eq!(e.field, "fhir_base_path"),
            (r, _) => panic!("{input}: unexpected {:?}", r.map(|c| c.base.path)),
        }
    }
}

#[test]
fn shell_defaults() {
    let c = Config::default_config().unwrap();
    assert_eq!(c.upstream.header_name(Fact::FhirUser), "x-smart-fhir-user");
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
    for (json, encoding) in [
        (r#"{}"#, AuditEncoding::Struct),
        (r#"{"audit":{"encoding":"struct"}}"#, AuditEncoding::Struct),
        (r#"{"audit":{"encoding":"json"}}"#, AuditEncoding::Json),
    ] {
        let c = Config::from_json(json.as_bytes()).unwrap();
        assert_eq!(c.audit.encoding, encoding, "{json}");
    }
    let e = Config::from_json(br#"{"audit":{"encoding":"text"}}"#).unwrap_err();
    assert_eq!(e.field, "audit.encoding");
    assert!(e.message.contains("\"struct\""), "{e}");
    assert!(e.message.contains("\"json\""), "{e}");
    assert!(e.message.contains("\"text\""), "{e}");
    // The same message as when `encoding` was validated after parsing.
    assert_eq!(
        e.message,
        "must be \"struct\" (nested object, access log `:TYPED`) or \"json\" (JSON text, access log `:PLAIN`) (got \"text\")"
    );
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
        (
            r#"{"discovery":{"authorization_endpoint":"https://a/a","token_endpoint":"https://a/t","scopes_supported":["openid","patient/Observation.rs?category=laboratory","patient/Observation.rs?colour=blue"]}}"#,
            "discovery.scopes_supported[2]",
        ),
        (
            r#"{"discovery":{"authorization_endpoint":"https://a/a","token_endpoint":"https://a/t","scopes_supported":["user/*.rs?category=x"]}}"#,
            "discovery.scopes_supported[0]",
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
