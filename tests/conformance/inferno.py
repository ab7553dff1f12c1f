"""Inferno-style resource-server checks (after the ONC (g)(10) and SMART App Launch
test kits): what a SMART client may rely on, whatever sits behind the gateway.

Checks marked `pending` need filter features that are not built yet (issue 9):
they are expected to fail now and flip to a loud XPASS once the feature lands.

A patient app's search is narrowed to its patient (the filter adds the pin, or a granular
scope's parameter), `_include` without a target type returns the targets the token may
read, and a revincluded Provenance of the patient's own records is the patient's."""

from __future__ import annotations

import re

from .checks import Ctx, check
from .data import MRN_SYSTEM, OBS_CATEGORY


ORIGIN = "https://app.example.org"
LAB = f"{OBS_CATEGORY}|laboratory"
VITALS = f"{OBS_CATEGORY}|vital-signs"
PATIENT_SCOPES = "launch/patient openid fhirUser patient/Patient.rs patient/Observation.rs"
US_CORE_TYPES = ("Patient", "Observation", "Condition", "Encounter", "AllergyIntolerance", "MedicationRequest",
                 "Procedure", "Immunization", "DocumentReference", "DiagnosticReport", "CarePlan", "Goal")
NOT_GRANTED_TO_PATIENT_APP = ("AllergyIntolerance", "MedicationRequest", "Immunization", "Procedure",
                              "DocumentReference")


def search_path(ctx: Ctx, rtype: str) -> str:
    return f"/Patient?_id={ctx.own}" if rtype == "Patient" else f"/{rtype}?patient={ctx.own}"


def only_own(ctx: Ctx, reply, want: set[str] | None = None) -> None:
    """The searchset holds exactly `want` (with seeded data), never another patient's record."""
    ids = set(reply.resource_ids())
    other = {i for i in ids if ctx.other in i or i.endswith(("-b1", "-b2"))}
    ctx.require(not other, "only the context patient's records", f"also {sorted(other)}")
    if want is not None and ctx.seeded:
        ctx.require(ids == want, f"entries {sorted(want)}", f"entries {sorted(ids)}")


# --- authentication (every type, exactly 401) ---------------------------------

for _t in US_CORE_TYPES:
    def _no_token(ctx: Ctx, rtype: str = _t) -> None:
        ctx.expect(ctx.send("GET", search_path(ctx, rtype)), 401, "missing_token", www="", oo_code="login")

    check(f"auth/no-token-{_t}", f"{_t} search without a token is exactly 401 (no error code)")(_no_token)


@check("auth/invalid-token", "a token that is not a JWT is 401 invalid_token")
def _invalid_token(ctx: Ctx) -> None:
    ctx.expect(ctx.send("GET", f"/Patient/{ctx.own}", token="invalid-token-value"), 401, "invalid_token",
               www="invalid_token", oo_code="login")


# --- authorization: types not granted are refused, never an empty 200 ----------

for _t in NOT_GRANTED_TO_PATIENT_APP:
    def _not_granted(ctx: Ctx, rtype: str = _t) -> None:
        token = ctx.token("patient", scope=PATIENT_SCOPES)
        reply = ctx.send("GET", f"/{rtype}?patient={ctx.own}", token=token)
        ctx.require(reply.status in (401, 403), "401/403 (never a 200, not even an empty one)", reply.outcome())

    check(f"authz/type-not-granted-{_t}", f"patient app without {_t} scopes is refused")(_not_granted)


@check("authz/clinician-type-not-granted", "clinician app without Medication scopes is refused")
def _clinician_not_granted(ctx: Ctx) -> None:
    reply = ctx.send("GET", "/Medication?code=x", token=ctx.token("clinician"))
    ctx.require(reply.status in (401, 403), "401/403 (never a 200)", reply.outcome())


# --- US Core patient searches under patient/ scopes: narrowed to the patient -----

