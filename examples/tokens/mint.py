#!/usr/bin/env python3
"""Regenerate the example tokens in this folder (demo only).

Mints RS256/ES256 tokens with fresh throw-away keys, writes the public JWKS
(`jwks.json`), a plugin configuration trusting it (`config.json`), the tokens
(`*.jwt`) and example CLI input (`requests.jsonl`). The private keys are never
written: these tokens can be verified, nobody can mint more with the same keys.

    .venv/bin/python examples/tokens/mint.py
    target/release/fhir-smart-authz explain --config examples/tokens/config.json < examples/tokens/requests.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "envoy" / "issuer"))
from issuer import Issuer  # noqa: E402

ISSUER = "https://auth.example.org"
BASE = "https://ehr.example.org/fhir"
EXP_2099 = 4102444799  # 2099-12-31T23:59:59Z: long-lived on purpose, demo keys only
IAT = 1795600000


def main() -> int:
    iss = Issuer(issuer_url=ISSUER, audience=BASE)
    fixed = {"iat": IAT, "nbf": IAT, "exp": EXP_2099}
    tokens = {
        "patient": iss.sign(iss.claims("patient", jti="example-patient", **fixed)),
        "patient-es256": iss.sign(iss.claims("patient", jti="example-patient-es256", **fixed), alg="ES256"),
        "clinician": iss.sign(iss.claims("clinician", jti="example-clinician", **fixed)),
        "backend": iss.sign(iss.claims("backend", jti="example-backend", **fixed)),
        "expired": iss.sign(iss.claims("patient", jti="example-expired", iat=IAT, nbf=IAT, exp=IAT + 3600)),
        "wrong-audience": iss.sign(iss.claims("patient", jti="example-wrong-aud", aud="https://other.example.org/fhir",
                                              **fixed)),
    }
    (HERE / "jwks.json").write_text(json.dumps(iss.jwks(), indent=2) + "\n")
    config = {"fhir_base_path": "/fhir", "fhir_base_url": BASE,
              "claims": {"patient_from_fhir_user": True},
              "issuers": [{"issuer": ISSUER, "audiences": [BASE], "jwks": iss.jwks()}]}
    (HERE / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for name, tok in tokens.items():
        (HERE / f"{name}.jwt").write_text(tok + "\n")
    requests = [
        ("patient", "GET", "/fhir/Patient/pat-a"),
        ("patient", "GET", "/fhir/Patient/pat-b"),
        ("patient-es256", "GET", "/fhir/Observation?patient=pat-a"),
        ("clinician", "GET", "/fhir/Patient/pat-b"),
        ("clinician", "DELETE", "/fhir/Patient/pat-b"),
        ("backend", "GET", "/fhir/Observation?code=8867-4"),
        ("expired", "GET", "/fhir/Patient/pat-a"),
        ("wrong-audience", "GET", "/fhir/Patient/pat-a"),
        (None, "GET", "/fhir/Patient/pat-a"),
    ]
    lines = []
    for name, method, path in requests:
        line = {"method": method, "path": path}
        if name:
            line["token"] = tokens[name]
        lines.append(json.dumps(line))
    (HERE / "requests.jsonl").write_text("\n".join(lines) + "\n")
    print(f"wrote {len(tokens)} tokens, jwks.json, config.json, requests.jsonl to {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
