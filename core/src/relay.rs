//! The relay: an allowed request whose answer the filter must see (response
//! obligations: patient compartment, granular scopes, labels; a partly
//! allowed batch, whose answer is merged; a narrowed request whose headers
//! already went upstream) is sent by the filter itself through
//! `upstream.cluster`, and the answer becomes a local reply. This module
//! holds the rules of that call ([`fetch_call`], and [`call_headers`] for
//! every call made on a request's behalf) and of what the answer becomes
//! ([`relay_answer`]): checked, relayed, merged, or replaced by a denial.
//! The shells dispatch the call, read the answer, count and audit.

use crate::batch::{forwarded_request, merged_response};
use crate::config::Config;
use crate::decision::{Decision, Reason, Rewrite};
use crate::policy::{answer_gate, full_answer_request, AnswerGate, ResponseVerdict};
use crate::reply::{answered_entries, deny_reply, gateway_error_reply, Reply};
use crate::token::service::OutboundCall;
use serde_json::Value;

/// Request headers never copied into a call the filter makes: hop-by-hop,
/// length, and `Accept-Encoding` (the call asks for `identity`).
const NOT_COPIED: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "upgrade",
    "content-length",
    "expect",
    "accept-encoding",
];

/// Answer headers a relayed reply leaves out (the host sets its own).
const NOT_RELAYED: [&str; 4] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
];

/// The request's headers (`sent`: as they went upstream, or as they are
/// held) for a call the filter makes to `upstream.cluster` on its behalf:
/// without hop-by-hop and length headers, with `Accept-Encoding: identity`
/// (the answer must be read to be checked: never an encoded one) and an
/// `:authority` (the cluster's name when the request has none); for a
/// `read` of the stored resource also without the method, path, body,
/// conditional, `Prefer` and `Accept` headers (the read sets its own).
pub fn call_headers(
    config: &Config,
    sent: Vec<(String, String)>,
    read: bool,
) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = sent
        .into_iter()
        .filter(|(n, _)| {
            let n = n.to_ascii_lowercase();
            let replaced = read
                && (matches!(n.as_str(), ":method" | ":path" | "prefer" | "accept")
                    || n.starts_with("content-")
                    || n.starts_with("if-"));
            !(NOT_COPIED.contains(&n.as_str()) || replaced)
        })
        .collect();
    headers.push(("accept-encoding".into(), "identity".into()));
    if !headers.iter().any(|(n, _)| n == ":authority") {
        headers.push((":authority".into(), config.upstream.cluster.clone()));
    }
    headers
}

/// A call to `upstream.cluster` with these headers and body.
pub fn upstream_call(
    config: &Config,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
) -> OutboundCall {
    OutboundCall {
        cluster: config.upstream.cluster.clone(),
        headers,
        body,
        timeout_ms: config.upstream.timeout_ms,
    }
}

/// `rw` applied to a header list (`:path` and the headers it sets; an empty
/// value removes the header).
pub fn rewrite_headers(headers: &mut Vec<(String, String)>, rw: &Rewrite) {
    for (name, value) in rw.changes(None) {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        if let Some(value) = value {
            headers.push((name.to_string(), value.to_string()));
        }
    }
}

/// The call that fetches the answer of the allowed decision `d` (`sent`:
/// the request's headers; `body`: its body): rewritten when `d` narrows the
/// request, the full answer of a `GET` when it is checked, and of a partly
/// allowed batch only the allowed entries. `Err`: why the call cannot be
/// written.
pub fn fetch_call(
    config: &Config,
    d: &Decision,
    sent: Vec<(String, String)>,
    body: Option<Vec<u8>>,
) -> Result<OutboundCall, String> {
    let mut headers = call_headers(config, sent, false);
    if let Some(rw) = &d.rewrite {
        rewrite_headers(&mut headers, rw);
    }
    if !d.obligations.is_empty() {
        // The full answer of a GET, which the check reads.
        full_answer_request(&mut headers);
    }
    let body = match (body, d.is_partial_batch()) {
        (Some(b), true) => Some(
            forwarded_request(&b, &d.denied_entries)
                .map_err(|_| "the batch's allowed entries could not be written".to_string())?,
        ),
        (None, true) => return Err("the batch's allowed entries could not be written".into()),
        (body, false) => body,
    };
    Ok(upstream_call(config, headers, body))
}

/// The reply when the answer could not be fetched or relayed: 502, with
/// the headers every answer to the request carries.
pub fn failed_reply(d: Option<&Decision>, why: &str) -> Reply {
    let mut reply = gateway_error_reply(502, "transient", why);
    if let Some(d) = d {
        with_answer_headers(&mut reply, &d.reply_headers);
    }
    reply
}

/// `headers` set on `reply` (replacing those of the same name): the headers
/// every answer to a request carries (a fresh `DPoP-Nonce`), whichever way
/// it goes.
pub fn with_answer_headers(reply: &mut Reply, headers: &[(String, String)]) {
    for (name, value) in headers {
        reply.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        reply.headers.push((name.clone(), value.clone()));
    }
}

/// The answer the relay's call got.
#[derive(Debug, Clone, Copy)]
pub struct Fetched<'a> {
    /// `None`: no answer at all.
    pub status: Option<u16>,
    pub headers: &'a [(String, String)],
    pub body_size: usize,
}