US_CORE_PATIENT_SEARCHES = {
    "name": "/Patient?name=Alpha",
    "identifier": f"/Patient?identifier={MRN_SYSTEM}|mrn-a",
    "birthdate-name": "/Patient?birthdate=1980-01-01&name=Alpha",
    "gender": "/Patient?gender=female",  # both seeded patients match: narrowing must drop pat-b
}
for _name, _path in US_CORE_PATIENT_SEARCHES.items():
    def _narrowed(ctx: Ctx, path: str = _path) -> None:
        reply = ctx.expect(ctx.send("GET", path, token=ctx.token("patient")), 200)
        only_own(ctx, reply, {f"Patient/{ctx.own}"})

    check(f"narrowing/patient-{_name}", f"patient app: Patient search by {_name} returns only its patient",
          needs=("seed", "own-seeded"))(_narrowed)


@check("narrowing/observation-code", "patient app: Observation?code=… returns only its patient's",
       needs=("seed", "own-seeded"))
def _narrowed_code(ctx: Ctx) -> None:
    reply = ctx.expect(ctx.send("GET", "/Observation?code=http://loinc.org|8867-4", token=ctx.token("patient")), 200)
    only_own(ctx, reply, {"Observation/obs-a1"})


@check("narrowing/never-another-patient", "patient app: a search for another patient's name never returns it",
       needs=("seed",))
def _never_other(ctx: Ctx) -> None:
    reply = ctx.send("GET", "/Patient?name=Bravo", token=ctx.token("patient"))
    ctx.require(reply.status in (200, 403), "200 without the other patient, or 403", reply.outcome())
    if reply.status == 200:
        only_own(ctx, reply, set())


# --- granular scopes -------------------------------------------------------------

def lab_token(ctx: Ctx, *categories: str) -> str:
    scopes = " ".join(f"patient/Observation.rs?category={c}" for c in categories)
    return ctx.token("patient", scope=f"launch/patient {scopes}")


@check("granular/category-given", "granular lab scope: a search naming the lab category returns lab results only",
       needs=("own-seeded",))
def _granular_given(ctx: Ctx) -> None:
    reply = ctx.send("GET", f"/Observation?patient={ctx.own}&category={LAB}", token=lab_token(ctx, LAB))
    only_own(ctx, ctx.expect(reply, 200), {"Observation/obs-a2"})


@check("granular/category-outside", "granular lab scope: the vital-signs category is refused",
       needs=("own-seeded",))
def _granular_outside(ctx: Ctx) -> None:
    reply = ctx.send("GET", f"/Observation?patient={ctx.own}&category={VITALS}", token=lab_token(ctx, LAB))
    ctx.expect(reply, 403, "granular_scope_violation", www="insufficient_scope", oo_code="forbidden")


@check("granular/category-narrowed", "granular lab scope: a search without category is narrowed to lab",
       needs=("seed", "own-seeded"))
def _granular_narrowed(ctx: Ctx) -> None:
    reply = ctx.send("GET", f"/Observation?patient={ctx.own}", token=lab_token(ctx, LAB))
    only_own(ctx, ctx.expect(reply, 200), {"Observation/obs-a2"})


@check("granular/two-scopes-or", "two granular scopes on one type: narrowed to either category",
       needs=("seed", "own-seeded"))
def _granular_or(ctx: Ctx) -> None:
    reply = ctx.send("GET", f"/Observation?patient={ctx.own}", token=lab_token(ctx, LAB, VITALS))
    only_own(ctx, ctx.expect(reply, 200), {"Observation/obs-a1", "Observation/obs-a2"})


# --- POST _search equals GET ---------------------------------------------------------

def post_equals_get(ctx: Ctx, token: str, rtype: str, query: str) -> None:
    got = ctx.send("GET", f"/{rtype}?{query}", token=token)
    posted = ctx.send("POST", f"/{rtype}/_search", token=token, body=query,
                      content_type="application/x-www-form-urlencoded")
    ctx.require((posted.status, posted.filter_reason) == (got.status, got.filter_reason),
                f"POST _search answered like GET ({got.outcome()})", posted.outcome())
    ctx.require(sorted(posted.resource_ids()) == sorted(got.resource_ids()),
                f"the same entries ({len(got.resource_ids())})", f"{len(posted.resource_ids())} entries")


@check("search/post-equals-get-own", "patient app: POST Observation/_search equals GET (own patient)")
def _post_own(ctx: Ctx) -> None:
    post_equals_get(ctx, ctx.token("patient"), "Observation", f"patient={ctx.own}")


@check("search/post-equals-get-other", "patient app: POST _search for another patient is refused like GET")
def _post_other(ctx: Ctx) -> None:
    post_equals_get(ctx, ctx.token("patient"), "Observation", f"patient={ctx.other}")


