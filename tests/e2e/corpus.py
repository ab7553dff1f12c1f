"""The decision corpus (tests/corpus/, docs/decision-corpus.md) in real Envoy: one Envoy per
artifact with one listener per suite (the suite's config.json as the plugin configuration,
unchanged), every row sent as its line describes it, and a capturing upstream that records
what reached it. `tests/e2e/test_corpus.py` compares each answer with the row's `expect`.

A row's credential: `headers.authorization` is sent as it is; `claims` are signed into a
JWT with the test fixture key `rsa1` (tests/fixtures/keys, listed in every suite's
`issuers[0].jwks`), with the suite's issuer, audience and a far expiry added when the
claims do not name them (the CLI takes `claims` as already verified)."""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization

from .rig import (REPO, AccessLog, Envoy, Recorded, Recorder, cluster, envoy_bootstrap, free_port, listener,
                  record_of)

CORPUS = REPO / "tests" / "corpus"
FIXTURE_KEYS = REPO / "tests" / "fixtures" / "keys" / "private_keys.json"
FAR_EXPIRY = 4102444800  # 2100-01-01
# Envoy's header for the row: the capturing upstream and the access log find it by it.
ROW_HEADER = "x-request-id"


@dataclass
class Row:
    suite: str
    file: str
    line: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.suite}/{self.file}:{self.line['id']}"

    @property
    def expect(self) -> dict[str, Any]:
        return self.line["expect"]


def suites() -> dict[str, dict[str, Any]]:
    """Each suite's plugin configuration, by directory name."""
    return {d.name: json.loads((d / "config.json").read_text())
            for d in sorted(CORPUS.iterdir()) if (d / "config.json").is_file()}


def rows() -> list[Row]:
    out = []
    for suite in suites():
        for f in sorted((CORPUS / suite).glob("*.jsonl")):
            out += [Row(suite, f.stem, json.loads(text)) for text in f.read_text().splitlines() if text.strip()]
    return out


def body_bytes(body: Any) -> bytes | None:
    """The body exactly as `decide` reads it: a string as its bytes, JSON as serde_json
    writes it (compact, members sorted)."""
    if body is None:
        return None
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signing_key():
    der = base64.b64decode(json.loads(FIXTURE_KEYS.read_text())["rsa1"]["pkcs8_der_b64"])
    return serialization.load_der_private_key(der, None)


NOT_FOUND = json.dumps({"resourceType": "OperationOutcome", "issue": [
    {"severity": "error", "code": "not-found", "diagnostics": "corpus upstream: nothing stored"}]}).encode()


class CapturingUpstream(Recorder):
    """The FHIR server of the corpus: records every request; answers a row's `response` (its
    200 answer) to that row's requests, and 404 (nothing stored) to the others, which every
    response check and write pre-check lets through unchanged, so an allowed row's audit
    record keeps the request's decision."""

    def __init__(self) -> None:
        super().__init__()
        self.responses: dict[str, bytes] = {}  # request id -> the row's 200 answer

    def answer_to(self, method: str, raw_path: str, request_id: str) -> tuple[int, bytes]:  # noqa: ARG002
        body = self.responses.get(request_id)
        return (404, NOT_FOUND) if body is None else (200, body)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    audit: dict[str, Any] | None
    details: dict[str, Any] | None
    upstream: list[Recorded]


