"""End-to-end table against real Envoy running the built fhir_smart_authz.wasm.

Each row asserts: status, WWW-Authenticate (exact), the OperationOutcome of a
denial, whether the upstream saw the request, and the access-log audit record.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
import requests

from .cases import CASES, Case
from .rig import Envoy, cluster, envoy_bootstrap, free_port, issuer_entry, listener, plugin_config
from .tokens import make_token


# --- how the filter renders things (one place to follow its format) --------

def expected_www(case: Case, realm: str = "fhir") -> str | None:
    """RFC 6750 §3: `Bearer realm=".."` alone for a missing token, else with error (and scope)."""
    if case.www is None:
        return None
    parts = [f'realm="{realm}"']
    if case.www:
        parts.append(f'error="{case.www}"')
    if case.www_scope:
        parts.append(f'scope="{case.www_scope}"')
    return "Bearer " + ", ".join(parts)


def www_core(value: str | None) -> str | None:
    """The header without error_description (its wording is the filter's to choose)."""
    if value is None:
        return None
    return re.sub(r',\s*error_description="(?:[^"\\]|\\.)*"', "", value)


def audit_view(audit: dict[str, Any] | None) -> dict[str, Any]:
    """The fields the table asserts, picked out of the audit record."""
    if not audit:
        return {}
    return {
        "decision": audit.get("decision"),
        "reason": audit.get("reason"),
        "subtype": audit.get("subtype"),
        "action": audit.get("action"),
        "entity": audit.get("entity"),
        "required_scopes": audit.get("required_scopes"),
        "enforced": audit.get("enforced"),
    }


ACTIONS = {"read": "R", "vread": "R", "search": "E", "history": "R", "create": "C", "update": "U", "patch": "U",
           "delete": "D", "operation": "E", "batch": "E", "transaction": "E", "capabilities": "R",
           "smart-configuration": "R"}


def send(rig, case: Case):
    token = make_token(rig, case.token, case.listener)
    return rig.request(case.method, case.path, token=token, listener=case.listener, headers=case.headers,
                       body=case.body, content_type=case.content_type)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_table(rig, case: Case):
    resp = send(rig, case)
    statuses = case.status if isinstance(case.status, tuple) else (case.status,)
    detail = f"{case.method} {case.path} -> {resp.status} {resp.body[:400]!r}\naudit: {resp.audit}"
    assert resp.status in statuses, detail

    # WWW-Authenticate
    got_www = resp.headers.get("www-authenticate")
    want_www = expected_www(case)
    if want_www is None:
        assert got_www is None, detail
    else:
        assert www_core(got_www) == want_www, detail

    # OperationOutcome of a denial made by the filter
    upstream_expected = case.upstream if case.upstream is not None else (200 <= case.status_first < 300)
    if case.oo_code and not upstream_expected:
        assert resp.headers.get("content-type", "").startswith("application/fhir+json"), detail
        oo = resp.json()
        assert oo["resourceType"] == "OperationOutcome", detail
        assert oo["issue"][0]["severity"] == "error", detail
        assert oo["issue"][0]["code"] == case.oo_code, detail
        diag = oo["issue"][0].get("diagnostics", "")
        assert diag, detail
        if case.oo_diag:
            assert case.oo_diag in diag, detail
        assert "eyJ" not in json.dumps(oo), "a token leaked into the response"

    # did the upstream see it?
    rec = resp.record
    assert rec is not None
    saw_upstream = rec.get("upstream_host") not in (None, "", "-")
    assert saw_upstream == upstream_expected, f"upstream_host={rec.get('upstream_host')}; {detail}"
    if case.listener != "main":
        assert (resp.upstream is not None) == upstream_expected, detail
    assert rec["response_code"] == resp.status
    assert rec["method"] == case.method

    # the audit record
    view = audit_view(resp.audit)
    assert view, f"no audit record in the access log: {rec}"
    want_decision = case.decision or ("allow" if case.allowed else "deny")
    assert view["decision"] == want_decision, detail
    assert view["reason"] == case.reason, detail
    if case.subtype:
        assert view["subtype"] == case.subtype, detail
        assert view["action"] == ACTIONS[case.subtype], detail
    if case.entity:
        assert view["entity"] == case.entity, detail
    if case.required_scopes is not None:
        assert view["required_scopes"] == case.required_scopes, detail
    assert "eyJ" not in json.dumps(resp.audit), "a token leaked into the audit record"


def _status_first(self: Case) -> int:
    return self.status[0] if isinstance(self.status, tuple) else self.status


Case.status_first = property(_status_first)  # type: ignore[attr-defined]


def test_table_is_large_enough():
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"


# --- what reaches the upstream ----------------------------------------------

SPOOFED = {
    "x-smart-patient": "pat-b",
    "x-smart-scope": "system/*.cruds",
    "x-smart-client-id": "evil",
    "x-smart-subject": "Practitioner/evil",
    "x-fhir-authz-patient": "pat-b",
    "x-forwarded-user": "admin",
}


def test_spoofed_identity_headers_are_removed(rig):
    token = make_token(rig, ("patient", {}), "recorder")
    resp = rig.request("GET", "/Patient/pat-a", token=token, listener="recorder", headers=SPOOFED)
    assert resp.status == 200, resp.body
    up = resp.upstream
    assert up is not None
    for name, spoofed in SPOOFED.items():
        assert spoofed not in up.header_all(name), f"spoofed {name} reached the upstream: {up.headers}"


def test_forwarded_identity_headers(rig):
    token = make_token(rig, ("patient", {}), "recorder")
    resp = rig.request("GET", "/Patient/pat-a", token=token, listener="recorder")
    assert resp.status == 200
    up = resp.upstream
    assert up is not None
    fwd = {n: v for n, v in up.headers if n.startswith("x-smart-")}
    assert fwd.get("x-smart-patient") == "pat-a", up.headers
    assert fwd.get("x-smart-client-id") == "demo-patient-app", up.headers
    assert "patient/Patient.rs" in fwd.get("x-smart-scope", ""), up.headers


def test_denied_request_never_reaches_upstream(rig):
    token = make_token(rig, ("patient", {}), "recorder")
    resp = rig.request("GET", "/Patient/pat-b", token=token, listener="recorder")
    assert resp.status == 403
    assert resp.upstream is None


def test_shadow_mode_forwards_and_audits(rig):
    resp = rig.request("DELETE", "/Patient/pat-a", token=None, listener="shadow")
    assert resp.status == 200 and resp.upstream is not None
    assert resp.audit["decision"] == "deny" and resp.audit["reason"] == "missing_token"
    assert "www-authenticate" not in resp.headers


# --- key rotation -------------------------------------------------------------

def test_key_rotation_refetches_jwks(rig):
    iss = rig.rot_issuer
    before = make_token(rig, ("patient", {}), "rotation")
    r1 = rig.request("GET", "/Patient/pat-a", token=before, listener="rotation")
    assert r1.status == 200, r1.body
    old_kid = iss.kid("RS256")
    old_key = iss.keys["RS256"]
    fetches = iss.jwks_fetches
    new_kids = iss.rotate(keep_old=False)
    assert new_kids["RS256"] != old_kid
    after = make_token(rig, ("patient", {}), "rotation")
    r2 = rig.request("GET", "/Patient/pat-a", token=after, listener="rotation")
    if r2.status != 200:  # a refetch may be rate limited: allow the filter a moment
        time.sleep(2)
        r2 = rig.request("GET", "/Patient/pat-a", token=after, listener="rotation")
    assert r2.status == 200, f"token with the new kid refused after rotation: {r2.body!r} {r2.audit}"
    assert iss.jwks_fetches > fetches, "the filter never refetched the JWKS"
    # the old key is gone from the JWKS: a new token signed with it must not verify
    stale = iss.sign(iss.claims("patient", aud=rig.base("rotation")), key=old_key)
    r3 = rig.request("GET", "/Patient/pat-a", token=stale, listener="rotation")
    assert r3.status == 401, r3.body
    assert r3.audit["reason"] in ("invalid_token", "keys_unavailable"), r3.audit
    es = make_token(rig, ("patient", {"alg": "ES256"}), "rotation")
    r4 = rig.request("GET", "/Patient/pat-a", token=es, listener="rotation")
    assert r4.status == 200, r4.body


# --- metrics -------------------------------------------------------------------

def test_metrics_in_prometheus(rig):
    token = make_token(rig, ("patient", {}))
    rig.request("GET", "/Patient/pat-a", token=token)
    rig.request("GET", "/Patient/pat-b", token=token)
    text = rig.envoy.stats("prometheus")
    ours = [line for line in text.splitlines() if "fhir_smart_authz" in line and not line.startswith("#")
            and "envoy_wasm_" not in line]
    assert ours, "no fhir_smart_authz metrics in /stats/prometheus"
    names = " ".join(ours)
    assert "allow" in names and "deny" in names, ours[:20]


# --- bad configuration ----------------------------------------------------------

BAD_CONFIGS = {
    "not-json": "{this is not json",
    "unknown-field": json.dumps({"fhir_base_path": "/fhir", "enforse": False}),
    "bad-base-path": json.dumps({"fhir_base_path": "fhir"}),
}


@pytest.mark.parametrize("name", list(BAD_CONFIGS))
def test_bad_plugin_config_is_refused(rig, tmp_path, name):
    """Envoy must not serve a listener whose plugin configuration is invalid (FAIL_CLOSED)."""
    port, admin = free_port(), free_port()
    log = tmp_path / "access.log"
    boot = envoy_bootstrap(admin, [listener("bad", port, "recorder", BAD_CONFIGS[name], rig.wasm, log)],
                           [cluster("recorder", rig.recorder.port)], tmp_path / "admin.log")
    env = Envoy(tmp_path, f"bad-{name}", boot)
    try:
        env.proc = None
        from .rig import envoy_binary, start_process  # local: keep the helper surface small
        env.proc = start_process([str(envoy_binary()), "-c", str(env.config_path), "--concurrency", "1",
                                  "--base-id", str(admin)], env.log, cwd=tmp_path)
        deadline = time.monotonic() + 20
        served = False
        while time.monotonic() < deadline and env.proc.poll() is None:
            try:
                r = requests.get(f"http://127.0.0.1:{port}/fhir/metadata", timeout=1)
                if r.status_code < 500:
                    served = True
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        assert not served, "a listener with an invalid plugin configuration served a request"
        log_text = env.log.read_text(errors="replace")
        assert env.proc.poll() is not None or "fhir_smart_authz" in log_text or "wasm" in log_text.lower()
    finally:
        env.stop()


def test_plugin_config_is_the_documented_shape(rig):
    cfg = plugin_config(rig.base_url, [issuer_entry(rig.issuer, "issuer")])
    assert cfg["issuers"][0]["jwks_cluster"] == "issuer"
