"""A panic inside the native module (issue 18): the test-only build with the
`fault-injection` feature (`make native-fault`) panics when asked: in the request-headers
hook (`x-fhir-smart-authz-fault: trap`) or in the response-headers hook (`trap-response`).
The module catches it at the FFI boundary: the request is refused 500 `internal_error` with
an OperationOutcome (never forwarded, or its response replaced), counted as that denial and
audited (a record built from its request line and request id, valid against the schema), in
the encoding written at decision time (`"fields"`, the default) and in the one written when
Envoy logs the request (`"line"`); Envoy keeps running, and the next request is decided as
usual."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .fault_rig import FaultRig, reason_of
from .rig import NATIVE, REPO, native_unsupported_reason

FAULT_NATIVE = Path(os.environ.get("FHIR_AUTHZ_FAULT_NATIVE", REPO / "target/native-fault/libfhir_smart_authz.so"))
TRAP = {"x-fhir-smart-authz-fault": "trap"}


def test_shipped_native_module_has_no_fault_injection():
    if not NATIVE.exists():
        pytest.fail(f"{NATIVE} is missing: run `make build`")
    assert b"x-fhir-smart-authz-fault" not in NATIVE.read_bytes()


class PanicRig(FaultRig):
    """The fault rig with a second listener, `line`, writing its records at log time."""

    def plugin(self, name: str) -> dict:
        cfg = super().plugin(name)
        if name == "line":
            cfg["audit"] = {"encoding": "line"}
        return cfg


@pytest.fixture(scope="module")
def panic_rig():
    why = native_unsupported_reason()
    if why:
        pytest.skip(why)
    if not FAULT_NATIVE.exists():
        pytest.fail(f"{FAULT_NATIVE} is missing: run `make native-fault`")
    rig = PanicRig(artifact="native", modules=FAULT_NATIVE.parent, listeners={"faults": {}, "line": {}}).start()
    try:
        yield rig
    finally:
        rig.stop()


@pytest.mark.parametrize("listener", ["faults", "line"])
def test_panic_is_refused_500_audited_and_envoy_lives(panic_rig, listener):
    t = panic_rig.issuer.mint("patient", aud=panic_rig.base(listener))
    assert panic_rig.request("GET", "/Patient/pat-a", token=t, listener=listener).status == 200
    refused = panic_rig.counter("decision.deny.internal_error")
    r = panic_rig.request("POST", "/Patient?name=x", token=t, headers=TRAP, listener=listener)
    assert r.status == 500, (r.status, r.body[:300])
    assert r.headers["content-type"] == "application/fhir+json"
    assert "www-authenticate" not in r.headers
    oo = r.json()
    assert oo["resourceType"] == "OperationOutcome"
    assert [(i["severity"], i["code"]) for i in oo["issue"]] == [("error", "exception")]
    assert reason_of(r) == "internal_error"
    assert r.upstream is None, "the request was never forwarded"
    audit = r.audit
    assert audit is not None, r.record
    expected = {"decision": "deny", "reason": "internal_error", "status": 500, "enforced": True,
                "action": "C", "interaction": "unknown", "request_id": r.request_id,
                "method": "POST", "path": "/fhir/Patient", "response_code": 500}
    assert {k: audit.get(k) for k in expected} == expected, audit
    assert "agent" in audit and "user" not in audit["agent"], "nothing of the token"
    assert panic_rig.counter("decision.deny.internal_error") == refused + 1
    assert panic_rig.envoy is not None and panic_rig.envoy.running(), "Envoy survived the panic"
    for path, status in (("/Patient/pat-a", 200), ("/Patient/pat-b", 403)):
        later = panic_rig.request("GET", path, token=t, listener=listener)
        assert later.status == status, (path, later.status, later.body[:300])
    assert "fault injection: trap requested" in panic_rig.envoy.log.read_text(errors="replace")


@pytest.mark.parametrize("listener", ["faults", "line"])
def test_panic_in_the_response_refuses_it(panic_rig, listener):
    """A hook of the response panics (`trap-response`: the request was allowed and forwarded,
    its response is being checked): the response is refused in its place, 500 `internal_error`
    (fail closed: a panic may have cut a response check short), and the record says so."""
    t = panic_rig.issuer.mint("patient", aud=panic_rig.base(listener))
    refused = panic_rig.counter("decision.deny.internal_error")
    r = panic_rig.request("GET", "/Patient/pat-a", token=t, listener=listener,
                          headers={"x-fhir-smart-authz-fault": "trap-response"})
    assert r.status == 500, (r.status, r.body[:300])
    assert reason_of(r) == "internal_error"
    assert r.upstream is not None, "the request had been forwarded"
    expected = {"decision": "deny", "reason": "internal_error", "status": 500, "method": "GET",
                "path": "/fhir/Patient/pat-a", "request_id": r.request_id, "response_code": 500}
    assert {k: r.audit.get(k) for k in expected} == expected, r.audit
    assert panic_rig.counter("decision.deny.internal_error") == refused + 1
    assert panic_rig.request("GET", "/Patient/pat-a", token=t, listener=listener).status == 200
    assert panic_rig.envoy is not None and panic_rig.envoy.running()
