"""End-to-end table against real Envoy running the built filter: every test here runs
twice, on the .wasm and on the native dynamic module (the `rig` fixture below), with the
same expectations.

Each row asserts: status, WWW-Authenticate (exact), the OperationOutcome of a
denial, whether the upstream saw the request, and the access-log audit record.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import jwt
import pytest
import requests

from .cases import CASES, Case
from .rig import Envoy, cluster, envoy_bootstrap, free_port, issuer_entry, listener, plugin_config
from .tokens import make_token


@pytest.fixture(scope="module", params=["wasm", "native"])
def rig(request):
    """The rig of one artifact: the session's .wasm rig or the native module's."""
    return request.getfixturevalue(f"{request.param}_rig")


# --- how the filter renders things (one place to follow its format) --------

SCOPE_CAN_HELP = {"insufficient_scope", "operation_not_permitted", "bundle_entry_denied"}


def expected_www(case: Case, required_scopes: list[str], realm: str = "fhir") -> str | None:
    """RFC 6750 §3: `Bearer realm=".."` alone for a missing token, else with the error,
    and for insufficient_scope the scopes that would allow the request (§3: `scope`)."""
    if case.www is None:
        return None
    parts = [f'realm="{realm}"']
    if case.www:
        parts.append(f'error="{case.www}"')
    # only a denial more scope can help suggests scopes (core Reason::more_scope_can_help):
    # another patient's data, a granular restriction or a failed response check do not
    # (a Bundle's hint is that of its entries more scope can help: `www_scope` says it exactly)
    if case.www == "insufficient_scope":
        hint = case.www_scope if case.www_scope is not None else (
            " ".join(required_scopes) if case.reason in SCOPE_CAN_HELP else "")
        if hint:
            parts.append(f'scope="{hint}"')
    return "Bearer " + ", ".join(parts)


def www_core(value: str | None) -> str | None:
    """The header without error_description (its wording is the filter's to choose) and
    resource_metadata (the RFC 9728 URL, asserted on its own)."""
    if value is None:
        return None
    value = re.sub(r',\s*error_description="(?:[^"\\]|\\.)*"', "", value)
    return re.sub(r',\s*resource_metadata="[^"]*"', "", value)


def entity_ref(entity: dict[str, Any]) -> str | None:
    """`Type/id` of the audit record's entity, when it names one instance."""
    if entity.get("resource_type") and entity.get("id"):
        return f"{entity['resource_type']}/{entity['id']}"
    return None


def audit_view(audit: dict[str, Any] | None) -> dict[str, Any]:
    """The fields the table asserts, picked out of the audit record."""
    if not audit:
        return {}
    return {
        "decision": audit.get("decision"),
        "reason": audit.get("reason"),
        "subtype": audit.get("subtype"),
        "action": audit.get("action"),
        "entity": entity_ref(audit.get("entity") or {}),
        "required_scopes": audit.get("required_scopes"),
        "enforced": audit.get("enforced"),
    }


# IHE BALP: AuditEvent.action per restful-interaction (searches and operations execute)
ACTIONS = {"read": "R", "vread": "R", "search": "E", "history": "R", "create": "C", "update": "U", "patch": "U",
           "delete": "D", "operation": "E", "batch": "E", "transaction": "E", "capabilities": "R",
           "smart-configuration": "R"}


def send(rig, case: Case):
    token = make_token(rig, case.token, case.listener)
    resp = rig.request(case.method, case.path, token=token, listener=case.listener, headers=case.headers,
                       body=case.body, content_type=case.content_type)
    resp.token = token
    return resp


def expected_facts(token: str | None) -> dict[str, str]:
    """The x-smart-* headers the upstream must get for a verified token (none without one)."""
    if token is None:
        return {}
    c = jwt.decode(token, options={"verify_signature": False})
    patient = c.get("patient")
    if patient is None and str(c.get("fhirUser", "")).startswith("Patient/"):
        patient = c["fhirUser"].split("/", 1)[1]
    facts = {"x-smart-patient": patient, "x-smart-fhir-user": c.get("fhirUser"),
             "x-smart-client-id": c.get("client_id"), "x-smart-scope": c.get("scope"),
             "x-smart-subject": c.get("sub"), "x-smart-issuer": c.get("iss")}
    return {k: v for k, v in facts.items() if v}


def _param(case: Case):
    marks = [pytest.mark.xfail(reason=case.known_gap, strict=False)] if case.known_gap else []
    return pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_table(rig, case: Case):
    resp = send(rig, case)
    statuses = case.status if isinstance(case.status, tuple) else (case.status,)
    detail = f"{case.method} {case.path} -> {resp.status} {resp.body[:400]!r}\naudit: {resp.audit}"
    assert resp.status in statuses, detail

    # WWW-Authenticate
    got_www = resp.headers.get("www-authenticate")
    want_www = expected_www(case, (resp.audit or {}).get("required_scopes") or [])
    if want_www is None:
        assert got_www is None, detail
    else:
        assert www_core(got_www) == want_www, detail
        if case.www:
            assert 'error_description="' in got_www, detail
        if resp.status == 401:  # RFC 9728 §5.1: the challenge names the metadata
            assert re.search(r'resource_metadata="http://127\.0\.0\.1:\d+/\.well-known/oauth-protected-resource/fhir"',
                             got_www), detail

    # OperationOutcome of a denial made by the filter
    upstream_expected = case.upstream if case.upstream is not None else (200 <= case.status_first < 300)
    if case.oo_code and resp.status >= 400:
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

    # did the upstream process it? Through the router the access log says `via_upstream`;
    # a response under obligations is fetched by the filter itself and relayed (audit
    # `obligation`: passed/failed). A denial is a local reply: headers of a request whose
    # decision needs its body may have gone upstream, but never the body.
    rec = resp.record
    assert rec is not None
    audit = resp.audit or {}
    # a partly allowed batch is forwarded by the filter (its allowed entries) and merged
    partial_batch = audit.get("decision") == "allow" and bool(audit.get("denied_entries"))
    relayed = audit.get("obligation") in ("passed", "failed") or partial_batch
    processed = rec.get("response_code_details") == "via_upstream" or relayed
    assert processed == upstream_expected, f"upstream: {rec.get('response_code_details')!r}, relayed={relayed}; {detail}"
    if case.listener != "main":
        assert (resp.upstream is not None) == upstream_expected, detail
    if resp.upstream is not None:  # exactly the verified facts, nothing the client sent
        fwd = {n: v for n, v in resp.upstream.headers if n.startswith("x-smart-")}
        assert fwd == expected_facts(resp.token if isinstance(case.token, tuple) else None), detail
    if case.upstream_path is not None:  # the request as the filter rewrote it
        assert resp.upstream is not None, detail
        assert resp.upstream.path == case.upstream_path, detail
    for name, value in case.upstream_headers.items():
        assert resp.upstream is not None and resp.upstream.header_all(name) == [value], detail
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


def test_table_is_large_enough():
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"


# --- what reaches the upstream ----------------------------------------------

# the filter's fact headers (upstream.header_prefix "x-smart-"): incoming copies are always removed
SPOOFED = {
    "x-smart-patient": "pat-b",
    "x-smart-scope": "system/*.cruds",
    "x-smart-client-id": "evil",
    "x-smart-subject": "Practitioner/evil",
    "x-smart-fhir-user": "Practitioner/evil",
    "x-smart-issuer": "https://evil.example.org",
    "x-smart-anything": "the whole prefix is reserved",
    "x-forwarded-user": "admin",  # upstream.remove_headers on the recorder listener
}


def test_spoofed_identity_headers_are_removed(rig):
    token = make_token(rig, ("patient", {}), "recorder")
    resp = rig.request("GET", "/Patient/pat-a", token=token, listener="recorder", headers=SPOOFED)
    assert resp.status == 200, resp.body
    up = resp.upstream
    assert up is not None
    for name, spoofed in SPOOFED.items():
        assert spoofed not in up.header_all(name), f"spoofed {name} reached the upstream: {up.headers}"
    assert up.header("x-forwarded-user") is None
    assert up.header("x-smart-anything") is None


@pytest.mark.parametrize("value", ["caf\xe9", "\xff"], ids=["latin1", "ff"])
def test_header_value_that_is_not_utf8_is_refused_and_the_vm_lives(rig, value):
    """The SDK's `get_map` would trap the VM on such a value (503 for every later request under
    FAIL_CLOSED); the filter reads bytes and refuses the request, naming the header."""
    token = make_token(rig, ("patient", {}), "recorder")
    resp = rig.request("GET", "/Patient/pat-a", token=token, listener="recorder", headers={"X-Note": value})
    assert resp.status == 400, resp.body
    assert (resp.audit or {}).get("reason") == "invalid_request", resp.record
    assert "the `x-note` header's value is not plain text" in resp.body.decode(), resp.body
    assert resp.upstream is None
    after = rig.request("GET", "/Patient/pat-a", token=token, listener="recorder")
    assert after.status == 200, after.body


def test_forwarded_identity_headers(rig):
    token = make_token(rig, ("patient", {}), "recorder")
    resp = rig.request("GET", "/Patient/pat-a", token=token, listener="recorder")
    assert resp.status == 200
    up = resp.upstream
    assert up is not None
    fwd = {n: v for n, v in up.headers if n.startswith("x-smart-")}
    assert fwd == {
        "x-smart-patient": "pat-a",
        "x-smart-fhir-user": "Patient/pat-a",
        "x-smart-client-id": "demo-patient-app",
        "x-smart-scope": rig.issuer.claims("patient")["scope"],
        "x-smart-subject": "Patient/pat-a",
        "x-smart-issuer": rig.issuer.issuer_url,
    }, up.headers
    # upstream.strip_authorization is false in the rig: the upstream may re-check the token
    assert up.header("authorization") == f"Bearer {token}"


def test_denied_request_never_reaches_upstream(rig):
    token = make_token(rig, ("patient", {}), "recorder")
    resp = rig.request("GET", "/Patient/pat-b", token=token, listener="recorder")
    assert resp.status == 403
    assert resp.upstream is None


def test_batch_answers_a_denied_entry_in_place(rig):
    """Issue 17: a batch answers per entry. The allowed entries reach the FHIR server; the
    client's batch-response holds every entry in order, the denied one answered in place."""
    token = make_token(rig, ("patient", {}), "main")
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": "Patient/pat-a"}},
        {"request": {"method": "GET", "url": "Patient/pat-b"}},
        {"request": {"method": "GET", "url": "Observation?patient=pat-a"}}]}
    resp = rig.request("POST", "", token=token, body=batch)
    assert resp.status == 200, resp.body[:400]
    answer = resp.json()
    assert answer["type"] == "batch-response"
    entries = answer["entry"]
    assert len(entries) == 3
    assert entries[0]["response"]["status"].startswith("200")
    assert entries[0]["resource"]["id"] == "pat-a"
    assert entries[1]["response"]["status"] == "403 Forbidden"
    outcome = entries[1]["response"]["outcome"]
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "forbidden"
    assert "pat-b" not in json.dumps(entries[0]) + json.dumps(entries[2].get("resource", {}))
    assert entries[2]["response"]["status"].startswith("200")
    assert resp.audit["decision"] == "allow" and resp.audit["denied_entries"] == [1]


