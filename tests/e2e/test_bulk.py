"""Bulk Data end to end through real Envoy with two worker threads (`--concurrency 2`, a
fresh connection per request): kick-off, polls, manifest, files and cancel, bound to the
client that started the job.

Two upstreams behind one Envoy of its own (the session rig runs one worker):

- `sekmet`: the rig's FHIR server (sekmet-fhir), its status URLs `[base]/bulk-status/<id>`
  and files `[base]/bulk-files/<id>/<type>.ndjson`. Where it departs from the Bulk Data IG
  (it answers `requiresAccessToken: false`, being configured without server auth, and
  ignores kick-off parameters it does not support), the other upstream takes over;
- `ig`: a small server in this file that speaks the IG exactly (202 + Content-Location,
  202 + X-Progress, 200 manifest with `requiresAccessToken: true`, NDJSON files, DELETE
  202 then 404), with its status URLs at `bulkstatus/<id>` and files at
  `bulkfiles/<id>/<name>` (defaults of `bulk.status_paths`/`file_paths`), one manifest URL
  in object storage elsewhere, and a record of every request that reached it.

Every test runs on both builds of the filter (the .wasm, the native module): the jobs are
bound across the workers through shared data either way.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from .rig import (WASM, AccessLog, Envoy, Issuer, Recorder, Sekmet, built_artifact, cluster, envoy_bootstrap,
                  free_port, issuer_entry, listener, plugin_config, seed, send, serve_issuer, wait_until)

OWNER_SCOPES = "system/Patient.rs system/Observation.rs"
ASYNC = {"Prefer": "respond-async"}


class IgServer:
    """A Bulk Data server that speaks the IG exactly; records what reached it."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.seen: list[tuple[str, str]] = []
        self.public = ""
        self.server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.server_address[1]

    def start(self) -> "IgServer":
        ig = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                path = self.path.split("?", 1)[0]
                ig.seen.append((self.command, self.path))
                parts = [p for p in path.split("/") if p][1:]  # after /fhir
                if parts and parts[-1] == "$export":
                    job = uuid.uuid4().hex[:12]
                    ig.jobs[job] = {"polls": 0}
                    return self._send(202, b"", {"Content-Location": f"{ig.public}/bulkstatus/{job}"})
                if len(parts) == 2 and parts[0] == "bulkstatus":
                    job = ig.jobs.get(parts[1])
                    if job is None:
                        return self._send(404, b'{"resourceType":"OperationOutcome","issue":[]}',
                                          {"Content-Type": "application/fhir+json"})
                    if self.command == "DELETE":
                        del ig.jobs[parts[1]]
                        return self._send(202)
                    job["polls"] += 1
                    if job["polls"] == 1:
                        return self._send(202, b"", {"X-Progress": "in progress", "Retry-After": "1"})
                    manifest = {"transactionTime": "2026-12-07T00:00:00Z", "request": f"{ig.public}/$export",
                                "requiresAccessToken": True,
                                "output": [{"type": "Patient", "url": f"{ig.public}/bulkfiles/{parts[1]}/Patient.ndjson"},
                                           {"type": "Observation",
                                            "url": f"https://storage.example.net/{parts[1]}/Observation.ndjson"}],
                                "error": []}
                    return self._send(200, json.dumps(manifest).encode(), {"Content-Type": "application/json"})
                if len(parts) == 3 and parts[0] == "bulkfiles" and parts[1] in ig.jobs:
                    line = json.dumps({"resourceType": "Patient", "id": "p1"}) + "\n"
                    return self._send(200, line.encode(), {"Content-Type": "application/fhir+ndjson"})
                if len(parts) == 2 and parts[0] == "Patient":  # the warm-up read
                    body = json.dumps({"resourceType": "Patient", "id": parts[1]}).encode()
                    return self._send(200, body, {"Content-Type": "application/fhir+json"})
                if parts == ["metadata"]:
                    return self._send(200, b'{"resourceType":"CapabilityStatement","status":"active","kind":"instance","fhirVersion":"4.0.1","format":["json"]}',
                                      {"Content-Type": "application/fhir+json"})
                return self._send(404, b"")

            do_GET = do_POST = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()


