"""`make demo`: start the native rig, show allowed and denied requests for a
patient app, a clinician app and a backend service (status + audit record),
then keep the rig running with URLs and ready-made tokens until Ctrl-C.

    python -m tests.e2e.demo          # from the repository root (make demo)
    DEMO_EXIT=1 python -m tests.e2e.demo   # exit after the transcript
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading

import requests

from .dpop_client import DpopKey
from .rig import WASM, Rig

OBS = {"resourceType": "Observation", "status": "final", "code": {"text": "demo heart rate"},
       "subject": {"reference": "Patient/pat-a"}, "valueQuantity": {"value": 64, "unit": "/min"}}

SCRIPT = [
    ("patient app (patient/pat-a, patient/*.rs on 4 types)", "patient", [
        ("GET", "/Patient/pat-a", None, "reads its own patient"),
        ("GET", "/Observation?patient=pat-a", None, "searches its own observations"),
        ("GET", "/Patient/pat-b", None, "tries another patient"),
        ("GET", "/Observation?patient=pat-b", None, "searches another patient's data"),
        ("POST", "/Observation", OBS, "tries to write without a write scope"),
    ]),
    ("clinician app (user/ scopes)", "clinician", [
        ("GET", "/Patient/pat-b", None, "reads any patient"),
        ("POST", "/Observation", OBS, "records an observation"),
        ("DELETE", "/Patient/pat-b", None, "tries to delete a patient"),
    ]),
    ("backend service (system/ scopes)", "backend", [
        ("GET", "/Patient?gender=female", None, "bulk-style search"),
        ("POST", "/Observation", OBS, "tries to write"),
    ]),
    ("no token", None, [
        ("GET", "/metadata", None, "capability statement (public)"),
        ("GET", "/Patient/pat-a", None, "data without a token"),
    ]),
]


def dpop_section(rig: Rig) -> None:
    """A DPoP-bound token (RFC 9449): allowed with its proof, refused as a bearer token,
    its proof refused when replayed."""
    key = DpopKey("ES256")
    token_url = rig.issuer.issuer_url + "/token"
    token = requests.post(token_url, data={"profile": "patient"}, headers={"DPoP": key.proof("POST", token_url)},
                          timeout=10).json()["access_token"]
    url = rig.base_url + "/Patient/pat-a"
    proof = key.proof("GET", url, token)
    print("== patient app with a DPoP-bound token (its own ES256 key; cnf.jkt in the token)")
    for auth, what in [("DPoP", "with a fresh proof"), ("Bearer", "the same token as a bearer token"),
                       ("DPoP", "the same proof replayed")]:
        r = rig.request("GET", "/Patient/pat-a", headers={"Authorization": f"{auth} {token}", "DPoP": proof})
        audit = r.audit or {}
        verdict = f"{audit.get('decision', '?')}/{audit.get('reason', '?')}"
        print(f"  GET    /Patient/pat-a ({auth:6})          -> {r.status}  {verdict:40} # {what}")
        print(f"         audit: {audit_line(r.audit)}")
    print()


def audit_line(audit: object) -> str:
    return json.dumps(audit, separators=(",", ":")) if audit is not None else "(no audit record)"


def main() -> int:
    if not WASM.exists():
        print(f"{WASM} is missing: run `make build` (make demo does it)", file=sys.stderr)
        return 2
    print("starting the rig (sekmet-fhir, demo issuer, Envoy + fhir_smart_authz.wasm) ...", flush=True)
    rig = Rig(issuer_extra={"dpop": {"mode": "accepted"}}).start()
    stop = threading.Event()

    def on_signal(signum, frame):  # noqa: ARG001
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        tokens = {p: rig.issuer.mint(p) for p in ("patient", "clinician", "backend")}
        print(f"\nFHIR base through the filter: {rig.base_url}\n")
        for title, profile, steps in SCRIPT:
            print(f"== {title}")
            for method, path, body, what in steps:
                r = rig.request(method, path, token=tokens.get(profile) if profile else None, body=body)
                audit = r.audit or {}
                verdict = f"{audit.get('decision', '?')}/{audit.get('reason', '?')}"
                print(f"  {method:6} {path:32} -> {r.status}  {verdict:40} # {what}")
                print(f"         audit: {audit_line(r.audit)}")
            print()
        dpop_section(rig)
        print("== the rig is running")
        print(f"  FHIR base (through the filter): {rig.base_url}")
        print(f"  FHIR server (direct, no auth):  {rig.sekmet.base_url if rig.sekmet else '-'}")
        print(f"  token issuer:                   {rig.issuer.issuer_url}/token?profile=patient|clinician|backend")
        print(f"  Envoy admin (metrics):          {rig.envoy.admin_url}/stats/prometheus")
        print(f"  access log (audit records):     {rig.access_log.path}")
        for p, t in tokens.items():
            print(f"\n  export {p.upper()}_TOKEN={t}")
        print(f"\n  curl -H \"Authorization: Bearer $PATIENT_TOKEN\" {rig.base_url}/Patient/pat-a")
        upstream = f" UPSTREAM={rig.sekmet.base_url}" if rig.sekmet else ""
        print(f"  make conformance TARGET={rig.base_url} ISSUER={rig.issuer.issuer_url}{upstream}"
              "   # check the gateway from outside\n")
        if os.environ.get("DEMO_EXIT"):
            return 0
        print("Ctrl-C stops everything.", flush=True)
        while not stop.is_set() and rig.envoy and rig.envoy.running():
            stop.wait(1)
        return 0
    finally:
        print("stopping the rig ...", flush=True)
        rig.stop()


if __name__ == "__main__":
    sys.exit(main())