@check("search/post-equals-get-clinician", "clinician app: POST Condition/_search equals GET")
def _post_clinician(ctx: Ctx) -> None:
    post_equals_get(ctx, ctx.token("clinician"), "Condition", f"patient={ctx.other}")


@check("search/unknown-parameter", "an unknown search parameter is the server's to refuse, never a wider result",
       needs=("own-seeded",))
def _unknown_parameter(ctx: Ctx) -> None:
    reply = ctx.send("GET", f"/Observation?patient={ctx.own}&x-unknown-parameter=1", token=ctx.token("patient"))
    want = ctx.server.unknown_param_statuses
    ctx.require(reply.status in want and reply.filter_reason is None,
                f"{'/'.join(map(str, want))} upstream ({ctx.server.name})", reply.outcome())
    if reply.status == 200:
        only_own(ctx, reply)


# --- _include / _revinclude ---------------------------------------------------------

@check("include/revinclude-provenance", "patient app with Provenance scopes: _revinclude=Provenance:target",
       needs=("seed", "own-seeded"))
def _revinclude(ctx: Ctx) -> None:
    token = ctx.token("patient", scope=f"{PATIENT_SCOPES} patient/Provenance.rs")
    reply = ctx.send("GET", f"/Observation?patient={ctx.own}&_revinclude=Provenance:target", token=token)
    ctx.expect(reply, 200)
    if ctx.seeded:
        ids = reply.resource_ids()
        ctx.require("Provenance/prov-a1" in ids, "Provenance/prov-a1 included", f"entries {ids}")


@check("include/typed-target", "patient app: _include=Observation:subject:Patient", needs=("own-seeded",))
def _include_typed(ctx: Ctx) -> None:
    reply = ctx.send("GET", f"/Observation?patient={ctx.own}&_include=Observation:subject:Patient",
                     token=ctx.token("patient"))
    only_own(ctx, ctx.expect(reply, 200))


@check("include/untyped-target", "patient app: _include=Observation:subject (no target type, as clients send it)",
       needs=("own-seeded",))
def _include_untyped(ctx: Ctx) -> None:
    reply = ctx.send("GET", f"/Observation?patient={ctx.own}&_include=Observation:subject",
                     token=ctx.token("patient"))
    only_own(ctx, ctx.expect(reply, 200))
    if ctx.seeded:
        ctx.require(f"Patient/{ctx.own}" in reply.resource_ids(), "the patient included", str(reply.resource_ids()))


# --- discovery ------------------------------------------------------------------------

def smart_configuration(ctx: Ctx) -> dict:
    reply = ctx.expect(ctx.send("GET", "/.well-known/smart-configuration"), 200)
    ctx.require(reply.headers.get("content-type", "").startswith("application/json"),
                "content-type application/json", reply.headers.get("content-type", "(none)"))
    doc = reply.json_or_none()
    ctx.require(isinstance(doc, dict), "a JSON object", reply.body[:80].decode(errors="replace"))
    return doc


@check("discovery/smart-configuration", "the SMART configuration: endpoints, capabilities array, PKCE S256 only")
def _discovery(ctx: Ctx) -> None:
    doc = smart_configuration(ctx)
    for name in ("authorization_endpoint", "token_endpoint"):
        ctx.require(bool(re.match(r"^https?://[^/]", str(doc.get(name, "")))), f"{name} an absolute URL",
                    repr(doc.get(name)))
    ctx.require(isinstance(doc.get("capabilities"), list), "capabilities an array", repr(doc.get("capabilities")))
    methods = doc.get("code_challenge_methods_supported")
    ctx.require(isinstance(methods, list) and "S256" in methods and "plain" not in methods,
                "code_challenge_methods_supported with S256, never plain", repr(methods))
    ctx.require("authorization_code" in (doc.get("grant_types_supported") or []),
                "grant_types_supported with authorization_code", repr(doc.get("grant_types_supported")))


