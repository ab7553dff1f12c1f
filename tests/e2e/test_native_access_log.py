"""envoy/envoy-native.yaml's access loggers in real Envoy with the module: a request the module
decided is logged once, as its audit record (selected by the module's dynamic-metadata mark
`fhir_smart_authz` / `audit_record`, not by CEL), and a request Envoy answered before the
module (a malformed request: Envoy's own 400) is logged once, as Envoy's own JSON line."""

from __future__ import annotations

import json
import socket
import time
import uuid
from pathlib import Path

import pytest
import requests

from .bench_envoy import direct_listener, shipped_module_access_logs, shipped_module_filter, shipped_plugin_config
from .rig import NATIVE, Envoy, Issuer, cluster, envoy_bootstrap, free_port, issuer_entry, native_unsupported_reason

AUDIENCE = "http://localhost:10000/fhir"


@pytest.fixture(scope="module")
def envoy(tmp_path_factory):
    why = native_unsupported_reason()
    if why:
        pytest.skip(why)
    if not NATIVE.exists():
        pytest.fail(f"{NATIVE} is missing: run `make build`")
    work = tmp_path_factory.mktemp("native-log")
    issuer = Issuer(issuer_url=f"http://127.0.0.1:{free_port()}", audience=AUDIENCE)
    plugin = shipped_plugin_config(issuer.issuer_url, "issuer", AUDIENCE)
    plugin["issuers"] = [issuer_entry(issuer, "issuer", inline=True)]
    port = free_port()
    log = work / "access.log"
    listener = direct_listener("main", port, [shipped_module_filter(plugin)], log, shipped_module_access_logs(log))
    boot = envoy_bootstrap(free_port(), [listener], [cluster("fhir", free_port()), cluster("issuer", free_port())],
                           work / "admin.log")
    e = Envoy(work, "native-log", boot).start()
    try:
        yield e, port, log
    finally:
        e.stop()


def lines_where(log: Path, pick, timeout: float = 5) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        found = [json.loads(x) for x in log.read_text().splitlines() if x.strip() and pick(json.loads(x))]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_a_decided_request_is_logged_once_as_its_audit_record(envoy):
    _, port, log = envoy
    rid = "native-log-" + uuid.uuid4().hex
    r = requests.get(f"http://127.0.0.1:{port}/fhir/Patient/pat-a", headers={"x-request-id": rid}, timeout=5)
    assert r.status_code == 401
    lines = lines_where(log, lambda line: line.get("request_id") == rid)
    assert len(lines) == 1, lines
    (line,) = lines
    assert (line["decision"], line["reason"], line["response_code"]) == ("deny", "missing_token", 401)
    assert (line["method"], line["path"]) == ("GET", "/fhir/Patient/pat-a")
    assert "response_code_details" not in line  # not Envoy's own line


def test_a_request_envoy_answered_before_the_module_is_logged_once_as_envoys_line(envoy):
    _, port, log = envoy
    rid = "native-log-bad-" + uuid.uuid4().hex
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        # A header name with a space: Envoy's codec refuses it (400) before any filter runs.
        s.sendall(f"GET /fhir/Patient/pat-a HTTP/1.1\r\nhost: x\r\nx-request-id: {rid}\r\nbad header: 1\r\n\r\n"
                  .encode())
        assert s.recv(4096).startswith(b"HTTP/1.1 400")
    lines = lines_where(log, lambda line: line.get("response_code") == 400 and "decision" not in line)
    assert len(lines) >= 1, log.read_text()[-2000:]
    assert all("response_code_details" in line for line in lines)
    assert not lines_where(log, lambda line: line.get("response_code") == 400 and "decision" in line, timeout=0.5)
