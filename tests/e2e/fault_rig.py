"""A small rig for the fault tests (test_faults.py) and the soak (soak.py): one Envoy,
the demo issuer and the recording upstream on 127.0.0.1, both of which can be told to
misbehave (`Issuer.fault`, `Recorder.fault`), and listeners of our choosing.

Layout of the default fault rig (`FaultRig`):

  client ─► Envoy listener "faults" ─► cluster recorder (compresses when asked; faults)
  Envoy ─► cluster issuer: the demo issuer, trusted twice by the filter:
           as `<issuer>` with `jwks_uri` (JWKS fetches) and as `<issuer>#introspection`
           with RFC 7662 introspection of opaque tokens (`Issuer.mint_opaque`)

Short timeouts (JWKS and introspection 1 s, the response-check fetch 1 s) keep the
"slow" faults quick; `jwks_min_refetch_seconds: 1` lets a fault end within a second.

The introspection client secret is a fresh random value per rig that only Envoy's process
environment holds (`INTROSPECTION_SECRET_ENV`, given to the VMs by `host_env_keys`); the
plugin configuration references it (`{"env": ...}`) and the issuer accepts no other.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from .rig import (WASM, AccessLog, Envoy, Issuer, Recorder, Response, cluster, envoy_bootstrap, free_port,
                  listener, plugin_config, send, serve_issuer)

TIMEOUT_MS = 1000
INTROSPECTION_SECRET_ENV = "FHIR_AUTHZ_INTROSPECTION_SECRET"
INTROSPECTION_CLIENT_ID = "gateway"


class FaultRig:
    """Envoy + a misbehaving issuer and upstream. `listeners`: name → wasm options for
    `rig.wasm_filter` (failure policy, VM id); each listener gets `plugin(name)`."""

    def __init__(self, wasm: Path = WASM, listeners: dict[str, dict[str, str]] | None = None,
                 issuer_fault: str | None = None, concurrency: int = 1, artifact: str = "wasm",
                 modules: Path | None = None) -> None:
        self.wasm = wasm
        # "native": every listener runs the dynamic module found in `modules`
        self.artifact = artifact
        self.modules = modules
        self.workdir = Path(tempfile.mkdtemp(prefix="fhir-authz-faults-"))
        self.listeners = listeners or {"faults": {}}
        self.ports = {name: free_port() for name in self.listeners}
        self.recorder = Recorder()
        self.recorder.compress = True  # like a real server: gzip when the request allows it
        self.iss_port = free_port()
        self.issuer = Issuer(issuer_url=f"http://127.0.0.1:{self.iss_port}", audience=self.base(next(iter(self.listeners))))
        self.issuer.fault = issuer_fault  # misbehaving from the start: the filter gets no keys
        self.introspection_secret = "rig-" + secrets.token_urlsafe(24)
        self.issuer.introspection_client = (INTROSPECTION_CLIENT_ID, self.introspection_secret)
        self.issuer_server = None
        self.access_log = AccessLog(self.workdir / "access.log")
        self.envoy: Envoy | None = None
        self.concurrency = concurrency

    def base(self, name: str = "faults") -> str:
        return f"http://127.0.0.1:{self.ports[name]}/fhir"

    def plugin(self, name: str) -> dict[str, Any]:
        """The listener's plugin configuration: the issuer trusted for JWKS and for
        introspection, responses checked through the recorder, 1 s call timeouts."""
        jwks = {"issuer": self.issuer.issuer_url, "audiences": [self.base(name)],
                "jwks_uri": self.issuer.issuer_url + "/.well-known/jwks.json", "jwks_cluster": "issuer",
                "jwks_timeout_ms": TIMEOUT_MS, "jwks_min_refetch_seconds": 1}
        introspection = {"issuer": self.issuer.issuer_url + "#introspection", "audiences": [self.base(name)],
                         "introspection": {"cluster": "issuer", "path": "/introspect",
                                           "client_id": INTROSPECTION_CLIENT_ID,
                                           "client_secret": {"env": INTROSPECTION_SECRET_ENV},
                                           "timeout_ms": TIMEOUT_MS}}
        cfg = plugin_config(self.base(name), [jwks, introspection], cluster="recorder", max_body_bytes=65536)
        cfg["upstream"]["timeout_ms"] = TIMEOUT_MS
        return cfg

    def start(self) -> "FaultRig":
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.recorder.start()
        self.issuer_server = serve_issuer(self.issuer, "127.0.0.1", self.iss_port)
        log = self.access_log.path
        listeners = [listener(name, self.ports[name], "recorder", self.plugin(name), self.wasm, log, self.artifact,
                              env_keys=(INTROSPECTION_SECRET_ENV,), **options)
                     for name, options in self.listeners.items()]
        clusters = [cluster("recorder", self.recorder.port), cluster("issuer", self.iss_port)]
        boot = envoy_bootstrap(free_port(), listeners, clusters, self.workdir / "admin.log")
        self.envoy = Envoy(self.workdir, "faults", boot, self.concurrency,
                           env={INTROSPECTION_SECRET_ENV: self.introspection_secret}, modules=self.modules).start()
        for name in self.listeners:
            self.wait_through_filter(name)

    def wait_through_filter(self, name: str, timeout: float = 60) -> None:
        """`/ready` answers before the VMs run: wait for an answer with an audit record."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.request("GET", "/metadata", listener=name, wait_log=False)
            try:
                if self.access_log.wait_for(r.request_id, timeout=2).get("audit"):
                    return
            except AssertionError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"no request went through the filter on {name}; see {self.envoy.log if self.envoy else '-'}")

    def stop(self) -> None:
        if self.envoy:
            self.envoy.stop()
        if self.issuer_server:
            self.issuer_server.shutdown()
            self.issuer_server.server_close()
        self.recorder.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def request(self, method: str, path: str, *, token: str | None = None, listener: str = "faults",
                headers: dict[str, str] | None = None, wait_log: bool = True, timeout: float = 30) -> Response:
        return send(method, self.base(listener) + path, self.access_log, self.recorder, "fault-",
                    token=token, headers=headers, wait_log=wait_log, timeout=timeout)

    def counter(self, suffix: str) -> int:
        """A filter counter (`wasmcustom.fhir_smart_authz.<suffix>`), 0 while undefined."""
        assert self.envoy is not None
        return self.envoy_stat(f"wasmcustom.fhir_smart_authz.{suffix}")

    def envoy_stat(self, name: str) -> int:
        """One of Envoy's own stats by exact name, 0 when absent."""
        assert self.envoy is not None
        text = requests.get(f"{self.envoy.admin_url}/stats", timeout=5).text
        for line in text.splitlines():
            key, _, value = line.partition(": ")
            if key == name:
                return int(value)
        return 0


def reason_of(resp: Response) -> str | None:
    """The filter's reason code from its OperationOutcome (None for an upstream answer)."""
    try:
        oo = resp.json()
        return oo["issue"][0]["details"]["coding"][0]["code"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