def obs_for(patient: str) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "subject": {"reference": f"Patient/{patient}"}}


def txn_creating(*patients: str) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": obs_for(p), "request": {"method": "POST", "url": "Observation"}} for p in patients]}


# A patient app that may create and search Observations of its patient (pat-a).
WRITER = ("patient", {"scope": "launch/patient openid fhirUser patient/Observation.crs"})

# Denied body decisions: (method, path, body, reason)
HELD_DENIALS = [
    ("POST", "/Observation", obs_for("pat-b"), "patient_compartment_violation"),
    ("POST", "", txn_creating("pat-a", "pat-b"), "bundle_entry_denied"),
]


@pytest.mark.parametrize("method,path,body,reason", HELD_DENIALS, ids=["create", "transaction"])
def test_held_denial_never_reaches_upstream(rig, method, path, body, reason):
    """upstream.hold_headers_for_body with Envoy's allow_on_headers_stop_iteration (the
    recorder listener): a request denied on its body is answered locally and the upstream
    sees nothing at all, not even its headers."""
    token = make_token(rig, WRITER, "recorder")
    resp = rig.request(method, path, token=token, listener="recorder", body=body)
    assert resp.status == 403, resp.body
    assert resp.audit["reason"] == reason, resp.audit
    time.sleep(0.3)
    assert not rig.recorder.arrived(resp.request_id), "the upstream saw the headers of a denied request"
    assert resp.upstream is None


