//! Local replies, the same bytes from every shell: deny replies (status,
//! `WWW-Authenticate` per RFC 6750 §3, a FHIR `OperationOutcome` body),
//! gateway errors and the SMART discovery document.

use crate::batch::AnsweredEntry;
use crate::config::Config;
use crate::decision::{client_text, Decision, Reason};
use crate::fhir::{Interaction, InteractionKind, Level};
use crate::token::binding::challenge::{dpop_challenge, resource_metadata_param};
use serde_json::{Map, Value};

/// A local reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

pub const FHIR_JSON: &str = "application/fhir+json";

pub use crate::token::binding::challenge::quote_escape;

/// FHIR `issue-type` code for a reason/status.
pub fn issue_code(reason: Reason, status: u16) -> &'static str {
    match (reason, status) {
        (_, 404) => "not-found",
        (Reason::UpstreamUnavailable | Reason::ReplayCacheUnavailable, _) => "transient",
        (Reason::InternalError, _) => "exception",
        (Reason::BodyTooLarge, _) => "too-long",
        // 401: the client must (re)authenticate, whatever was wrong with the token.
        (_, 401) => "login",
        (_, 400) => "invalid",
        _ => "forbidden",
    }
}

/// The `WWW-Authenticate` value for a denial, if the status carries one.
pub fn www_authenticate(config: &Config, d: &Decision, status: u16) -> Option<String> {
    if !matches!(status, 400 | 401 | 403 | 413) {
        return None;
    }
    let mut v = format!("Bearer realm=\"{}\"", quote_escape(&config.responses.realm));
    if let Some(err) = d.reason.bearer_error() {
        v.push_str(&format!(", error=\"{err}\""));
        let hint = d.scope_hint();
        if err == "insufficient_scope" && !hint.is_empty() {
            v.push_str(&format!(", scope=\"{}\"", quote_escape(&hint.join(" "))));
        }
        v.push_str(&format!(
            ", error_description=\"{}\"",
            quote_escape(&d.client_message())
        ));
    }
    if status == 401 {
        v.push_str(&resource_metadata_param(
            config.resource_metadata_url().as_deref(),
        ));
    }
    Some(v)
}

fn put(m: &mut Map<String, Value>, key: &str, value: Value) {
    m.insert(key.to_string(), value);
}

/// One `issue` of an OperationOutcome; `reason` adds its `details` coding.
fn issue(
    severity: &str,
    code: &str,
    reason: Option<Reason>,
    diagnostics: String,
) -> Map<String, Value> {
    let mut i = Map::new();
    put(&mut i, "severity", Value::from(severity));
    put(&mut i, "code", Value::from(code));
    if let Some(reason) = reason {
        let mut coding = Map::new();
        put(
            &mut coding,
            "system",
            Value::from("urn:fhir-smart-authz:reason"),
        );
        put(&mut coding, "code", Value::from(reason.as_str()));
        let mut details = Map::new();
        put(
            &mut details,
            "coding",
            Value::Array(vec![Value::Object(coding)]),
        );
        put(&mut details, "text", Value::from(diagnostics.as_str()));
        put(&mut i, "details", Value::Object(details));
    }
    put(&mut i, "diagnostics", Value::from(diagnostics));
    i
}

/// The OperationOutcome JSON (sorted keys) of these issues.
fn outcome_body(issues: Vec<Map<String, Value>>) -> Vec<u8> {
    let mut o = Map::new();
    put(&mut o, "resourceType", Value::from("OperationOutcome"));
    put(
        &mut o,
        "issue",
        Value::Array(issues.into_iter().map(Value::Object).collect()),
    );
    Value::Object(o).to_string().into_bytes()
}

/// The denied entries of a partly allowed batch as the batch-response
/// answers them: each one's status and the OperationOutcome it would get
/// sent alone.
pub fn answered_entries(d: &Decision) -> Vec<AnsweredEntry> {
    d.denied_entries
        .iter()
        .map(|e| {
            let mut alone = Decision::deny(e.reason, e.message.clone());
            alone.required_scopes = e.required_scopes.clone();
            let outcome = operation_outcome(&alone, alone.status);
            AnsweredEntry {
                index: e.index,
                status: alone.status,
                outcome: serde_json::from_slice(&outcome).unwrap_or(Value::Null),
            }
        })
        .collect()
}

