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
    assert_eq!(c.upstream.forward_headers.len(), 8);
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
        (r#"{}"#, AuditEncoding::Line),
        (r#"{"audit":{"encoding":"line"}}"#, AuditEncoding::Line),
        (r#"{"audit":{"encoding":"struct"}}"#, AuditEncoding::Struct),
        (r#"{"audit":{"encoding":"json"}}"#, AuditEncoding::Json),
        (r#"{"audit":{"encoding":"fields"}}"#, AuditEncoding::Fields),
    ] {
        let c = Config::from_json(json.as_bytes()).unwrap();
        assert_eq!(c.audit.encoding, encoding, "{json}");
    }
    let e = Config::from_json(br#"{"audit":{"encoding":"text"}}"#).unwrap_err();
    assert_eq!(e.field, "audit.encoding");
    assert!(e.message.contains("\"line\""), "{e}");
    assert!(e.message.contains("\"struct\""), "{e}");
    assert!(e.message.contains("\"json\""), "{e}");
    assert!(e.message.contains("\"fields\""), "{e}");
    assert!(e.message.contains("\"text\""), "{e}");
    // The same message as when `encoding` was validated after parsing.
    assert_eq!(
        e.message,
        "must be \"line\" (the whole access-log line, text format `%FILTER_STATE(...:PLAIN)%`), \"fields\" (the record's members, completed by the access log's text format as envoy/envoy.yaml does), \"struct\" (nested object, `:TYPED` in a json_format) or \"json\" (JSON text, `:PLAIN` in a json_format) (got \"text\")"
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
        // issue 17: the discovery document does not contradict itself
        (
            r#"{"discovery":{"authorization_endpoint":"https://a/a","token_endpoint":"https://a/t","scopes_supported":["system/*.rs"]}}"#,
            "discovery.grant_types_supported",
        ),
        (
            r#"{"discovery":{"authorization_endpoint":"https://a/a","token_endpoint":"https://a/t","grant_types_supported":["client_credentials"],"scopes_supported":["system/*.rs","launch/patient"]}}"#,
            "discovery.grant_types_supported",
        ),
        (
            r#"{"discovery":{"authorization_endpoint":"https://a/a","token_endpoint":"https://a/t","grant_types_supported":["client_credentials"],"capabilities":["launch-ehr"]}}"#,
            "discovery.grant_types_supported",
        ),
        (
            r#"{"discovery":{"authorization_endpoint":"https://a/a","token_endpoint":"https://a/t","response_types_supported":["token"]}}"#,
            "discovery.response_types_supported",
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
fn discovery_document_for_backend_services() {
    let c = Config::from_json(
        br#"{"discovery":{"authorization_endpoint":"https://a/authorize","token_endpoint":"https://a/token","grant_types_supported":["client_credentials"],"scopes_supported":["system/*.rs"],"capabilities":["client-confidential-asymmetric"],"introspection_endpoint":"https://a/introspect"}}"#,
    )
    .unwrap();
    let d = c.discovery.unwrap().document();
    assert_eq!(
        d["grant_types_supported"],
        serde_json::json!(["client_credentials"])
    );
    assert_eq!(d["introspection_endpoint"], "https://a/introspect");
    assert!(d.get("response_types_supported").is_none());
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
            "response_types_supported": ["code"],
            "capabilities": ["launch-standalone"],
            "code_challenge_methods_supported": ["S256"]
        })
    );
}

/// Every error serde raises while reading the document names the dotted
/// path of the offending field, whatever the depth (`policy.patient_search`
/// was once reported at `(document)`); serde's message follows (with the
/// position for JSON syntax and repeated keys).
#[test]
fn serde_errors_name_the_field_path() {
    const SEE: &str = "; see the configuration reference in README.md";
    #[rustfmt::skip]
    let cases = [
        (r#"{"issuers":[{"issuer":"https://x","jwks_uri":"https://x/jwks"}],"fhir_base_url":"https://g/fhir","policy":{"patient_search":"narrowx"}}"#, "policy.patient_search", r#"unknown variant `narrowx`, expected `narrow` or `deny`"#),
        (r#"{"policy":{"read_outside_request":"check"}}"#, "policy.read_outside_request", r#"unknown variant `check`, expected `check_response` or `deny`"#),
        (r#"{"policy":{"patient_paging":1}}"#, "policy.patient_paging", r#"invalid type: integer `1`, expected string or map"#),
        (r#"{"policy":{"patient_update_by_id":"check_body "}}"#, "policy.patient_update_by_id", r#"unknown variant `check_body `, expected one of `check_stored`, `check_body`, `deny`"#),
        (r#"{"policy":{"allow_has":"yes"}}"#, "policy.allow_has", r#"invalid type: string "yes", expected a boolean"#),
        (r#"{"policy":{"patient_scope_public_types":["Medication",7]}}"#, "policy.patient_scope_public_types[1]", r#"invalid type: integer `7`, expected a string"#),
        (r#"{"policy":{"operations":[{"name":"$x","levels":["type","server"],"letters":"r"}]}}"#, "policy.operations[0].levels[1]", r#"unknown variant `server`, expected one of `system`, `type`, `instance`"#),
        (r#"{"policy":{"operations":[{"name":"$x","levels":["type"],"letters":"r","target":"all"}]}}"#, "policy.operations[0].target", r#"unknown variant `all`, expected one of `resource`, `compartment`, `type_param`, `any_type`, `none`"#),
        (r#"{"policy":{"operations":[{"name":"$x","levels":["type"],"letters":"r","patient":"own"}]}}"#, "policy.operations[0].patient", r#"unknown variant `own`, expected one of `own_patient`, `pinned`, `public_types`, `body`, `deny`"#),
        (r#"{"policy":{"operations":[{"name":"$x","letters":"r"}]}}"#, "policy.operations[0].levels", r#"missing field `levels`"#),
        (r#"{"policy":{"operations":[{"name":"$x","levels":["type"],"letters":"r","letter":"r"}]}}"#, "policy.operations[0].letter", r#"unknown field `letter`, expected one of `name`, `levels`, `types`, `letters`, `target`, `contexts`, `patient`"#),
        (r#"{"audit":{"enabled":"no"}}"#, "audit.enabled", r#"invalid type: string "no", expected a boolean"#),
        (r#"{"audit":{"source":["gw"]}}"#, "audit.source", r#"invalid type: sequence, expected a string"#),
        (r#"{"audit":{"encoding":null}}"#, "audit.encoding", r#"invalid type: null, expected a string"#),
        (r#"{"audit":{"format":"line"}}"#, "audit.format", r#"unknown field `format`, expected one of `enabled`, `source`, `encoding`"#),
        (r#"{"issuers":[{"issuer":"https://x","jwks_uri":"https://x/jwks"},{"issuer":"https://y","jwks_uri":42}]}"#, "issuers[1].jwks_uri", r#"invalid type: integer `42`, expected a string"#),
        (r#"{"issuers":[{"issuer":"https://x","algorithms":["RS256",256]}]}"#, "issuers[0].algorithms[1]", r#"invalid type: integer `256`, expected a string"#),
        (r#"{"issuers":[{"issuer":"https://x","jwks_refresh_seconds":-1}]}"#, "issuers[0].jwks_refresh_seconds", r#"invalid value: integer `-1`, expected u64"#),
        (r#"{"issuers":[{"issuer":"https://x","audiences":"https://g/fhir"}]}"#, "issuers[0].audiences", r#"invalid type: string "https://g/fhir", expected a sequence"#),
        (r#"{"issuers":[{"issuer":"https://x","introspection":{"cluster":"as","path":"/i","client_id":"a","client_secret":"b","timeout":5}}]}"#, "issuers[0].introspection.timeout", r#"unknown field `timeout`, expected one of `cluster`, `path`, `authority`, `client_id`, `client_secret`, `max_cache_seconds`, `timeout_ms`"#),
        (r#"{"issuers":[{"issuer":"https://x","jwks_uri":"https://x/jwks","jwks_uri":"https://x/keys"}]}"#, "issuers[0].jwks_uri", r#"duplicate key `jwks_uri` in a JSON object at line 1 column 90"#),
        (r#"{"issuers":{"issuer":"https://x"}}"#, "issuers", r#"invalid type: map, expected a sequence"#),
        (r#"{"token":{"leeway_seconds":"60"}}"#, "token.leeway_seconds", r#"invalid type: string "60", expected u64"#),
        (r#"{"token":{"max_bytes":1.5}}"#, "token.max_bytes", r#"invalid type: floating point `1.5`, expected usize"#),
        (r#"{"token":{"host_crypto":1}}"#, "token.host_crypto", r#"invalid type: integer `1`, expected a boolean"#),
        (r#"{"token":{"leway_seconds":5}}"#, "token.leway_seconds", r#"unknown field `leway_seconds`, expected one of `leeway_seconds`, `max_bytes`, `allow_query_parameter`, `cache_max_entries`, `host_crypto`"#),
        (r#"{"upstream":{"forward_headers":["patient","tenant"]}}"#, "upstream.forward_headers[1]", r#"unknown variant `tenant`, expected one of `patient`, `fhir_user`, `client_id`, `scopes`, `subject`, `issuer`, `binding`, `binding_thumbprint`"#),
        (r#"{"upstream":{"header_names":{"patiant":"x-p"}}}"#, "upstream.header_names.patiant", r#"unknown variant `patiant`, expected one of `patient`, `fhir_user`, `client_id`, `scopes`, `subject`, `issuer`, `binding`, `binding_thumbprint`"#),
        (r#"{"upstream":{"header_names":{"patient":true}}}"#, "upstream.header_names.patient", r#"invalid type: boolean `true`, expected a string"#),
        (r#"{"upstream":{"timeout_ms":"30s"}}"#, "upstream.timeout_ms", r#"invalid type: string "30s", expected u64"#),
        (r#"{"upstream":{"remove_headers":"x-forwarded-user"}}"#, "upstream.remove_headers", r#"invalid type: string "x-forwarded-user", expected a sequence"#),
        (r#"{"claims":{"patient":null}}"#, "claims.patient", r#"invalid type: null, expected a string"#),
        (r#"{"responses":{"obligation_denied_status":70000}}"#, "responses.obligation_denied_status", r#"invalid value: integer `70000`, expected u16"#),
        (r#"{"metrics":{"prefx":"gw"}}"#, "metrics.prefx", r#"unknown field `prefx`, expected `prefix` or `phase_timing`"#),
        (r#"{"enforce":"false"}"#, "enforce", r#"invalid type: string "false", expected a boolean"#),
        (r#"{"max_body_bytes":-5}"#, "max_body_bytes", r#"invalid value: integer `-5`, expected usize"#),
        (r#"{"enforse":false}"#, "enforse", r#"unknown field `enforse`, expected one of `fhir_base_path`, `fhir_base_url`, `enforce`, `max_body_bytes`, `claims`, `policy`, `issuers`, `token`, `sender_constraint`, `upstream`, `responses`, `discovery`, `audit`, `metrics`, `bulk`, `allow_insecure_inline_secrets`"#),
        (r#"{"enforce":true,"enforce":false}"#, "enforce", r#"duplicate key `enforce` in a JSON object at line 1 column 32"#),
        // A section is an object at any depth: serde would fill a struct from an array by position.
        (r#"{"token":[60]}"#, "token", r#"invalid type: sequence, expected a JSON object (the settings of this section by name)"#),
        (r#"{"upstream":[]}"#, "upstream", r#"invalid type: sequence, expected a JSON object (the settings of this section by name)"#),
        (r#"{"audit":"line"}"#, "audit", r#"invalid type: string "line", expected a JSON object (the settings of this section by name)"#),
        (r#"{"issuers":[["https://x","https://x/jwks"]]}"#, "issuers[0]", r#"invalid type: sequence, expected a JSON object (the settings of this section by name)"#),
        (r#"{"issuers":[{"issuer":"https://x","introspection":["as","/i","a","b"]}]}"#, "issuers[0].introspection", r#"invalid type: sequence, expected a JSON object (the settings of this section by name)"#),
        (r#"{"policy":{"operations":[["$x",["type"],null,"r"]]}}"#, "policy.operations[0]", r#"invalid type: sequence, expected a JSON object (the settings of this section by name)"#),
        // An enum in serde's map form: its variant's content is read like a section (the
        // configuration's variants are all names, so the content of one is `null`).
        (r#"{"policy":{"patient_paging":{"deny":[1]}}}"#, "policy.patient_paging.deny", r#"invalid type: sequence, expected unit"#),
        (r#"{"policy":{"patient_paging":{"deny":{"check":true}}}}"#, "policy.patient_paging.deny", r#"invalid type: map, expected unit"#),
        (r#"{"policy":{"patient_paging":{"deny":null,"check_response":null}}}"#, "policy.patient_paging", r#"invalid value: map, expected map with a single key"#),
        (r#"{"policy":{"patient_paging":{"dney":null}}}"#, "policy.patient_paging", r#"unknown variant `dney`, expected `check_response` or `deny`"#),
        (r#"{"policy":{"operations":[{"name":"$x","levels":[{"type":["instance"]}],"letters":"r"}]}}"#, "policy.operations[0].levels[0].type", r#"invalid type: sequence, expected unit"#),
        (r#""{\"enforce\":false}""#, "(document)", r#"must be a JSON object (`{}` for all defaults)"#),
        (r#"[]"#, "(document)", r#"must be a JSON object (`{}` for all defaults)"#),
        (r#"null"#, "(document)", r#"must be a JSON object (`{}` for all defaults)"#),
        (r#"{} {}"#, "(document)", r#"trailing characters at line 1 column 4"#),
        (r#"{not json"#, "(document)", r#"key must be a string at line 1 column 2"#),
        (r#"{"policy":{7:true}}"#, "policy", r#"key must be a string at line 1 column 12"#),
        (r#"{"upstream":{"header_names":{"pat?ient":"x"}}}"#, "upstream.header_names.pat?ient", r#"unknown variant `pat?ient`, expected one of `patient`, `fhir_user`, `client_id`, `scopes`, `subject`, `issuer`, `binding`, `binding_thumbprint`"#),
        (r#"{"policy":{"allow_has":tru}}"#, "policy.allow_has", r#"expected ident at line 1 column 27"#),
    ];
    for (json, field, message) in cases {
        let e = Config::from_json(json.as_bytes()).unwrap_err();
        assert_eq!(e.field, field, "{json}");
        assert_eq!(e.message, format!("{message}{SEE}"), "{json}");
        assert_eq!(
            e.to_string(),
            format!("invalid configuration at `{field}`: {message}{SEE}")
        );
    }
}
