//! The audit record (IHE BALP / FHIR AuditEvent shaped JSON). Pure.
//!
//! One JSON object per request, written by the filter at decision time (and
//! rewritten when a response obligation fails). The access log adds the
//! response status. Field reference: README.md, "Audit record".
//!
//! Privacy: the record never holds the token, a body, or search parameter
//! *values* (they can carry names, birth dates, identifiers). It holds the
//! parameter names (with modifiers), the resource type/id/version from the
//! path, the compartment, and the context patient id.

use crate::config::Config;
use crate::decision::{Decision, Verdict};
use crate::fhir::{Interaction, InteractionKind};
use serde_json::{json, Map, Value};

/// The verified identity facts of a token (from its claims). Shared by the
/// audit record and the upstream fact headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub client_id: Option<String>,
    pub fhir_user: Option<String>,
    pub sub: Option<String>,
    pub iss: Option<String>,
    pub jti: Option<String>,
    pub patient: Option<String>,
    /// Space-delimited granted scopes.
    pub scopes: Option<String>,
}

fn str_claim(claims: &Value, name: &str) -> Option<String> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

impl Identity {
    pub fn from_claims(config: &Config, claims: &Value) -> Identity {
        let fhir_user = str_claim(claims, "fhirUser");
        let patient = str_claim(claims, &config.claims.patient).or_else(|| {
            if !config.claims.patient_from_fhir_user {
                return None;
            }
            let fu = fhir_user.as_deref()?;
            let (before, id) = fu.rsplit_once('/')?;
            (before == "Patient" || before.ends_with("/Patient")).then(|| id.to_string())
        });
        let scopes = match claims.get(&config.claims.scope) {
            Some(Value::String(s)) => Some(s.split_whitespace().collect::<Vec<_>>().join(" ")),
            Some(Value::Array(a)) => Some(
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            _ => None,
        }
        .filter(|s| !s.is_empty());
        Identity {
            client_id: str_claim(claims, "client_id").or_else(|| str_claim(claims, "azp")),
            fhir_user,
            sub: str_claim(claims, "sub"),
            iss: str_claim(claims, "iss"),
            jti: str_claim(claims, "jti"),
            patient,
            scopes,
        }
    }

    /// The user: `fhirUser`, else `iss|sub`.
    pub fn user(&self) -> Option<String> {
        if let Some(u) = &self.fhir_user {
            return Some(u.clone());
        }
        match (&self.iss, &self.sub) {
            (Some(i), Some(s)) => Some(format!("{i}|{s}")),
            (None, Some(s)) => Some(s.clone()),
            _ => None,
        }
    }
}

/// What the filter knows about one request when it writes the record.
#[derive(Debug, Clone)]
pub struct AuditInput<'a> {
    pub method: &'a str,
    /// `x-request-id`, if present.
    pub request_id: Option<&'a str>,
    pub decision: &'a Decision,
    pub identity: Option<&'a Identity>,
    /// `config.enforce`.
    pub enforced: bool,
    /// Unix time in milliseconds (injected clock).
    pub now_ms: u64,
    /// A response obligation check: `Some(Ok)` passed, `Some(Err(why))` failed.
    pub obligation_result: Option<Result<(), String>>,
}

/// AuditEvent.subtype: the FHIR `restful-interaction` code as IHE BALP uses
/// it (`search` and `history` without their level; paging continues a
/// `search`), and `smart-configuration` for the SMART discovery document,
/// which has no FHIR code.
pub fn subtype(it: &Interaction) -> &'static str {
    match it.kind {
        InteractionKind::Capabilities => "capabilities",
        InteractionKind::SmartConfiguration => "smart-configuration",
        InteractionKind::Read => "read",
        InteractionKind::Vread => "vread",
        InteractionKind::Update => "update",
        InteractionKind::Patch => "patch",
        InteractionKind::Delete => "delete",
        InteractionKind::Create => "create",
        InteractionKind::Search | InteractionKind::Paging => "search",
        InteractionKind::History => "history",
        InteractionKind::Operation => "operation",
        InteractionKind::Batch => "batch",
        InteractionKind::Transaction => "transaction",
    }
}

/// AuditEvent.action (C/R/U/D/E) as IHE BALP assigns it: searches and
/// operations are E (execute), reads and history R.
pub fn action(kind: InteractionKind) -> &'static str {
    match kind {
        InteractionKind::Create => "C",
        InteractionKind::Read
        | InteractionKind::Vread
        | InteractionKind::History
        | InteractionKind::Capabilities
        | InteractionKind::SmartConfiguration => "R",
        InteractionKind::Update | InteractionKind::Patch => "U",
        InteractionKind::Delete => "D",
        InteractionKind::Search
        | InteractionKind::Paging
        | InteractionKind::Operation
        | InteractionKind::Batch
        | InteractionKind::Transaction => "E",
    }
}

