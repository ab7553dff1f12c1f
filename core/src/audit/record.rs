//! The record itself: one JSON object per request.

use super::identity::Identity;
use super::settings::AuditConfig;
use crate::decision::{Decision, Reason, Verdict};
use crate::fhir::{Interaction, InteractionKind};
use serde::Serialize;
use serde_json::Value;

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

/// The record as serialized (keys come out sorted: a `serde_json::Map`).
#[derive(Serialize)]
struct Record<'a> {
    #[serde(rename = "type")]
    record_type: &'static str,
    subtype: &'static str,
    interaction: InteractionName,
    action: &'static str,
    outcome: &'static str,
    recorded: String,
    agent: Agent<'a>,
    source: &'a str,
    entity: Entity<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    decision: &'static str,
    reason: &'static str,
    message: &'a str,
    status: u16,
    required_scopes: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    obligation: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    denied_entries: Vec<usize>,
    enforced: bool,
}

/// The interaction code, or `unknown` for an unclassified request.
#[derive(Serialize)]
#[serde(untagged)]
enum InteractionName {
    Classified(InteractionKind),
    Unknown(&'static str),
}

#[derive(Serialize)]
struct Agent<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    requestor: bool,
}

#[derive(Serialize, Default)]
struct Entity<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    compartment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    operation: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    types: &'a [String],
    /// Parameter names with modifier and chain, never their values.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    query: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entries: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patient: Option<String>,
}

fn entity<'a>(it: &'a Interaction, identity: Option<&Identity>) -> Entity<'a> {
    let query = it
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
    Entity {
        reference: match (&it.resource_type, &it.id) {
            (Some(t), Some(id)) => Some(format!("{t}/{id}")),
            _ => None,
        },
        resource_type: it.resource_type.as_deref(),
        id: it.id.as_deref(),
        version: it.version.as_deref(),
        compartment: it
            .compartment
            .as_ref()
            .map(|c| format!("{}/{}", c.resource_type, c.id)),
        operation: it.operation.as_deref(),
        types: &it.types,
        query,
        entries: (!it.entries.is_empty()).then_some(it.entries.len()),
        patient: identity
            .and_then(|i| i.patient.as_deref())
            .map(|p| format!("Patient/{p}")),
    }
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
    let identity = input.identity;
    let record = Record {
        record_type: "rest",
        subtype: it.map(subtype).unwrap_or("unknown"),
        interaction: match it {
            Some(i) => InteractionName::Classified(i.kind),
            None => InteractionName::Unknown("unknown"),
        },
        action: it
            .map(|i| action(i.kind))
            .unwrap_or_else(|| action_from_method(input.method)),
        outcome: if decision == "allow" { "0" } else { "4" },
        recorded: rfc3339_ms(input.now_ms),
        agent: Agent {
            client_id: identity.and_then(|id| id.client_id.as_deref()),
            user: identity.and_then(Identity::user),
            requestor: true,
        },
        source: &settings.source,
        entity: it.map(|i| entity(i, identity)).unwrap_or_default(),
        policy: identity
            .and_then(|i| i.jti.as_deref())
            .map(|jti| format!("urn:ietf:params:oauth:jti:{jti}")),
        request_id: input.request_id,
        decision,
        reason,
        message,
        status,
        required_scopes: &d.required_scopes,
        obligation: (!d.obligations.is_empty()).then_some(match &input.obligation_result {
            None => "pending",
            Some(Ok(())) => "passed",
            Some(Err(_)) => "failed",
        }),
        denied_entries: d.denied_entries.iter().map(|e| e.index).collect(),
        enforced: input.enforced,
    };
    // A record of strings, numbers and string-keyed maps always serializes.
    serde_json::to_value(&record).unwrap_or(Value::Null)
}
