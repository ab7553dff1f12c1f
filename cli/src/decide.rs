//! `decide` and `explain`: JSON Lines of requests in, one decision per line
//! out, each compared with its expectation when one is given.

use crate::commands::exit;
use crate::response::{check_line_response, explain_labels, explain_response};
use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::decision::{Decision, Reason};
use fhir_smart_authz_core::engine::{self, Credential};
use fhir_smart_authz_core::fhir::RequestParts;
use fhir_smart_authz_core::token::binding::certificate::{hex_thumbprint, pem_sha256_hex};
use fhir_smart_authz_core::token::binding::{ConnectionFacts, MemoryReplayStore};
use fhir_smart_authz_core::token::extract_bearer;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, Write};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputLine {
    /// A name for the line (a corpus row's), used in difference messages.
    #[serde(default)]
    id: Option<String>,
    method: String,
    path: String,
    #[serde(default)]
    headers: BTreeMap<String, HeaderValue>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    claims: Option<Value>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    client_certificate: Option<String>,
    #[serde(default)]
    source_address: Option<String>,
    /// The FHIR server's 200 answer, to test the response check offline.
    #[serde(default)]
    response: Option<Value>,
    /// What the decision must be: `"allow"`/`"deny"`, or an object whose
    /// members must equal the decision's (`{"status":403,"reason":"..."}`).
    #[serde(default)]
    expect: Option<Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum HeaderValue {
    One(String),
    Many(Vec<String>),
}

/// Decide every line; returns the exit code (4 when a decision differed
/// from its expectation: the line's own `expect`, else `--expect`'s line).
pub fn process(
    config: &Config,
    explain: bool,
    now: u64,
    expected: Option<&[Value]>,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> i32 {
    let mut raw = Vec::new();
    let mut n = 0usize;
    // DPoP proofs are accepted once per run, as once per window by the filter.
    let mut replay = MemoryReplayStore::default();
    let mut decided = 0usize;
    let mut changed = 0usize;
    loop {
        raw.clear();
        match input.read_until(b'\n', &mut raw) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                eprintln!("error: reading stdin: {e}");
                break;
            }
        }
        n += 1;
        // A line that is not UTF-8 is an error for that request only.
        let (label, d, own_expect, response) = match std::str::from_utf8(&raw) {
            Ok(line) if line.trim().is_empty() => continue,
            Ok(line) => decide_line(config, line.trim(), n, now, &mut replay),
            Err(e) => (
                format!("line {n}"),
                Decision::deny(
                    Reason::InvalidRequest,
                    format!(
                        "line {n}: not UTF-8 ({e}); each line must be a UTF-8 JSON request object"
                    ),
                ),
                None,
                None,
            ),
        };
        let expectation = own_expect.or_else(|| expected.and_then(|e| e.get(decided).cloned()));
        decided += 1;
        let mut json = serde_json::to_value(&d).unwrap_or(Value::Null);
        // With a response check, its member is added.
        if let (Some(r), Some(o)) = (&response, json.as_object_mut()) {
            o.insert("response".into(), r.clone());
        }
        if let Some(expect) = &expectation {
            if let Some(diff) = difference(expect, &json) {
                changed += 1;
                eprintln!("line {n} ({label}): {diff}");
            }
        }
        let text = if explain {
            let mut t = explain_text(n, &label, &d);
            if let Some(r) = &response {
                t.push_str(&explain_response(r));
            }
            t
        } else {
            json.to_string()
        };
        if writeln!(out, "{text}").is_err() {
            break;
        }
    }
    if let Some(e) = expected {
        if e.len() != decided {
            eprintln!(
                "--expect: {} expected decision(s) for {decided} request line(s)",
                e.len()
            );
            changed += 1;
        }
    }
    if changed > 0 {
        eprintln!("{changed} decision(s) differ from the expectation");
        exit::CHANGED
    } else {
        exit::OK
    }
}

/// The expectations of `--expect FILE`: one JSON value per non-blank line.
pub fn read_expectations(file: &str) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {file}: {e}"))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| format!("{file} line {}: not JSON ({e})", i + 1))
        })
        .collect()
}

/// `None` when the decision meets the expectation: `"allow"`/`"deny"`
/// names the decision; an object's members must each equal the decision's.
fn difference(expect: &Value, decision: &Value) -> Option<String> {
    let wanted: Vec<(&str, &Value)> = match expect {
        Value::String(_) => vec![("decision", expect)],
        Value::Object(members) => members.iter().map(|(k, v)| (k.as_str(), v)).collect(),
        other => {
            return Some(format!(
                "expect must be \"allow\", \"deny\" or an object (got {other})"
            ))
        }
    };
    let differing: Vec<String> = wanted
        .into_iter()
        .filter(|(k, v)| decision.get(*k).unwrap_or(&Value::Null) != *v)
        .map(|(k, v)| {
            format!(
                "{k}: expected {v}, got {}",
                decision.get(k).unwrap_or(&Value::Null)
            )
        })
        .collect();
    (!differing.is_empty()).then(|| differing.join("; "))
}

