"""Tokens for the conformance checks: minted by the demo issuer (`ISSUER`, profiles
patient/clinician/backend with any scopes and patient) or supplied (`PATIENT_TOKEN`,
`CLINICIAN_TOKEN`, `BACKEND_TOKEN`). Broken tokens (bad signature, unknown key,
`alg: none`, HS256 with a guessable secret) are derived from a valid one, so they
need no issuer; expired, wrong-audience, wrong-issuer, not-yet-valid and
no-`exp` tokens need the issuer's signature."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import ec

from .http import Redactor

PROFILES = ("patient", "clinician", "backend")
# claims the demo issuer sets from its /token query (envoy/issuer/issuer.py)
ISSUER_CLAIMS = ("patient", "scope", "aud", "fhirUser", "client_id", "sub", "iss")


class Unavailable(Exception):
    """The token cannot be had here (the reason says what to give)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, not verified (only to learn a supplied token's patient)."""
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}


class Tokens:
    def __init__(self, issuer: str | None, supplied: dict[str, str], redact: Redactor, timeout: float = 10) -> None:
        self.issuer = issuer.rstrip("/") if issuer else None
        self.supplied = {k: v for k, v in supplied.items() if v}
        self.redact = redact
        self.timeout = timeout
        self._cache: dict[str, str] = {}
        for t in self.supplied.values():
            redact.add(t)

    def patient_of_supplied(self) -> str | None:
        token = self.supplied.get("patient")
        if not token:
            return None
        c = unverified_claims(token)
        patient = c.get("patient")
        if not patient and str(c.get("fhirUser", "")).split("/")[-2:-1] == ["Patient"]:
            patient = str(c["fhirUser"]).rsplit("/", 1)[-1]
        return patient

    def mint(self, profile: str, **query: Any) -> str:
        if not self.issuer:
            raise Unavailable("needs a token with custom claims: give ISSUER=<demo issuer URL>")
        params = {k: ("" if v is None else str(v)) for k, v in query.items()}
        key = json.dumps([profile, sorted(params.items())])
        if key not in self._cache:
            r = requests.get(f"{self.issuer}/token", params={"profile": profile, **params}, timeout=self.timeout)
            if r.status_code != 200:
                raise RuntimeError(f"issuer {self.issuer}/token?profile={profile} answered {r.status_code}: {r.text[:200]}")
            token = r.json()["access_token"]
            self.redact.add(token)
            self._cache[key] = token
        return self._cache[key]

    def get(self, profile: str, claims: dict[str, Any] | None = None) -> str:
        """A valid token of the profile; `claims` override the profile's (None removes one,
        "alg" picks RS256/ES256). Supplied tokens serve the plain profiles only."""
        claims = dict(claims or {})
        if not claims and profile in self.supplied:
            return self.supplied[profile]
        if not self.issuer:
            what = f"{profile.upper()}_TOKEN" if not claims else "a token with custom scopes/claims"
            raise Unavailable(f"needs {what}: give it, or ISSUER=<demo issuer URL>")
        unknown = set(claims) - set(ISSUER_CLAIMS) - {"alg"}
        if unknown:
            raise ValueError(f"the demo issuer cannot set {sorted(unknown)}")
        return self.mint(profile, **claims)

    def broken(self, kind: str) -> str:
        """The broken kinds of the e2e table (tests/e2e/cases.py)."""
        if kind == "malformed":
            return "not.a.jwt"
        if kind == "expired":
            return self.mint("patient", exp_in=-600)
        if kind == "wrong_aud":
            return self.mint("patient", aud="https://other.example.org/fhir")
        if kind == "wrong_iss":
            return self.mint("patient", iss="https://evil.example.org")
        if kind == "future_nbf":
            return self.mint("patient", nbf_in=3600)
        if kind == "no_exp":
            return self.mint("patient", omit="exp")
        valid = self.get("patient")
        header = json.loads(base64.urlsafe_b64decode(valid.split(".")[0] + "==="))
        payload = unverified_claims(valid)
        kid = header.get("kid", "")
        if kind == "bad_sig":  # the right kid, a signature by no key of the issuer
            head, body, sig = valid.split(".")
            raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
            raw[len(raw) // 2] ^= 0x01
            token = f"{head}.{body}.{_b64(bytes(raw))}"
        elif kind == "unknown_kid":
            token = jwt.encode(payload, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256",
                               headers={"kid": "no-such-kid"})
        elif kind == "alg_none":
            token = f"{_b64(json.dumps({'alg': 'none', 'typ': 'JWT', 'kid': kid}).encode())}." \
                    f"{_b64(json.dumps(payload).encode())}."
        elif kind == "hs256":  # HMAC with a guessable secret under a trusted kid: must never verify
            token = jwt.encode(payload, "secret-key-of-32-bytes-minimum!!", algorithm="HS256", headers={"kid": kid})
        else:
            raise ValueError(f"unknown broken token kind {kind!r}")
        self.redact.add(token)
        return token
