//! The response gates of a relayed response: when a decision carries
//! obligations (patient compartment / granular scope checks on the returned
//! resource) the shell fetches the response itself, and these rules say
//! what it does with the answer's status, headers and body: relay it as
//! served, refuse it before reading it, or read and check it; and how the
//! relayed or refused answer looks. Pure; every shell applies the same.

use crate::config::Config;
use crate::decision::{Decision, Reason};
use crate::reply::{deny_reply, Reply};
use serde_json::Value;

/// What to do with the fetched response before its body is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseGate {
    /// The FHIR server did not serve the request (502–504: unavailable, or
    /// Envoy's own answer for a refused or timed-out connection): relay the
    /// answer as the route would; the check failed for this reason.
    NotServed(String),
    /// Nothing to check (no obligations; an error answer or an empty body
    /// carries no resource): relay it.
    Pass,
    /// The check fails without reading the body (too large, encoded).
    Fail(String),
    /// Read the body, then check it ([`response_json`] and the obligations).
    ReadBody,
}

/// The gate for a fetched response. `checked`: the decision has obligations
/// (otherwise the response was fetched only to send a rewritten request).
pub fn response_gate(
    checked: bool,
    max_body_bytes: usize,
    status: u16,
    headers: &[(String, String)],
    body_size: usize,
) -> ResponseGate {
    if !checked {
        return ResponseGate::Pass;
    }
    if (502..=504).contains(&status) {
        return ResponseGate::NotServed(format!(
            "the FHIR server did not serve the request (HTTP {status})"
        ));
    }
    if body_size > max_body_bytes {
        return ResponseGate::Fail(format!(
            "the response is larger than {max_body_bytes} bytes (max_body_bytes) and cannot be checked against the token's patient/granular scopes"
        ));
    }
    if !(200..300).contains(&status) || body_size == 0 {
        return ResponseGate::Pass;
    }
    let encoding = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-encoding"))
        .map(|(_, v)| v)
        .filter(|v| !v.trim().eq_ignore_ascii_case("identity"));
    if let Some(encoding) = encoding {
        return ResponseGate::Fail(format!(
            "the FHIR server sent the response encoded (Content-Encoding: {encoding}) although the filter asked for identity; it cannot be checked against the token's patient/granular scopes"
        ));
    }
    ResponseGate::ReadBody
}

/// The body a [`ResponseGate::ReadBody`] response is checked on.
pub fn response_json(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice::<Value>(body).map_err(|_| {
        "the response is not JSON and cannot be checked against the token's patient/granular scopes"
            .to_string()
    })
}

/// The reply that replaces a response that failed its check (enforcing).
pub fn response_denied_reply(config: &Config, why: String) -> Reply {
    let denial = Decision::deny(Reason::ResponseNotPermitted, why);
    deny_reply(config, &denial, config.responses.obligation_denied_status)
}

/// The fetched response as the local reply that relays it, without its
/// hop-by-hop headers and pseudo-headers.
pub fn relayed_reply(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> Reply {
    let headers = headers
        .into_iter()
        .filter(|(n, _)| {
            !n.starts_with(':')
                && !matches!(
                    n.as_str(),
                    "content-length" | "transfer-encoding" | "connection" | "keep-alive"
                )
        })
        .collect();
    Reply {
        status,
        headers,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn gates_of_a_fetched_response() {
        let gz = h(&[("content-encoding", "gzip")]);
        let identity = h(&[("Content-Encoding", " identity ")]);
        let too_large = "the response is larger than 10 bytes (max_body_bytes) and cannot be checked against the token's patient/granular scopes";
        for (checked, status, headers, size, want) in [
            (false, 200, &gz, 99, ResponseGate::Pass),
            (false, 503, &gz, 0, ResponseGate::Pass),
            (true, 502, &identity, 5, ResponseGate::NotServed("the FHIR server did not serve the request (HTTP 502)".into())),
            (true, 504, &identity, 0, ResponseGate::NotServed("the FHIR server did not serve the request (HTTP 504)".into())),
            (true, 200, &identity, 11, ResponseGate::Fail(too_large.into())),
            (true, 404, &identity, 11, ResponseGate::Fail(too_large.into())),
            (true, 404, &gz, 5, ResponseGate::Pass),
            (true, 500, &identity, 5, ResponseGate::Pass),
            (true, 200, &identity, 0, ResponseGate::Pass),
            (true, 200, &gz, 5, ResponseGate::Fail("the FHIR server sent the response encoded (Content-Encoding: gzip) although the filter asked for identity; it cannot be checked against the token's patient/granular scopes".into())),
            (true, 200, &identity, 5, ResponseGate::ReadBody),
            (true, 201, &h(&[]), 10, ResponseGate::ReadBody),
        ] {
            assert_eq!(response_gate(checked, 10, status, headers, size), want, "{checked} {status} {headers:?} {size}");
        }
        assert!(response_json(b"{\"a\":1}").is_ok());
        assert_eq!(
            response_json(b"<xml/>"),
            Err("the response is not JSON and cannot be checked against the token's patient/granular scopes".to_string())
        );
    }

    #[test]
    fn relayed_reply_drops_hop_by_hop_and_pseudo_headers() {
        let r = relayed_reply(
            201,
            h(&[
                (":status", "201"),
                ("content-type", "application/fhir+json"),
                ("content-length", "2"),
                ("transfer-encoding", "chunked"),
                ("connection", "close"),
                ("keep-alive", "5"),
                ("etag", "W/\"1\""),
            ]),
            b"{}".to_vec(),
        );
        assert_eq!(
            r,
            Reply {
                status: 201,
                headers: h(&[
                    ("content-type", "application/fhir+json"),
                    ("etag", "W/\"1\"")
                ]),
                body: b"{}".to_vec(),
            }
        );
    }

    #[test]
    fn a_response_that_fails_its_check_is_replaced_by_the_configured_status() {
        let config =
            Config::from_json(br#"{"responses":{"obligation_denied_status":404}}"#).unwrap();
        let r = response_denied_reply(&config, "not the patient's".into());
        assert_eq!(r.status, 404);
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            v["issue"][0]["details"]["coding"][0]["code"],
            "response_not_permitted"
        );
        assert_eq!(v["issue"][0]["diagnostics"], "not the patient's");
    }
}