@pytest.mark.parametrize("method,path,body", [
    ("POST", "/Observation", obs_for("pat-a")),
    ("POST", "", txn_creating("pat-a", "pat-a")),
    ("POST", "/Observation/_search", "patient=pat-a&code=x"),
], ids=["create", "transaction", "search-form"])
def test_held_allowed_body_arrives_complete_with_facts(rig, method, path, body):
    """Held and allowed: the upstream gets the complete body and the forwarded facts."""
    token = make_token(rig, WRITER, "recorder")
    ctype = "application/x-www-form-urlencoded" if isinstance(body, str) else None
    resp = rig.request(method, path, token=token, listener="recorder", body=body, content_type=ctype)
    assert resp.status in (200, 201), resp.body
    up = resp.upstream
    assert up is not None, "the allowed request did not reach the upstream"
    sent = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    assert up.body == sent
    assert up.header("x-smart-patient") == "pat-a"
    assert up.header("x-smart-client-id") == "demo-patient-app"
    assert up.header("x-smart-issuer") == rig.issuer.issuer_url


def test_released_denial_sends_headers_but_never_the_body(rig):
    """Envoy's default (no allow_on_headers_stop_iteration; the rotation listener): the
    headers of a body-decided request go upstream once the token is verified; a denial
    resets the upstream request before its body arrives."""
    token = make_token(rig, WRITER, "rotation")
    resp = rig.request("POST", "/Observation", token=token, listener="rotation", body=obs_for("pat-b"))
    assert resp.status == 403, resp.body
    assert resp.audit["reason"] == "patient_compartment_violation", resp.audit
    time.sleep(0.3)
    assert resp.upstream is None, "the recorder received a complete denied request"
    # the contrast with held mode: the headers did reach the upstream
    assert rig.recorder.arrived(resp.request_id), "expected the released headers upstream"
    ok = rig.request("POST", "/Observation", token=token, listener="rotation", body=obs_for("pat-a"))
    assert ok.status == 201, ok.body
    assert ok.upstream is not None and ok.upstream.body == json.dumps(obs_for("pat-a")).encode()
    assert ok.upstream.header("x-smart-patient") == "pat-a"


