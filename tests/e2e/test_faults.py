"""Faults in real Envoy (issue 8 item 12): the JWKS and introspection endpoints down, slow
past the timeout, answering garbage, a huge or a gzip-encoded body; the response-check
(obligation) fetch failing or encoded; a trapped VM. Each fault fails closed with the
documented status (README, "Faults"), an audit record and a metric, and the filter
recovers when the fault ends.

The fault rig (fault_rig.py) is its own Envoy with the shipped .wasm, and again with the native
module; the trap uses a separate test-only build with the `fault-injection` feature
(`make fault-wasm`; the native module's panic: test_native_faults.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from .fault_rig import FaultRig, reason_of
from .rig import REPO, WASM, native_unsupported_reason

ISSUER_FAULTS = ("down", "error", "slow", "garbage", "huge", "gzip")
FAULT_WASM = Path(os.environ.get("FHIR_AUTHZ_FAULT_WASM",
                                 REPO / "target/fault-injection/wasm32-wasip1/release/fhir_smart_authz.wasm"))


@pytest.fixture(scope="module", params=["wasm", "native"])
def faults(request):
    # the same faults for both builds of the filter (the native one: docs/native.md)
    if request.param == "native" and native_unsupported_reason():
        pytest.skip(native_unsupported_reason())
    # the issuer misbehaves from the start: the filter has no key set yet
    rig = FaultRig(issuer_fault="error", artifact=request.param).start()
    rig.issuer.fault_delay = 2.5  # past the filter's 1 s call timeouts
    rig.recorder.fault_delay = 2.5
    try:
        yield rig
    finally:
        rig.stop()


def token(rig: FaultRig) -> str:
    return rig.issuer.mint("patient", aud=rig.base())


def until_allowed(rig: FaultRig, make_token, path: str = "/Patient/pat-a", timeout: float = 15):
    """The fault is over: the same kind of request is allowed again within `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        r = rig.request("GET", path, token=make_token())
        if r.status == 200 or time.monotonic() > deadline:
            return r
        time.sleep(0.3)


def assert_refused(r, status: int, reason: str) -> None:
    assert r.status == status, (r.status, r.body[:300])
    assert reason_of(r) == reason, r.body[:300]
    assert r.audit and r.audit["decision"] == "deny" and r.audit["reason"] == reason, r.audit
    assert r.upstream is None, "a refused request never reaches the upstream"


# --- JWKS -------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ISSUER_FAULTS)
def test_jwks_fault_before_the_first_key_set_is_401_keys_unavailable(faults, mode):
    faults.issuer.fault = mode
    before = faults.counter("jwks_fetch.failure")
    r = faults.request("GET", "/Patient/pat-a", token=token(faults))
    assert_refused(r, 401, "keys_unavailable")
    assert r.headers["www-authenticate"].startswith('Bearer realm="fhir", error="invalid_token"')
    assert faults.counter("jwks_fetch.failure") > before
    assert faults.counter("jwks_fetch.success") == 0


def test_jwks_recovers_when_the_fault_ends(faults):
    faults.issuer.fault = None
    r = until_allowed(faults, lambda: token(faults))
    assert r.status == 200 and r.audit["reason"] == "allowed"
    assert faults.counter("jwks_fetch.success") >= 1
    # the filter asks for an unencoded key set
    assert faults.issuer.last_headers["/.well-known/jwks.json"].get("accept-encoding") == "identity"


def test_jwks_outage_keeps_the_last_good_keys_and_refuses_new_kids(faults):
    faults.issuer.fault = "down"
    assert faults.request("GET", "/Patient/pat-a", token=token(faults)).status == 200, "old kid: last good keys"
    faults.issuer.rotate()  # new kids, old keys dropped: only a fetch can verify new tokens
    time.sleep(1.1)  # jwks_min_refetch_seconds
    before = faults.counter("jwks_fetch.failure")
    r = faults.request("GET", "/Patient/pat-a", token=token(faults))
    assert_refused(r, 401, "invalid_token")
    assert "kid" in r.json()["issue"][0]["diagnostics"]
    assert faults.counter("jwks_fetch.failure") > before
    faults.issuer.fault = None
    time.sleep(1.1)
    assert until_allowed(faults, lambda: token(faults)).status == 200


# --- introspection ------------------------------------------------------------------

def opaque(rig: FaultRig) -> str:
    return rig.issuer.mint_opaque("patient", aud=rig.base())


@pytest.mark.parametrize("mode", ISSUER_FAULTS)
def test_introspection_fault_is_401_introspection_unavailable(faults, mode):
    faults.issuer.fault = mode
    before = faults.counter("introspection.failure")
    t = opaque(faults)
    r = faults.request("GET", "/Patient/pat-a", token=t)
    assert_refused(r, 401, "introspection_unavailable")
    assert faults.counter("introspection.failure") == before + 1
    # not cached: the same token works once the endpoint answers again
    faults.issuer.fault = None
    ok = faults.request("GET", "/Patient/pat-a", token=t)
    assert ok.status == 200 and ok.audit["reason"] == "allowed"
    assert faults.issuer.last_headers["/introspect"].get("accept-encoding") == "identity"


def test_inactive_token_is_an_answer_not_a_fault(faults):
    faults.issuer.fault = None
    before = (faults.counter("introspection.success"), faults.counter("introspection.failure"))
    r = faults.request("GET", "/Patient/pat-a", token="opaque-unknown-to-the-issuer")
    assert_refused(r, 401, "token_inactive")
    assert (faults.counter("introspection.success"), faults.counter("introspection.failure")) == \
        (before[0] + 1, before[1])


# --- the response-check (obligation) fetch ----------------------------------------------

OBLIGATION_FAULTS = [  # recorder fault → status, reason (None: Envoy's own answer, relayed), counter
    ("down", 503, None, "response_check.upstream_failure"),  # Envoy: upstream connect error
    ("slow", 504, None, "response_check.upstream_failure"),  # Envoy: upstream request timeout
    ("garbage", 403, "response_not_permitted", "response_check.fail"),
    ("huge", 403, "response_not_permitted", "response_check.fail"),
    ("gzip", 403, "response_not_permitted", "response_check.fail"),
]


@pytest.mark.parametrize("mode,status,reason,counter", OBLIGATION_FAULTS)
def test_obligation_fetch_fault_fails_closed(faults, mode, status, reason, counter):
    faults.issuer.fault = None
    faults.recorder.fault = mode
    before = faults.counter(counter)
    try:
        # a read by id under patient/ scopes: the filter fetches the answer to check it
        r = faults.request("GET", "/Observation/obs-1", token=token(faults), headers={"accept-encoding": "gzip"})
    finally:
        faults.recorder.fault = None
    assert r.status == status, (r.status, r.body[:300])
    assert reason_of(r) == reason, r.body[:300]
    assert b"Patient/pat-a" not in r.body, "the unchecked resource is never relayed"
    a = r.audit
    assert (a["decision"], a["reason"], a["obligation"], a["status"]) == \
        ("deny", "response_not_permitted", "failed", status), a
    assert faults.counter(counter) == before + 1
    assert r.record["response_code"] == status


def test_obligation_fetch_asks_for_identity_and_recovers(faults):
    faults.recorder.fault = None
    r = faults.request("GET", "/Observation/obs-1", token=token(faults), headers={"accept-encoding": "gzip"})
    assert r.status == 200 and r.json()["subject"]["reference"] == "Patient/pat-a"
    assert r.audit["obligation"] == "passed"
    # the recorder gzips whenever it may: the filter's fetch said it may not
    assert r.upstream is not None and r.upstream.header("accept-encoding") == "identity"


# --- /metadata from a server that compresses ---------------------------------------------

def test_metadata_is_fetched_unencoded_and_rewritten(faults):
    before = faults.counter("capability_statement.smart_added")
    r = faults.request("GET", "/metadata", headers={"accept-encoding": "gzip"})
    assert r.status == 200 and "content-encoding" not in r.headers
    security = r.json()["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    assert "description" not in security, "the server's own section is replaced"
    assert r.upstream.header("accept-encoding") == "identity"
    assert faults.counter("capability_statement.smart_added") == before + 1


def test_metadata_the_server_encodes_anyway_passes_unmodified(faults):
    faults.recorder.fault = "gzip"
    before = faults.counter("capability_statement.unmodified")
    try:
        r = faults.request("GET", "/metadata", headers={"accept-encoding": "gzip"})
    finally:
        faults.recorder.fault = None
    assert r.status == 200 and r.headers.get("content-encoding") == "gzip"
    assert r.json()["rest"][0]["security"] == {"description": "no authorization"}
    assert faults.counter("capability_statement.unmodified") == before + 1
    assert r.audit["reason"] == "public_endpoint"


# --- a trapped VM (test-only build) --------------------------------------------------------

def test_shipped_wasm_has_no_fault_injection():
    assert WASM.exists()
    assert b"x-fhir-smart-authz-fault" not in WASM.read_bytes()


@pytest.fixture(scope="module")
def trap_rig():
    if not FAULT_WASM.exists():
        pytest.fail(f"{FAULT_WASM} is missing: run `make fault-wasm` (make e2e does it)")
    # one VM per listener (own vm_id): a trap takes down only its own
    rig = FaultRig(wasm=FAULT_WASM, listeners={
        "closed": {"failure_policy": "FAIL_CLOSED", "vm_id": "fhir_smart_authz_closed"},
        "reload": {"failure_policy": "FAIL_RELOAD", "vm_id": "fhir_smart_authz_reload"},
    }).start()
    try:
        yield rig
    finally:
        rig.stop()


TRAP = {"x-fhir-smart-authz-fault": "trap"}


def test_trapped_vm_fail_closed_answers_503_and_never_forwards(trap_rig):
    t = trap_rig.issuer.mint("patient", aud=trap_rig.base("closed"))
    assert trap_rig.request("GET", "/Patient/pat-a", token=t, listener="closed").status == 200
    r = trap_rig.request("GET", "/Patient/pat-a", token=t, listener="closed", headers=TRAP)
    assert r.status == 503 and r.upstream is None
    assert r.audit is None, "the trapped VM wrote no audit record"
    assert r.record["response_code_details"] == "wasm_fail_stream"
    # the VM stays down: every later request is refused, none reaches the upstream
    for _ in range(3):
        later = trap_rig.request("GET", "/Patient/pat-a", token=t, listener="closed")
        assert later.status == 503 and later.upstream is None and later.audit is None
        assert later.record["upstream_host"] in (None, "", "-")
        assert later.record["response_code_details"] == "wasm_fail_stream"
    assert "fault injection: trap requested" in trap_rig.envoy.log.read_text(errors="replace")


def test_trapped_vm_fail_reload_recovers(trap_rig):
    t = trap_rig.issuer.mint("patient", aud=trap_rig.base("reload"))
    r = trap_rig.request("GET", "/Patient/pat-a", token=t, listener="reload", headers=TRAP)
    assert r.status == 503 and r.upstream is None and r.audit is None
    # Envoy reloads the VM (1 s back-off): the filter decides again, with a fresh key set
    deadline = time.monotonic() + 20
    while True:
        again = trap_rig.request("GET", "/Patient/pat-a", token=t, listener="reload")
        if again.status == 200 or time.monotonic() > deadline:
            break
        assert again.upstream is None, "nothing is forwarded while the VM is down"
        time.sleep(0.5)
    assert again.status == 200 and again.audit["reason"] == "allowed"
    denied = trap_rig.request("GET", "/Patient/pat-b", token=t, listener="reload")
    assert denied.status == 403 and denied.audit["reason"] == "patient_compartment_violation"
