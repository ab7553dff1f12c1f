"""Running the filter only for the FHIR routes (issue 20): a route whose `typed_per_filter_config`
disables the filter (`envoy.config.route.v3.FilterConfig`, `disabled: true`, under the filter's
name in the chain: `envoy.filters.http.wasm` or `envoy.filters.http.dynamic_modules`) passes
untouched (no token needed, no audit record), while the FHIR base path stays protected;
check-config sees the same routing and does not warn. On both builds of the filter."""

from __future__ import annotations

import subprocess
import time

import requests

import pytest

from .rig import (CLI, Envoy, auth_filter, built_artifact, cluster, envoy_bootstrap, free_port, issuer_entry,
                  listener, plugin_config)


@pytest.mark.parametrize("artifact", ["wasm", "native"])
def test_per_route_disabling(rig, tmp_path, artifact):
    built_artifact(artifact)
    port, admin = free_port(), free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    config = plugin_config(base, [dict(issuer_entry(rig.issuer, "issuer", inline=True), audiences=[base])],
                           cluster="recorder")
    lst = listener("scoped", port, "recorder", config, rig.wasm, tmp_path / "access.log", artifact)
    name = auth_filter(config, artifact, rig.wasm)["name"]
    disabled = {name: {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "disabled": True}}
    vhost = lst["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]
    vhost["routes"].insert(0, {"match": {"prefix": "/healthz"}, "route": {"cluster": "recorder"},
                               "typed_per_filter_config": disabled})
    boot = envoy_bootstrap(admin, [lst], [cluster("recorder", rig.recorder.port)], tmp_path / "admin.log")
    env = Envoy(tmp_path, "scoped", boot).start()
    try:
        deadline = time.monotonic() + 60
        while True:  # the worker VM loads after /ready
            fhir = requests.get(f"{base}/Patient/pat-a", timeout=30, headers={"x-request-id": "scoped-fhir"})
            if fhir.status_code != 503 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert fhir.status_code == 401, fhir.text
        health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=30, headers={"x-request-id": "scoped-health"})
        assert health.status_code == 200, health.text
        assert rig.recorder.arrived("scoped-health") and not rig.recorder.arrived("scoped-fhir")
        # check-config reads the running Envoy's /config_dump as well (Istio, Envoy Gateway).
        dump = tmp_path / "config_dump.json"
        dump.write_text(requests.get(f"{env.admin_url}/config_dump", timeout=10).text)
        r = subprocess.run([str(CLI), "check-config", str(dump)], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and r.stdout.endswith(": ok\n"), r.stdout + r.stderr
    finally:
        env.stop()
    # check-config reads the same bootstrap: the FHIR base path is routed through the filter.
    import yaml

    path = tmp_path / "scoped.yaml"
    path.write_text(yaml.safe_dump(boot))
    r = subprocess.run([str(CLI), "check-config", str(path)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    # Disabled for every route: the base path never reaches the filter, a warning.
    vhost["routes"][-1]["typed_per_filter_config"] = disabled
    path.write_text(yaml.safe_dump(boot))
    r = subprocess.run([str(CLI), "check-config", str(path)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 3 and "at `fhir_base_path`: no route of" in r.stderr, r.stdout + r.stderr
