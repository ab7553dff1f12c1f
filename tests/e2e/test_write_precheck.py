"""The write pre-check in real Envoy: a write by id under a patient/ scope is held
while the filter reads the stored resource through `upstream.cluster`; it goes on
pinned to the checked version (`If-Match`), or is refused; a read that fails fails
closed (502) with an audit record and a metric."""

from __future__ import annotations

import json
import time

from .cases import OBS_NEW, PW
from .rig import Envoy, cluster, envoy_bootstrap, free_port, issuer_entry, listener, plugin_config
from .test_e2e import prometheus_counters
from .tokens import make_token


def seen_upstream(rig, request_id: str) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in rig.recorder.requests if r.header("x-request-id") == request_id]


def test_allowed_write_is_pinned_to_the_checked_version(rig):
    """The recorder answers the read with version 1 and Patient/pat-a: the PUT reaches it
    after the read, with `If-Match: W/"1"` (headers held on the recorder listener); a
    client's own If-Match is kept."""
    token = make_token(rig, PW, "recorder")
    body = {**OBS_NEW, "id": "obs-pre"}
    resp = rig.request("PUT", "/Observation/obs-pre?_pretty=true", token=token, listener="recorder", body=body)
    assert resp.status == 200, resp.body
    assert seen_upstream(rig, resp.request_id) == [("GET", "/fhir/Observation/obs-pre"),
                                                   ("PUT", "/fhir/Observation/obs-pre?_pretty=true")]
    read, write = [r for r in rig.recorder.requests if r.header("x-request-id") == resp.request_id]
    assert read.header("accept-encoding") == "identity"
    assert read.header("accept") == "application/fhir+json"
    assert read.header("content-type") is None and read.body == b""
    assert read.header("x-smart-patient") == "pat-a"
    assert write.header("if-match") == 'W/"1"'
    assert resp.audit["decision"] == "allow" and resp.audit["reason"] == "allowed"

    kept = rig.request("PUT", "/Observation/obs-pre", token=token, listener="recorder", body=body,
                       headers={"If-Match": 'W/"7"'})
    assert kept.status == 200, kept.body
    write = [r for r in rig.recorder.requests if r.header("x-request-id") == kept.request_id][-1]
    assert write.method == "PUT" and write.header_all("if-match") == ['W/"7"']


def test_released_headers_write_is_checked_then_continues(rig):
    """Envoy's default (the rotation listener, headers released before the body): the
    read is made from the copy of the headers kept at their release, the body waits
    for it, and the write goes on without If-Match (its headers are already upstream)."""
    token = make_token(rig, PW, "rotation")
    body = {**OBS_NEW, "id": "obs-pre"}
    resp = rig.request("PUT", "/Observation/obs-pre", token=token, listener="rotation", body=body)
    assert resp.status == 200, resp.body
    seen = [r for r in rig.recorder.requests if r.header("x-request-id") == resp.request_id]
    assert [(r.method, r.path) for r in seen] == [("GET", "/fhir/Observation/obs-pre"),
                                                  ("PUT", "/fhir/Observation/obs-pre")]
    read, write = seen
    assert read.header("x-smart-patient") == "pat-a" and read.header("accept-encoding") == "identity"
    assert write.header("if-match") is None
    assert write.body == json.dumps(body).encode()


def test_refused_write_never_reaches_the_upstream(rig):
    """The stored resource belongs to another patient (sekmet on the main listener): 403,
    and only the read reached the server."""
    token = make_token(rig, PW)
    before = prometheus_counters(rig)
    resp = rig.request("DELETE", "/Observation/obs-b1", token=token)
    assert resp.status == 403, resp.body
    assert resp.audit["reason"] == "patient_compartment_violation"
    assert "Observation/obs-b1" in resp.json()["issue"][0]["diagnostics"]
    assert rig.request("GET", "/Observation/obs-b1", token=make_token(rig, ("clinician", {}))).status == 200
    after = prometheus_counters(rig)
    assert after.get("fhir_smart_authz_precheck_fail", 0) - before.get("fhir_smart_authz_precheck_fail", 0) == 1


def test_failed_read_fails_closed(rig, tmp_path):
    """`upstream.cluster` names a cluster nobody listens on: the read fails, the write is
    refused with 502 (`upstream_unavailable`, OperationOutcome `transient`), audited and
    counted, and never reaches the route's upstream."""
    port, admin, dead = free_port(), free_port(), free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    config = plugin_config(base, [dict(issuer_entry(rig.issuer, "issuer", inline=True), audiences=[base])],
                           cluster="dead", hold=True)
    log = tmp_path / "access.log"
    boot = envoy_bootstrap(admin, [listener("deadread", port, "recorder", config, rig.wasm, log)],
                           [cluster("recorder", rig.recorder.port), cluster("dead", dead)], tmp_path / "admin.log")
    env = Envoy(tmp_path, "deadread", boot).start()
    try:
        import requests

        token = rig.issuer.mint("patient", aud=base, scope="launch/patient patient/Observation.cruds")
        rid = "e2e-deadread-1"
        deadline = time.monotonic() + 60
        while True:  # the worker VM loads after /ready
            r = requests.put(f"{base}/Observation/obs-pre", json={**OBS_NEW, "id": "obs-pre"}, timeout=30,
                             headers={"Authorization": f"Bearer {token}", "x-request-id": rid,
                                      "Content-Type": "application/fhir+json"})
            if r.status_code != 503 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert r.status_code == 502, r.text
        oo = r.json()
        assert oo["issue"][0]["code"] == "transient"
        assert oo["issue"][0]["details"]["coding"][0]["code"] == "upstream_unavailable"
        assert "www-authenticate" not in {k.lower() for k in r.headers}
        time.sleep(0.3)
        assert not rig.recorder.arrived(rid), "the write reached the upstream"
        stats = env.stats("prometheus")
        assert "fhir_smart_authz_precheck_upstream_failure" in stats, stats[-2000:]
        line = next(ln for ln in log.read_text().splitlines() if rid in ln)
        assert '"upstream_unavailable"' in line, line
    finally:
        env.stop()
