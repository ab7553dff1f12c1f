"""The decision corpus (tests/corpus/) in real Envoy, on the .wasm and on the native module:
every row's answer must be the decision `fhir-smart-authz decide` gives it (its `expect`,
which cli/tests/corpus.rs holds the CLI to). One Envoy per artifact, every row sent once.
What each row asserts: docs/decision-corpus.md ("The replays")."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest

from .corpus import CORPUS, Answer, CorpusRig, Row, rows, suites
from .rig import NATIVE, WASM, native_unsupported_reason

ROWS = rows()
# the issuer a row's `claims` are signed as, by suite
ISSUERS = {name: cfg["issuers"][0]["issuer"] for name, cfg in suites().items()}

# RFC 6750 §3.1 error per status of a denial; OperationOutcome issue code per status.
WWW_ERROR = {400: "invalid_request", 401: "invalid_token", 403: "insufficient_scope", 413: "invalid_request"}
OO_CODE = {400: "invalid", 401: "login", 403: "forbidden", 413: "too-long"}


@pytest.fixture(scope="module", params=["wasm", "native"])
def replayed(request) -> dict[str, Answer]:
    """Every corpus row through one Envoy running the artifact; the answers by row id."""
    artifact = request.param
    if artifact == "native":
        why = native_unsupported_reason()
        if why:
            pytest.skip(why)
    path = NATIVE if artifact == "native" else WASM
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make build`")
    rig = CorpusRig(artifact, WASM).start()
    try:
        yield rig.replay(ROWS)
    finally:
        rig.stop()


def token_claims(row: Row) -> dict[str, Any] | None:
    """The claims the filter verified for this row (None: no bearer token)."""
    if "claims" in row.line:
        return row.line["claims"]
    auth = str(row.line.get("headers", {}).get("authorization", ""))
    if auth.startswith("Bearer "):
        return jwt.decode(auth[len("Bearer "):], options={"verify_signature": False})
    return None


def expected_facts(row: Row, config_issuer: str) -> dict[str, str]:
    """The x-smart-* headers an allowed request carries upstream: the verified token's facts."""
    c = token_claims(row)
    if c is None:
        return {}
    scope = c.get("scope")
    if isinstance(scope, list):  # a list of scopes is sent as the space-separated string
        c = {**c, "scope": " ".join(scope)}
    facts = {"x-smart-patient": c.get("patient"), "x-smart-fhir-user": c.get("fhirUser"),
             "x-smart-client-id": c.get("client_id"), "x-smart-scope": c.get("scope"),
             "x-smart-subject": c.get("sub"), "x-smart-issuer": c.get("iss", config_issuer)}
    return {k: v for k, v in facts.items() if isinstance(v, str) and v}


def www_error(value: str | None) -> str | None:
    """The `error` of a `WWW-Authenticate: Bearer ...` challenge ("" without one)."""
    if value is None:
        return None
    for part in value.removeprefix("Bearer").split(","):
        name, _, v = part.strip().partition("=")
        if name == "error":
            return v.strip('"')
    return ""


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_row(replayed: dict[str, Answer], row: Row):
    a = replayed[row.id]
    e = row.expect
    detail = f"{row.line['method']} {row.line['path'][:200]} -> {a.status} {a.body[:300]!r}\naudit: {a.audit}"
    assert a.audit, f"no audit record: {a.details}"
    assert "eyJ" not in json.dumps(a.audit), "a token leaked into the audit record"
    answer = e.get("response") or {}
    if answer.get("result") == "refused":  # allowed, then its answer refused (the audit record says so)
        assert (a.audit["decision"], a.audit["reason"]) == ("deny", answer["reason"]), detail
    else:
        assert (a.audit["decision"], a.audit["reason"]) == (e["decision"], e["reason"]), detail
    if "required_scopes" in e:
        assert a.audit.get("required_scopes", []) == e["required_scopes"], detail
    if "labels" in e:  # what the label policy hides (or break-glass opens); `withheld` counts the answer
        got_labels = a.audit.get("labels") or {}
        if "response" not in row.line:  # the capturing upstream's 404 withholds nothing
            got_labels = {k: v for k, v in got_labels.items() if k != "withheld"}
        assert got_labels == e["labels"], detail
    if e["decision"] == "deny" or answer.get("result") == "refused":
        status = answer.get("status", e["status"])
        assert a.status == status, detail
        if e["decision"] == "deny":
            assert a.upstream == [], f"a denied request reached the FHIR server: {a.upstream}"
        want_error = "" if e["reason"] == "missing_token" else WWW_ERROR.get(status)
        assert www_error(a.headers.get("www-authenticate")) == want_error, detail
        if status in OO_CODE:
            outcome = json.loads(a.body)
            assert outcome["resourceType"] == "OperationOutcome", detail
            assert outcome["issue"][0]["code"] == OO_CODE[status], detail
            assert outcome["issue"][0]["diagnostics"], detail
            assert "eyJ" not in json.dumps(outcome), "a token leaked into the answer"
        if "message" in e:  # the audit record's; the client's leaves out configuration names
            assert a.audit.get("message") == e["message"], detail
        if answer.get("result") == "refused":
            assert a.audit.get("message") == answer["message"], detail
        if e["decision"] == "deny":
            return
    # allowed: what reached the FHIR server
    method = row.line["method"]
    if a.details and a.details.get("response_code_details") != "via_upstream" and not a.upstream:
        # answered by the filter itself (the discovery document)
        assert e["reason"] == "public_endpoint", detail
        return
    sent = [r for r in a.upstream if r.method == method or (method == "HEAD" and r.method == "GET")]
    assert sent, f"the allowed request never reached the FHIR server: {a.upstream}; {detail}"
    forwarded = sent[-1]
    rewrite = e.get("rewrite") or {}
    assert forwarded.path == rewrite.get("path", row.line["path"]), detail
    for name, value in (rewrite.get("headers") or {}).items():
        assert forwarded.header_all(name) == ([value] if value else []), f"{name}: {forwarded.headers}"
    got = {n: v for n, v in forwarded.headers if n.startswith("x-smart-")}
    assert got == expected_facts(row, ISSUERS[row.suite]), detail
    if answer.get("result") in ("relayed", "passed"):  # the FHIR server's answer, unchanged
        assert (a.status, json.loads(a.body)) == (200, row.line["response"]), detail
    elif answer.get("result") == "filtered":  # what the filter sends instead
        assert (a.status, json.loads(a.body)) == (200, answer["body"]), detail


def test_every_row_matches_the_schema():
    import jsonschema

    schema = json.loads((CORPUS / "row.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    bad = [f"{r.id}: {e.message}" for r in ROWS for e in validator.iter_errors(r.line)]
    assert not bad, "\n".join(bad[:20])


def test_the_corpus_covers_both_verdicts_and_every_kind_of_answer():
    reasons = {r.expect["reason"] for r in ROWS}
    assert {"allowed", "public_endpoint", "missing_token", "invalid_token", "invalid_request", "insufficient_scope",
            "patient_compartment_violation", "bundle_entry_denied", "granular_scope_violation"} <= reasons, reasons
    assert any(r.expect.get("rewrite") for r in ROWS), "a narrowed row"
    assert len(ROWS) >= 1000
