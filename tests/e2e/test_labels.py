"""Security labels (`policy.labels`) through real Envoy and sekmet-fhir.

The seeded patient `pat-c` (tests/conformance/data.py) has an unlabelled vital sign
(`obs-c1`), a restricted (R) and a very restricted (V) laboratory Observation, and a
substance-use disorder Condition and Encounter labelled as 42 CFR Part 2 data (ETH,
42CFRPart2; the Condition also R). sekmet-fhir applies `_security` and `_security:not`
(a token parameter on every type, `:not` as NOT IN) and refuses what it does not support
under `Prefer: handling=strict`; it replaces `meta` on update (a PUT without
`meta.security` drops the labels), which is why `update_keeps_labels` stays false here.

Two rigs: `filtered` (the server is not declared to apply `_security:not`: responses are
filtered, `Bundle.total` left out, counts refused) and `narrowed` (declared: searches get one
`_security:not` per hidden label and their counts are the server's). Tokens: the demo
clinician without clearance, with some (`clearance` claim), with all, and with the
break-glass purpose of use (`purpose_of_use: BTG`). Each rig runs once per build of the
filter (the .wasm, the native module).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conformance.data import LABEL_ETH, LABEL_PART2, LABEL_R, LABEL_V

from .rig import Rig, built_artifact
from .test_e2e import prometheus_counters

BTG = "http://terminology.hl7.org/CodeSystem/v3-ActReason|BTG"
ALL_LABELS = [LABEL_R, LABEL_V, LABEL_ETH, LABEL_PART2]
SUD_CODE = "http://snomed.info/sct|5602001"


def labels_policy(narrow: bool) -> dict[str, Any]:
    return {"labels": {"restricted": ALL_LABELS, "clearance_claim": "clearance",
                       "purpose_of_use_claim": "purpose_of_use", "break_glass": [BTG],
                       "relabel_claim": "may_relabel", "server_supports_security_not": narrow}}


def running(narrow: bool, artifact: str):
    """A rig with the label policy and the filter as `artifact`, for the module; stopped after it."""
    built_artifact(artifact)
    rig = Rig(artifact=artifact, plugin_overrides={"policy": labels_policy(narrow)}).start()
    try:
        yield rig
    finally:
        rig.stop()


@pytest.fixture(scope="module", params=["wasm", "native"])
def filtered(request):
    yield from running(False, request.param)


@pytest.fixture(scope="module", params=["wasm", "native"])
def narrowed(request):
    yield from running(True, request.param)


def clinician(rig: Rig, scope: str | None = None, **claims: Any) -> str:
    if scope:
        claims["scope"] = scope
    return rig.issuer.mint("clinician", aud=rig.base_url, **claims)


def ids(resp) -> list[str]:
    body = resp.json()
    return [f"{e['resource']['resourceType']}/{e['resource'].get('id', '-')}" for e in body.get("entry", [])]


def matches(resp) -> set[str]:
    return {i for i in ids(resp) if not i.startswith("OperationOutcome/")}


# --- without `_security:not` on the server: responses filtered -------------------------------

def test_search_withholds_labelled_entries_and_the_total(filtered):
    r = filtered.request("GET", "/Observation?patient=pat-c", token=clinician(filtered))
    assert r.status == 200, r.body
    body = r.json()
    assert matches(r) == {"Observation/obs-c1"}
    assert "total" not in body
    outcome = body["entry"][-1]
    assert outcome["search"]["mode"] == "outcome" and outcome["resource"]["issue"][0]["code"] == "suppressed"
    assert b"Cocaine" not in r.body and b"HIV" not in r.body
    labels = r.audit["labels"]
    assert (labels["withheld"], sorted(labels["withheld_labels"])) == (2, sorted([LABEL_R, LABEL_V])), r.audit
    assert r.audit["obligation"] == "passed"


def test_clearance_opens_its_labels_only(filtered):
    some = filtered.request("GET", "/Observation?patient=pat-c", token=clinician(filtered, clearance=[LABEL_R]))
    assert matches(some) == {"Observation/obs-c1", "Observation/obs-c-r"}, ids(some)
    assert some.audit["labels"]["withheld_labels"] == [LABEL_V]
    # V clears R (the higher confidentiality level); ETH and 42 CFR Part 2 stay hidden
    cond = filtered.request("GET", "/Condition/cond-c-sud", token=clinician(filtered, clearance=[LABEL_V]))
    assert cond.status == 403 and cond.audit["reason"] == "response_not_permitted", cond.body
    every = clinician(filtered, clearance=[LABEL_V, LABEL_ETH, LABEL_PART2])
    all_obs = filtered.request("GET", "/Observation?patient=pat-c", token=every)
    assert matches(all_obs) == {"Observation/obs-c1", "Observation/obs-c-r", "Observation/obs-c-v"}
    assert all_obs.json().get("total") == 3 and "labels" not in all_obs.audit
    assert filtered.request("GET", "/Condition/cond-c-sud", token=every).status == 200


def test_every_page_is_filtered(filtered):
    """Following the server's `next` links through the gateway: each page filtered, no totals.
    (The page count still shows that entries were withheld: the documented limit of filtering.)"""
    token = clinician(filtered)
    r = filtered.request("GET", "/Observation?patient=pat-c&_count=1", token=token)
    seen: set[str] = set()
    pages = 0
    while True:
        assert r.status == 200 and "total" not in r.json(), r.body
        pages += 1
        seen |= matches(r)
        nxt = [link["url"] for link in r.json().get("link", []) if link.get("relation") == "next"]
        if not nxt or pages > 5:
            break
        r = filtered.request("GET", "", token=token, raw_url=nxt[0])
    assert seen == {"Observation/obs-c1"} and pages == 3, (seen, pages)


def test_labelled_read_is_refused_without_the_resource(filtered):
    for path in ("/Observation/obs-c-v", "/Condition/cond-c-sud", "/Encounter/enc-c-sud"):
        r = filtered.request("GET", path, token=clinician(filtered))
        assert r.status == 403, (path, r.body)
        assert r.audit["reason"] == "response_not_permitted" and r.audit["obligation"] == "failed"
        assert "carries a security label this token is not cleared for" in r.audit["message"]
        assert b"Opioid" not in r.body and b"Cocaine" not in r.body
    assert filtered.request("GET", "/Observation/obs-c1", token=clinician(filtered)).status == 200


def test_break_glass_sees_everything_audited_and_counted(filtered):
    def counter() -> float:
        return prometheus_counters(filtered).get("fhir_smart_authz_labels_break_glass", 0.0)

    before = counter()
    r = filtered.request("GET", "/Condition/cond-c-sud", token=clinician(filtered, purpose_of_use="BTG"))
    assert r.status == 200 and b"Opioid" in r.body
    assert r.audit["labels"]["break_glass"] is True
    assert r.audit["labels"]["purpose_of_use"] == [BTG]
    assert counter() - before == 1
    # another purpose opens nothing
    treat = filtered.request("GET", "/Condition/cond-c-sud", token=clinician(filtered, purpose_of_use="TREAT"))
    assert treat.status == 403


@pytest.mark.parametrize("path", [
    f"/Patient?_has:Condition:patient:code={SUD_CODE}",
    "/Observation?subject:Patient.name=Charlie",
    "/Condition?patient=pat-c&_summary=count",
    "/Observation?patient=pat-c&_elements=code",
], ids=["has", "chain", "count", "elements-without-meta"])
def test_oracles_are_refused(filtered, path):
    r = filtered.request("GET", path, token=clinician(filtered))
    assert r.status == 403, r.body
    assert r.audit["reason"] == "security_label_not_permitted", r.audit
    assert "could reveal data carrying security labels" in r.json()["issue"][0]["diagnostics"]
    assert "obligation" not in r.audit, "refused before the server was asked"


def test_the_has_oracle_is_real(filtered):
    """What the refusal protects: a cleared token's `_has` over the SUD Condition names pat-c."""
    every = clinician(filtered, clearance=[LABEL_V, LABEL_ETH, LABEL_PART2])
    r = filtered.request("GET", f"/Patient?_has:Condition:patient:code={SUD_CODE}", token=every)
    assert r.status == 200 and matches(r) == {"Patient/pat-c"}, r.body