class CorpusRig:
    """One Envoy running `artifact` ("wasm" or "native") with a listener per suite."""

    def __init__(self, artifact: str, wasm: Path):
        self.artifact = artifact
        self.workdir = Path(tempfile.mkdtemp(prefix=f"fhir-authz-corpus-{artifact}-"))
        self.upstream = CapturingUpstream()
        self.access_log = AccessLog(self.workdir / "access.log")
        self.configs = suites()
        self.ports = {name: free_port() for name in self.configs}
        self.wasm = wasm
        self.envoy: Envoy | None = None
        self.key = signing_key()

    def start(self) -> "CorpusRig":
        self.upstream.start()
        listeners = [listener(name, self.ports[name], "fhir", cfg, self.wasm, self.access_log.path, self.artifact)
                     for name, cfg in self.configs.items()]
        for lst in listeners:  # as envoy/envoy.yaml: the filter reads the path as the client sent it
            hcm = lst["filter_chains"][0]["filters"][0]["typed_config"]
            hcm["normalize_path"] = hcm["merge_slashes"] = False
        boot = envoy_bootstrap(free_port(), listeners, [cluster("fhir", self.upstream.port)],
                               self.workdir / "admin.log")
        self.envoy = Envoy(self.workdir, f"corpus-{self.artifact}", boot).start()
        self._wait_serving()
        return self

    def stop(self) -> None:
        if self.envoy:
            self.envoy.stop()
        self.upstream.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _wait_serving(self, timeout: float = 60) -> None:
        """Until each listener's filter answers (its public metadata has an audit record)."""
        for name in self.configs:
            deadline = time.monotonic() + timeout
            while True:
                rid = "corpus-ready-" + uuid.uuid4().hex
                try:
                    self._send(name, "GET", "/fhir/metadata", {ROW_HEADER: rid}, None)
                    if self.access_log.wait_for(rid, timeout=2).get("audit"):
                        break
                except (OSError, AssertionError):
                    pass
                assert time.monotonic() < deadline, f"listener {name} never served through the filter"
                time.sleep(0.2)

    def token(self, suite: str, claims: dict[str, Any]) -> str:
        issuer = self.configs[suite]["issuers"][0]
        full = {"iss": issuer["issuer"], "aud": issuer["audiences"][0], "iat": int(time.time()) - 60,
                "exp": FAR_EXPIRY, **claims}
        return jwt.encode(full, self.key, algorithm="RS256", headers={"kid": "rsa1"})

    def _send(self, suite: str, method: str, path: str, headers: dict[str, Any],
              body: bytes | None) -> tuple[int, dict[str, str], bytes]:
        """One request with the path and headers exactly as given (no client normalization)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.ports[suite], timeout=30)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for name, value in headers.items():
                for v in value if isinstance(value, list) else [value]:
                    conn.putheader(name, v.encode())  # as decide reads it: UTF-8
            if body is not None:
                conn.putheader("content-length", str(len(body)))
            conn.endheaders(body)
            resp = conn.getresponse()
            data = b"" if method == "HEAD" else resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def replay(self, batch: list[Row]) -> dict[str, Answer]:
        """Every row once, then the access log read once: the answers by row id."""
        sent: dict[str, tuple[str, int, dict[str, str], bytes]] = {}
        for row in batch:
            line = row.line
            rid = "corpus-" + uuid.uuid4().hex
            headers: dict[str, Any] = {ROW_HEADER: rid, **line.get("headers", {})}
            if "claims" in line:
                headers["authorization"] = f"Bearer {self.token(row.suite, line['claims'])}"
            if "response" in line:
                self.upstream.responses[rid] = body_bytes(line["response"]) or b""
            status, got, data = self._send(row.suite, line["method"], line["path"], headers,
                                           body_bytes(line.get("body")))
            sent[row.id] = (rid, status, got, data)
        logged = self._logged({rid for rid, *_ in sent.values()})
        by_rid: dict[str, list[Recorded]] = {}
        for r in self.upstream.requests:
            by_rid.setdefault(r.header(ROW_HEADER) or "", []).append(r)
        answers = {}
        for row_id, (rid, status, got, data) in sent.items():
            details, line = logged[rid]
            answers[row_id] = Answer(status, got, data, record_of(line), details, by_rid.get(rid, []))
        return answers

    def _logged(self, rids: set[str], timeout: float = 30) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
        """The details line and the audit-log line of every request id, the logs read once
        per pass (Envoy flushes them every 50 ms)."""
        deadline = time.monotonic() + timeout
        while True:
            details = {d.get("request_id"): d for d in self.access_log.details()}
            lines = {x.get("request_id"): x for x in self.access_log.lines()}
            missing = [r for r in rids if r not in details or r not in lines]
            if not missing:
                return {r: (details[r], lines[r]) for r in rids}
            assert time.monotonic() < deadline, f"{len(missing)} requests never logged, e.g. {missing[0]}"
            time.sleep(0.1)