class BulkRig:
    """Envoy (2 workers) with a `sekmet` and an `ig` listener, the demo issuer."""

    def __init__(self, artifact: str = "wasm") -> None:
        self.artifact = artifact
        self.workdir = Path(tempfile.mkdtemp(prefix="fhir-authz-bulk-"))
        self.ports = {"sekmet": free_port(), "ig": free_port()}
        self.access_log = AccessLog(self.workdir / "access.log")
        self.recorder = Recorder()  # unused upstream; `send` looks requests up in it
        self.ig = IgServer()
        self.sekmet: Sekmet | None = None
        self.envoy: Envoy | None = None
        self.issuer_server: Any = None

    def base(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}/fhir"

    def start(self) -> "BulkRig":
        iss_port = free_port()
        self.issuer = Issuer(issuer_url=f"http://127.0.0.1:{iss_port}", audience=self.base("sekmet"))
        self.issuer_server = serve_issuer(self.issuer, "127.0.0.1", iss_port)
        self.sekmet = Sekmet(self.workdir, public_base=self.base("sekmet")).start()
        seed(self.sekmet.base_url)
        group = {"resourceType": "Group", "id": "bulk-g1", "type": "person", "actual": True,
                 "member": [{"entity": {"reference": "Patient/pat-a"}}]}
        requests.put(self.sekmet.base_url + "/Group/bulk-g1", json=group, timeout=10).raise_for_status()
        self.ig.start()
        self.ig.public = self.base("ig")
        log = self.access_log.path
        listeners = []
        for name, upstream in (("sekmet", "fhir"), ("ig", "ig")):
            entry = dict(issuer_entry(self.issuer, "issuer"), audiences=[self.base(name)])
            # The records: "line" (the default) on sekmet, "fields" (envoy/envoy.yaml's) on ig, where
            # the kick-off's record is written at the decision and again once the job is known.
            extra = {"audit": {"encoding": "fields"}} if name == "ig" else {}
            cfg = plugin_config(self.base(name), [entry], cluster=upstream, hold=True, **extra)
            listeners.append(listener(name, self.ports[name], upstream, cfg, WASM, log, self.artifact))
        clusters = [cluster("fhir", self.sekmet.port), cluster("ig", self.ig.port), cluster("issuer", iss_port)]
        boot = envoy_bootstrap(free_port(), listeners, clusters, self.workdir / "admin.log")
        self.envoy = Envoy(self.workdir, "bulk", boot, concurrency=2).start()
        for name in self.ports:
            token = self.token(name, "warm", "system/Patient.rs")
            wait_until(lambda n=name, t=token: self.request(n, "GET", "/Patient/pat-a", t).status == 200,
                       60, f"a token accepted on {name}", self.envoy.log, self.envoy.proc)
        return self

    def stop(self) -> None:
        if self.envoy:
            self.envoy.stop()
        if self.sekmet:
            self.sekmet.stop()
        self.ig.stop()
        if self.issuer_server:
            self.issuer_server.shutdown()
            self.issuer_server.server_close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def token(self, listener_name: str, client: str, scope: str, sub: str | None = None) -> str:
        return self.issuer.mint("backend", aud=self.base(listener_name), client_id=client, scope=scope,
                                sub=sub or f"svc-{client}")

    def request(self, name: str, method: str, path: str, token: str | None, *, url: str | None = None,
                headers: dict[str, str] | None = None, body: Any = None):
        """One request on a fresh connection (Envoy picks a worker per connection)."""
        return send(method, url or (self.base(name) + path), self.access_log, self.recorder, "bulk-",
                    token=token, headers=headers, body=body)


@pytest.fixture(scope="module", params=["wasm", "native"])
def bulk(request):
    built_artifact(request.param)
    r = BulkRig(request.param).start()
    try:
        yield r
    finally:
        r.stop()


def job_key(location: str, base: str) -> str:
    assert location.startswith(base + "/"), location
    return location[len(base) + 1:]


def kick_off(b: BulkRig, name: str, token: str, query: str = "?_type=Patient,Observation"):
    r = b.request(name, "GET", "/$export" + query, token, headers=ASYNC)
    assert r.status == 202, (r.status, r.body[:300])
    location = r.headers["content-location"]
    entity = r.audit["entity"]
    assert (entity["bulk"], entity["job"]) == ("kick-off", job_key(location, b.base(name))), entity
    return location