def test_includes_and_everything_are_filtered(filtered):
    token = clinician(filtered, scope="openid fhirUser user/*.rs")
    inc = filtered.request("GET", "/Patient?_id=pat-c&_revinclude=Condition:patient", token=token)
    assert inc.status == 200 and matches(inc) == {"Patient/pat-c"}, ids(inc)
    ev = filtered.request("GET", "/Patient/pat-c/$everything", token=token)
    assert ev.status == 200, ev.body
    got = matches(ev)
    assert "Observation/obs-c1" in got and not got & {"Observation/obs-c-r", "Observation/obs-c-v",
                                                      "Condition/cond-c-sud", "Encounter/enc-c-sud"}, got
    assert ev.audit["labels"]["withheld"] == 4


def test_writes_that_change_labels_need_the_claim(filtered):
    labelled = {"resourceType": "Observation", "status": "final", "code": {"text": "labels e2e"},
                "subject": {"reference": "Patient/pat-c"},
                "meta": {"security": [{"system": LABEL_R.split("|")[0], "code": "R"}]}}
    r = filtered.request("POST", "/Observation", token=clinician(filtered), body=labelled)
    assert r.status == 403 and r.audit["reason"] == "security_label_not_permitted", r.body
    ok = filtered.request("POST", "/Observation", token=clinician(filtered, may_relabel=True), body=labelled)
    assert ok.status == 201, ok.body
    # sekmet replaces meta on update: a PUT without labels would remove them
    plain = {k: v for k, v in labelled.items() if k != "meta"}
    put = filtered.request("PUT", "/Observation/obs-c-r", token=clinician(filtered), body={**plain, "id": "obs-c-r"})
    assert put.status == 403 and "update_keeps_labels" in put.audit["message"], put.body
    # a patch that leaves the labels alone is forwarded; its answer (the stored resource) is filtered
    probe = [{"op": "test", "path": "/status", "value": "final"}]
    leak = filtered.request("PATCH", "/Observation/obs-c-v", token=clinician(filtered), body=json.dumps(probe),
                            content_type="application/json-patch+json")
    assert leak.status == 403 and leak.audit["reason"] == "response_not_permitted", leak.body
    assert b"Cocaine" not in leak.body
    patch = [{"op": "remove", "path": "/meta/security"}]
    p = filtered.request("PATCH", "/Observation/obs-c-r", token=clinician(filtered), body=json.dumps(patch),
                         content_type="application/json-patch+json")
    assert p.status == 403 and p.audit["reason"] == "security_label_not_permitted", p.body


# --- with `_security:not` on the server: searches narrowed --------------------------------

def test_narrowed_search_counts_only_what_the_token_may_see(narrowed):
    r = narrowed.request("GET", "/Observation?patient=pat-c", token=clinician(narrowed))
    assert r.status == 200, r.body
    assert matches(r) == {"Observation/obs-c1"} and r.json().get("total") == 1, r.body
    assert r.audit["rewrite"]["added"] == ["_security:not"] * 4, r.audit
    count = narrowed.request("GET", "/Condition?patient=pat-c&_summary=count", token=clinician(narrowed))
    assert count.status == 200 and count.json().get("total") == 0, count.body
    cleared = narrowed.request("GET", "/Condition?patient=pat-c&_summary=count",
                               token=clinician(narrowed, clearance=[LABEL_V, LABEL_ETH, LABEL_PART2]))
    assert cleared.status == 200 and cleared.json().get("total") == 1, cleared.body
    chain = narrowed.request("GET", "/Observation?subject:Patient.name=Charlie", token=clinician(narrowed))
    assert chain.status == 403 and chain.audit["reason"] == "security_label_not_permitted"
