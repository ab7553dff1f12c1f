//! The record itself: one JSON object per request.

use super::identity::Identity;
use super::settings::AuditConfig;
use crate::decision::{Decision, Reason, Verdict};
use crate::fhir::{Interaction, InteractionKind};
use serde_json::{Map, Value};

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

/// Insert `key` (keys come out sorted: `serde_json::Map` is ordered).
fn put(m: &mut Map<String, Value>, key: &str, value: Value) {
    m.insert(key.to_string(), value);
}

fn strings(items: &[String]) -> Value {
    Value::Array(items.iter().map(|s| Value::from(s.as_str())).collect())
}

fn entity(it: &Interaction, identity: Option<&Identity>) -> Value {
    let mut e = Map::new();
    if let (Some(t), Some(id)) = (&it.resource_type, &it.id) {
        put(&mut e, "reference", Value::from(format!("{t}/{id}")));
    }
    if let Some(t) = &it.resource_type {
        put(&mut e, "resource_type", Value::from(t.as_str()));
    }
    if let Some(id) = &it.id {
        put(&mut e, "id", Value::from(id.as_str()));
    }
    if let Some(v) = &it.version {
        put(&mut e, "version", Value::from(v.as_str()));
    }
    if let Some(c) = &it.compartment {
        let compartment = format!("{}/{}", c.resource_type, c.id);
        put(&mut e, "compartment", Value::from(compartment));
    }
    if let Some(op) = &it.operation {
        put(&mut e, "operation", Value::from(op.as_str()));
    }
    if !it.types.is_empty() {
        put(&mut e, "types", strings(&it.types));
    }
    if !it.search.is_empty() {
        // Parameter names with modifier and chain, never their values.
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
        put(&mut e, "query", strings(&names));
    }
    if !it.entries.is_empty() {
        put(&mut e, "entries", Value::from(it.entries.len()));
    }
    if let Some(p) = identity.and_then(|i| i.patient.as_deref()) {
        put(&mut e, "patient", Value::from(format!("Patient/{p}")));
    }
    Value::Object(e)
}

fn agent(identity: Option<&Identity>) -> Value {
    let mut agent = Map::new();
    if let Some(id) = identity {
        if let Some(c) = &id.client_id {
            put(&mut agent, "client_id", Value::from(c.as_str()));
        }
        if let Some(u) = id.user() {
            put(&mut agent, "user", Value::from(u));
        }
    }
    put(&mut agent, "requestor", Value::Bool(true));
    Value::Object(agent)
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
    let mut message = d.message.as_str();
    let mut status = d.status;
    if let Some(Err(why)) = &input.obligation_result {
        decision = "deny";
        reason = Reason::ResponseNotPermitted.as_str();
        message = why;
        status = input.obligation_denied_status;
    }
    let mut r = Map::new();
    put(&mut r, "type", Value::from("rest"));
    put(
        &mut r,
        "subtype",
        Value::from(it.map(subtype).unwrap_or("unknown")),
    );
    let interaction = match it {
        Some(i) => serde_json::to_value(i.kind).unwrap_or(Value::Null),
        None => Value::from("unknown"),
    };
    put(&mut r, "interaction", interaction);
    let action = it
        .map(|i| action(i.kind))
        .unwrap_or_else(|| action_from_method(input.method));
    put(&mut r, "action", Value::from(action));
    let outcome = if decision == "allow" { "0" } else { "4" };
    put(&mut r, "outcome", Value::from(outcome));
    put(&mut r, "recorded", Value::from(rfc3339_ms(input.now_ms)));
    put(&mut r, "agent", agent(input.identity));
    put(&mut r, "source", Value::from(settings.source.as_str()));
    let entity = it
        .map(|i| entity(i, input.identity))
        .unwrap_or_else(|| Value::Object(Map::new()));
    put(&mut r, "entity", entity);
    if let Some(jti) = input.identity.and_then(|i| i.jti.as_deref()) {
        let policy = format!("urn:ietf:params:oauth:jti:{jti}");
        put(&mut r, "policy", Value::from(policy));
    }
    if let Some(rid) = input.request_id {
        put(&mut r, "request_id", Value::from(rid));
    }
    put(&mut r, "decision", Value::from(decision));
    put(&mut r, "reason", Value::from(reason));
    put(&mut r, "message", Value::from(message));
    put(&mut r, "status", Value::from(status));
    put(&mut r, "required_scopes", strings(&d.required_scopes));
    if !d.obligations.is_empty() {
        let obligation = match &input.obligation_result {
            None => "pending",
            Some(Ok(())) => "passed",
            Some(Err(_)) => "failed",
        };
        put(&mut r, "obligation", Value::from(obligation));
    }
    if let Some(rw) = &d.rewrite {
        // Names only: the added parameters' values (a patient id, codes)
        // stay out of the record like every other parameter value.
        let mut m = Map::new();
        put(&mut m, "added", strings(&rw.added));
        let headers: Vec<String> = rw.headers.iter().map(|(n, _)| n.clone()).collect();
        put(&mut m, "headers", strings(&headers));
        put(&mut r, "rewrite", Value::Object(m));
    }
    if !d.denied_entries.is_empty() {
        let idx = d.denied_entries.iter().map(|e| Value::from(e.index));
        put(&mut r, "denied_entries", Value::Array(idx.collect()));
    }
    put(&mut r, "enforced", Value::Bool(input.enforced));
    Value::Object(r)
}
