"""A real SMART client against the native rig: `fhirclient` (the SMART on FHIR Python
client) as a patient app and as a clinician app, launched with the library's own OAuth
code (endpoints from the SMART section of /metadata, authorize URL with PKCE, callback,
code exchange) against the demo issuer, then
reading, searching, paging with the library's iterator, including through its API,
writing, and handling the gateway's 401/403 OperationOutcomes.

Every request the library sends is recorded: none may leave the gateway (paging links
and Location headers must name it, see tests/conformance/links.py)."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from fhirclient import client
from fhirclient.models.condition import Condition
from fhirclient.models.observation import Observation
from fhirclient.models.operationoutcome import OperationOutcome
from fhirclient.models.patient import Patient
from fhirclient.server import FHIRPermissionDeniedException, FHIRUnauthorizedException


REDIRECT = "http://127.0.0.1:1/callback"  # never opened: the test hands the redirect to the library
PATIENT_SCOPE = "launch/patient openid fhirUser patient/Patient.rs patient/Observation.crus patient/Condition.rs"
CLINICIAN_SCOPE = "openid fhirUser user/Patient.rs user/Observation.cruds user/Condition.rs user/Encounter.rs"


class SmartApp:
    """A launched fhirclient app and the URLs of every request it sent. The library finds the
    authorization server itself, in the SMART security section the gateway writes into
    `/metadata` (it reads only the CapabilityStatement, never `.well-known/smart-configuration`)."""

    def __init__(self, rig, client_id: str, scope: str, patient_app: bool) -> None:
        self.smart = client.FHIRClient(settings={"app_id": client_id, "api_base": rig.base_url,
                                                 "redirect_uri": REDIRECT, "scope": scope})
        self.smart.wants_patient = patient_app
        self.sent: list[str] = []
        self.server.session.hooks["response"].append(lambda r, *a, **k: self.sent.append(r.request.url))
        authorize = self.smart.authorize_url  # the library reads /metadata for the endpoints
        assert self.sent[:1] == [rig.base_url + "/metadata"], self.sent
        discovery = requests.get(rig.base_url + "/.well-known/smart-configuration", timeout=10).json()
        assert authorize.startswith(discovery["authorization_endpoint"] + "?"), authorize
        assert self.server.auth._token_uri == discovery["token_endpoint"]
        query = parse_qs(urlsplit(authorize).query)
        assert query["code_challenge_method"] == ["S256"] and query["aud"] == [rig.base_url], authorize
        approved = requests.get(authorize, allow_redirects=False, timeout=10)
        assert approved.status_code == 302, approved.text
        self.smart.handle_callback(approved.headers["Location"])  # the library exchanges the code
        assert self.smart.ready

    @property
    def server(self):
        return self.smart.server

    def outside(self, rig) -> list[str]:
        token_uri = self.server.auth._token_uri
        return [u for u in self.sent if not u.startswith(rig.base_url + "/") and u != token_uri]


def outcome_reason(exc) -> tuple[str, str]:
    """(issue code, filter reason) of the OperationOutcome the library got with its exception."""
    oo = OperationOutcome(exc.response.json())
    return oo.issue[0].code, oo.issue[0].details.coding[0].code


@pytest.fixture(scope="module")
def rig(rig_of_each_artifact):
    """Both builds: the .wasm's rig, then the native module's."""
    return rig_of_each_artifact


@pytest.fixture(scope="module")
def patient_app(rig):
    return SmartApp(rig, "fhirclient-patient-app", PATIENT_SCOPE, patient_app=True)


@pytest.fixture(scope="module")
def clinician_app(rig):
    return SmartApp(rig, "fhirclient-clinician-app", CLINICIAN_SCOPE, patient_app=False)


def test_patient_app_launch_reads_its_patient(rig, patient_app):
    assert patient_app.smart.patient_id == "pat-a"  # the launch context from the token response
    patient = patient_app.smart.patient  # the library reads Patient/<context>
    assert patient.id == "pat-a" and patient.name[0].family == "Alpha"
    assert patient_app.outside(rig) == []


def test_patient_app_pages_with_the_library_iterator(rig, patient_app):
    search = Observation.where({"patient": "pat-a", "_count": "1"})
    found = [o.id for o in search.perform_resources_iter(patient_app.server)]
    assert {"obs-a1", "obs-a2"} <= set(found), found
    assert len([u for u in patient_app.sent if "_count=1" in u]) >= 2, "the iterator followed no next link"
    assert patient_app.outside(rig) == [], "a link led the library away from the gateway"


def test_patient_app_other_patient_is_403_operation_outcome(patient_app):
    with pytest.raises(FHIRPermissionDeniedException) as denied:
        Patient.read("pat-b", patient_app.server)
    assert outcome_reason(denied.value) == ("forbidden", "patient_compartment_violation")
    with pytest.raises(FHIRPermissionDeniedException) as denied:
        list(Observation.where({"patient": "pat-b"}).perform_resources_iter(patient_app.server))
    assert outcome_reason(denied.value) == ("forbidden", "patient_compartment_violation")


def test_patient_app_writes_its_own_records(patient_app):
    obs = Observation({"status": "final", "code": {"text": "fhirclient patient app"},
                       "subject": {"reference": "Patient/pat-a"}})
    created = Observation(obs.create(patient_app.server))
    assert created.id and created.subject.reference.endswith("Patient/pat-a")
    created.status = "amended"
    created.update(patient_app.server)
    assert Observation.read(created.id, patient_app.server).status == "amended"
    other = Observation({"status": "final", "code": {"text": "x"}, "subject": {"reference": "Patient/pat-b"}})
    with pytest.raises(FHIRPermissionDeniedException) as denied:
        other.create(patient_app.server)
    assert outcome_reason(denied.value)[1] == "patient_compartment_violation"
    with pytest.raises(FHIRPermissionDeniedException) as denied:  # no d in the scopes
        created.delete(patient_app.server)
    assert outcome_reason(denied.value)[1] == "insufficient_scope"


def test_patient_app_include_through_the_library(patient_app):
    """The library writes `_include=Observation:subject` (no target type)."""
    bundle = next(Observation.where({"patient": "pat-a"}).include("subject").perform_iter(patient_app.server))
    assert "Patient" in [e.resource.resource_type for e in bundle.entry]


def test_bad_token_is_401_operation_outcome(rig):
    app = SmartApp(rig, "fhirclient-patient-app", PATIENT_SCOPE, patient_app=True)
    app.server.auth.access_token = "not-a-valid-token"
    with pytest.raises(FHIRUnauthorizedException) as refused:
        Patient.read("pat-a", app.server)
    assert outcome_reason(refused.value) == ("login", "invalid_token")
    assert refused.value.response.headers["www-authenticate"].startswith('Bearer realm="fhir", error="invalid_token"')


def test_clinician_app_reads_searches_and_pages(rig, clinician_app):
    """Searches across patients and pages through the results. The Observations paged through
    are the test's own (a code no other test writes): the seeded ones are not fixed, the e2e
    table rewrites `obs-a1` (`clinician-update` replaces its code), so a search by the seeded
    code found one Observation or two depending on which test file ran first."""
    assert clinician_app.smart.patient_id is None
    assert Patient.read("pat-b", clinician_app.server).name[0].family == "Bravo"
    conditions = list(Condition.where({"patient": "pat-b"}).perform_resources_iter(clinician_app.server))
    assert "cond-b1" in [c.id for c in conditions], [c.id for c in conditions]
    assert {c.subject.reference.removeprefix(rig.base_url + "/") for c in conditions} == {"Patient/pat-b"}
    code = {"system": "urn:fhir-smart-authz:e2e-clients", "code": uuid.uuid4().hex}
    own: list[Observation] = []
    try:
        for pid in ("pat-a", "pat-b"):
            obs = Observation({"status": "final", "code": {"coding": [code]},
                               "subject": {"reference": f"Patient/{pid}"}})
            own.append(Observation(obs.create(clinician_app.server)))
        sent_before = len(clinician_app.sent)
        search = Observation.where({"code": f"{code['system']}|{code['code']}", "_count": "1"})
        paged = [o.id for o in search.perform_resources_iter(clinician_app.server)]
        assert sorted(paged) == sorted(o.id for o in own), paged
        assert len(clinician_app.sent) - sent_before >= 2, "the iterator followed no next link"
    finally:
        for o in own:
            o.delete(clinician_app.server)
    assert clinician_app.outside(rig) == []


def test_clinician_app_revinclude_through_the_library(clinician_app):
    search = Patient.where({"_id": "pat-a"}).include("subject", Observation, reverse=True)
    assert "_revinclude=Observation:subject" in search.construct()
    types = [e.resource.resource_type for e in next(search.perform_iter(clinician_app.server)).entry]
    assert types.count("Patient") == 1 and "Observation" in types, types


def test_clinician_app_create_update_delete(rig, clinician_app):
    obs = Observation({"status": "preliminary", "code": {"text": "fhirclient clinician app"},
                       "subject": {"reference": "Patient/pat-b"}})
    created = Observation(obs.create(clinician_app.server))
    created.status = "final"
    created.update(clinician_app.server)
    assert Observation.read(created.id, clinician_app.server).status == "final"
    created.delete(clinician_app.server)
    with pytest.raises(Exception) as gone:  # the server's own 404/410 after the delete
        Observation.read(created.id, clinician_app.server)
    assert getattr(gone.value, "response", None) is not None and gone.value.response.status_code in (404, 410)
    assert clinician_app.outside(rig) == []


def test_clinician_app_refused_writes_are_403(clinician_app):
    with pytest.raises(FHIRPermissionDeniedException) as denied:
        Patient.read("pat-b", clinician_app.server).delete(clinician_app.server)
    assert outcome_reason(denied.value) == ("forbidden", "insufficient_scope")
    with pytest.raises(FHIRPermissionDeniedException) as denied:
        Condition({"code": {"text": "x"}, "subject": {"reference": "Patient/pat-b"}}).create(clinician_app.server)
    assert outcome_reason(denied.value) == ("forbidden", "insufficient_scope")
