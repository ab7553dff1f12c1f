//! The write pre-check as the filter carries it out
//! ([`Obligation::CheckStored`]): before an update, patch or delete by id
//! under a patient/ scope goes upstream, the filter reads the stored
//! resource through `upstream.cluster` ([`read_call`]) and decides on it
//! (`policy::check_stored`); an allowed write is pinned to the checked
//! version where it still can be ([`if_match_pin`]), a refused one becomes
//! the refusal ([`refusal`]). The shells make the call.

use crate::config::Config;
use crate::decision::{Decision, Obligation, Reason};
use crate::relay::{call_headers, upstream_call};
use crate::token::service::OutboundCall;

/// The read of the stored resource of the first pre-check `d` still asks
/// for (`sent`: the request's headers): `GET [base]/type/id` as FHIR JSON,
/// with the request's other headers (`relay::call_headers`). `None`: no
/// pre-check left.
pub fn read_call(
    config: &Config,
    d: &Decision,
    sent: Vec<(String, String)>,
) -> Option<OutboundCall> {
    let base = &config.base.path;
    let path = d.obligations.iter().find_map(|o| match o {
        Obligation::CheckStored {
            resource_type, id, ..
        } => Some(format!("{base}/{resource_type}/{id}")),
        _ => None,
    })?;
    let mut headers = call_headers(config, sent, true);
    for (n, v) in [
        (":method", "GET"),
        (":path", &path),
        ("accept", "application/fhir+json"),
    ] {
        headers.push((n.to_string(), v.to_string()));
    }
    Some(upstream_call(config, headers, None))
}

/// The `If-Match` to set on a checked write (`if_match`: the version the
/// check read): only while its headers are still held, and never over the
/// client's own.
pub fn if_match_pin(
    if_match: Option<String>,
    headers_held: bool,
    request_headers: &[(String, String)],
) -> Option<String> {
    let client_pinned = request_headers.iter().any(|(n, _)| n == "if-match");
    if_match.filter(|_| headers_held && !client_pinned)
}

/// The denial a pre-check makes of the `allowed` write: its interaction and
/// required scopes kept.
pub fn refusal(allowed: Decision, reason: Reason, why: String) -> Decision {
    let mut d = Decision::deny(reason, why);
    d.interaction = allowed.interaction;
    d.required_scopes = allowed.required_scopes;
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pin_needs_held_headers_and_no_client_pin() {
        let checked = || Some("W/\"3\"".to_string());
        let client_pin = [("if-match".to_string(), "W/\"2\"".to_string())];
        // (headers held, the client's pin, the pin set)
        for (held, pinned, expected) in [
            (true, false, checked()),
            (false, false, None),
            (true, true, None),
        ] {
            let request = if pinned { &client_pin[..] } else { &[] };
            assert_eq!(
                if_match_pin(checked(), held, request),
                expected,
                "{held} {pinned}"
            );
        }
        assert_eq!(if_match_pin(None, true, &[]), None);
    }
}
