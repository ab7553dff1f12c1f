"""Token builders for the e2e table: valid tokens per listener and the broken kinds."""

from __future__ import annotations

import time
from typing import Any

import jwt

from .rig import Rig, SigningKey


def issuer_for(rig: Rig, listener: str):
    return rig.rot_issuer if listener == "rotation" else rig.issuer


def make_token(rig: Rig, spec: Any, listener: str = "main") -> str | None:
    if spec is None:
        return None
    iss = issuer_for(rig, listener)
    aud = rig.base(listener)
    if isinstance(spec, tuple):
        profile, claims = spec
        claims = dict(claims)
        alg = claims.pop("alg", "RS256")
        claims.setdefault("aud", aud)
        return iss.mint(profile, alg=alg, **claims)
    now = int(time.time())
    if spec == "expired":
        return iss.sign(iss.claims("patient", aud=aud, iat=now - 7200, nbf=now - 7200, exp=now - 600))
    if spec == "wrong_aud":
        return iss.mint("patient", aud="https://other.example.org/fhir")
    if spec == "wrong_iss":
        return iss.sign(iss.claims("patient", aud=aud, iss="https://evil.example.org"))
    if spec == "bad_sig":  # right kid, wrong key
        return iss.sign(iss.claims("patient", aud=aud), key=SigningKey.generate("RS256"), kid=iss.kid("RS256"))
    if spec == "unknown_kid":
        return iss.sign(iss.claims("patient", aud=aud), key=SigningKey.generate("ES256"), kid="no-such-kid")
    if spec == "alg_none":
        return jwt.encode(iss.claims("patient", aud=aud), None, algorithm="none", headers={"kid": iss.kid("RS256")})
    if spec == "hs256":  # HMAC with a guessable secret, trusted kid: must never verify
        return jwt.encode(iss.claims("patient", aud=aud), "secret-key-of-32-bytes-minimum!!", algorithm="HS256",
                          headers={"kid": iss.kid("RS256")})
    if spec == "malformed":
        return "not.a.jwt"
    if spec == "future_nbf":
        return iss.sign(iss.claims("patient", aud=aud, nbf=now + 3600, iat=now + 3600))
    if spec == "no_exp":
        return iss.sign(iss.claims("patient", aud=aud, exp=None))
    raise ValueError(f"unknown token spec {spec!r}")