@check("discovery/metadata-smart-security", "/metadata names the authorization server (SMART security section)")
def _metadata_security(ctx: Ctx) -> None:
    endpoints = smart_configuration(ctx)
    cs = ctx.expect(ctx.send("GET", "/metadata"), 200).json_or_none() or {}
    security = ((cs.get("rest") or [{}])[0]).get("security") or {}
    codes = [(c.get("system"), c.get("code")) for s in security.get("service") or [] for c in s.get("coding") or []]
    smart = ("http://terminology.hl7.org/CodeSystem/restful-security-service", "SMART-on-FHIR")
    ctx.require(smart in codes, "rest[0].security.service SMART-on-FHIR", repr(codes))
    uris = {e.get("url"): e.get("valueUri") for x in security.get("extension") or []
            if x.get("url", "").endswith("/oauth-uris") for e in x.get("extension") or []}
    want = {"authorize": endpoints.get("authorization_endpoint"), "token": endpoints.get("token_endpoint")}
    ctx.require({k: uris.get(k) for k in want} == want, f"oauth-uris {want}", repr(uris))


# --- CORS -----------------------------------------------------------------------------

def allow_origin(ctx: Ctx, reply) -> None:
    got = reply.headers.get("access-control-allow-origin")
    ctx.require(got in (ORIGIN, "*"), f"Access-Control-Allow-Origin {ORIGIN}", repr(got))


def preflight(ctx: Ctx, path: str, method: str, headers: str) -> None:
    reply = ctx.send("OPTIONS", path, headers={"Origin": ORIGIN, "Access-Control-Request-Method": method,
                                               "Access-Control-Request-Headers": headers})
    ctx.require(reply.status in (200, 204), "200/204 (answered by the CORS filter)", reply.outcome())
    allow_origin(ctx, reply)
    methods = reply.headers.get("access-control-allow-methods", "").replace(" ", "").split(",")
    ctx.require(method in methods, f"Access-Control-Allow-Methods with {method}", repr(methods))
    allowed = reply.headers.get("access-control-allow-headers", "").lower()
    missing = [h for h in headers.split(", ") if h not in allowed]
    ctx.require(not missing, f"Access-Control-Allow-Headers with {headers}", repr(allowed))


@check("cors/preflight-read", "browser preflight for a GET with Authorization is answered")
def _preflight_read(ctx: Ctx) -> None:
    preflight(ctx, f"/Patient/{ctx.own}", "GET", "authorization")


@check("cors/preflight-write", "browser preflight for a POST with Authorization and Content-Type is answered")
def _preflight_write(ctx: Ctx) -> None:
    preflight(ctx, "/Observation", "POST", "authorization, content-type")


@check("cors/401-cross-origin", "a cross-origin 401 carries CORS headers and exposes WWW-Authenticate")
def _cors_401(ctx: Ctx) -> None:
    reply = ctx.send("GET", f"/Patient/{ctx.own}", headers={"Origin": ORIGIN})
    ctx.expect(reply, 401, "missing_token", www="")
    allow_origin(ctx, reply)
    exposed = reply.headers.get("access-control-expose-headers", "").lower()
    ctx.require("www-authenticate" in exposed, "Access-Control-Expose-Headers with WWW-Authenticate", repr(exposed))


@check("cors/403-cross-origin", "a cross-origin 403 carries CORS headers")
def _cors_403(ctx: Ctx) -> None:
    reply = ctx.send("GET", f"/Patient/{ctx.other}", token=ctx.token("patient"), headers={"Origin": ORIGIN})
    ctx.expect(reply, 403, "patient_compartment_violation")
    allow_origin(ctx, reply)


@check("cors/discovery-cross-origin", "the discovery document carries CORS headers")
def _cors_discovery(ctx: Ctx) -> None:
    reply = ctx.send("GET", "/.well-known/smart-configuration", headers={"Origin": ORIGIN})
    ctx.expect(reply, 200)
    allow_origin(ctx, reply)


@check("cors/allowed-cross-origin", "an allowed cross-origin read carries CORS headers", needs=("seed", "own-seeded"))
def _cors_allowed(ctx: Ctx) -> None:
    reply = ctx.send("GET", f"/Patient/{ctx.own}", token=ctx.token("patient"), headers={"Origin": ORIGIN})
    ctx.expect(reply, 200)
    allow_origin(ctx, reply)
    ctx.require(len(reply.headers.get("access-control-allow-origin", "").split(",")) == 1,
                "one Access-Control-Allow-Origin value", reply.headers.get("access-control-allow-origin", ""))
