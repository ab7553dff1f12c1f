//! The record itself: one JSON object per request.

use super::identity::Identity;
use super::settings::AuditConfig;
use crate::decision::{Decision, Reason, Verdict};
use crate::fhir::{Interaction, InteractionKind};
use serde_json::{json, Map, Value};

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
    /// The status a failed response check answers
    /// (`responses.obligation_denied_status`).
    pub obligation_denied_status: u16,
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
pub fn record(settings: &AuditConfig, input: &AuditInput<'_>) -> Value {
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
        reason = Reason::ResponseNotPermitted.as_str();
        message = why.clone();
        status = input.obligation_denied_status;
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
    r.insert("source".into(), json!(settings.source));
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
