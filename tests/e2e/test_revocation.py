"""One issuer with keys and introspection (issue 20; Keycloak's JWTs and revocation): a JWT is
verified with the issuer's keys first (a forged one is refused without an introspection call),
then introspected; once the issuer revokes it, it is refused (401 token_inactive) as soon as the
cached introspection answer expires (introspection.max_cache_seconds)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from .fault_rig import FaultRig, reason_of


class RevocationRig(FaultRig):
    def plugin(self, name: str) -> dict[str, Any]:
        cfg = super().plugin(name)
        jwks, introspection = cfg["issuers"]
        jwks["introspection"] = dict(introspection["introspection"], max_cache_seconds=1)
        cfg["issuers"] = [jwks]
        return cfg


@pytest.fixture(scope="module")
def revocation():
    rig = RevocationRig().start()
    yield rig
    rig.stop()


def test_jwt_verified_then_introspected_and_revoked(revocation):
    iss = revocation.issuer
    token = iss.mint("patient", aud=revocation.base())
    before = iss.introspections
    ok = revocation.request("GET", "/Patient/pat-a", token=token)
    assert ok.status == 200, ok.body[:300]
    assert iss.introspections == before + 1, "introspected once verified"
    # A forged signature: refused by the keys, never introspected.
    head, payload, _ = token.split(".")
    forged = f"{head}.{payload}.{'A' * 342}"
    calls = iss.introspections
    r = revocation.request("GET", "/Patient/pat-a", token=forged)
    assert (r.status, reason_of(r)) == (401, "invalid_token"), r.body[:300]
    assert iss.introspections == calls
    # Revoked: refused once the cached answer (1 s) expires.
    iss.revoke(token)
    time.sleep(2.1)
    r = revocation.request("GET", "/Patient/pat-a", token=token)
    assert (r.status, reason_of(r)) == (401, "token_inactive"), r.body[:300]
    assert r.audit["reason"] == "token_inactive"
