"""The test data set: fixed ids, every resource tagged as ours, seeded through a
direct upstream URL (the native rig does the same at start-up).

Two patients (`pat-a` is the patient tokens' context, `pat-b` is "another patient"),
a practitioner, per patient a vital-signs and a laboratory Observation, a Condition
and an Encounter, a Provenance of pat-a's vital signs, and `Observation/obs-del`
(deleted by the table). A third patient, `pat-c`, holds the security-labelled records
(`meta.security`, for `policy.labels`): an unlabelled vital sign, a restricted (R) and a
very restricted (V) laboratory Observation, and a substance-use disorder Condition and
Encounter labelled as 42 CFR Part 2 data (ETH, 42CFRPart2, R). Works on sekmet-fhir and
HAPI (client-assigned ids).

Seeding never overwrites data it did not write: an existing resource with one of
these ids but without the `SEEDED_TAG` makes `seed` refuse (safe against a real server).
"""

from __future__ import annotations

from typing import Any

import requests

PATIENTS = ("pat-a", "pat-b")
OWN_PATIENT, OTHER_PATIENT = PATIENTS
SEEDED_TAG = {"system": "urn:fhir-smart-authz:conformance", "code": "seeded"}
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
MRN_SYSTEM = "urn:fhir-smart-authz:mrn"
LABELLED_PATIENT = "pat-c"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
LABEL_R = f"{CONFIDENTIALITY}|R"
LABEL_V = f"{CONFIDENTIALITY}|V"
LABEL_ETH = f"{ACT_CODE}|ETH"
LABEL_PART2 = f"{ACT_CODE}|42CFRPart2"


def labelled(resource: dict[str, Any], *labels: str) -> dict[str, Any]:
    """`resource` with `meta.security` codings for `system|code` labels."""
    security = [{"system": s, "code": c} for s, c in (label.split("|") for label in labels)]
    return {**resource, "meta": {"security": security}}


class SeedRefused(RuntimeError):
    """An id of the data set exists on the server and was not written by us."""


def seed_resources() -> list[dict[str, Any]]:
    def obs(rid: str, pid: str, category: str, code: str, display: str, value: dict[str, Any]) -> dict[str, Any]:
        return {"resourceType": "Observation", "id": rid, "status": "final",
                "category": [{"coding": [{"system": OBS_CATEGORY, "code": category}]}],
                "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}]},
                "subject": {"reference": f"Patient/{pid}"}, "valueQuantity": value}

    out: list[dict[str, Any]] = [
        {"resourceType": "Practitioner", "id": "prac-1", "name": [{"family": "Careful", "given": ["Casey"]}]}]
    for pid, family in (("pat-a", "Alpha"), ("pat-b", "Bravo")):
        s = pid[-1]
        out += [
            {"resourceType": "Patient", "id": pid, "name": [{"family": family}], "gender": "female",
             "birthDate": "1980-01-01", "identifier": [{"system": MRN_SYSTEM, "value": f"mrn-{s}"}]},
            obs(f"obs-{s}1", pid, "vital-signs", "8867-4", "Heart rate", {"value": 72, "unit": "/min"}),
            obs(f"obs-{s}2", pid, "laboratory", "2339-0", "Glucose", {"value": 5.4, "unit": "mmol/L"}),
            {"resourceType": "Condition", "id": f"cond-{s}1", "code": {"text": "Hypertension"},
             "subject": {"reference": f"Patient/{pid}"}},
            {"resourceType": "Encounter", "id": f"enc-{s}1", "status": "finished",
             "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
             "subject": {"reference": f"Patient/{pid}"}},
        ]
    out += [
        {"resourceType": "Provenance", "id": "prov-a1", "target": [{"reference": "Observation/obs-a1"}],
         "recorded": "2026-01-01T00:00:00Z", "agent": [{"who": {"reference": "Practitioner/prac-1"}}]},
        {"resourceType": "Observation", "id": "obs-del", "status": "final",
         "code": {"text": "to be deleted by the e2e table"}, "subject": {"reference": "Patient/pat-b"}},
    ]
    c = LABELLED_PATIENT
    out += [
        {"resourceType": "Patient", "id": c, "name": [{"family": "Charlie"}], "gender": "male",
         "birthDate": "1975-05-05", "identifier": [{"system": MRN_SYSTEM, "value": "mrn-c"}]},
        obs("obs-c1", c, "vital-signs", "8867-4", "Heart rate", {"value": 80, "unit": "/min"}),
        labelled(obs("obs-c-r", c, "laboratory", "5195-3", "HIV 1 Ab", {"value": 0, "unit": "1"}), LABEL_R),
        labelled(obs("obs-c-v", c, "laboratory", "3397-7", "Cocaine screen", {"value": 1, "unit": "1"}), LABEL_V),
        labelled({"resourceType": "Condition", "id": "cond-c-sud",
                  "code": {"coding": [{"system": "http://snomed.info/sct", "code": "5602001",
                                       "display": "Opioid abuse"}]},
                  "subject": {"reference": f"Patient/{c}"}}, LABEL_ETH, LABEL_PART2, LABEL_R),
        labelled({"resourceType": "Encounter", "id": "enc-c-sud", "status": "finished",
                  "class": {"system": ACT_CODE, "code": "AMB"}, "subject": {"reference": f"Patient/{c}"}},
                 LABEL_ETH, LABEL_PART2),
    ]
    for r in out:
        r["meta"] = {**r.get("meta", {}), "tag": [dict(SEEDED_TAG)]}
    return out


SEEDED_IDS = frozenset(f"{r['resourceType']}/{r['id']}" for r in seed_resources())


def seed_bundle() -> dict[str, Any]:
    """A transaction Bundle of the data set (PUT with fixed ids: idempotent)."""
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r,
         "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in seed_resources()]}


def is_ours(resource: dict[str, Any]) -> bool:
    tags = (resource.get("meta") or {}).get("tag") or []
    return any(t.get("system") == SEEDED_TAG["system"] and t.get("code") == SEEDED_TAG["code"] for t in tags)


def refuse_foreign(base_url: str, timeout: float = 30) -> None:
    """Raise SeedRefused when an id of the data set holds a resource we did not write."""
    for ref in sorted(SEEDED_IDS):
        r = requests.get(f"{base_url}/{ref}", timeout=timeout, headers={"Accept": "application/fhir+json"})
        if r.status_code == 200 and not is_ours(r.json()):
            raise SeedRefused(f"{base_url}/{ref} exists and was not written by this tool (no tag "
                              f"{SEEDED_TAG['system']}|{SEEDED_TAG['code']}): refusing to overwrite it")


def seed(base_url: str, timeout: float = 30, check_foreign: bool = False) -> None:
    """Load the data set directly into the FHIR server (bypassing the gateway)."""
    base_url = base_url.rstrip("/")
    if check_foreign:
        refuse_foreign(base_url, timeout)
    r = requests.post(base_url, json=seed_bundle(), timeout=timeout,
                      headers={"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"})
    if r.status_code >= 300:
        raise RuntimeError(f"seeding {base_url} failed: {r.status_code} {r.text[:500]}")
    for pid in PATIENTS:
        r = requests.get(f"{base_url}/Patient/{pid}", timeout=timeout)
        if r.status_code != 200:
            raise RuntimeError(f"seeded Patient/{pid} not readable: {r.status_code}")