/// What the relay does with the answer.
#[derive(Debug, Clone, PartialEq)]
pub enum RelayAnswer {
    /// The answer could not be used: the relay failed, why (502, or in
    /// shadow mode the request goes on through its route).
    Failed(String),
    /// The FHIR server did not serve a checked request (its own 502–504, or
    /// Envoy's for a refused or timed-out connection): relayed as the route
    /// would answer it, audited as a failed check (why) with its `status`.
    NotServed {
        status: u16,
        why: String,
        reply: Reply,
    },
    /// Checked (or, without obligations, only relayed).
    Checked {
        /// The obligations' result; `None` when there were none.
        check: Option<Result<(), String>>,
        /// The core's whole verdict on the body, when it was read and checked.
        verdict: Option<ResponseVerdict>,
        /// A failed check let through in shadow mode.
        would_deny: bool,
        /// The reply, or why the answer could not be relayed after all.
        then: Result<Reply, String>,
    },
}

/// What the answer `fetched` to the relay of decision `d` (for a request of
/// `method`) becomes. `read_body` reads the answer's body from the host (at
/// most once); `check` is the obligations' check of a JSON answer (the
/// core's `check_obligations`, or a test's script). Every reply carries the
/// decision's [`Decision::reply_headers`].
pub fn relay_answer(
    config: &Config,
    d: &Decision,
    method: &str,
    fetched: Fetched<'_>,
    read_body: &mut dyn FnMut() -> Vec<u8>,
    check: impl FnOnce(&Value) -> ResponseVerdict,
) -> RelayAnswer {
    let Some(status) = fetched.status else {
        return RelayAnswer::Failed("the FHIR server did not answer".into());
    };
    let checked = !d.obligations.is_empty();
    if checked && (502..=504).contains(&status) {
        let why = format!("the FHIR server did not serve the request (HTTP {status})");
        if !config.enforce {
            // Shadow mode: the request goes upstream through its route.
            return RelayAnswer::Failed(why);
        }
        let reply = relayed(d, status, fetched.headers, read_body());
        return RelayAnswer::NotServed { status, why, reply };
    }
    let mut body = None;
    let (check, verdict) = if checked {
        let (result, verdict) = check_answer(config, status, &fetched, &mut body, read_body, check);
        (Some(result), verdict)
    } else {
        (None, None)
    };
    let failed = check.as_ref().and_then(|r| r.as_ref().err());
    let would_deny = failed.is_some() && !config.enforce;
    let then = match failed {
        Some(why) if config.enforce => {
            let mut denial = Decision::deny(Reason::ResponseNotPermitted, why.clone());
            denial.reply_headers = d.reply_headers.clone();
            Ok(deny_reply(
                config,
                &denial,
                config.responses.obligation_denied_status,
            ))
        }
        Some(_) if fetched.body_size > config.max_body_bytes => {
            Err("the response is too large to relay in shadow mode".to_string())
        }
        _ => {
            let body = body.unwrap_or_else(read_body);
            relayed_answer(d, method, status, fetched.headers, body)
        }
    };
    RelayAnswer::Checked {
        check,
        verdict,
        would_deny,
        then,
    }
}

/// Whether the answer satisfies the obligations `check` checks (`Err` says why
/// not), and the core's whole verdict when the body was checked. A body it
/// reads is left in `body` for the relay: the label filter's body when the
/// core filtered it (enforced only).
fn check_answer(
    config: &Config,
    status: u16,
    fetched: &Fetched<'_>,
    body: &mut Option<Vec<u8>>,
    read_body: &mut dyn FnMut() -> Vec<u8>,
    check: impl FnOnce(&Value) -> ResponseVerdict,
) -> (Result<(), String>, Option<ResponseVerdict>) {
    if fetched.body_size > config.max_body_bytes {
        return (Err(format!(
            "the response is larger than {} bytes (max_body_bytes) and cannot be checked against the token's patient/granular scopes",
            config.max_body_bytes
        )), None);
    }
    match answer_gate(status, fetched.body_size) {
        AnswerGate::CheckBody => {}
        AnswerGate::Relay => return (Ok(()), None),
        AnswerGate::Refuse(why) => return (Err(why), None),
    }
    let encoding = fetched
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-encoding"))
        .map(|(_, v)| v)
        .filter(|v| !v.trim().eq_ignore_ascii_case("identity"));
    if let Some(encoding) = encoding {
        return (Err(format!(
            "the FHIR server sent the response encoded (Content-Encoding: {encoding}) although the filter asked for identity; it cannot be checked against the token's patient/granular scopes"
        )), None);
    }
    let bytes = body.get_or_insert_with(read_body);
    let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
        return (Err("the response is not JSON and cannot be checked against the token's patient/granular scopes".to_string()), None);
    };
    let verdict = check(&v);
    if let (Some(b), true) = (verdict.body(), config.enforce) {
        *body = Some(b.to_vec());
    }
    (verdict.result.clone(), Some(verdict))
}

/// The answer as the client gets it: a batch-response with the denied
/// entries back at their places (a refusal of the whole forwarded batch is
/// relayed as it is), without a body for a `HEAD` (fetched as `GET`).
fn relayed_answer(
    d: &Decision,
    method: &str,
    status: u16,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Result<Reply, String> {
    let mut reply = relayed(d, status, headers, body);
    if d.is_partial_batch() && (200..300).contains(&status) {
        let total = d.interaction.as_ref().map_or(0, |it| it.entries.len());
        reply.body = merged_response(&reply.body, total, &answered_entries(d))?;
    }
    if method == "HEAD" {
        reply.body.clear();
    }
    Ok(reply)
}

/// The fetched answer as a local reply, without its pseudo- and hop-by-hop
/// headers, with the headers every answer to the request carries.
fn relayed(d: &Decision, status: u16, headers: &[(String, String)], body: Vec<u8>) -> Reply {
    let headers = headers
        .iter()
        .filter(|(n, _)| !n.starts_with(':') && !NOT_RELAYED.contains(&n.as_str()))
        .cloned()
        .collect();
    let mut reply = Reply {
        status,
        headers,
        body,
    };
    with_answer_headers(&mut reply, &d.reply_headers);
    reply
}
