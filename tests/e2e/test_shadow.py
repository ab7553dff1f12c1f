"""Shadow mode changes no traffic (issue 20): with `enforce: false`, every call the filter
makes on a request's behalf may fail (here: each names a cluster Envoy does not define)
and the request still reaches the FHIR server with its own answer, audited as what
enforcing would have done (`enforced: false`)."""

from __future__ import annotations

from typing import Any

import pytest

from .cases import OBS_NEW
from .fault_rig import FaultRig
from .rig import send


class ShadowRig(FaultRig):
    """The fault rig's listener in shadow mode, every filter call through a missing cluster:
    JWKS (`isuer`), introspection (`nowhere`), response fetch and write pre-check (`fhri`);
    a third issuer with inline keys so that a token verifies and the upstream calls happen."""

    def plugin(self, name: str) -> dict[str, Any]:
        cfg = super().plugin(name)
        jwks, introspection = cfg["issuers"]
        jwks["jwks_cluster"] = "isuer"
        introspection["introspection"]["cluster"] = "nowhere"
        inline = {"issuer": self.issuer.issuer_url + "#inline", "audiences": [self.base(name)],
                  "jwks": self.issuer.jwks()}
        cfg["issuers"] = [jwks, introspection, inline]
        cfg["upstream"]["cluster"] = "fhri"
        cfg["enforce"] = False
        return cfg


@pytest.fixture(scope="module")
def shadow():
    rig = ShadowRig().start()
    yield rig
    rig.stop()


PATIENT_SCOPE = "launch/patient patient/Observation.cruds patient/Patient.rs"


@pytest.mark.parametrize("case,method,path,credential,reason", [
    ("jwks cluster missing", "GET", "/Patient/pat-a", "jwks", "keys_unavailable"),
    ("introspection cluster missing", "GET", "/Patient/pat-a", "opaque", "introspection_unavailable"),
    ("response fetch cluster missing", "GET", "/Observation/obs-1", "inline", "response_not_permitted"),
    ("write pre-check cluster missing", "PUT", "/Observation/obs-pre", "inline", "upstream_unavailable"),
])
def test_failed_filter_calls_never_change_traffic(shadow, case, method, path, credential, reason):
    iss = shadow.issuer
    token = {
        "jwks": lambda: iss.mint("patient", aud=shadow.base(), scope=PATIENT_SCOPE),
        "opaque": lambda: iss.mint_opaque("patient", aud=shadow.base(), scope=PATIENT_SCOPE),
        "inline": lambda: iss.mint("patient", aud=shadow.base(), scope=PATIENT_SCOPE, iss=iss.issuer_url + "#inline"),
    }[credential]()
    body = {**OBS_NEW, "id": "obs-pre"} if method == "PUT" else None
    r = send(method, shadow.base() + path, shadow.access_log, shadow.recorder, "shadow-", token=token, body=body,
             content_type="application/fhir+json" if body else None)
    assert r.status == 200, (case, r.status, r.body[:300])
    assert r.upstream is not None, f"{case}: the request did not reach the FHIR server"
    assert r.upstream.method == method
    a = r.audit
    assert (a["enforced"], a["decision"], a["reason"]) == (False, "deny", reason), (case, a)