/// The OperationOutcome body (JSON) for a refusal.
pub fn operation_outcome(d: &Decision, status: u16) -> Vec<u8> {
    let code = issue_code(d.reason, status);
    let mut issues = vec![issue("error", code, Some(d.reason), d.client_message())];
    let hint = d.scope_hint();
    if !hint.is_empty() && status == 403 {
        let scopes = hint.join(" ");
        let diagnostics = format!("any of these scopes would allow it: {scopes}");
        issues.push(issue("information", "informational", None, diagnostics));
    }
    for e in &d.denied_entries {
        let mut entry = issue(
            "error",
            "forbidden",
            Some(e.reason),
            client_text(&e.message),
        );
        let expression = Value::from(format!("Bundle.entry[{}]", e.index));
        put(&mut entry, "expression", Value::Array(vec![expression]));
        issues.push(entry);
    }
    outcome_body(issues)
}

/// The full local reply for a denial with the given status.
pub fn deny_reply(config: &Config, d: &Decision, status: u16) -> Reply {
    let mut headers = outcome_headers();
    if let Some(w) = www_authenticate(config, d, status) {
        headers.push(("www-authenticate".to_string(), w));
    }
    // RFC 9449 §7.1: the DPoP challenge too when an issuer accepts DPoP.
    let metadata = config.resource_metadata_url();
    if let Some(w) = dpop_challenge(
        &config.binding(),
        &config.responses.realm,
        d,
        status,
        metadata.as_deref(),
    ) {
        headers.push(("www-authenticate".to_string(), w));
    }
    headers.extend(d.reply_headers.iter().cloned());
    if let Some(s) = d.retry_after {
        headers.push(("retry-after".to_string(), s.to_string()));
    }
    Reply {
        status,
        headers,
        body: operation_outcome(d, status),
    }
}

/// A local reply for a failure on the gateway's side (not a refusal of the
/// client): an OperationOutcome with the given issue code and diagnostics.
pub fn gateway_error_reply(status: u16, code: &str, why: &str) -> Reply {
    let body = outcome_body(vec![issue("error", code, None, why.to_string())]);
    Reply {
        status,
        headers: outcome_headers(),
        body,
    }
}

/// The headers of an OperationOutcome reply: FHIR JSON, never cached.
fn outcome_headers() -> Vec<(String, String)> {
    vec![
        ("content-type".to_string(), FHIR_JSON.to_string()),
        ("cache-control".to_string(), "no-store".to_string()),
    ]
}

/// The reply of a filter without a valid configuration (fail closed).
pub fn unconfigured_reply() -> Reply {
    let d = Decision::deny(
        Reason::KeysUnavailable,
        "the authorization filter has no valid configuration",
    );
    Reply {
        status: 503,
        headers: vec![("content-type".to_string(), FHIR_JSON.to_string())],
        body: operation_outcome(&d, 503),
    }
}

/// The answer of a discovery document the filter serves itself for
/// `method` `path`, if any ([`served_document`]): its decision (public,
/// audited as the SMART configuration) and its reply.
pub fn discovery_answer(config: &Config, method: &str, path: &str) -> Option<(Decision, Reply)> {
    let document = served_document(config, method, path)?;
    let d = Decision::allow(
        Reason::PublicEndpoint,
        Interaction::new(InteractionKind::SmartConfiguration, Level::System),
    );
    Some((d, discovery_reply(&document)))
}

/// The discovery document the filter serves itself for `method` `path`, if
/// any: the SMART configuration at `GET|HEAD
/// [base]/.well-known/smart-configuration` (with `discovery`), or the RFC
/// 9728 protected-resource metadata at its well-known paths.
pub fn served_document(config: &Config, method: &str, path: &str) -> Option<Value> {
    if !matches!(method, "GET" | "HEAD") {
        return None;
    }
    let path_only = path.split('?').next().unwrap_or("");
    if let Some(discovery) = config.discovery.as_ref() {
        if path_only.strip_prefix(config.base.path.as_str())
            == Some("/.well-known/smart-configuration")
        {
            return Some(discovery.document());
        }
    }
    config
        .is_resource_metadata_path(path_only)
        .then(|| config.resource_metadata())
        .flatten()
}

