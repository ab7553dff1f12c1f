"""Session fixtures: one native rig (sekmet + issuer + recorder + Envoy with the
built .wasm) for the whole e2e session. Envoy is a child of this pytest
process (it gets SIGTERM if pytest dies)."""

from __future__ import annotations

import os

import pytest

from .rig import CLI, NATIVE, WASM, Rig, native_unsupported_reason


def pytest_report_header(config):  # noqa: ARG001
    return [f"fhir-smart-authz wasm: {WASM} ({'present' if WASM.exists() else 'MISSING: make build'})",
            f"fhir-smart-authz native: {NATIVE} ({'present' if NATIVE.exists() else 'MISSING: make build'})",
            f"fhir-smart-authz cli:  {CLI} ({'present' if CLI.exists() else 'MISSING: make cli'})"]


@pytest.fixture(scope="session")
def rig(wasm_rig):
    """The rig with the .wasm (tests that run on one artifact)."""
    return wasm_rig


@pytest.fixture(scope="session")
def wasm_rig():
    if not WASM.exists():
        pytest.fail(f"{WASM} is missing: run `make build` (make e2e does it)")
    # E2E_FHIR_URL: run the table against an already running FHIR server (e.g. HAPI of the
    # compose rig, http://127.0.0.1:8080/fhir) instead of starting sekmet-fhir.
    # E2E_ENVOY_CONCURRENCY: worker threads (default 1; >1 exercises JWKS sharing across VMs).
    r = Rig(upstream=os.environ.get("E2E_FHIR_URL", "sekmet"),
            concurrency=int(os.environ.get("E2E_ENVOY_CONCURRENCY", "1"))).start()
    try:
        yield r
    finally:
        r.stop()
        if os.environ.get("RIG_KEEP"):
            print(f"\nrig files kept in {r.workdir}")


@pytest.fixture(scope="module", params=["wasm", "native"])
def rig_of_each_artifact(request):
    """The session's rig of one artifact, the .wasm's then the native module's: a module that
    overrides `rig` with it runs every test on both builds (test ids end in [wasm]/[native])."""
    return request.getfixturevalue(f"{request.param}_rig")


@pytest.fixture(scope="session")
def native_rig():
    """The same rig with the native build (the dynamic module) on every listener."""
    why = native_unsupported_reason()
    if why:
        pytest.skip(why)
    if not NATIVE.exists():
        pytest.fail(f"{NATIVE} is missing: run `make build` (make e2e does it)")
    r = Rig(artifact="native", upstream=os.environ.get("E2E_FHIR_URL", "sekmet"),
            concurrency=int(os.environ.get("E2E_ENVOY_CONCURRENCY", "1"))).start()
    try:
        yield r
    finally:
        r.stop()
