#!/usr/bin/env python3
"""Demo SMART token issuer for the fhir-smart-authz rigs.

NOT an authorization server: it mints signed demo access tokens on request,
for local testing only. Never expose it beyond a test network.

HTTP endpoints
  GET  /.well-known/jwks.json      public keys (also at /jwks) (one RS256 and one ES256 key, each with a kid)
  GET  /.well-known/openid-configuration   issuer + jwks_uri (for tools that discover keys)
  GET  /authorize?response_type=code&client_id=..&redirect_uri=..&scope=..&state=..&aud=..
             &code_challenge=..&code_challenge_method=S256[&patient=..]
                                   SMART standalone launch, approved at once: redirects to
                                   redirect_uri with a code (PKCE S256 required; launch/patient
                                   in the scope gives the patient context, default pat-a)
  POST /token grant_type=authorization_code&code=..&code_verifier=..&redirect_uri=..[&client_id=..]
                                   exchanges the code (once) for a token response with patient
  GET  /token?profile=patient|clinician|backend[&patient=..][&scope=..][&alg=RS256|ES256]
             [&aud=..][&exp_in=seconds][&nbf_in=seconds][&omit=claim,..][&fhirUser=..][&client_id=..]
             [&format=opaque][&x5t=<base64url SHA-256 of a client certificate's DER>]
                                   mint a token; answers {"access_token", "token_type", "expires_in", "scope", ...}.
                                   With a `DPoP` proof header (RFC 9449 §5) the token is DPoP-bound to
                                   the proof's key (`cnf.jkt`, token_type "DPoP"); with `x5t` it is
                                   certificate-bound (`cnf.x5t#S256`, RFC 8705: a real server takes it
                                   from the mutual-TLS connection of the token request)
  POST /admin/rotate[?keep=1]      new key pair (new kid) per algorithm; old keys are dropped from
                                   the JWKS unless keep=1. Answers the new JWKS.
  POST /introspect token=..        RFC 7662 introspection (HTTP Basic client auth required: any
                                   client, or exactly the one of ISSUER_INTROSPECTION_CLIENT_ID and
                                   ISSUER_INTROSPECTION_CLIENT_SECRET when set, else 401 invalid_client):
                                   {"active": true, ...claims} for a token minted with
                                   format=opaque (GET /token?...&format=opaque), else {"active": false}
  POST /admin/fault?mode=..[&delay=s]  make the JWKS and introspection endpoints misbehave (tests of
                                   the filter's fail-closed paths): down (close the connection
                                   unanswered), error (503), slow (answer after `delay` s, default 3),
                                   garbage (200 text/html), huge (200, a 2 MiB JSON document), gzip
                                   (200, gzip-encoded whatever the request accepts); no mode = behave
  GET  /healthz                    200 "ok"
  GET  /stats                      {"jwks_fetches": N, "introspections": N, "kids": {...}}

Import use (the e2e tests): ``Issuer(issuer_url, audience).mint("patient", patient="pat-a")``
and ``serve(issuer, host, port)`` which returns a running ThreadingHTTPServer.

Run: python3 envoy/issuer/issuer.py --host 127.0.0.1 --port 8081 \
        --issuer-url http://127.0.0.1:8081 --audience http://127.0.0.1:10000/fhir
Environment overrides: ISSUER_HOST, ISSUER_PORT, ISSUER_URL, ISSUER_AUDIENCE,
ISSUER_INTROSPECTION_CLIENT_ID + ISSUER_INTROSPECTION_CLIENT_SECRET (the one introspection client).
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import json
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlencode, urlparse

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ALGORITHMS = ("RS256", "ES256")

# Demo profiles: what each kind of SMART client typically holds.
PROFILES: dict[str, dict[str, Any]] = {
    # A patient-facing app launched for one patient (SMART App Launch, patient/ scopes).
    "patient": {
        "scope": "launch/patient openid fhirUser patient/Patient.rs patient/Observation.rs "
        "patient/Condition.rs patient/Encounter.rs",
        "client_id": "demo-patient-app",
        "patient": "pat-a",
        "fhirUser": "Patient/pat-a",
    },
    # A clinician app (user/ scopes, no patient context unless given).
    "clinician": {
        "scope": "openid fhirUser user/Patient.rs user/Observation.cruds user/Condition.rs "
        "user/Encounter.rs",
        "client_id": "demo-clinician-app",
        "patient": None,
        "fhirUser": "Practitioner/prac-1",
    },
    # A SMART Backend Services client (system/ scopes).
    "backend": {
        "scope": "system/Patient.rs system/Observation.rs system/Condition.rs system/Encounter.rs",
        "client_id": "demo-backend-service",
        "patient": None,
        "fhirUser": None,
    },
}


# What this issuer really supports, as SMART discovery `capabilities` (the rigs' filter
# configurations list exactly these): the standalone launch of a public client with PKCE
# (/authorize + /token), the patient picked at launch, v1 and v2 scopes at patient and user
# level. Not: EHR launch, confidential clients, OpenID Connect, refresh tokens.
CAPABILITIES = ["launch-standalone", "client-public", "context-standalone-patient", "permission-patient",
                "permission-user", "permission-v1", "permission-v2"]


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638: SHA-256 of the JSON of the key's required members, sorted, no whitespace."""
    required = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}[jwk["kty"]]
    canonical = json.dumps({m: jwk[m] for m in required}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def proof_thumbprint(proof: str) -> str | None:
    """The thumbprint of a DPoP proof's key, if the proof is signed by it (demo-grade: the
    token endpoint of a real server checks every RFC 9449 §4.3 rule)."""
    try:
        header = jwt.get_unverified_header(proof)
        if header.get("typ") != "dpop+jwt" or not isinstance(header.get("jwk"), dict):
            return None
        key = jwt.PyJWK(header["jwk"]).key
        jwt.decode(proof, key, algorithms=[header["alg"]], options={"verify_aud": False})
        return jwk_thumbprint(header["jwk"])
    except Exception:  # noqa: BLE001 - any unusable proof binds nothing
        return None


def _b64u_uint(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64u_fixed(n: int, size: int) -> str:
    return base64.urlsafe_b64encode(n.to_bytes(size, "big")).rstrip(b"=").decode()


@dataclass
class SigningKey:
    alg: str
    kid: str
    private: Any

    @classmethod
    def generate(cls, alg: str) -> "SigningKey":
        if alg == "RS256":
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif alg == "ES256":
            private = ec.generate_private_key(ec.SECP256R1())
        else:
            raise ValueError(f"unsupported algorithm {alg!r}; use one of {ALGORITHMS}")
        kid = f"{alg.lower()}-{uuid.uuid4().hex[:12]}"
        return cls(alg=alg, kid=kid, private=private)

    def jwk(self) -> dict[str, str]:
        pub = self.private.public_key()
        if self.alg == "RS256":
            nums = pub.public_numbers()
            return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
                    "n": _b64u_uint(nums.n), "e": _b64u_uint(nums.e)}
        nums = pub.public_numbers()
        return {"kty": "EC", "use": "sig", "alg": "ES256", "kid": self.kid, "crv": "P-256",
                "x": _b64u_fixed(nums.x, 32), "y": _b64u_fixed(nums.y, 32)}


@dataclass
class Issuer:
    """Keys + minting. Thread-safe; the HTTP server and the tests share one."""

    issuer_url: str
    audience: str
    default_lifetime: int = 3600
    keys: dict[str, SigningKey] = field(default_factory=dict)  # alg -> current key
    published: list[SigningKey] = field(default_factory=list)  # keys in the JWKS
    jwks_fetches: int = 0
    jwks_delay: float = 0.0  # seconds before answering a JWKS fetch (tests: a fetch in flight)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)  # authorization codes in flight
    # --- introspection (RFC 7662) and fault injection (tests of the filter's fail-closed paths) ---
    opaque: dict[str, dict[str, Any]] = field(default_factory=dict)  # opaque token -> its claims
    introspections: int = 0
    fault: str | None = None  # one of FAULTS: how the JWKS and introspection endpoints misbehave
    fault_delay: float = 3.0  # seconds of the "slow" fault
    last_headers: dict[str, dict[str, str]] = field(default_factory=dict)  # path -> headers of its last request
    # (client_id, client_secret) /introspect requires; None = any HTTP Basic credentials
    introspection_client: tuple[str, str] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if not self.keys:
            for alg in ALGORITHMS:
                key = SigningKey.generate(alg)
                self.keys[alg] = key
                self.published.append(key)

    # --- keys -------------------------------------------------------------
    def jwks(self) -> dict[str, list[dict[str, str]]]:
        with self._lock:
            return {"keys": [k.jwk() for k in self.published]}

    def rotate(self, keep_old: bool = False) -> dict[str, str]:
        """New key (new kid) for every algorithm. Returns {alg: new kid}."""
        with self._lock:
            fresh = {alg: SigningKey.generate(alg) for alg in ALGORITHMS}
            self.published = (self.published if keep_old else []) + list(fresh.values())
            self.keys = fresh
            return {alg: k.kid for alg, k in fresh.items()}

    def kid(self, alg: str = "RS256") -> str:
        return self.keys[alg].kid

    # --- tokens -----------------------------------------------------------
    def claims(self, profile: str = "patient", **overrides: Any) -> dict[str, Any]:
        """The claim set for a profile; overrides replace claims, a None value removes one."""
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; use one of {sorted(PROFILES)}")
        base = PROFILES[profile]
        now = int(time.time())
        lifetime = int(overrides.pop("exp_in", self.default_lifetime))
        claims: dict[str, Any] = {
            "iss": self.issuer_url,
            "sub": base["fhirUser"] or base["client_id"],
            "aud": self.audience,
            "iat": now,
            "nbf": now - 5,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
            "client_id": base["client_id"],
            "scope": base["scope"],
        }
        if base["patient"]:
            claims["patient"] = base["patient"]
        if base["fhirUser"]:
            claims["fhirUser"] = base["fhirUser"]
        for name, value in overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def sign(self, claims: dict[str, Any], alg: str = "RS256", kid: str | None = None,
             key: SigningKey | None = None, headers: dict[str, Any] | None = None) -> str:
        signing = key or self.keys[alg]
        hdr = {"kid": kid or signing.kid, "typ": "JWT"}
        hdr.update(headers or {})
        return jwt.encode(claims, signing.private, algorithm=signing.alg, headers=hdr)

    def mint(self, profile: str = "patient", alg: str = "RS256", **overrides: Any) -> str:
        return self.sign(self.claims(profile, **overrides), alg=alg)

    def mint_opaque(self, profile: str = "patient", **overrides: Any) -> str:
        """An opaque (non-JWT) access token whose claims only /introspect tells."""
        token = "opaque-" + uuid.uuid4().hex
        with self._lock:
            self.opaque[token] = self.claims(profile, **overrides)
        return token

    def introspection_client_ok(self, authorization: str | None) -> bool:
        """HTTP Basic client authentication (RFC 6749 §2.3.1: id and secret form-urlencoded,
        then base64): any credentials, or exactly `introspection_client` when set."""
        scheme, _, credentials = (authorization or "").partition(" ")
        if scheme != "Basic":
            return False
        if self.introspection_client is None:
            return True
        try:
            user, _, password = base64.b64decode(credentials, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return (unquote_plus(user), unquote_plus(password)) == self.introspection_client

    def introspect(self, token: str) -> dict[str, Any]:
        """The RFC 7662 answer for a token (`iss` left out: the filter's issuer entry names it)."""
        with self._lock:
            self.introspections += 1
            claims = self.opaque.get(token)
        if claims is None or claims.get("exp", 0) < time.time():
            return {"active": False}
        return {"active": True, **{k: v for k, v in claims.items() if k != "iss"}}

    def token_response(self, claims: dict[str, Any], alg: str = "RS256") -> dict[str, Any]:
        """The OAuth token response for these claims (SMART: scope, patient context)."""
        token_type = "DPoP" if "jkt" in (claims.get("cnf") or {}) else "Bearer"
        out: dict[str, Any] = {"access_token": self.sign(claims, alg=alg), "token_type": token_type,
                               "scope": claims.get("scope", ""), "kid": self.keys[alg].kid}
        if "exp" in claims:
            out["expires_in"] = max(0, claims["exp"] - int(time.time()))
        if claims.get("patient"):
            out["patient"] = claims["patient"]
        return out

    # --- authorization code flow: SMART standalone launch of a public client with PKCE ---
    def authorize(self, q: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """GET /authorize, approved at once (a demo has no user to ask): (302, {"Location": ...})
        back to the app with a code, or (400, OAuth error). PKCE S256 is required; `aud` must
        be the FHIR base; `launch/patient` gives the patient context (`patient=` picks it)."""
        missing = [n for n in ("response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge")
                   if not q.get(n)]
        if missing or q["response_type"] != "code":
            return 400, {"error": "invalid_request",
                         "error_description": f"response_type=code and {', '.join(missing) or 'all parameters'} needed"}
        if q.get("code_challenge_method") != "S256":
            return 400, {"error": "invalid_request", "error_description": "PKCE with code_challenge_method=S256 is required"}
        if q.get("aud", self.audience) != self.audience:
            return 400, {"error": "invalid_request", "error_description": f"aud must be {self.audience}"}
        scopes = q["scope"].split()
        profile = "clinician" if any(s.startswith("user/") for s in scopes) else "patient"
        overrides: dict[str, Any] = {"scope": q["scope"], "client_id": q["client_id"]}
        if "launch/patient" in scopes:
            overrides["patient"] = q.get("patient") or PROFILES["patient"]["patient"]
        code = uuid.uuid4().hex
        with self._lock:
            self.codes[code] = {"profile": profile, "overrides": overrides, "challenge": q["code_challenge"],
                                "redirect_uri": q["redirect_uri"], "client_id": q["client_id"],
                                "expires": time.time() + 60}
        sep = "&" if "?" in q["redirect_uri"] else "?"
        return 302, {"Location": f"{q['redirect_uri']}{sep}{urlencode({'code': code, 'state': q['state']})}"}

    def exchange_code(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """POST /token grant_type=authorization_code: the code once, with its PKCE verifier."""
        with self._lock:
            grant = self.codes.pop(form.get("code", ""), None)
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if (grant is None or grant["expires"] < time.time() or form.get("redirect_uri") != grant["redirect_uri"]
                or form.get("client_id", grant["client_id"]) != grant["client_id"] or challenge != grant["challenge"]):
            return 400, {"error": "invalid_grant",
                         "error_description": "unknown or used code, or redirect_uri/client_id/code_verifier do not match"}
        return 200, self.token_response(self.claims(grant["profile"], **grant["overrides"]))


FAULTS = ("down", "error", "slow", "garbage", "huge", "gzip")
HUGE_BYTES = 2 * 1024 * 1024


def serve(issuer: Issuer, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """Start the HTTP server in a daemon thread and return it (``server.server_port``)."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "demo-issuer/1"

        def log_message(self, fmt: str, *args: Any) -> None:  # quiet unless asked
            if os.environ.get("ISSUER_VERBOSE"):
                sys.stderr.write("issuer: " + fmt % args + "\n")

        def _send(self, status: int, body: Any, ctype: str = "application/json") -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def _faulty(self, body: Any) -> None:
            """Answer a JWKS or introspection request, misbehaving as `issuer.fault` says."""
            fault = issuer.fault
            if fault == "down":  # no answer at all: the caller sees a reset connection
                self.close_connection = True
                return
            if fault == "error":
                self._send(503, b"upstream unavailable", "text/plain")
            elif fault == "garbage":
                self._send(200, b"<html><body>Service temporarily unavailable</body></html>", "text/html")
            elif fault == "huge":
                self._send(200, json.dumps({"keys": [], "padding": "x" * HUGE_BYTES}).encode())
            elif fault == "gzip":
                data = gzip.compress(json.dumps(body).encode())
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            else:
                if fault == "slow":
                    time.sleep(issuer.fault_delay)
                self._send(200, body)

        def do_GET(self) -> None:  # noqa: N802
            url = urlparse(self.path)
            q = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            if url.path in ("/.well-known/jwks.json", "/jwks"):
                with issuer._lock:
                    issuer.jwks_fetches += 1
                    issuer.last_headers[url.path] = {k.lower(): v for k, v in self.headers.items()}
                if issuer.jwks_delay:
                    time.sleep(issuer.jwks_delay)
                self._faulty(issuer.jwks())
            elif url.path == "/.well-known/openid-configuration":
                self._send(200, {"issuer": issuer.issuer_url,
                                 "jwks_uri": issuer.issuer_url + "/.well-known/jwks.json",
                                 "token_endpoint": issuer.issuer_url + "/token"})
            elif url.path == "/token":
                self._token(q)
            elif url.path == "/authorize":
                status, answer = issuer.authorize(q)
                if status == 302:
                    self.send_response(302)
                    self.send_header("Location", answer["Location"])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self._send(status, answer)
            elif url.path == "/healthz":
                self._send(200, b"ok", "text/plain")
            elif url.path == "/stats":
                self._send(200, {"jwks_fetches": issuer.jwks_fetches, "introspections": issuer.introspections,
                                 "kids": {a: k.kid for a, k in issuer.keys.items()}})
            else:
                self._send(404, {"error": "not_found", "error_description": f"no route {url.path}"})

        def do_POST(self) -> None:  # noqa: N802
            url = urlparse(self.path)
            q = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            if url.path == "/admin/rotate":
                kids = issuer.rotate(keep_old=q.get("keep") in ("1", "true"))
                self._send(200, {"kids": kids, **issuer.jwks()})
            elif url.path == "/admin/fault":
                mode = q.get("mode") or None
                if mode is not None and mode not in FAULTS:
                    self._send(400, {"error": "invalid_request", "error_description": f"mode one of {FAULTS}"})
                    return
                issuer.fault = mode
                issuer.fault_delay = float(q.get("delay", issuer.fault_delay))
                self._send(200, {"fault": mode})
            elif url.path == "/introspect":
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode(), keep_blank_values=True).items()}
                with issuer._lock:
                    issuer.last_headers[url.path] = {k.lower(): v for k, v in self.headers.items()}
                if not issuer.introspection_client_ok(self.headers.get("Authorization")):
                    self._send(401, {"error": "invalid_client"})
                    return
                self._faulty(issuer.introspect(form.get("token", "")))
            elif url.path == "/token":
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode(), keep_blank_values=True).items()}
                if form.get("grant_type") == "authorization_code":
                    self._send(*issuer.exchange_code(form))
                else:
                    self._token({**form, **q})
            else:
                self._send(404, {"error": "not_found"})

        def _token(self, q: dict[str, str]) -> None:
            profile = q.pop("profile", "patient")
            alg = q.pop("alg", "RS256")
            if profile not in PROFILES or alg not in ALGORITHMS:
                self._send(400, {"error": "invalid_request",
                                 "error_description": f"profile must be one of {sorted(PROFILES)}, "
                                 f"alg one of {list(ALGORITHMS)}"})
                return
            overrides: dict[str, Any] = {}
            for name in ("patient", "scope", "aud", "fhirUser", "client_id", "sub", "iss"):
                if name in q:
                    overrides[name] = q[name] or None  # empty value removes the claim
            try:
                if "exp_in" in q:
                    overrides["exp_in"] = int(q["exp_in"])
                if "nbf_in" in q:  # not yet valid: nbf and iat that many seconds from now
                    overrides["nbf"] = overrides["iat"] = int(time.time()) + int(q["nbf_in"])
            except ValueError:
                self._send(400, {"error": "invalid_request", "error_description": "exp_in and nbf_in are integers"})
                return
            for name in filter(None, q.get("omit", "").split(",")):  # e.g. omit=exp
                overrides[name] = None
            cnf: dict[str, str] = {}
            if self.headers.get("DPoP"):
                jkt = proof_thumbprint(self.headers["DPoP"])
                if jkt is None:
                    self._send(400, {"error": "invalid_dpop_proof", "error_description": "the DPoP proof does not verify"})
                    return
                cnf["jkt"] = jkt
            if q.get("x5t"):
                cnf["x5t#S256"] = q["x5t"]
            if cnf:
                overrides["cnf"] = cnf
            if q.get("format") == "opaque":
                claims = issuer.claims(profile, **overrides)
                token = issuer.mint_opaque(profile, **overrides)
                self._send(200, {"access_token": token, "token_type": "Bearer", "scope": claims.get("scope", "")})
                return
            self._send(200, issuer.token_response(issuer.claims(profile, **overrides), alg=alg))

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="issuer", daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Demo SMART token issuer (testing only).")
    p.add_argument("--host", default=os.environ.get("ISSUER_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("ISSUER_PORT", "8081")))
    p.add_argument("--issuer-url", default=os.environ.get("ISSUER_URL"),
                   help="the iss claim and JWKS base (default http://HOST:PORT)")
    p.add_argument("--audience", default=os.environ.get("ISSUER_AUDIENCE", "http://127.0.0.1:10000/fhir"),
                   help="aud claim: the FHIR base URL as clients see it")
    args = p.parse_args(argv)
    url = (args.issuer_url or f"http://{args.host}:{args.port}").rstrip("/")
    issuer = Issuer(issuer_url=url, audience=args.audience)
    client_id, client_secret = (os.environ.get(f"ISSUER_INTROSPECTION_CLIENT_{k}") for k in ("ID", "SECRET"))
    if client_id and client_secret:
        issuer.introspection_client = (client_id, client_secret)
    server = serve(issuer, args.host, args.port)
    print(f"demo issuer {url} listening on {args.host}:{server.server_port} "
          f"(aud {args.audience}); kids {[k.kid for k in issuer.published]}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