def test_released_narrowed_search_is_sent_rewritten(rig):
    """A narrowed POST _search whose headers went upstream before its body decision (the
    rotation listener, Envoy's default): the filter sends the rewritten request itself and
    relays the answer; the original request, which never got its body, is reset. The
    upstream never processes the unnarrowed search."""
    token = make_token(rig, WRITER, "rotation")
    resp = rig.request("POST", "/Observation/_search", token=token, listener="rotation", body="code=x",
                       content_type="application/x-www-form-urlencoded")
    assert resp.status == 200, resp.body
    assert resp.audit["rewrite"] == {"added": ["patient"], "headers": ["prefer"]}, resp.audit
    time.sleep(0.3)
    complete = [r for r in rig.recorder.requests if r.header("x-request-id") == resp.request_id]
    assert [(r.path, r.body) for r in complete] == [
        ("/fhir/Observation/_search?patient=Patient%2Fpat-a", b"code=x")], complete
    assert complete[0].header_all("prefer") == ["handling=strict"]


def test_shadow_mode_forwards_and_audits(rig):
    resp = rig.request("DELETE", "/Patient/pat-a", token=None, listener="shadow")
    assert resp.status == 200 and resp.upstream is not None
    assert resp.audit["decision"] == "deny" and resp.audit["reason"] == "missing_token"
    assert "www-authenticate" not in resp.headers


LOG_FACTS = ("method", "path", "response_code", "duration_ms", "start_time")