/// Fallback action from the HTTP method when the request was not classified.
fn action_from_method(method: &str) -> &'static str {
    match method {
        "POST" => "C",
        "PUT" | "PATCH" => "U",
        "DELETE" => "D",
        _ => "R",
    }
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-25T13:49:53.123Z`.
pub fn rfc3339_ms(now_ms: u64) -> String {
    let secs = now_ms / 1000;
    let ms = now_ms % 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, mi, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (H. Hinnant), for days since 1970-01-01 (non-negative).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

fn entity(it: &Interaction, identity: Option<&Identity>) -> Value {
    let mut e = Map::new();
    if let (Some(t), Some(id)) = (&it.resource_type, &it.id) {
        e.insert("reference".into(), json!(format!("{t}/{id}")));
    }
    if let Some(t) = &it.resource_type {
        e.insert("resource_type".into(), json!(t));
    }
    if let Some(id) = &it.id {
        e.insert("id".into(), json!(id));
    }
    if let Some(v) = &it.version {
        e.insert("version".into(), json!(v));
    }
    if let Some(c) = &it.compartment {
        e.insert(
            "compartment".into(),
            json!(format!("{}/{}", c.resource_type, c.id)),
        );
    }
    if let Some(op) = &it.operation {
        e.insert("operation".into(), json!(op));
    }
    if !it.types.is_empty() {
        e.insert("types".into(), json!(it.types));
    }
    if !it.search.is_empty() {
        let names: Vec<String> = it
            .search
            .iter()
            .map(|p| {
                let mut n = p.name.clone();
                if let Some(m) = &p.modifier {
                    n.push(':');
                    n.push_str(m);
                }
                if let Some(c) = &p.chain {
                    n.push('.');
                    n.push_str(c);
                }
                n
            })
            .collect();
        e.insert("query".into(), json!(names));
    }
    if !it.entries.is_empty() {
        e.insert("entries".into(), json!(it.entries.len()));
    }
    if let Some(p) = identity.and_then(|i| i.patient.as_deref()) {
        e.insert("patient".into(), json!(format!("Patient/{p}")));
    }
    Value::Object(e)
}

/// Build the audit record.
pub fn record(config: &Config, input: &AuditInput<'_>) -> Value {
    let d = input.decision;
    let it = d.interaction.as_ref();
    let mut decision = match d.decision {
        Verdict::Allow => "allow",
        Verdict::Deny => "deny",
    };
    let mut reason = d.reason.as_str();
    let mut message = d.message.clone();
    let mut status = d.status;
    if let Some(Err(why)) = &input.obligation_result {
        decision = "deny";
        reason = crate::decision::Reason::ResponseNotPermitted.as_str();
        message = why.clone();
        status = config.responses.obligation_denied_status;
    }
    let mut r = Map::new();
    r.insert("type".into(), json!("rest"));
    r.insert(
        "subtype".into(),
        json!(it.map(subtype).unwrap_or("unknown")),
    );
    r.insert(
        "interaction".into(),
        it.map(|i| json!(i.kind))
            .unwrap_or_else(|| json!("unknown")),
    );
    r.insert(
        "action".into(),
        json!(it
            .map(|i| action(i.kind))
            .unwrap_or_else(|| action_from_method(input.method))),
    );
    r.insert(
        "outcome".into(),
        json!(if decision == "allow" { "0" } else { "4" }),
    );
    r.insert("recorded".into(), json!(rfc3339_ms(input.now_ms)));
    let mut agent = Map::new();
    if let Some(id) = input.identity {
        if let Some(c) = &id.client_id {
            agent.insert("client_id".into(), json!(c));
        }
        if let Some(u) = id.user() {
            agent.insert("user".into(), json!(u));
        }
    }
    agent.insert("requestor".into(), json!(true));
    r.insert("agent".into(), Value::Object(agent));
    r.insert("source".into(), json!(config.audit.source));
    r.insert(
        "entity".into(),
        it.map(|i| entity(i, input.identity))
            .unwrap_or_else(|| Value::Object(Map::new())),
    );
    if let Some(jti) = input.identity.and_then(|i| i.jti.as_deref()) {
        r.insert(
            "policy".into(),
            json!(format!("urn:ietf:params:oauth:jti:{jti}")),
        );
    }
    if let Some(rid) = input.request_id {
        r.insert("request_id".into(), json!(rid));
    }
    r.insert("decision".into(), json!(decision));
    r.insert("reason".into(), json!(reason));
    r.insert("message".into(), json!(message));
    r.insert("status".into(), json!(status));
    r.insert("required_scopes".into(), json!(d.required_scopes));
    if !d.obligations.is_empty() {
        r.insert(
            "obligation".into(),
            json!(match &input.obligation_result {
                None => "pending",
                Some(Ok(())) => "passed",
                Some(Err(_)) => "failed",
            }),
        );
    }
    if !d.denied_entries.is_empty() {
        let idx: Vec<usize> = d.denied_entries.iter().map(|e| e.index).collect();
        r.insert("denied_entries".into(), json!(idx));
    }
    r.insert("enforced".into(), json!(input.enforced));
    Value::Object(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Reason;
    use crate::fhir::{Level, SearchParam};

    #[test]
    fn rfc3339_known_instants() {
        for (ms, s) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_795_614_593_123, "2026-11-25T13:49:53.123Z"),
            (4_102_444_799_999, "2099-12-31T23:59:59.999Z"),
        ] {
            assert_eq!(rfc3339_ms(ms), s);
        }
    }

    #[test]
    fn identity_from_claims() {
        let c = Config::from_json(br#"{"claims":{"patient_from_fhir_user":true}}"#).unwrap();
        let id = Identity::from_claims(
            &c,
            &json!({"iss":"https://as","sub":"u1","azp":"app","fhirUser":"https://x/fhir/Patient/p9","scope":["a","b"],"jti":"j"}),
        );
        assert_eq!(id.client_id.as_deref(), Some("app"));
        assert_eq!(id.patient.as_deref(), Some("p9"));
        assert_eq!(id.scopes.as_deref(), Some("a b"));
        assert_eq!(id.user().as_deref(), Some("https://x/fhir/Patient/p9"));
        let id2 = Identity::from_claims(&c, &json!({"iss":"https://as","sub":"u1"}));
        assert_eq!(id2.user().as_deref(), Some("https://as|u1"));
    }

    #[test]
    fn record_shape_search_allow() {
        let c = Config::default_config().unwrap();
        let mut it = Interaction::new(InteractionKind::Search, Level::Type);
        it.resource_type = Some("Observation".into());
        it.search = vec![SearchParam {
            name: "code".into(),
            modifier: Some("text".into()),
            chain: None,
            values: vec!["Jane Doe".into()],
        }];
        let mut d = Decision::allow(Reason::Allowed, it);
        d.required_scopes = vec!["patient/Observation.rs".into()];
        let id = Identity {
            client_id: Some("app".into()),
            sub: Some("u".into()),
            iss: Some("https://as".into()),
            jti: Some("abc".into()),
            patient: Some("p1".into()),
            ..Identity::default()
        };
        let r = record(
            &c,
            &AuditInput {
                method: "GET",
                request_id: Some("rid-1"),
                decision: &d,
                identity: Some(&id),
                enforced: true,
                now_ms: 1_795_614_593_123,
                obligation_result: None,
            },
        );
        assert_eq!(
            r,
            json!({
                "type": "rest", "subtype": "search", "interaction": "search", "action": "E", "outcome": "0",
                "recorded": "2026-11-25T13:49:53.123Z",
                "agent": {"client_id": "app", "user": "https://as|u", "requestor": true},
                "source": "fhir-smart-authz",
                "entity": {"resource_type": "Observation", "query": ["code:text"], "patient": "Patient/p1"},
                "policy": "urn:ietf:params:oauth:jti:abc",
                "request_id": "rid-1",
                "decision": "allow", "reason": "allowed", "message": "allowed", "status": 200,
                "required_scopes": ["patient/Observation.rs"],
                "enforced": true
            })
        );
        assert!(
            !r.to_string().contains("Jane"),
            "search values are not recorded"
        );
    }

    #[test]
    fn record_unclassified_deny_and_obligation_failure() {
        let c = Config::from_json(br#"{"responses":{"obligation_denied_status":404}}"#).unwrap();
        let d = Decision::deny(Reason::MissingToken, "no token");
        let r = record(
            &c,
            &AuditInput {
                method: "DELETE",
                request_id: None,
                decision: &d,
                identity: None,
                enforced: false,
                now_ms: 0,
                obligation_result: None,
            },
        );
        assert_eq!(r["subtype"], "unknown");
        assert_eq!(r["action"], "D");
        assert_eq!(r["outcome"], "4");
        assert_eq!(r["status"], 401);
        assert_eq!(r["enforced"], false);
        assert_eq!(r["agent"], json!({"requestor": true}));
        assert!(r.get("policy").is_none());

        let mut it = Interaction::new(InteractionKind::Read, Level::Instance);
        it.resource_type = Some("Observation".into());
        it.id = Some("o1".into());
        let mut d = Decision::allow(Reason::Allowed, it);
        d.obligations = vec![crate::decision::Obligation::CheckResponseCompartment {
            resource_type: "Observation".into(),
            patient: "p1".into(),
        }];
        let r = record(
            &c,
            &AuditInput {
                method: "GET",
                request_id: None,
                decision: &d,
                identity: None,
                enforced: true,
                now_ms: 0,
                obligation_result: Some(Err(
                    "Observation/o1 is not in Patient/p1's compartment".into()
                )),
            },
        );
        assert_eq!(r["decision"], "deny");
        assert_eq!(r["reason"], "response_not_permitted");
        assert_eq!(r["status"], 404);
        assert_eq!(r["obligation"], "failed");
        assert_eq!(r["action"], "R");
        assert_eq!(
            r["entity"],
            json!({"reference":"Observation/o1","resource_type":"Observation","id":"o1"})
        );
        assert_eq!(r["interaction"], "read");
        assert_eq!(r["subtype"], "read");
    }
}
