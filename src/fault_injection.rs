//! Test-only fault injection (cargo feature `fault-injection`): a request
//! carrying `x-fhir-smart-authz-fault: trap` panics inside the VM, as a bug
//! would. The e2e Makefile target builds a separate .wasm with it
//! (`target/fault-injection/...`) to show what Envoy's `failure_policy` does
//! with a trapped VM; the shipped artifact is built without the feature and
//! does not contain this code (tests/e2e/test_faults.py checks its bytes).

use crate::host::{HeaderMap, Host};

/// The request header that asks for a trap.
pub const FAULT_HEADER: &str = "x-fhir-smart-authz-fault";

/// Panic (the VM traps: `panic = "abort"`) when the request asks for it
/// (`trap`; called in the request-headers hook).
pub fn trap_if_asked(host: &dyn Host) {
    trap_on(host, "trap");
}

/// The same in the response-headers hook, once the request was decided
/// and forwarded (`trap-response`; the native module's test build).
pub fn trap_on_response_if_asked(host: &dyn Host) {
    trap_on(host, "trap-response");
}

#[allow(clippy::panic)]
fn trap_on(host: &dyn Host, value: &str) {
    let asked = host
        .headers(HeaderMap::Request)
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case(FAULT_HEADER) && v == value);
    if asked {
        panic!("fault injection: {value} requested by {FAULT_HEADER}");
    }
}
