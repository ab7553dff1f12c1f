"""The end-to-end table: one row per request through real Envoy + the built
filter. Kept independent of which FHIR server is upstream (sekmet natively,
HAPI in the compose rig): allowed rows assert the upstream answered (2xx),
never server-specific bodies.

Token specs (``Case.token``):
  None                      no Authorization header
  (profile, {claims})       a valid token from the listener's issuer; claims override
                            the profile's (None removes a claim); "alg" picks RS256/ES256
  "expired" | "wrong_aud" | "wrong_iss" | "bad_sig" | "unknown_kid" | "alg_none"
  | "hs256" | "malformed" | "future_nbf" | "no_exp"   broken tokens (see tokens.py)
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from tests.conformance.data import seed_resources

PATIENT_ALL = "launch/patient patient/*.rs"
LAB = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
LAB_SCOPE = f"launch/patient patient/Observation.rs?category={LAB}"
LAB_ENCODED = "http%3A%2F%2Fterminology.hl7.org%2FCodeSystem%2Fobservation-category%7Claboratory"
P = ("patient", {})  # pat-a, patient/{Patient,Observation,Condition,Encounter}.rs
C = ("clinician", {})  # user/Patient.rs user/Observation.cruds user/Condition.rs user/Encounter.rs
B = ("backend", {})  # system/{Patient,Observation,Condition,Encounter}.rs

OBS_NEW = {"resourceType": "Observation", "status": "final", "code": {"text": "e2e"},
           "subject": {"reference": "Patient/pat-a"}}
OBS_A1 = {"resourceType": "Observation", "id": "obs-a1", "status": "final", "code": {"text": "e2e update"},
          "subject": {"reference": "Patient/pat-a"}}
COND_NEW = {"resourceType": "Condition", "code": {"text": "e2e"}, "subject": {"reference": "Patient/pat-a"}}
SEEDED = {f"{r['resourceType']}/{r['id']}": r for r in seed_resources()}
# a patient app that writes its patient's Observations (pat-a)
PW = ("patient", {"scope": "launch/patient patient/Observation.cruds patient/Patient.rs"})
JSON_PATCH = "application/json-patch+json"


def obs_with(**extra: Any) -> dict[str, Any]:
    """A new Observation of pat-a with more members."""
    return {**OBS_NEW, **extra}


def json_patch(*ops: dict[str, Any]) -> str:
    return json.dumps(list(ops))


def bundle(kind: str, *entries: tuple[str, str, dict[str, Any] | None]) -> dict[str, Any]:
    out = []
    for i, (method, url, resource) in enumerate(entries):
        e: dict[str, Any] = {"request": {"method": method, "url": url}}
        if resource is not None:
            e["resource"] = resource
            e["fullUrl"] = f"urn:uuid:00000000-0000-0000-0000-{i:012d}"
        out.append(e)
    return {"resourceType": "Bundle", "type": kind, "entry": out}


@dataclass
class Case:
    id: str
    method: str
    path: str
    token: Any
    status: int | tuple[int, ...]
    reason: str
    decision: str | None = None  # default: allow for 2xx, deny otherwise
    subtype: str | None = None  # audit subtype: FHIR restful-interaction code, e.g. "read", "search"
    entity: str | None = None  # "Type/id" the audit record names, when one
    required_scopes: list[str] | None = None  # exact, when given
    www: str | None = None  # WWW-Authenticate error code; "" = present without error; None = absent
    www_scope: str | None = None
    oo_code: str | None = None  # OperationOutcome issue code for denials
    oo_diag: str | None = None  # substring of the OperationOutcome diagnostics
    # the upstream processed the request (got it complete: through the router, or fetched by the
    # filter for a response check); default: True for 2xx, False otherwise
    upstream: bool | None = None
    listener: str = "main"
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    content_type: str | None = None
    known_gap: str | None = None  # a known filter gap: the row runs as a non-strict xfail
    # what the (recording) upstream received, when given: the request target and headers (the
    # filter's rewrite of a narrowed search)
    upstream_path: str | None = None
    upstream_headers: dict[str, str] = field(default_factory=dict)
    # why the row depends on the native rig's own plugin configuration: it stays out of the
    # black-box table that `make conformance` runs against other gateways
    rig_only: str | None = None

    @property
    def status_first(self) -> int:
        return self.status[0] if isinstance(self.status, tuple) else self.status

    @property
    def allowed(self) -> bool:
        return self.decision == "allow" if self.decision else self.reason in ("allowed", "public_endpoint")


# ---------------------------------------------------------------------------
# Denials carry the RFC 6750 error and an OperationOutcome:
#   401 → error per reason (none for missing_token), OperationOutcome code "login"
#   403 → error="insufficient_scope", code "forbidden"
#   400 → error="invalid_request", code "invalid";  413 → error="invalid_request", code "too-long"
# ---------------------------------------------------------------------------

def deny401(id: str, token: Any, reason: str = "invalid_token", path: str = "/Patient/pat-a", **kw: Any) -> Case:
    www = "" if reason == "missing_token" else "invalid_token"
    return Case(id, kw.pop("method", "GET"), path, token, 401, reason, www=www, oo_code="login", **kw)


def deny403(id: str, method: str, path: str, token: Any, reason: str, **kw: Any) -> Case:
    return Case(id, method, path, token, 403, reason, www="insufficient_scope", oo_code="forbidden", **kw)


def deny400(id: str, method: str, path: str, token: Any, reason: str = "invalid_request", **kw: Any) -> Case:
    return Case(id, method, path, token, 400, reason, www="invalid_request", oo_code="invalid", **kw)


def allow(id: str, method: str, path: str, token: Any, subtype: str, status: int | tuple[int, ...] = 200,
          **kw: Any) -> Case:
    return Case(id, method, path, token, status, kw.pop("reason", "allowed"), subtype=subtype, **kw)


CASES: list[Case] = [
    # --- authentication ------------------------------------------------------
    deny401("no-token", None, "missing_token"),
    deny401("no-token-search", None, "missing_token", path="/Observation?patient=pat-a"),
    deny401("expired", "expired", oo_diag="expired"),
    deny401("wrong-audience", "wrong_aud", oo_diag="aud"),
    deny401("wrong-issuer", "wrong_iss"),
    deny401("bad-signature", "bad_sig", oo_diag="signature"),
    deny401("unknown-kid", "unknown_kid"),
    deny401("alg-none", "alg_none"),
    deny401("hs256-confusion", "hs256"),
    deny401("malformed", "malformed"),
    deny401("not-yet-valid", "future_nbf"),
    deny401("no-exp", "no_exp"),
    deny401("basic-scheme", None, "missing_token", headers={"Authorization": "Basic dXNlcjpwYXNz"}),
    deny400("query-token-refused", "GET", "/Patient/pat-a?access_token=abc.def.ghi", None),
    deny400("two-credentials", "GET", "/Patient/pat-a?access_token=abc", P, "multiple_credentials"),
    allow("es256-token", "GET", "/Patient/pat-a", ("patient", {"alg": "ES256"}), "read", entity="Patient/pat-a"),
    # --- public endpoints -----------------------------------------------------
    allow("metadata-public", "GET", "/metadata", None, "capabilities", reason="public_endpoint"),
    allow("smart-configuration-public", "GET", "/.well-known/smart-configuration", None, "smart-configuration",
          reason="public_endpoint", upstream=False),
    # --- patient app (pat-a) --------------------------------------------------
    allow("patient-read-own", "GET", "/Patient/pat-a", P, "read", entity="Patient/pat-a",
          required_scopes=["patient/Patient.r"]),
    deny403("patient-read-other", "GET", "/Patient/pat-b", P, "patient_compartment_violation",
            entity="Patient/pat-b", oo_diag="pat-b"),
    allow("patient-read-own-observation", "GET", "/Observation/obs-a1", P, "read", entity="Observation/obs-a1"),
    Case("patient-read-other-observation", "GET", "/Observation/obs-b1", P, 403, "response_not_permitted",
         subtype="read", www="insufficient_scope", oo_code="forbidden", upstream=True),
    allow("patient-vread-own", "GET", "/Patient/pat-a/_history/1", P, "vread", entity="Patient/pat-a"),
    allow("patient-search-own", "GET", "/Observation?patient=pat-a", P, "search",
          required_scopes=["patient/Observation.s"]),
    allow("patient-search-own-subject", "GET", "/Observation?subject=Patient/pat-a&category=vital-signs", P,
          "search"),
    deny403("patient-search-other", "GET", "/Observation?patient=pat-b", P, "patient_compartment_violation"),
    deny403("patient-search-or-other", "GET", "/Observation?patient=pat-a,pat-b", P,
            "patient_compartment_violation"),
    allow("patient-compartment-own", "GET", "/Patient/pat-a/Observation", P, "search"),
    deny403("patient-compartment-other", "GET", "/Patient/pat-b/Observation", P, "patient_compartment_violation"),
    allow("patient-history-own", "GET", "/Patient/pat-a/_history", P, "history", entity="Patient/pat-a"),
    allow("patient-everything-own", "GET", "/Patient/pat-a/$everything", ("patient", {"scope": PATIENT_ALL}),
          "operation"),
    deny403("patient-everything-other", "GET", "/Patient/pat-b/$everything", ("patient", {"scope": PATIENT_ALL}),
            "patient_compartment_violation"),
    deny403("patient-everything-narrow-scopes", "GET", "/Patient/pat-a/$everything", P, "insufficient_scope"),
    deny403("patient-create-no-c", "POST", "/Observation", P, "insufficient_scope", body=OBS_NEW,
            required_scopes=["patient/Observation.c"]),
    deny403("patient-update-no-u", "PUT", "/Observation/obs-a1", P, "insufficient_scope", body=OBS_A1),
    deny403("patient-delete-no-d", "DELETE", "/Observation/obs-a1", P, "insufficient_scope"),
    deny403("patient-read-unscoped-type", "GET", "/MedicationRequest?patient=pat-a", P, "insufficient_scope"),
    # a chain inside a search the request pins only narrows the patient's results (issue 17)
    allow("patient-chained-search-pinned", "GET", "/Observation?patient=pat-a&subject:Patient.name=Bravo", P,
          "search"),
    deny403("patient-chained-search", "GET", "/Observation?category=vital-signs&subject:Patient.name=Bravo", P,
            "chained_search_not_permitted"),
    deny403("patient-no-context", "GET", "/Patient/pat-a", ("patient", {"patient": None, "fhirUser": None}),
            "no_patient_context"),
    allow("patient-context-from-fhiruser", "GET", "/Patient/pat-a", ("patient", {"patient": None}), "read",
          rig_only="claims.patient_from_fhir_user is true in the rig"),
    allow("patient-v1-scope", "GET", "/Observation?patient=pat-a",
          ("patient", {"scope": "launch/patient patient/Observation.read"}), "search"),
    deny403("patient-granular-other-category", "GET", "/Observation?patient=pat-a&category=laboratory",
            ("patient", {"scope": "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/"
                                   "observation-category|vital-signs"}), "granular_scope_violation"),
    allow("patient-batch-all-own", "POST", "", P, "batch",
          body=bundle("batch", ("GET", "Patient/pat-a", None), ("GET", "Observation?patient=pat-a", None))),
    # a batch answers per entry: the denied one in place, the other forwarded (issue 17;
    # test_e2e.py::test_batch_answers_a_denied_entry_in_place reads the batch-response)
    allow("patient-batch-one-bad-entry", "POST", "", P, "batch",
          body=bundle("batch", ("GET", "Patient/pat-a", None), ("GET", "Patient/pat-b", None))),
    deny403("patient-batch-every-entry-bad", "POST", "", P, "bundle_entry_denied",
            body=bundle("batch", ("GET", "Patient/pat-b", None), ("GET", "Observation?patient=pat-b", None))),
    deny403("patient-transaction-one-bad-entry", "POST", "", P, "bundle_entry_denied",
            body=bundle("transaction", ("GET", "Patient/pat-a", None), ("GET", "Patient/pat-b", None))),
    deny403("patient-transaction-create-denied", "POST", "", P, "bundle_entry_denied",
            body=bundle("transaction", ("POST", "Observation", OBS_NEW))),
    deny403("patient-revinclude-unscoped", "GET", "/Observation?patient=pat-a&_revinclude=Provenance:target", P,
            "include_not_permitted", required_scopes=["patient/Observation.s", "patient/Provenance.s"]),
    deny403("patient-has-refused", "GET", "/Observation?category=vital-signs&_has:Encounter:patient:status=finished",
            P, "chained_search_not_permitted"),
    # _contained returns containers of any type and patient (issue 17)
    deny403("patient-contained-search", "GET", "/Observation?patient=pat-a&_contained=true", P,
            "insufficient_scope", oo_diag="_contained", required_scopes=["patient/Observation.s", "user/*.s"]),
    deny403("patient-all-contained-search", "GET", "/Observation?patient=pat-a&_contained=true",
            ("patient", {"scope": PATIENT_ALL}), "patient_compartment_violation", oo_diag="_contained"),
    deny403("clinician-contained-search", "GET", "/Observation?_contained=both", C, "insufficient_scope",
            required_scopes=["user/Observation.s", "user/*.s"]),
    # US Core Implantable Device: Device.patient links it to the patient (issue 17)
    allow("patient-device-search", "GET", "/Device?patient=pat-a", ("patient", {"scope": PATIENT_ALL}), "search"),
    deny403("patient-device-search-other", "GET", "/Device?patient=pat-b", ("patient", {"scope": PATIENT_ALL}),
            "patient_compartment_violation"),
    # a refusal that stays: a Provenance read by id whose target is not the Patient (its targets are not
    # in the answer to check it by; read it with _revinclude=Provenance:target)
    Case("patient-read-provenance-by-id", "GET", "/Provenance/prov-a1",
         ("patient", {"scope": "launch/patient patient/Observation.rs patient/Provenance.rs"}), 403,
         "response_not_permitted", subtype="read", www="insufficient_scope", oo_code="forbidden", upstream=True),
    allow("patient-contained-false", "GET", "/Observation?patient=pat-a&_contained=false", P, "search"),
    allow("patient-search-reference-form", "GET", "/Observation?patient=Patient/pat-a", P, "search"),
    allow("patient-vread-own-observation", "GET", "/Observation/obs-a1/_history/1", P, "vread",
          entity="Observation/obs-a1"),
    allow("patient-public-type-not-found", "GET", "/Medication/m-none",
          ("patient", {"scope": "launch/patient patient/Medication.rs"}), "read", status=404, upstream=True,
          required_scopes=["patient/Medication.r"]),
    allow("patient-search-form-own", "POST", "/Observation/_search", P, "search", listener="recorder",
          body="patient=pat-a", content_type="application/x-www-form-urlencoded"),
    deny403("patient-search-form-other", "POST", "/Observation/_search", P, "patient_compartment_violation",
            listener="recorder", body="patient=pat-b", content_type="application/x-www-form-urlencoded"),
    # --- clinician app --------------------------------------------------------
    allow("clinician-read-any-patient", "GET", "/Patient/pat-b", C, "read", entity="Patient/pat-b"),
    allow("clinician-search", "GET", "/Condition?patient=pat-b", C, "search"),
    allow("clinician-type-search-unpinned", "GET", "/Observation?code=8867-4", C, "search"),
    allow("clinician-create", "POST", "/Observation", C, "create", status=201, body=OBS_NEW,
          required_scopes=["user/Observation.c"]),
    allow("clinician-update", "PUT", "/Observation/obs-a1", C, "update", status=(200, 201), body=OBS_A1,
          entity="Observation/obs-a1"),
    allow("clinician-patch", "PATCH", "/Observation/obs-a1", C, "patch", entity="Observation/obs-a1",
          body='[{"op":"replace","path":"/status","value":"amended"}]', content_type="application/json-patch+json"),
    allow("clinician-delete", "DELETE", "/Observation/obs-del", C, "delete", status=(200, 204),
          entity="Observation/obs-del"),
    deny403("clinician-delete-patient-no-d", "DELETE", "/Patient/pat-b", C, "insufficient_scope",
            required_scopes=["user/Patient.d"]),
    deny403("clinician-create-condition-no-c", "POST", "/Condition", C, "insufficient_scope", body=COND_NEW),
    deny403("clinician-read-unscoped-type", "GET", "/Medication/m1", C, "insufficient_scope"),
    deny403("clinician-everything-narrow", "GET", "/Patient/pat-b/$everything", C, "insufficient_scope"),
    allow("clinician-transaction-ok", "POST", "", C, "transaction",
          body=bundle("transaction", ("POST", "Observation", OBS_NEW))),
    deny403("clinician-transaction-one-bad", "POST", "", C, "bundle_entry_denied",
            body=bundle("transaction", ("POST", "Observation", OBS_NEW), ("POST", "Condition", COND_NEW))),
    allow("clinician-everything-wide", "GET", "/Patient/pat-b/$everything", ("clinician", {"scope": "user/*.rs"}),
          "operation", required_scopes=["user/*.rs"]),
    allow("clinician-type-history", "GET", "/Observation/_history", C, "history", listener="recorder"),
    deny403("clinician-system-history", "GET", "/_history", C, "insufficient_scope", required_scopes=["user/*.s"]),
    allow("clinician-conditional-create", "POST", "/Observation", C, "create", status=201, listener="recorder",
          body=OBS_NEW, headers={"If-None-Exist": "identifier=urn:e2e|1"}, required_scopes=["user/Observation.cs"]),
    # --- backend service ------------------------------------------------------
    allow("backend-search-patients", "GET", "/Patient?gender=female", B, "search"),
    allow("backend-read-observation", "GET", "/Observation/obs-b1", B, "read", entity="Observation/obs-b1"),
    deny403("backend-create-no-c", "POST", "/Observation", B, "insufficient_scope", body=OBS_NEW),
    # No `_type` under per-type scopes: narrowed to the granted types (test_bulk.py has the flow).
    allow("backend-export-narrowed-to-granted-types", "GET", "/$export", ("backend", {"client_id": "e2e-export-row"}),
          "operation", status=202, headers={"Prefer": "respond-async"},
          rig_only="starts a Bulk Data job on the rig's server"),
    allow("backend-export", "GET", "/$export", ("backend", {"scope": "system/*.rs"}), "operation",
          listener="recorder", required_scopes=["system/*.rs"]),
    # --- malformed / hostile requests -----------------------------------------
    deny400("unknown-resource-type", "GET", "/Foo/1", C),
    deny400("encoded-slash-in-id", "GET", "/Patient/pat-a%2F..%2Fpat-b", P),
    deny403("dot-segments-normalised", "GET", "/Patient/pat-a/../pat-b", P, "patient_compartment_violation"),
    deny400("bad-json-body", "POST", "/Observation", C, body="{not json", content_type="application/fhir+json"),
    deny400("bundle-wrong-type", "POST", "", C, body={"resourceType": "Bundle", "type": "collection"}),
    deny400("outside-base-path", "GET", "/../other/Patient/pat-b", P),
    deny400("base-path-case", "GET", "/../FHIR/Patient/pat-b", P),
    deny400("matrix-parameter", "GET", "/Patient/pat-b;x", P),
    deny400("method-override-header", "GET", "/Patient/pat-b", P, headers={"X-HTTP-Method-Override": "DELETE"}),
    deny400("options-method", "OPTIONS", "/Patient/pat-a", P),
    Case("head-other-patient", "HEAD", "/Patient/pat-b", P, 403, "patient_compartment_violation",
         www="insufficient_scope"),
    # answers without a body are decided as the full GET (issue 17): the filter fetches GET
    # without conditional headers and checks it
    Case("head-other-patient-observation", "HEAD", "/Observation/obs-b1", P, 403, "response_not_permitted",
         subtype="read", www="insufficient_scope", upstream=True),
    allow("head-own-observation", "HEAD", "/Observation/obs-a1", P, "read", upstream=True),
    Case("if-none-match-other-patient-observation", "GET", "/Observation/obs-b1", P, 403, "response_not_permitted",
         subtype="read", www="insufficient_scope", oo_code="forbidden", upstream=True,
         headers={"If-None-Match": 'W/"1"', "If-Modified-Since": "Mon, 01 Jan 2024 00:00:00 GMT"}),
    allow("if-none-match-own-observation", "GET", "/Observation/obs-a1", P, "read", upstream=True,
          headers={"If-None-Match": 'W/"1"'}),
    deny403("merged-slashes", "GET", "//Patient/pat-b", P, "patient_compartment_violation"),
    deny403("ids-are-case-sensitive", "GET", "/Patient/PAT-A", P, "patient_compartment_violation"),
    deny403("patient-search-by-id-other", "GET", "/Patient?_id=pat-b", P, "patient_compartment_violation"),
    deny403("patient-vread-other", "GET", "/Patient/pat-b/_history/1", P, "patient_compartment_violation"),
    deny403("patient-search-bare-subject-other", "GET", "/Observation?subject=pat-b", P,
            "patient_compartment_violation"),
    deny403("patient-search-encoded-comma", "GET", "/Observation?patient=pat-a%2Cpat-b", P,
            "patient_compartment_violation"),
    deny400("patient-paging-id-in-a-search", "GET", "/Observation?_getpages=abc", P),
    Case("body-over-limit", "POST", "/Observation", C, 413, "body_too_large", www="invalid_request",
         oo_code="too-long", body={**OBS_NEW, "note": [{"text": "x" * 600000}]},
         rig_only="max_body_bytes is 524288 in the rig"),
    # hardening: request reading ---------------------------------------------
    # What the filter parses must be what the FHIR server parses (README "Decision rules",
    # "One reading of a request"): form bodies, POST operations, paging, trusted headers, caps.
    allow("form-search-browser-charset", "POST", "/Observation/_search", P, "search", body="patient=pat-a",
          content_type="application/x-www-form-urlencoded; charset=UTF-8"),
    deny400("form-search-content-encoding", "POST", "/Observation/_search", P, body="patient=pat-a",
            content_type="application/x-www-form-urlencoded", headers={"Content-Encoding": "identity"},
            oo_diag="Content-Encoding"),
    deny400("form-search-mixed-case-type", "POST", "/Observation/_search", P, body="patient=pat-a",
            content_type="Application/X-WWW-Form-Urlencoded", oo_diag="lower case"),
    deny400("form-search-latin1", "POST", "/Observation/_search", P, body="patient=pat-a",
            content_type="application/x-www-form-urlencoded; charset=ISO-8859-1", oo_diag="charset=utf-8"),
    deny400("search-post-without-form-type", "POST", "/Observation/_search?patient=pat-a", P, body="",
            oo_diag="even when empty"),
    deny400("too-many-parameters", "GET", "/Observation?" + "_count=10&" * 100 + "patient=pat-a", P,
            oo_diag="more than 100 parameters"),
    deny400("post-export-url-parameters", "POST", "/$export?_type=Observation",
            ("backend", {"scope": "system/*.rs"}), body="", headers={"Prefer": "respond-async"},
            oo_diag="the URL parameter `_type` is refused"),
    deny400("post-lastn-url-pin", "POST", "/Observation/$lastn?patient=pat-a", P, body="",
            oo_diag="Parameters resource"),
    deny403("patient-everything-mdm", "GET", "/Patient/pat-a/$everything?_mdm=true",
            ("patient", {"scope": PATIENT_ALL}), "operation_not_permitted", oo_diag="_mdm"),
    deny400("paging-blank-id", "GET", "?_getpages=&_type=Observation", C, oo_diag="blank"),
    deny400("paging-post-base-not-a-batch", "POST", "?_getpages=abc", ("clinician", {"scope": "openid"}),
            body=bundle("batch"), oo_diag="_getpages"),
    Case("paging-user-page-checked", "GET", "?_getpages=abc", ("clinician", {"scope": "user/Patient.rs"}), 200,
         "allowed", subtype="search", listener="recorder", upstream=True),
    deny400("content-location-refused", "PUT", "/Observation/obs-a1", C, body=OBS_A1,
            headers={"Content-Location": "Observation/obs-b1"}, oo_diag="Content-Location"),
    deny400("cascade-header-refused", "DELETE", "/Patient/pat-b", ("clinician", {"scope": "user/*.cruds"}),
            headers={"X-Cascade": "delete"}, oo_diag="X-Cascade"),
    deny400("cascade-parameter-refused", "DELETE", "/Patient/pat-b?_cascade=delete",
            ("clinician", {"scope": "user/*.cruds"}), oo_diag="_cascade"),
    # a search is answered synchronously: forwarded without the preference (issue 17)
    allow("respond-async-on-search", "GET", "/Observation?patient=pat-a", P, "search",
          headers={"Prefer": "respond-async"}, listener="recorder", upstream_headers={"prefer": "handling=strict"}),
    deny400("respond-async-on-read", "GET", "/Observation/obs-a1", P, headers={"Prefer": "respond-async"},
            oo_diag="respond-async"),
    # A status URL of no job of this client: 404, whoever asks, never forwarded.
    Case("bulk-status-unknown-job", "GET", "/$export-poll-status?_jobId=j1",
         ("backend", {"scope": "system/Observation.rs"}), 404, "bulk_job_not_found", oo_code="not-found",
         listener="recorder", upstream=False),
    Case("bulk-status-patient-app", "GET", "/$export-poll-status?_jobId=j1", ("patient", {"scope": PATIENT_ALL}), 404,
         "bulk_job_not_found", oo_code="not-found", listener="recorder", upstream=False),
    deny400("bundle-over-entry-cap", "POST", "", C,
            body={"resourceType": "Bundle", "type": "batch",
                  "entry": [{"request": {"method": "GET", "url": "metadata"}}] * 1001},
            oo_diag="more than 1000"),
    deny403("token-over-scope-cap", "GET", "/Patient/pat-a",
            ("clinician", {"scope": " ".join(f"user/Observation.rs?code=c{i}" for i in range(257))}),
            "unsupported_claims", oo_diag="more than 256"),
    # --- search: narrowing, tables, chains ---------------------------------------
    # an unpinned search under patient/ scopes is narrowed: the pin goes in front of the query
    allow("patient-search-narrowed", "GET", "/Observation?code=8867-4", P, "search", listener="recorder",
          upstream_path="/fhir/Observation?patient=Patient%2Fpat-a&code=8867-4",
          upstream_headers={"prefer": "handling=strict"}),
    allow("patient-search-narrowed-patient", "GET", "/Patient?name=Alpha", P, "search"),
    allow("patient-search-narrowed-form", "POST", "/Observation/_search", P, "search", listener="recorder",
          body="code=8867-4", content_type="application/x-www-form-urlencoded",
          upstream_path="/fhir/Observation/_search?patient=Patient%2Fpat-a"),
    # pinned by the client: sent as is, but with Prefer: handling=strict (the client's handling replaced)
    allow("patient-search-prefer-strict", "GET", "/Observation?patient=pat-a", P, "search", listener="recorder",
          headers={"Prefer": "return=minimal, handling=lenient"},
          upstream_path="/fhir/Observation?patient=pat-a",
          upstream_headers={"prefer": "return=minimal, handling=strict"}),
    allow("patient-search-granular-narrowed", "GET", "/Observation?patient=pat-a", ("patient", {"scope": LAB_SCOPE}),
          "search", listener="recorder",
          upstream_path=f"/fhir/Observation?category={LAB_ENCODED}&patient=pat-a"),
    allow("patient-compartment-granular", "GET", f"/Patient/pat-a/Observation?category={LAB_ENCODED}",
          ("patient", {"scope": LAB_SCOPE}), "search"),
    deny400("patient-search-two-pins", "GET", "/Observation?patient=pat-a&patient=pat-b", P),
    deny403("patient-search-mdm-other", "GET", "/Observation?patient:mdm=pat-b", P, "patient_compartment_violation"),
    deny403("patient-search-link", "GET", "/Patient?link=Patient/pat-a", P, "patient_compartment_violation"),
    deny403("patient-compartment-patient", "GET", "/Patient/pat-a/Patient", P, "patient_compartment_violation"),
    # _include without a target type: the readable targets, checked on the response (relayed)
    allow("patient-include-untyped", "GET", "/Observation?patient=pat-a&_include=Observation:subject", P, "search",
          upstream=True),
    allow("patient-revinclude-provenance", "GET", "/Observation?patient=pat-a&_revinclude=Provenance:target",
          ("patient", {"scope": "launch/patient patient/Observation.rs patient/Provenance.rs"}), "search",
          upstream=True),
    # user/ scopes: every type a chain or _has reads needs s
    allow("clinician-chain-granted", "GET", "/Observation?subject:Patient.name=Alpha", C, "search"),
    deny403("clinician-chain-unscoped-type", "GET", "/Observation?performer:Practitioner.name=x", C,
            "insufficient_scope", required_scopes=["user/Observation.s", "user/Practitioner.s"]),
    deny403("clinician-has-unscoped-type", "GET", "/Patient?_has:Procedure:patient:code=x", C,
            "insufficient_scope", required_scopes=["user/Patient.s", "user/Procedure.s"]),
    deny403("clinician-filter", "GET", "/Observation?_filter=code%20eq%20x", C, "insufficient_scope"),
    deny400("clinician-chain-unknown", "GET", "/Observation?subject.foo=1", C),
    # hardening: writes --------------------------------------------------------
    # references in a written resource, read as servers read them (issue 8.4)
    deny403("writes-other-patient-in-another-field", "POST", "/Observation", PW, "patient_compartment_violation",
            body=obs_with(basedOn=[{"reference": "Patient/pat-b"}]), oo_diag="another patient"),
    deny403("writes-conditional-reference-as-subject", "POST", "/Observation", PW, "patient_compartment_violation",
            body=obs_with(subject={"reference": "Patient?identifier=urn:fhir-smart-authz:mrn|mrn-b"})),
    deny400("writes-odd-reference-form", "POST", "/Observation", PW, body=obs_with(subject={"reference": "Patient/pat-a/"})),
    deny403("writes-conditional-reference-is-a-search", "POST", "/Observation", C, "insufficient_scope",
            body=obs_with(basedOn=[{"reference": "ServiceRequest?code=HIV"}]),
            required_scopes=["user/Observation.c", "user/ServiceRequest.s"]),
    # PATCH documents (8.5)
    deny403("writes-patch-moves-subject", "PATCH", "/Observation/obs-a2", PW, "patient_compartment_violation",
            body=json_patch({"op": "replace", "path": "/subject/reference", "value": "Patient/pat-b"}),
            content_type=JSON_PATCH),
    deny400("writes-patch-wrong-content-type", "PATCH", "/Observation/obs-a2", PW,
            body=json_patch({"op": "replace", "path": "/status", "value": "final"}), content_type="application/json"),
    allow("writes-patch-own-by-id", "PATCH", "/Observation/obs-a2", PW, "patch", entity="Observation/obs-a2",
          body=json_patch({"op": "replace", "path": "/status", "value": "final"}), content_type=JSON_PATCH),
    # letters split across contexts (8.6)
    deny403("writes-letters-split-across-contexts", "PUT", "/Observation?_id=obs-b1",
            ("patient", {"scope": "launch/patient patient/Observation.u user/Observation.s"}), "insufficient_scope",
            body=OBS_NEW, required_scopes=["patient/Observation.us"], oo_diag="one interaction"),
    # writes by id: the stored resource is checked first (8.7)
    deny403("writes-update-other-patients-by-id", "PUT", "/Observation/obs-b1", PW, "patient_compartment_violation",
            body={**SEEDED["Observation/obs-b1"], "subject": {"reference": "Patient/pat-a"}}, entity="Observation/obs-b1"),
    allow("writes-update-own-by-id", "PUT", "/Observation/obs-a2", PW, "update", entity="Observation/obs-a2",
          body=SEEDED["Observation/obs-a2"]),
    deny403("writes-delete-other-patients-by-id", "DELETE", "/Observation/obs-b2", PW, "patient_compartment_violation"),
    # nothing stored: the delete goes on and the server answers it (sekmet 200, HAPI 200/404)
    allow("writes-delete-missing-goes-to-the-server", "DELETE", "/Observation/obs-none", PW, "delete",
          status=(200, 204, 404), upstream=True),
    deny400("writes-conditional-update-with-body-id", "PUT", "/Observation?patient=pat-a&code=x", PW,
            body={**OBS_NEW, "id": "obs-b1"}),
    # a transaction that writes its own Patient and refers to it by fullUrl (8.10)
    allow("writes-transaction-refers-to-own-patient-entry", "POST", "", (
        "patient", {"scope": "launch/patient patient/Observation.c patient/Patient.u"}), "transaction",
          body={"resourceType": "Bundle", "type": "transaction", "entry": [
              {"fullUrl": "urn:uuid:5b8e8f8a-0000-4000-8000-000000000001", "resource": SEEDED["Patient/pat-a"],
               "request": {"method": "PUT", "url": "Patient/pat-a"}},
              {"fullUrl": "urn:uuid:5b8e8f8a-0000-4000-8000-000000000002",
               "resource": obs_with(subject={"reference": "urn:uuid:5b8e8f8a-0000-4000-8000-000000000001"}),
               "request": {"method": "POST", "url": "Observation"}}]}),
    deny403("writes-patch-entry-in-transaction", "POST", "", PW, "bundle_entry_denied",
            body={"resourceType": "Bundle", "type": "transaction", "entry": [
                {"resource": {"resourceType": "Binary", "contentType": JSON_PATCH, "data": base64.b64encode(
                    json_patch({"op": "replace", "path": "/subject/reference", "value": "Patient/pat-b"}).encode()
                ).decode()}, "request": {"method": "PATCH", "url": "Observation/obs-a2"}}]}),
    # --- shadow mode (enforce=false): decide + audit, never deny --------------
    Case("shadow-no-token", "GET", "/Patient/pat-a", None, 200, "missing_token", decision="deny",
         listener="shadow", upstream=True),
    Case("shadow-other-patient", "GET", "/Patient/pat-b", P, 200, "patient_compartment_violation",
         decision="deny", listener="shadow", upstream=True),
    Case("shadow-allowed", "GET", "/Patient/pat-a", P, 200, "allowed", subtype="read", listener="shadow",
         upstream=True),
]
