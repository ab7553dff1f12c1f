"""Sender-constrained tokens in real Envoy (two worker threads): DPoP-bound tokens from the
demo issuer used with proofs built as real clients build them (ES256 and RS256 keys), a row
per RFC 9449 check, a proof replayed across the workers accepted exactly once, server nonces,
the RFC 9728 metadata, and certificate-bound tokens over a TLS listener that asks for client
certificates (RFC 8705), the certificates generated here. Every test runs on both artifacts:
the .wasm and the native dynamic module (which reads the client certificate's digest and
the source address through the ABI's attribute callbacks, and shares the replay cache
across its worker threads as the wasm VMs do through shared data)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from .dpop_client import DpopKey, Pki
from .rig import (WASM, AccessLog, Envoy, Issuer, Recorder, built_artifact, cluster, envoy_bootstrap,
                  free_port, issuer_entry, listener, plugin_config, serve_issuer, wait_until)

NONCE_SECRET = "e2e-nonce-key-0123456789abcdef0123456789"
LISTENERS = ("dpop", "nonce", "mtls")


class SenderRig:
    def __init__(self, workdir: Path, artifact: str = "wasm"):
        self.workdir = workdir
        self.artifact = artifact
        self.ports = {name: free_port() for name in LISTENERS}
        self.recorder = Recorder().start()
        iss_port = free_port()
        self.issuer = Issuer(issuer_url=f"http://127.0.0.1:{iss_port}", audience=self.base("dpop"))
        self.server = serve_issuer(self.issuer, "127.0.0.1", iss_port)
        self.pki = Pki(workdir)
        entry = issuer_entry(self.issuer, "issuer")
        dpop = {"mode": "accepted", "algorithms": ["ES256", "RS256"]}
        self.plugins = {
            "dpop": plugin_config(self.base("dpop"), [dict(entry, dpop=dpop)], cluster="recorder"),
            "nonce": plugin_config(self.base("nonce"), [dict(entry, audiences=[self.base("nonce")],
                                                             dpop=dict(dpop, nonce=True))],
                                   cluster="recorder",
                                   # The key comes from the VM's environment (a secret reference).
                                   sender_constraint={"nonce_secret": {"env": "DPOP_NONCE_KEY"},
                                                      "nonce_lifetime_seconds": 60}),
            "mtls": plugin_config(self.base("mtls"), [dict(entry, audiences=[self.base("mtls")])],
                                  cluster="recorder"),
        }
        self.access_log = AccessLog(workdir / "access.log")
        listeners = [listener(n, self.ports[n], "recorder", self.plugins[n], WASM, self.access_log.path, artifact,
                              **({} if artifact == "native" else {"vm_id": f"fhir_smart_authz_{n}"}))
                     for n in LISTENERS]
        # The nonce key: the wasm VM's environment; the native module reads Envoy's own.
        envoy_env = {"DPOP_NONCE_KEY": NONCE_SECRET} if artifact == "native" else None
        if artifact == "wasm":
            wasm = listeners[1]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"][1]
            wasm["typed_config"]["config"]["vm_config"]["environment_variables"] = {
                "key_values": {"DPOP_NONCE_KEY": NONCE_SECRET}}
        listeners[2]["filter_chains"][0]["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                # Ask for a client certificate, do not require one: a certificate-bound token
                # without its certificate must be refused by the filter, not by the handshake.
                "require_client_certificate": False,
                "common_tls_context": {
                    "tls_certificates": [{"certificate_chain": {"filename": str(self.pki.server["cert"])},
                                          "private_key": {"filename": str(self.pki.server["key"])}}],
                    "validation_context": {"trusted_ca": {"filename": str(self.pki.ca_path)}},
                },
            },
        }
        boot = envoy_bootstrap(free_port(), listeners,
                               [cluster("recorder", self.recorder.port), cluster("issuer", iss_port)],
                               workdir / "admin.log")
        self.envoy = Envoy(workdir, "sender", boot, concurrency=2, env=envoy_env).start()
        self.wait_serving()

    def base(self, name: str) -> str:
        scheme = "https" if name == "mtls" else "http"
        return f"{scheme}://127.0.0.1:{self.ports[name]}/fhir"

    def get(self, name: str, path: str, headers: dict[str, str], cert: dict[str, Any] | None = None,
            method: str = "GET") -> requests.Response:
        """One request on a new connection (so the two workers both get some)."""
        extra: dict[str, Any] = {"verify": str(self.pki.ca_path)} if name == "mtls" else {}
        if cert is not None:
            extra["cert"] = (str(cert["cert"]), str(cert["key"]))
        headers = {"x-request-id": "sender-" + uuid.uuid4().hex, "connection": "close", **headers}
        return requests.request(method, self.base(name) + path, headers=headers, timeout=10, **extra)

    def wait_serving(self) -> None:
        token = self.issuer.mint("patient")
        for name in LISTENERS:
            ok = [0]

            def serving(name: str = name, ok: list[int] = ok) -> bool:
                t = self.issuer.mint("patient", aud=self.base(name))
                r = self.get(name, "/Patient/pat-a", {"authorization": f"Bearer {t}"})
                ok[0] = ok[0] + 1 if r.status_code == 200 else 0
                return ok[0] >= 6  # both workers answer
            wait_until(serving, 90, f"listener {name} serving", None, self.envoy.proc)
        del token

    def stop(self) -> None:
        self.envoy.stop()
        self.server.shutdown()
        self.recorder.stop()


@pytest.fixture(scope="module", params=["wasm", "native"])
def srig(request, tmp_path_factory):
    artifact = request.param
    built_artifact(artifact)
    r = SenderRig(tmp_path_factory.mktemp(f"sender-{artifact}"), artifact)
    try:
        yield r
    finally:
        r.stop()


def dpop_token(rig: SenderRig, key: DpopKey, listener: str = "dpop") -> str:
    """A DPoP-bound token as a client gets it: a proof of its key on the token request."""
    url = rig.issuer.issuer_url + "/token"
    proof = key.proof("POST", url)
    r = requests.post(url, data={"profile": "patient", "aud": rig.base(listener)}, headers={"DPoP": proof},
                      timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "DPoP"
    return r.json()["access_token"]


def challenges(r: requests.Response) -> str:
    return r.headers.get("www-authenticate", "")


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_a_dpop_request_is_allowed_and_its_proof_and_token_stay_here(srig, alg):
    key = DpopKey(alg)
    token = dpop_token(srig, key)
    url = srig.base("dpop") + "/Patient/pat-a"
    rid = "dpop-ok-" + uuid.uuid4().hex
    r = srig.get("dpop", "/Patient/pat-a", {"authorization": f"DPoP {token}", "dpop": key.proof("GET", url, token),
                                             "x-request-id": rid})
    assert r.status_code == 200, r.text
    seen = srig.recorder.find(rid)
    assert seen is not None and seen.header("dpop") is None  # not forwarded
    assert seen.header("x-smart-binding") == "dpop"
    record = srig.access_log.wait_for(rid)["audit"]
    assert record["agent"]["binding"] == "dpop"
    assert len(record["agent"]["binding_thumbprint"]) == 43


def test_every_proof_check_is_enforced(srig):
    key = DpopKey("ES256")
    token = dpop_token(srig, key)
    url = srig.base("dpop") + "/Patient/pat-a"
    other = DpopKey("ES256")
    now = int(time.time())
    auth = {"authorization": f"DPoP {token}"}
    rows: list[tuple[str, dict[str, str], int, str]] = [
        ("no proof", {}, 401, "invalid_dpop_proof"),
        ("htm", {"dpop": key.proof("POST", url, token)}, 401, "invalid_dpop_proof"),
        ("htu", {"dpop": key.proof("GET", srig.base("dpop") + "/Patient/pat-b", token)}, 401, "invalid_dpop_proof"),
        ("iat old", {"dpop": key.proof("GET", url, token, iat=now - 300)}, 401, "invalid_dpop_proof"),
        ("iat future", {"dpop": key.proof("GET", url, token, iat=now + 300)}, 401, "invalid_dpop_proof"),
        ("ath", {"dpop": key.proof("GET", url, token + "x")}, 401, "invalid_dpop_proof"),
        ("no ath", {"dpop": key.proof("GET", url)}, 401, "invalid_dpop_proof"),
        ("typ", {"dpop": key.proof("GET", url, token, header={"typ": "JWT"})}, 401, "invalid_dpop_proof"),
        ("other key", {"dpop": other.proof("GET", url, token)}, 401, "token_binding_mismatch"),
        ("query and case", {"dpop": key.proof("GET", url.replace("http://", "HTTP://").replace("/fhir/", "/fhir/./") + "?x=1", token)},
         200, "allowed"),
    ]
    for name, headers, status, reason in rows:
        r = srig.get("dpop", "/Patient/pat-a", {**auth, **headers})
        assert r.status_code == status, (name, r.text)
        if status == 401:
            assert r.json()["issue"][0]["details"]["coding"][0]["code"] == reason, name
            assert 'DPoP realm="fhir", algs="ES256 RS256"' in challenges(r), name
            assert "Bearer realm=" in challenges(r), name
            assert "resource_metadata=" in challenges(r), name


def test_bearer_downgrade_and_unbound_dpop_are_refused(srig):
    key = DpopKey("ES256")
    token = dpop_token(srig, key)
    url = srig.base("dpop") + "/Patient/pat-a"
    r = srig.get("dpop", "/Patient/pat-a", {"authorization": f"Bearer {token}", "dpop": key.proof("GET", url, token)})
    assert r.status_code == 401
    assert 'error="invalid_token"' in challenges(r)
    plain = srig.issuer.mint("patient", aud=srig.base("dpop"))
    r = srig.get("dpop", "/Patient/pat-a", {"authorization": f"DPoP {plain}", "dpop": key.proof("GET", url, plain)})
    assert r.status_code == 401
    assert r.json()["issue"][0]["details"]["coding"][0]["code"] == "token_binding_mismatch"


def test_a_replayed_proof_is_accepted_once_across_workers(srig):
    key = DpopKey("ES256")
    token = dpop_token(srig, key)
    url = srig.base("dpop") + "/Patient/pat-a"
    proof = key.proof("GET", url, token)
    statuses = [srig.get("dpop", "/Patient/pat-a", {"authorization": f"DPoP {token}", "dpop": proof}).status_code
                for _ in range(20)]
    assert statuses.count(200) == 1, statuses
    assert statuses.count(401) == 19, statuses
    # Both workers answered some of them (new connection each time): the one acceptance
    # holds across worker VMs, not within one.
    stats = srig.envoy.stats()
    assert "dpop_proof_replayed" in stats


def forged(proof: str) -> str:
    """The proof with one bit of its signature flipped (its header and claims unchanged)."""
    head, claims, sig = proof.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return f"{head}.{claims}." + base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_a_known_proof_key_never_passes_a_forged_signature(srig, alg):
    """A client's key seen on many requests (the native module then checks an ES256 key with
    its own table, not `ring`): every proof it signed passes, every forged one is refused,
    before and after, on both workers."""
    key = DpopKey(alg)
    token = dpop_token(srig, key)
    url = srig.base("dpop") + "/Patient/pat-a"
    auth = {"authorization": f"DPoP {token}"}
    statuses = []
    for _ in range(12):
        statuses.append(srig.get("dpop", "/Patient/pat-a", {**auth, "dpop": key.proof("GET", url, token)}).status_code)
        r = srig.get("dpop", "/Patient/pat-a", {**auth, "dpop": forged(key.proof("GET", url, token))})
        assert r.status_code == 401, r.text
        assert r.json()["issue"][0]["details"]["coding"][0]["code"] == "invalid_dpop_proof"
    assert statuses == [200] * 12, statuses


def test_nonces_are_asked_for_then_accepted(srig):
    key = DpopKey("RS256")
    token = dpop_token(srig, key, "nonce")
    url = srig.base("nonce") + "/Patient/pat-a"
    r = srig.get("nonce", "/Patient/pat-a", {"authorization": f"DPoP {token}", "dpop": key.proof("GET", url, token)})
    assert r.status_code == 401
    assert 'error="use_dpop_nonce"' in challenges(r)
    nonce = r.headers["dpop-nonce"]
    r = srig.get("nonce", "/Patient/pat-a",
                 {"authorization": f"DPoP {token}", "dpop": key.proof("GET", url, token, nonce)})
    assert r.status_code == 200, r.text
    r = srig.get("nonce", "/Patient/pat-a",
                 {"authorization": f"DPoP {token}", "dpop": key.proof("GET", url, token, "forged")})
    assert r.status_code == 401 and "dpop-nonce" in r.headers


def nonce_of_bucket(bucket: int) -> str:
    """The server nonce of a time bucket, as the filter mints it (its key is the rig's)."""
    raw = bucket.to_bytes(8, "big")
    mac = hmac.new(NONCE_SECRET.encode(), b"fhir-smart-authz dpop-nonce v1" + raw, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(raw + mac[:16]).rstrip(b"=").decode()


@pytest.mark.parametrize("path, relayed", [("/Patient/pat-a", False), ("/Observation/obs-a1", True)])
def test_a_turned_bucket_renews_the_nonce_on_every_answer(srig, path, relayed):
    """A proof with the previous bucket's nonce is accepted and its answer carries the fresh one:
    the upstream's answer, and the answer the filter relays from its own fetch (a checked read)."""
    if time.time() % 60 > 57:
        time.sleep(4)  # not across a bucket's end: the previous bucket must stay the previous one
    key = DpopKey("ES256")
    token = dpop_token(srig, key, "nonce")
    previous = nonce_of_bucket(int(time.time()) // 60 - 1)
    url = srig.base("nonce") + path
    r = srig.get("nonce", path, {"authorization": f"DPoP {token}", "dpop": key.proof("GET", url, token, previous)})
    assert r.status_code == 200, r.text
    assert r.headers.get("dpop-nonce") == nonce_of_bucket(int(time.time()) // 60), (relayed, r.headers)


def test_protected_resource_metadata(srig):
    r = requests.get(f"http://127.0.0.1:{srig.ports['dpop']}/.well-known/oauth-protected-resource/fhir", timeout=10)
    assert r.status_code == 200
    doc = r.json()
    assert doc["resource"] == srig.base("dpop")
    assert doc["authorization_servers"] == [srig.issuer.issuer_url]
    assert doc["dpop_signing_alg_values_supported"] == ["ES256", "RS256"]
    assert doc["dpop_bound_access_tokens_required"] is False
    assert doc["tls_client_certificate_bound_access_tokens"] is True
    r = srig.get("dpop", "/Patient/pat-a", {})
    assert f'resource_metadata="http://127.0.0.1:{srig.ports["dpop"]}/.well-known/oauth-protected-resource/fhir"' \
        in challenges(r)


def test_certificate_bound_tokens_need_their_certificate(srig):
    mine, theirs = srig.pki.issue("app"), srig.pki.issue("other-app")
    token = srig.issuer.mint("patient", aud=srig.base("mtls"), cnf={"x5t#S256": mine["x5t"]})
    auth = {"authorization": f"Bearer {token}"}
    rid = "mtls-" + uuid.uuid4().hex
    r = srig.get("mtls", "/Patient/pat-a", {**auth, "x-request-id": rid}, cert=mine)
    assert r.status_code == 200, r.text
    assert srig.access_log.wait_for(rid)["audit"]["agent"]["binding"] == "mtls"
    for name, cert in [("other certificate", theirs), ("no certificate", None)]:
        r = srig.get("mtls", "/Patient/pat-a", auth, cert=cert)
        assert r.status_code == 401, name
        assert r.json()["issue"][0]["details"]["coding"][0]["code"] == "token_binding_mismatch", name
    # A client-sent certificate header is not believed (no trusted hop is declared).
    r = srig.get("mtls", "/Patient/pat-a", {**auth, "x-forwarded-client-cert": f"Hash={hashlib.sha256(mine['der']).hexdigest()}"})
    assert r.status_code == 401
