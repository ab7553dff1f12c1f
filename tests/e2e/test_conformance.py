"""The Inferno-style resource-server checks of the conformance tool
(tests/conformance/inferno.py, links.py) against the native rig: one list of checks
for both. A check marked `pending` (a filter feature not built yet) runs as
`xfail(strict=True)`: it fails the run once it passes, so the marker is removed when
the feature lands. The black-box e2e table itself runs in test_e2e.py, with the
audit-record assertions the conformance tool cannot make from outside."""

from __future__ import annotations

import pytest

from tests.conformance.checks import Ctx, run
from tests.conformance.data import seed
from tests.conformance.http import Redactor, Target
from tests.conformance.registry import INFERNO
from tests.conformance.servers import detect
from tests.conformance.tokens import Tokens


@pytest.fixture(scope="module")
def rig(rig_of_each_artifact):
    """Both builds: the .wasm's rig, then the native module's."""
    return rig_of_each_artifact


@pytest.fixture(scope="module")
def conformance(rig) -> Ctx:
    # sekmet, or the server of E2E_FHIR_URL (its links name the gateway only if its base-URL
    # setting is this rig's main listener)
    upstream = rig.sekmet.base_url if rig.sekmet else rig.upstream
    seed(upstream)  # the data set as the checks expect it, whatever ran before
    redact = Redactor()
    target = Target(rig.base_url, max_requests=10_000, rate=0)
    server = detect(target.request("GET", "/metadata").json_or_none())
    return Ctx(target, Tokens(rig.issuer.issuer_url, {}, redact), redact, server, seeded=True, allow_writes=True,
               upstream=upstream)


def _param(check):
    marks = [pytest.mark.xfail(strict=True, reason=f"pending: {check.pending}")] if check.pending else []
    return pytest.param(check, id=check.id, marks=marks)


@pytest.mark.parametrize("check", [_param(c) for c in INFERNO])
def test_check(conformance: Ctx, check):
    result = run(conformance, check, honour_pending=False)
    if result.status == "skip":
        pytest.fail(f"skipped on the native rig, which has everything: {result.detail}")
    assert result.status == "pass", (f"{result.request}: expected {result.expected}, got {result.actual}\n"
                                     f"{result.detail}")
