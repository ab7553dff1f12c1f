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
from tests.conformance.servers import SEKMET
from tests.conformance.tokens import Tokens


@pytest.fixture(scope="module")
def conformance(rig) -> Ctx:
    seed(rig.sekmet.base_url)  # the data set as the checks expect it, whatever ran before
    redact = Redactor()
    return Ctx(Target(rig.base_url, max_requests=10_000, rate=0), Tokens(rig.issuer.issuer_url, {}, redact), redact,
               SEKMET, seeded=True, allow_writes=True, upstream=rig.sekmet.base_url)


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
