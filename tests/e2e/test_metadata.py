"""The SMART security section in the FHIR server's CapabilityStatement (issue 9 item 5),
end to end on the rig's main listener (sekmet-fhir upstream): JSON answers carry it,
XML answers pass as the server wrote them. The conformance check
`discovery/metadata-smart-security` and the fhirclient tests (the library finds the
authorization endpoints in /metadata) run on the same rig; the encodings a server
may use are in test_faults.py."""

from __future__ import annotations

import requests

SMART = {"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


def counter(rig, suffix: str) -> int:
    text = requests.get(f"{rig.envoy.admin_url}/stats", params={"filter": "capability_statement"}, timeout=5).text
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        if name == f"wasmcustom.fhir_smart_authz.{suffix}":
            return int(value)
    return 0


def test_json_metadata_names_the_authorization_server(rig):
    before = counter(rig, "capability_statement.smart_added")
    r = rig.request("GET", "/metadata", headers={"accept": "application/fhir+json"})
    assert r.status == 200 and r.headers["content-type"].startswith("application/fhir+json")
    assert "content-length" not in r.headers or int(r.headers["content-length"]) == len(r.body)
    assert r.body.startswith(b'{"resourceType":"CapabilityStatement",')
    statement = r.json()
    security = statement["rest"][0]["security"]
    assert [c for s in security["service"] for c in s["coding"]] == [SMART]
    discovery = rig.plugins["main"]["discovery"]
    [ext] = security["extension"]
    assert ext["url"] == OAUTH_URIS
    assert {e["url"]: e["valueUri"] for e in ext["extension"]} == {
        "authorize": discovery["authorization_endpoint"], "token": discovery["token_endpoint"]}
    assert "description" not in security, "sekmet's own security section is replaced, not merged"
    assert statement["software"]["name"], "the rest of the server's statement is kept"
    assert r.audit["reason"] == "public_endpoint" and r.audit["subtype"] == "capabilities"
    assert counter(rig, "capability_statement.smart_added") == before + 1


def test_json_format_parameter(rig):
    r = rig.request("GET", "/metadata?_format=json")
    assert r.status == 200 and r.json()["rest"][0]["security"]["service"][0]["coding"] == [SMART]


def test_xml_metadata_passes_as_the_server_wrote_it(rig):
    before = counter(rig, "capability_statement.unmodified")
    r = rig.request("GET", "/metadata?_format=xml")
    assert r.status == 200 and "xml" in r.headers["content-type"]
    assert r.body.lstrip().startswith(b"<") and b"SMART-on-FHIR" not in r.body
    assert counter(rig, "capability_statement.unmodified") == before + 1
