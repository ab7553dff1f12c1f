//! A request a shell failed on: a panic caught at its boundary (the native
//! module catches every one; a wasm VM cannot, it traps). It is refused
//! like any denial, fail closed: 500 with reason `internal_error` and an
//! OperationOutcome, never forwarded, and it has an audit record, built
//! from what the shell still knows of it (the request line and the request
//! id; not the token, which the failed code may have been reading).

use crate::audit::{record_json, AuditInput};
use crate::config::Config;
use crate::decision::{Decision, Reason};
use crate::reply::{deny_reply, Reply};

/// What a client and the audit record are told.
pub const MESSAGE: &str =
    "the authorization filter failed while checking this request; it was not forwarded";

/// What the shell still knows of the failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedRequest<'a> {
    pub method: &'a str,
    /// `x-request-id`, if present.
    pub request_id: Option<&'a str>,
    /// Unix time in milliseconds (the shell's clock).
    pub now_ms: u64,
}

/// The denial the failure stands for.
pub fn failure_decision() -> Decision {
    Decision::deny(Reason::InternalError, MESSAGE)
}

/// The reply: the denial's, as every shell answers one.
pub fn failure_reply(config: &Config) -> Reply {
    let d = failure_decision();
    deny_reply(config, &d, d.status)
}

/// The audit record (JSON text, as [`record_json`] writes every record):
/// an enforced `internal_error` denial of an unclassified request, whatever
/// `enforce` says (a failed check is refused in shadow mode too).
pub fn failure_record(config: &Config, request: &FailedRequest<'_>) -> Vec<u8> {
    record_json(
        &config.audit,
        &AuditInput {
            method: request.method,
            request_id: request.request_id,
            decision: &failure_decision(),
            identity: None,
            enforced: true,
            now_ms: request.now_ms,
            obligation_result: None,
            obligation_denied_status: config.responses.obligation_denied_status,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn refused_500_internal_error_with_a_record() {
        let config = Config::from_json(br#"{"enforce": false}"#).unwrap();
        let r = failure_reply(&config);
        assert_eq!(r.status, 500);
        let outcome: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(outcome["issue"][0]["code"], "exception");
        assert_eq!(
            outcome["issue"][0]["details"]["coding"][0]["code"],
            "internal_error"
        );
        assert!(!r
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("www-authenticate")));
        let record: Value = serde_json::from_slice(&failure_record(
            &config,
            &FailedRequest {
                method: "POST",
                request_id: Some("req-1"),
                now_ms: 1_800_000_000_123,
            },
        ))
        .unwrap();
        let expected = [
            ("decision", json!("deny")),
            ("reason", json!("internal_error")),
            ("status", json!(500)),
            ("enforced", json!(true)),
            ("interaction", json!("unknown")),
            ("action", json!("C")),
            ("request_id", json!("req-1")),
            ("message", json!(MESSAGE)),
            ("entity", json!({})),
            ("agent", json!({"requestor": true})),
        ];
        for (key, value) in expected {
            assert_eq!(record[key], value, "{key}");
        }
    }
}
