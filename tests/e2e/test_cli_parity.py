"""CLI parity (issue 9 item 7): the same requests through real Envoy (the rig's `main`
listener) and through `fhir-smart-authz decide`, with the bearer token in the request's
own `Authorization` header (or query) in both, give the same decision: verdict, status,
reason and required scopes, compared with the filter's audit record and answer.

The CLI cannot fetch keys: it gets the rig's plugin configuration with the issuer's
current key set inline (`jwks`) instead of `jwks_uri`, and `--now` = the time the
requests are sent."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest

from .cases import bundle
from .rig import CLI
from .tokens import make_token

P, C, B = ("patient", {}), ("clinician", {}), ("backend", {})
OBS_FOR_B = {"resourceType": "Observation", "status": "final", "code": {"text": "parity"},
             "subject": {"reference": "Patient/pat-b"}}

# (id, method, path, token spec (tests/e2e/tokens.py), extra headers, JSON body)
ROWS: list[tuple[str, str, str, Any, dict[str, str], Any]] = [
    ("read-own-patient", "GET", "/Patient/pat-a", P, {}, None),
    ("read-other-patient", "GET", "/Patient/pat-b", P, {}, None),
    ("read-own-observation-checked", "GET", "/Observation/obs-a1", P, {}, None),
    ("search-pinned", "GET", "/Observation?patient=pat-a&category=vital-signs", P, {}, None),
    ("search-other-patient", "GET", "/Observation?patient=pat-b", P, {}, None),
    ("search-type-not-granted", "GET", "/MedicationRequest?patient=pat-a", P, {}, None),
    ("history-own-patient", "GET", "/Patient/pat-a/_history", P, {}, None),
    ("es256-read", "GET", "/Patient/pat-a", ("patient", {"alg": "ES256"}), {}, None),
    ("clinician-read", "GET", "/Patient/pat-b", C, {}, None),
    ("clinician-delete-not-granted", "DELETE", "/Patient/pat-b", C, {}, None),
    ("backend-search", "GET", "/Condition?code=http://snomed.info/sct|44054006", B, {}, None),
    # a batch answers per entry: allowed, the denied entry answered in place (issue 17)
    ("clinician-batch-one-denied", "POST", "", C, {"content-type": "application/fhir+json"},
     bundle("batch", ("GET", "Patient/pat-a", None), ("DELETE", "Patient/pat-a", None))),
    ("clinician-transaction-one-denied", "POST", "", C, {"content-type": "application/fhir+json"},
     bundle("transaction", ("GET", "Patient/pat-a", None), ("DELETE", "Patient/pat-a", None))),
    ("clinician-transaction-create", "POST", "", C, {"content-type": "application/fhir+json"},
     bundle("transaction", ("POST", "Observation", OBS_FOR_B))),
    ("metadata-public", "GET", "/metadata", None, {}, None),
    ("no-token", "GET", "/Patient/pat-a", None, {}, None),
    ("basic-scheme", "GET", "/Patient/pat-a", None, {"authorization": "Basic dXNlcjpwYXNz"}, None),
    ("expired", "GET", "/Patient/pat-a", "expired", {}, None),
    ("wrong-audience", "GET", "/Patient/pat-a", "wrong_aud", {}, None),
    ("bad-signature", "GET", "/Patient/pat-a", "bad_sig", {}, None),
    ("alg-none", "GET", "/Patient/pat-a", "alg_none", {}, None),
    ("malformed", "GET", "/Patient/pat-a", "malformed", {}, None),
    ("not-yet-valid", "GET", "/Patient/pat-a", "future_nbf", {}, None),
    ("query-token-refused", "GET", "/Patient/pat-a?access_token=abc.def.ghi", None, {}, None),
    ("two-credentials", "GET", "/Patient/pat-a?access_token=abc", P, {}, None),
    ("wrong-case-type", "GET", "/patient/pat-a", P, {}, None),
]


def cli_config(rig) -> dict[str, Any]:
    """The main listener's plugin configuration with the issuer's keys inline."""
    cfg = json.loads(json.dumps(rig.plugins["main"]))
    for issuer in cfg["issuers"]:
        issuer.pop("jwks_uri", None)
        issuer.pop("jwks_cluster", None)
        issuer["jwks"] = rig.issuer.jwks()
    return cfg


def decision_fields(d: dict[str, Any]) -> tuple[str, int, str, list[str]]:
    return d["decision"], d["status"], d["reason"], d["required_scopes"]


@pytest.fixture(scope="module")
def both(rig, tmp_path_factory):
    """Every row through Envoy and through the CLI: (row id → (audit record, HTTP status), CLI decision)."""
    if not CLI.exists():
        pytest.fail(f"{CLI} is missing: run `make cli` (make e2e does it)")
    envoy: dict[str, tuple[dict[str, Any], int]] = {}
    lines = []
    now = int(time.time())
    for rid, method, path, spec, headers, body in ROWS:
        token = make_token(rig, spec)
        hdrs = dict(headers)
        if token is not None:
            hdrs["authorization"] = f"Bearer {token}"
        resp = rig.request(method, path, headers=hdrs, body=body)
        envoy[rid] = (resp.audit, resp.status)
        lines.append(json.dumps({"method": method, "path": "/fhir" + path, "headers": hdrs,
                                 **({"body": body} if body is not None else {})}))
    config = tmp_path_factory.mktemp("parity") / "config.json"
    config.write_text(json.dumps(cli_config(rig)))
    out = subprocess.run([str(CLI), "decide", "--config", str(config), "--now", str(now)],
                         input="\n".join(lines), capture_output=True, text=True, timeout=60, check=True)
    decided = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(decided) == len(ROWS), out.stderr
    return envoy, dict(zip([r[0] for r in ROWS], decided))


@pytest.mark.parametrize("rid", [r[0] for r in ROWS])
def test_cli_decides_as_the_filter(both, rid):
    envoy, cli = both
    record, status = envoy[rid]
    assert record is not None, "the filter wrote no audit record"
    d = cli[rid]
    assert decision_fields(record) == decision_fields(d), (record, d)
    # what the client got: the denial's status, or (allowed) the upstream's 2xx
    if d["decision"] == "deny":
        assert status == d["status"]
    else:
        assert 200 <= status < 300


def test_the_table_covers_allow_and_every_kind_of_denial(both):
    _, cli = both
    reasons = {d["reason"] for d in cli.values()}
    assert {"allowed", "public_endpoint", "missing_token", "invalid_token", "multiple_credentials", "invalid_request",
            "insufficient_scope", "patient_compartment_violation", "bundle_entry_denied"} <= reasons, reasons
    assert any(d.get("obligations") for d in cli.values()), "a row with a response check"
