"""A panic inside the native module (issue 18): the test-only build with the
`fault-injection` feature (`make native-fault`) panics in the request-headers hook
when asked (`x-fhir-smart-authz-fault: trap`). The module catches it at the FFI
boundary: the request is answered 500 with an OperationOutcome and never forwarded,
Envoy keeps running, and the next request is decided as usual."""

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


@pytest.fixture(scope="module")
def panic_rig():
    why = native_unsupported_reason()
    if why:
        pytest.skip(why)
    if not FAULT_NATIVE.exists():
        pytest.fail(f"{FAULT_NATIVE} is missing: run `make native-fault`")
    rig = FaultRig(artifact="native", modules=FAULT_NATIVE.parent).start()
    try:
        yield rig
    finally:
        rig.stop()


def test_panic_is_answered_500_and_envoy_lives(panic_rig):
    t = panic_rig.issuer.mint("patient", aud=panic_rig.base())
    assert panic_rig.request("GET", "/Patient/pat-a", token=t).status == 200
    r = panic_rig.request("GET", "/Patient/pat-a", token=t, headers=TRAP)
    assert r.status == 500, (r.status, r.body[:300])
    assert r.headers["content-type"] == "application/fhir+json"
    oo = r.json()
    assert oo["resourceType"] == "OperationOutcome"
    assert [(i["severity"], i["code"]) for i in oo["issue"]] == [("error", "exception")]
    assert reason_of(r) is None, "a gateway failure, not a decision"
    assert r.upstream is None, "the request was never forwarded"
    assert panic_rig.envoy is not None and panic_rig.envoy.running(), "Envoy survived the panic"
    for path, status in (("/Patient/pat-a", 200), ("/Patient/pat-b", 403)):
        later = panic_rig.request("GET", path, token=t)
        assert later.status == status, (path, later.status, later.body[:300])
    assert "fault injection: trap requested" in panic_rig.envoy.log.read_text(errors="replace")