/// The SMART discovery document reply.
pub fn discovery_reply(doc: &Value) -> Reply {
    Reply {
        status: 200,
        headers: vec![
            ("content-type".to_string(), "application/json".to_string()),
            ("cache-control".to_string(), "max-age=300".to_string()),
            ("vary".to_string(), "Origin".to_string()),
        ],
        body: doc.to_string().into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg() -> Config {
        Config::from_json(br#"{"responses":{"realm":"my \"fhir\""}}"#).unwrap()
    }

    #[test]
    fn www_authenticate_table() {
        let c = cfg();
        let mut scope = Decision::deny(
            Reason::InsufficientScope,
            "read of Observation needs a scope",
        );
        scope.required_scopes = vec![
            "patient/Observation.rs".into(),
            "user/Observation.rs".into(),
        ];
        let mut compartment = Decision::deny(
            Reason::PatientCompartmentViolation,
            "Observation/o2 is not in the compartment of Patient/p1",
        );
        compartment.required_scopes = vec!["patient/Observation.r".into()];
        for (d, status, expected) in [
            (
                // More scope cannot help: no scope hint (a client would loop asking for it).
                compartment,
                403,
                Some(
                    r#"Bearer realm="my \"fhir\"", error="insufficient_scope", error_description="Observation/o2 is not in the compartment of Patient/p1""#,
                ),
            ),
            (
                Decision::deny(Reason::MissingToken, "no token"),
                401,
                Some(r#"Bearer realm="my \"fhir\"""#),
            ),
            (
                Decision::deny(Reason::InvalidToken, "the token expired at 12:00 \"UTC\""),
                401,
                Some(
                    r#"Bearer realm="my \"fhir\"", error="invalid_token", error_description="the token expired at 12:00 \"UTC\"""#,
                ),
            ),
            (
                scope,
                403,
                Some(
                    r#"Bearer realm="my \"fhir\"", error="insufficient_scope", scope="patient/Observation.rs user/Observation.rs", error_description="read of Observation needs a scope""#,
                ),
            ),
            (
                Decision::deny(Reason::InvalidRequest, "bad\npath é"),
                400,
                Some(
                    r#"Bearer realm="my \"fhir\"", error="invalid_request", error_description="bad?path ?""#,
                ),
            ),
            (
                Decision::deny(Reason::BodyTooLarge, "too big"),
                413,
                Some(
                    r#"Bearer realm="my \"fhir\"", error="invalid_request", error_description="too big""#,
                ),
            ),
        ] {
            assert_eq!(
                www_authenticate(&c, &d, status).as_deref(),
                expected,
                "{:?}",
                d.reason
            );
        }
    }

    #[test]
    fn outcome_body() {
        let c = cfg();
        let r = deny_reply(
            &c,
            &Decision::deny(Reason::MissingToken, "no bearer token"),
            401,
        );
        assert_eq!(r.status, 401);
        assert_eq!(r.headers[0], ("content-type".into(), FHIR_JSON.into()));
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            v,
            json!({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"login",
                "details":{"coding":[{"system":"urn:fhir-smart-authz:reason","code":"missing_token"}],"text":"no bearer token"},
                "diagnostics":"no bearer token"}]})
        );
        // The bytes are those of the JSON map (sorted keys), as before.
        assert_eq!(r.body, v.to_string().into_bytes());
        for (reason, status, code) in [
            (Reason::InvalidToken, 401, "login"),
            (Reason::InsufficientScope, 403, "forbidden"),
            (Reason::InvalidRequest, 400, "invalid"),
            (Reason::BodyTooLarge, 413, "too-long"),
            (Reason::ResponseNotPermitted, 404, "not-found"),
            (Reason::InternalError, 500, "exception"),
            (Reason::UpstreamUnavailable, 502, "transient"),
        ] {
            assert_eq!(issue_code(reason, status), code);
        }
    }

    #[test]
    fn outcome_with_scopes_entries_and_gateway_errors_is_sorted_json() {
        let mut d = Decision::deny(Reason::BundleEntryDenied, "1 of 2 bundle entries denied");
        d.required_scopes = vec!["user/Patient.d".into()];
        d.denied_entries = vec![crate::decision::EntryDenial {
            index: 1,
            reason: Reason::InsufficientScope,
            message: "no granted scope allows d on Patient".into(),
            required_scopes: vec!["user/Patient.d".into()],
        }];
        let expected = json!({"resourceType":"OperationOutcome","issue":[
            {"severity":"error","code":"forbidden",
             "details":{"coding":[{"system":"urn:fhir-smart-authz:reason","code":"bundle_entry_denied"}],"text":"1 of 2 bundle entries denied"},
             "diagnostics":"1 of 2 bundle entries denied"},
            {"severity":"information","code":"informational","diagnostics":"any of these scopes would allow it: user/Patient.d"},
            {"severity":"error","code":"forbidden",
             "details":{"coding":[{"system":"urn:fhir-smart-authz:reason","code":"insufficient_scope"}],"text":"no granted scope allows d on Patient"},
             "diagnostics":"no granted scope allows d on Patient","expression":["Bundle.entry[1]"]}]});
        assert_eq!(
            operation_outcome(&d, 403),
            expected.to_string().into_bytes()
        );
        let g = gateway_error_reply(502, "transient", "the FHIR server did not answer");
        assert_eq!(
            g.body,
            json!({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient","diagnostics":"the FHIR server did not answer"}]})
                .to_string()
                .into_bytes()
        );
    }
}