def poll_until_done(b: BulkRig, name: str, token: str, location: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = b.request(name, "GET", "", token, url=location)
        assert r.status in (200, 202), (r.status, r.body[:300])
        assert r.audit["entity"]["job"] == job_key(location, b.base(name))
        if r.status == 200:
            return json.loads(r.body)
        assert r.headers.get("x-progress"), r.headers
        time.sleep(0.3)
    raise AssertionError("the export did not complete")


def assert_not_found(r, why: str) -> None:
    assert r.status == 404, (why, r.status, r.body[:300])
    assert "www-authenticate" not in r.headers, why
    outcome = json.loads(r.body)
    assert outcome["issue"][0]["code"] == "not-found", why
    assert outcome["issue"][0]["diagnostics"] == "there is no Bulk Data export job at this URL for this token", why
    assert r.audit["reason"] == "bulk_job_not_found", why


def intruders(b: BulkRig, name: str) -> list[tuple[str, str]]:
    return [
        ("another client, same scopes", b.token(name, "bulk-intruder", OWNER_SCOPES)),
        ("the same client id, another subject", b.token(name, "bulk-owner", OWNER_SCOPES, sub="someone-else")),
        ("the owner with narrower scopes", b.token(name, "bulk-owner", "system/Patient.rs")),
    ]


def test_sekmet_job_is_bound_to_its_client_across_workers(bulk: BulkRig) -> None:
    b, name = bulk, "sekmet"
    owner = b.token(name, "bulk-owner", OWNER_SCOPES)
    location = kick_off(b, name, owner)
    assert job_key(location, b.base(name)).startswith("bulk-status/")
    manifest = poll_until_done(b, name, owner, location)
    # sekmet runs without server auth, so it says the files need no token; under the gateway
    # they need the owner's token anyway (docs/security-model.md).
    assert manifest["requiresAccessToken"] is False
    files = [o["url"] for o in manifest["output"]]
    assert files and all(u.startswith(b.base(name) + "/bulk-files/") for u in files), files
    assert {o["type"] for o in manifest["output"]} <= {"Patient", "Observation"}
    for url in files:
        r = b.request(name, "GET", "", owner, url=url)
        assert r.status == 200, (url, r.status)
        assert (r.audit["entity"]["bulk"], r.audit["entity"]["job"]) == ("file", job_key(location, b.base(name)))
    for why, token in intruders(b, name):
        for _ in range(3):  # fresh connections: both workers answer
            assert_not_found(b.request(name, "GET", "", token, url=location), f"{why}: poll")
            assert_not_found(b.request(name, "GET", "", token, url=files[0]), f"{why}: file")
            assert_not_found(b.request(name, "DELETE", "", token, url=location), f"{why}: cancel")
    r = b.request(name, "GET", "", None, url=location)
    assert r.status == 401 and r.audit["reason"] == "missing_token"
    # The job survived every attempt: its owner still reads it, then cancels it.
    assert b.request(name, "GET", "", owner, url=location).status == 200
    r = b.request(name, "DELETE", "", owner, url=location)
    assert r.status == 202 and r.audit["entity"]["bulk"] == "cancel"
    for url in (location, files[0]):
        for _ in range(2):
            assert_not_found(b.request(name, "GET", "", owner, url=url), f"after cancel: {url}")


def test_ig_server_flow_and_intruders_never_reach_it(bulk: BulkRig) -> None:
    b, name = bulk, "ig"
    owner = b.token(name, "bulk-owner", OWNER_SCOPES)
    location = kick_off(b, name, owner)
    key = job_key(location, b.base(name))
    assert key.startswith("bulkstatus/")
    r = b.request(name, "GET", "", owner, url=location)
    assert r.status == 202 and r.headers["x-progress"] == "in progress"
    manifest = poll_until_done(b, name, owner, location)
    assert manifest["requiresAccessToken"] is True
    inside, elsewhere = manifest["output"][0]["url"], manifest["output"][1]["url"]
    assert elsewhere.startswith("https://storage.example.net/")  # left alone: never fetched here
    r = b.request(name, "GET", "", owner, url=inside)
    assert r.status == 200 and r.headers["content-type"] == "application/fhir+ndjson"
    assert json.loads(r.body.decode().splitlines()[0])["resourceType"] == "Patient"
    seen_before = len(b.ig.seen)
    for why, token in intruders(b, name):
        for _ in range(3):
            assert_not_found(b.request(name, "GET", "", token, url=location), f"{why}: poll")
            assert_not_found(b.request(name, "GET", "", token, url=inside), f"{why}: file")
            assert_not_found(b.request(name, "DELETE", "", token, url=location), f"{why}: cancel")
    assert len(b.ig.seen) == seen_before, b.ig.seen[seen_before:]
    r = b.request(name, "DELETE", "", owner, url=location)
    assert r.status == 202
    # Forgotten by the filter: answered 404 without asking the server.
    for url in (location, inside):
        assert_not_found(b.request(name, "GET", "", owner, url=url), f"after cancel: {url}")
    assert_not_found(b.request(name, "DELETE", "", owner, url=location), "second cancel")
    assert len(b.ig.seen) == seen_before + 1


def test_kickoff_without_type_is_narrowed_to_the_granted_types(bulk: BulkRig) -> None:
    b, name = bulk, "sekmet"
    owner = b.token(name, "bulk-narrow", OWNER_SCOPES)
    r = b.request(name, "GET", "/$export", owner, headers=ASYNC)
    assert r.status == 202, r.body[:300]
    assert r.audit["rewrite"]["added"] == ["_type"]
    location = r.headers["content-location"]
    manifest = poll_until_done(b, name, owner, location)
    assert {o["type"] for o in manifest["output"]} <= {"Patient", "Observation"}, manifest["output"]
    # The types it was narrowed to are what the job needs: the same client with fewer is refused.
    narrower = b.token(name, "bulk-narrow", "system/Patient.rs")
    assert_not_found(b.request(name, "GET", "", narrower, url=location), "narrower scopes")
    assert b.request(name, "DELETE", "", owner, url=location).status == 202


@pytest.mark.parametrize("method,path,scope,body,status,reason,says", [
    # POST kick-off: parameters in the Parameters body
    ("POST", "/$export", OWNER_SCOPES,
     {"resourceType": "Parameters", "parameter": [{"name": "_type", "valueString": "Patient"}]}, 202, "allowed", None),
    ("POST", "/$export", OWNER_SCOPES, {"resourceType": "Parameters"}, 403, "insufficient_scope", "_type="),
    # levels
    ("GET", "/Patient/$export?_type=Observation", OWNER_SCOPES, None, 202, "allowed", None),
    ("GET", "/Group/bulk-g1/$export?_type=Observation", OWNER_SCOPES, None, 403, "insufficient_scope", "Group"),
    ("GET", "/Group/bulk-g1/$export?_type=Observation", OWNER_SCOPES + " system/Group.rs", None, 202, "allowed",
     None),
    # types and the parameters that widen the output
    ("GET", "/$export?_type=Condition", OWNER_SCOPES, None, 403, "insufficient_scope", "Condition"),
    ("GET", "/$export?_type=Observation&includeAssociatedData=LatestProvenanceResources", OWNER_SCOPES, None, 403,
     "insufficient_scope", "Provenance"),
    ("GET", "/$export?_type=Observation&_typeFilter=Condition%3Fcode%3Dx", OWNER_SCOPES, None, 403,
     "insufficient_scope", "Condition"),
    ("GET", "/$export?_type=Observation&_typeFilter=Observation%3F_include%3DObservation:subject", OWNER_SCOPES,
     None, 403, "operation_not_permitted", "_include"),
    ("GET", "/$export?_type=Observation&organizeOutputBy=Condition", OWNER_SCOPES, None, 403,
     "insufficient_scope", "Condition"),
    ("GET", "/$export?_type=Observation&_elements=Condition.code", OWNER_SCOPES, None, 403, "insufficient_scope",
     "Condition"),
    ("GET", "/$export?_type=Observation&patient=Patient/pat-a", OWNER_SCOPES, None, 403, "operation_not_permitted",
     "patient"),
    ("GET", "/$export?_type=Observation&_mdm=true", OWNER_SCOPES, None, 403, "operation_not_permitted", "_mdm"),
    ("GET", "/$export?_type=Observation&_since=2020-01-01T00:00:00Z", OWNER_SCOPES, None, 202, "allowed", None),
])
def test_kickoff_decisions(bulk: BulkRig, method, path, scope, body, status, reason, says) -> None:
    b, name = bulk, "sekmet"
    token = b.token(name, "bulk-kick-" + uuid.uuid4().hex[:8], scope)
    r = b.request(name, method, path, token, headers=ASYNC, body=body)
    assert (r.status, r.audit["reason"]) == (status, reason), r.body[:400]
    if says:
        assert says in r.audit["message"], r.audit["message"]
    if status == 202:
        assert b.request(name, "DELETE", "", token, url=r.headers["content-location"]).status == 202


def test_concurrent_kickoffs_per_client_are_limited(bulk: BulkRig) -> None:
    b, name = bulk, "ig"  # the IG server's jobs stay in progress until polled twice
    token = b.token(name, "bulk-busy", OWNER_SCOPES)
    other = b.token(name, "bulk-other", OWNER_SCOPES)
    running = [kick_off(b, name, token) for _ in range(2)]
    r = b.request(name, "GET", "/$export?_type=Patient", token, headers=ASYNC)
    assert (r.status, r.audit["reason"], r.headers.get("retry-after")) == (429, "export_limit_reached", "120")
    assert "www-authenticate" not in r.headers
    other_job = kick_off(b, name, other)  # another client is not held back
    # One completes (its manifest is read): room for one more.
    poll_until_done(b, name, token, running[0])
    running.append(kick_off(b, name, token))
    for loc, tok in [(loc, token) for loc in running] + [(other_job, other)]:
        assert b.request(name, "DELETE", "", tok, url=loc).status == 202