def test_audit_encodings_log_one_record_in_four_forms(rig):
    """The same request and token on listeners whose plugin configurations differ in
    `audit.encoding` (and the upstream): "fields" (main, as envoy/envoy.yaml ships it: the filter
    writes the record's members when it decides, the access log's text format completes the
    object with Envoy's response code, duration and start time), "line" (recorder, the default:
    the filter writes the whole object when the response is sent), "json" (shadow, JSON text in a
    `json_format` field, `:PLAIN`) and "struct" (struct, a google.protobuf.Struct, `:TYPED`).
    The records are the same apart from the request's own id, time and the shadow flag; the two
    line forms also carry what Envoy's own log fields carried (response code, duration, start
    time, method, path without its query), with the same values and types."""
    token = rig.issuer.mint("patient", aud=[rig.base("main"), rig.base("recorder"), rig.base("shadow"),
                                            rig.base("struct")])
    for method, path, tok in (("GET", "/Patient/pat-a?_elements=name&_format=json", token),
                              ("DELETE", "/Patient/pat-a", None)):
        fields_resp = rig.request(method, path, token=tok, listener="main")
        line_resp = rig.request(method, path, token=tok, listener="recorder")
        json_resp = rig.request(method, path, token=tok, listener="shadow")
        struct_resp = rig.request(method, path, token=tok, listener="struct")
        fields, line = fields_resp.record["line"], line_resp.record["line"]
        assert fields == fields_resp.audit and "audit" not in fields, fields
        assert line == line_resp.audit and "audit" not in line, line
        raw_json = json_resp.record["line"]["audit"]
        assert isinstance(raw_json, str) and raw_json.startswith("{"), raw_json
        typed = struct_resp.record["line"]["audit"]
        if rig.artifact == "native":
            # no proxy-wasm `declare_property` natively: "struct" is written as JSON text
            # (docs/native.md), as the wasm build does when Envoy refuses the declaration
            assert isinstance(typed, str) and typed.startswith("{"), typed
            got_struct = json.loads(typed)
        else:
            assert typed["@type"] == "type.googleapis.com/google.protobuf.Struct", typed
            got_struct = typed["value"]
        got_json = json.loads(raw_json)
        assert (fields["request_id"], line["request_id"], got_json["request_id"], got_struct["request_id"]) == \
            (fields_resp.request_id, line_resp.request_id, json_resp.request_id, struct_resp.request_id)
        assert (fields["enforced"], line["enforced"], got_json["enforced"], got_struct["enforced"]) == \
            (True, True, False, True)
        differs = ("recorded", "request_id", "enforced")
        same = lambda r: {k: v for k, v in r.items() if k not in differs + LOG_FACTS}  # noqa: E731
        assert same(fields) == same(line) == same(got_json) == same(got_struct), \
            (method, fields, line, got_json, got_struct)
        assert not set(LOG_FACTS) & (set(got_json) | set(got_struct)), "the log facts are the line forms'"
        assert set(fields) == set(line), (fields, line)
        for rec, resp in ((fields, fields_resp), (line, line_resp)):
            assert rec["decision"] == ("allow" if tok else "deny"), rec
            # what the access log's own fields said
            assert rec["response_code"] == resp.status == resp.record["response_code"], rec
            assert rec["method"] == method
            assert rec["path"] == "/fhir/Patient/pat-a", "the query is never recorded"
            assert isinstance(rec["duration_ms"], int) and 0 <= rec["duration_ms"] < 10_000, rec
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rec["start_time"]), rec
            assert rec["start_time"][:16] == resp.record["start_time"][:16], (rec, resp.record)
            assert rec["start_time"] <= rec["recorded"], rec
        assert fields["start_time"] == fields_resp.record["start_time"], "fields: Envoy's own start time"