fn decide_line(
    config: &Config,
    line: &str,
    n: usize,
    now: u64,
    replay: &mut MemoryReplayStore,
) -> (String, Decision, Option<Value>, Option<Value>) {
    let parsed: InputLine = match serde_json::from_str(line) {
        Ok(p) => p,
        Err(e) => {
            return (
                format!("line {n}"),
                Decision::deny(
                    Reason::InvalidRequest,
                    format!("line {n}: not a request object ({e}); expected {{\"id\"?,\"method\",\"path\",\"headers\"?,\"body\"?,\"claims\"?,\"token\"?,\"response\"?,\"expect\"?}}"),
                ),
                None,
                None,
            )
        }
    };
    let label = match &parsed.id {
        Some(id) => format!("{id}: {} {}", parsed.method, parsed.path),
        None => format!("{} {}", parsed.method, parsed.path),
    };
    let mut headers = Vec::new();
    for (name, v) in &parsed.headers {
        match v {
            HeaderValue::One(s) => headers.push((name.to_ascii_lowercase(), s.clone())),
            HeaderValue::Many(vs) => {
                headers.extend(vs.iter().map(|s| (name.to_ascii_lowercase(), s.clone())))
            }
        }
    }
    let body: Option<Vec<u8>> = match &parsed.body {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone().into_bytes()),
        Some(v) => Some(v.to_string().into_bytes()),
    };
    let req = RequestParts {
        method: &parsed.method,
        path: &parsed.path,
        headers: headers.into(),
        body: body.as_deref(),
    };
    let refuse = |why: &str| {
        let d = Decision::deny(Reason::InvalidRequest, format!("line {n}: {why}"));
        (label.clone(), d, parsed.expect.clone(), None)
    };
    let digest = match parsed.client_certificate.as_deref().map(str::trim) {
        None => None,
        Some(c) if c.starts_with("-----BEGIN") => match pem_sha256_hex(c) {
            Some(hex) => Some(hex),
            None => return refuse("\"client_certificate\" is not a PEM certificate"),
        },
        Some(c) if hex_thumbprint(c).is_some() => Some(c.to_string()),
        Some(_) => {
            return refuse("\"client_certificate\" must be a PEM certificate or its SHA-256 in hex")
        }
    };
    let connection = ConnectionFacts {
        peer_certificate_sha256_hex: digest.as_deref(),
        peer_address: parsed.source_address.as_deref(),
    };
    let in_request = !matches!(extract_bearer(&req, &config.token), Ok(None));
    let mut d = match (&parsed.claims, &parsed.token) {
        (Some(_), Some(_)) => return refuse("give either \"claims\" or \"token\", not both"),
        (Some(_), None) | (None, Some(_)) if in_request => {
            return refuse("the request carries a bearer token (Authorization header or access_token) and the line gives \"claims\"/\"token\" too; give the credential once")
        }
        // However the credential is given, the line's connection and the
        // run's replay cache are the request's, as in the filter.
        (Some(c), None) => {
            engine::decide_request(config, &req, Credential::Claims(c), connection, now, replay)
        }
        (None, Some(t)) => {
            engine::decide_request(config, &req, Credential::Token(t), connection, now, replay)
        }
        (None, None) => {
            engine::decide_request(config, &req, Credential::InRequest, connection, now, replay)
        }
    };
    let response = parsed
        .response
        .as_ref()
        .map(|r| check_line_response(config, &mut d, r));
    (label, d, parsed.expect.clone(), response)
}

fn explain_text(n: usize, label: &str, d: &Decision) -> String {
    let mut s = format!("#{n} {label}\n");
    let verdict = if d.is_allow() { "ALLOW" } else { "DENY" };
    s.push_str(&format!(
        "  decision: {verdict} (HTTP {}, {})\n",
        d.status,
        d.reason.as_str()
    ));
    if let Some(it) = &d.interaction {
        let mut what = serde_json::to_value(it.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        what.push_str(&format!(
            " at {} level",
            format!("{:?}", it.level).to_lowercase()
        ));
        if let Some(t) = &it.resource_type {
            what.push_str(&format!(" on {t}"));
        }
        if let Some(id) = &it.id {
            what.push_str(&format!("/{id}"));
        }
        if let Some(op) = &it.operation {
            what.push_str(&format!(" operation {op}"));
        }
        if let Some(c) = &it.compartment {
            what.push_str(&format!(" in compartment {}/{}", c.resource_type, c.id));
        }
        s.push_str(&format!("  interaction: {what}\n"));
    }
    s.push_str(&format!("  why: {}\n", d.message));
    if d.is_allow() && !d.required_scopes.is_empty() {
        s.push_str(&format!("  scopes used: {}\n", d.required_scopes.join(" ")));
    }
    let hint = d.scope_hint();
    if !d.is_allow() && !hint.is_empty() {
        s.push_str(&format!("  would be allowed with: {}\n", hint.join(" ")));
    }
    if let Some(rw) = &d.rewrite {
        s.push_str(&format!("  sent upstream as: {}\n", rw.path));
        for (name, value) in &rw.headers {
            s.push_str(&format!("    with {name}: {value}\n"));
        }
    }
    for o in &d.obligations {
        s.push_str(&format!(
            "  then: {}\n",
            serde_json::to_string(o).unwrap_or_default()
        ));
    }
    for e in &d.denied_entries {
        s.push_str(&format!(
            "  entry #{}: {} — {}\n",
            e.index,
            e.reason.as_str(),
            e.message
        ));
    }
    if let Some(b) = &d.bulk {
        s.push_str(&format!(
            "  then: Bulk Data {} decided by the filter's job registry (not offline)\n",
            b.action.as_str()
        ));
    }
    if let Some(l) = &d.labels {
        s.push_str(&explain_labels(l));
    }
    for g in &d.diagnostics {
        s.push_str(&format!("  note: {g}\n"));
    }
    s
}