def test_audit_line_for_a_request_the_filter_did_not_decide(rig):
    """A browser preflight is answered by Envoy's CORS filter before the wasm filter: no record.
    Its audit-log line is then Envoy's own JSON line (the second access logger of
    envoy/envoy.yaml, chosen by a CEL filter on the record's filter state): still one JSON
    object, without `decision` and without the query."""
    rid = "e2e-preflight-" + uuid.uuid4().hex
    r = requests.options(rig.base_url + "/Patient?name=Jane", timeout=10, headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization", "x-request-id": rid})
    assert r.status_code == 200, r.text
    rec = rig.access_log.wait_for(rid)
    line = rec["line"]
    assert rec["audit"] is None and "decision" not in line, line
    assert line["response_code"] == 200 and line["method"] == "OPTIONS", line
    assert line["path"] == "/fhir/Patient", line
    assert isinstance(line["duration_ms"], int), line
    assert [x for x in rig.access_log.lines() if x.get("request_id") == rid] == [line], "one line"


# --- key rotation -------------------------------------------------------------

def test_key_rotation_refetches_jwks(rig):
    """The issuer rotates to new kids (old keys dropped). The first token with a new kid
    makes one worker VM refetch the JWKS (taking the cross-VM lease) and share it; every
    other worker, on its first request with a new kid, loads the shared set (or waits for
    the fetch in flight) instead of answering 401 until its 1 s tick: every request with a
    new kid is allowed at once, on every worker, with one JWKS fetch in all. Once every VM
    has picked up the new set (tick), the dropped key no longer verifies."""
    iss = rig.rot_issuer
    before = make_token(rig, ("patient", {}), "rotation")
    r1 = rig.request("GET", "/Patient/pat-a", token=before, listener="rotation")
    assert r1.status == 200, r1.body
    old_kid = iss.kid("RS256")
    old_key = iss.keys["RS256"]
    time.sleep(1.1)  # past jwks_min_refetch_seconds (1) of any earlier fetch
    fetches = iss.jwks_fetches
    new_kids = iss.rotate(keep_old=False)
    assert new_kids["RS256"] != old_kid
    for i in range(2 * rig.concurrency + 2):  # new connections spread over the workers
        alg = "ES256" if i % 2 else "RS256"
        tok = make_token(rig, ("patient", {"alg": alg}), "rotation")
        r2 = rig.request("GET", "/Patient/pat-a", token=tok, listener="rotation")
        assert r2.status == 200, f"{alg} token with a new kid refused after rotation (try {i}): {r2.body!r} {r2.audit}"
    assert iss.jwks_fetches == fetches + 1, f"expected one JWKS fetch across workers, got {iss.jwks_fetches - fetches}"
    time.sleep(2.5)  # > tick period + min refetch interval: every VM has the new set
    stale = iss.sign(iss.claims("patient", aud=rig.base("rotation")), key=old_key)
    for i in range(2 * rig.concurrency + 2):
        es = make_token(rig, ("patient", {"alg": "ES256"}), "rotation")
        r4 = rig.request("GET", "/Patient/pat-a", token=es, listener="rotation")
        assert r4.status == 200, f"new ES256 kid refused (try {i}): {r4.body!r}"
        r3 = rig.request("GET", "/Patient/pat-a", token=stale, listener="rotation")
        assert r3.status == 401, f"a token signed with the dropped key verified (try {i}): {r3.audit}"
        assert r3.audit["reason"] == "invalid_token", r3.audit


def test_key_rotation_requests_wait_for_the_fetch_in_flight(rig):
    """Requests with new kids that arrive while a JWKS fetch is in flight (a slow JWKS
    endpoint), on the fetching worker or on others, wait for that fetch (resumed from the
    root's tick) instead of answering 401 or fetching again."""
    from concurrent.futures import ThreadPoolExecutor

    iss = rig.rot_issuer
    time.sleep(1.1)  # past jwks_min_refetch_seconds (1) of any earlier fetch
    iss.rotate(keep_old=False)
    fetches = iss.jwks_fetches
    n = 2 * rig.concurrency + 2
    tokens = [make_token(rig, ("patient", {"alg": "ES256" if i % 2 else "RS256"}), "rotation") for i in range(n)]
    iss.jwks_delay = 1.0
    try:
        with ThreadPoolExecutor(n) as pool:
            results = list(pool.map(
                lambda t: rig.request("GET", "/Patient/pat-a", token=t, listener="rotation"), tokens))
    finally:
        iss.jwks_delay = 0.0
    for i, r in enumerate(results):
        assert r.status == 200, f"request {i} with a new kid refused during the fetch: {r.body!r} {r.audit}"
    assert iss.jwks_fetches == fetches + 1, f"expected one JWKS fetch, got {iss.jwks_fetches - fetches}"


# --- metrics -------------------------------------------------------------------

def prometheus_counters(rig) -> dict[str, float]:
    """The filter's metrics by their flat name: the tags of examples/monitoring/envoy-stats-tags.yaml
    (`fhir_smart_authz_decision{decision="deny",reason="x"}`) folded back into it
    (`fhir_smart_authz_decision_deny_x`, `..._issuer_0`). The native module's carry Envoy's
    prefix for a module's namespace (`envoy_wasmcustom_`, docs/native.md), stripped here."""
    out = {}
    for line in rig.envoy.stats("prometheus").splitlines():
        line = line.removeprefix("envoy_wasmcustom_")
        if line.startswith("fhir_smart_authz_"):
            series, _, value = line.rpartition(" ")
            name, _, labels = series.partition("{")
            tags = dict(re.findall(r'(\w+)="([^"]*)"', labels))
            for tag in ("decision", "reason"):
                if tag in tags:
                    name += "_" + tags[tag]
            if "issuer" in tags:
                name += "_issuer_" + tags["issuer"]
            out[name] = float(value)
    return out


def test_metrics_in_prometheus(rig):
    """Counters `<metrics.prefix>.decision.<allow|deny>.<reason>` in /stats/prometheus."""
    before = prometheus_counters(rig)
    token = make_token(rig, ("patient", {}))
    assert rig.request("GET", "/Patient/pat-a", token=token).status == 200
    assert rig.request("GET", "/Patient/pat-b", token=token).status == 403
    assert rig.request("GET", "/Patient/pat-a").status == 401
    after = prometheus_counters(rig)

    def delta(name: str) -> float:
        return after.get(name, 0) - before.get(name, 0)

    assert delta("fhir_smart_authz_decision_allow_allowed") == 1, after
    assert delta("fhir_smart_authz_decision_deny_patient_compartment_violation") == 1, after
    assert delta("fhir_smart_authz_decision_deny_missing_token") == 1, after
    assert after.get("fhir_smart_authz_jwks_fetch_success", 0) >= 1, after


# --- bad configuration ----------------------------------------------------------

# invalid plugin configuration -> the field the filter's error names
BAD_CONFIGS = {
    "not-json": ("{this is not json", "(document)"),
    "unknown-field": (json.dumps({"fhir_base_path": "/fhir", "enforse": False}), "enforse"),
    "bad-base-path": (json.dumps({"fhir_base_path": "fhir"}), "fhir_base_path"),
    "issuer-without-keys": (json.dumps({"fhir_base_url": "http://127.0.0.1:1/fhir",
                                        "issuers": [{"issuer": "http://127.0.0.1:2"}]}), "issuers[0]"),
    # serde's own errors name the dotted path at any depth
    "nested-enum-value": (json.dumps({"policy": {"patient_search": "narrowx"}}), "policy.patient_search`"),
    "array-element-type": (json.dumps({"issuers": [{"issuer": "http://127.0.0.1:2", "jwks_uri": "http://127.0.0.1:2/jwks",
                                                    "algorithms": ["RS256", 256]}]}), "issuers[0].algorithms[1]`"),
}


@pytest.mark.parametrize("name", list(BAD_CONFIGS))
def test_bad_plugin_config_is_refused(rig, tmp_path, name):
    """Envoy refuses to start with an invalid plugin configuration (FAIL_CLOSED): it exits
    non-zero, the listener never serves, and the log names the offending field."""
    from .rig import envoy_binary, start_process

    config, field = BAD_CONFIGS[name]
    port, admin = free_port(), free_port()
    boot = envoy_bootstrap(admin, [listener("bad", port, "recorder", config, rig.wasm, tmp_path / "access.log")],
                           [cluster("recorder", rig.recorder.port)], tmp_path / "admin.log")
    env = Envoy(tmp_path, f"bad-{name}", boot)
    env.proc = start_process([str(envoy_binary()), "-c", str(env.config_path), "--concurrency", "1",
                              "--base-id", str(admin)], env.log, cwd=tmp_path)
    try:
        served = False
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and env.proc.poll() is None:
            try:
                requests.get(f"http://127.0.0.1:{port}/fhir/metadata", timeout=1)
                served = True
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        log_text = env.log.read_text(errors="replace")
        assert not served, "a listener with an invalid plugin configuration answered"
        assert env.proc.poll() not in (None, 0), f"envoy did not exit with an error:\n{log_text[-2000:]}"
        assert f"invalid configuration at `{field}" in log_text, log_text[-2000:]
    finally:
        env.stop()


def test_ecdsa_tokens_are_verified_by_envoys_verify_signature(rig, tmp_path):
    """ES256 and ES384 signatures go to Envoy's `verify_signature` (BoringSSL) re-encoded as DER,
    the key as DER SubjectPublicKeyInfo: valid tokens pass, a tampered signature is refused, and
    the host never fails to check one (a host failure would fall back to the pure-Rust verifier
    with a warning in Envoy's log, so the answers alone could not tell). Cache off: every
    request is verified."""
    import base64

    from cryptography.hazmat.primitives.asymmetric import ec

    from .rig import SigningKey

    priv = ec.generate_private_key(ec.SECP384R1())
    nums = priv.public_key().public_numbers()
    coord = lambda v: base64.urlsafe_b64encode(v.to_bytes(48, "big")).rstrip(b"=").decode()  # noqa: E731
    p384 = SigningKey(alg="ES384", kid="e2e-p384", private=priv)
    jwk = {"kty": "EC", "crv": "P-384", "x": coord(nums.x), "y": coord(nums.y), "kid": p384.kid, "alg": "ES384",
           "use": "sig"}
    port, admin = free_port(), free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    issuer = {"issuer": rig.issuer.issuer_url, "audiences": [base],
              "jwks": {"keys": rig.issuer.jwks()["keys"] + [jwk]}}
    config = plugin_config(base, [issuer], cluster="recorder", token={"cache_max_entries": 0})
    boot = envoy_bootstrap(admin, [listener("ecdsa", port, "recorder", config, rig.wasm, tmp_path / "access.log")],
                           [cluster("recorder", rig.recorder.port)], tmp_path / "admin.log")
    env = Envoy(tmp_path, "ecdsa", boot).start()
    try:
        claims = rig.issuer.claims("patient", aud=base)
        tokens = {"ES256": rig.issuer.sign(claims, alg="ES256"), "ES384": rig.issuer.sign(claims, key=p384),
                  "RS256": rig.issuer.sign(claims, alg="RS256")}
        get = lambda t: requests.get(base + "/Patient/pat-a", timeout=10,  # noqa: E731
                                     headers={"Authorization": f"Bearer {t}"})
        deadline = time.monotonic() + 60
        while get(tokens["RS256"]).status_code != 200:  # the worker VM is up
            assert time.monotonic() < deadline, env.log.read_text(errors="replace")[-2000:]
            time.sleep(0.3)
        for alg, token in tokens.items():
            for _ in range(3):
                r = get(token)
                assert r.status_code == 200, f"{alg}: {r.status_code} {r.text[:300]}"
            head, payload, sig = token.split(".")
            raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
            raw[len(raw) // 2 - 1] ^= 1
            bad = f"{head}.{payload}." + base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
            r = get(bad)
            assert r.status_code == 401 and "invalid_token" in r.headers.get("www-authenticate", ""), \
                f"{alg}: a tampered signature: {r.status_code}"
        log_text = env.log.read_text(errors="replace")
        assert "verify_signature could not check" not in log_text, log_text[-3000:]
    finally:
        env.stop()


def test_plugin_config_is_the_documented_shape(rig):
    cfg = plugin_config(rig.base_url, [issuer_entry(rig.issuer, "issuer")])
    assert cfg["issuers"][0]["jwks_cluster"] == "issuer"


# --- bodies as real clients send them -------------------------------------------

@pytest.mark.parametrize("chunked", [False, True], ids=["expect-100-continue", "chunked"])
@pytest.mark.parametrize("profile,patient,status", [("clinician", "pat-a", 201), ("patient", "pat-b", 403)])
def test_curl_bodies(rig, chunked, profile, patient, status):
    """curl sends `Expect: 100-continue` for bodies over 1 KiB; chunked bodies have no length."""
    import shutil
    import subprocess
    import uuid

    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    token = make_token(rig, (profile, {}))
    body = json.dumps({"resourceType": "Observation", "status": "final", "code": {"text": "x" * 3000},
                       "subject": {"reference": f"Patient/{patient}"}})
    rid = "e2e-curl-" + uuid.uuid4().hex
    args = [curl, "-s", "-m", "20", "-o", "/dev/null", "-w", "%{http_code}", "-H", f"Authorization: Bearer {token}",
            "-H", "Content-Type: application/fhir+json", "-H", f"x-request-id: {rid}", "--data-binary", body]
    if chunked:
        args += ["-H", "Transfer-Encoding: chunked"]
    out = subprocess.run(args + [rig.base_url + "/Observation"], capture_output=True, text=True, timeout=30)
    assert out.stdout == str(status), out.stdout + out.stderr
    rec = rig.access_log.wait_for(rid)
    assert rec["response_code"] == status
    assert (rec["response_code_details"] == "via_upstream") == (status == 201), rec
    assert rec["audit"]["decision"] == ("allow" if status == 201 else "deny"), rec["audit"]
