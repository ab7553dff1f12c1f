"""Secrets never in the plugin configuration (issue 22), in real Envoy.

The fault rig (fault_rig.py) trusts its issuer for introspection with
`"client_secret": {"env": "FHIR_AUTHZ_INTROSPECTION_SECRET"}`. The value is a fresh random
string that only Envoy's process environment holds; the VMs see it through
`vm_config.environment_variables.host_env_keys`, and the issuer accepts no other secret.
After the calls, neither `/config_dump`, nor the audit and access logs, nor Envoy's log, nor
any file of the rig holds the value. A secret written in the configuration without
`allow_insecure_inline_secrets` is refused by Envoy and by `check-config`; a reference to a
variable Envoy does not pass to the VM is refused by Envoy too."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from .fault_rig import INTROSPECTION_CLIENT_ID, INTROSPECTION_SECRET_ENV, FaultRig, reason_of
from .rig import CLI, WASM, cluster, envoy_binary, envoy_bootstrap, free_port, listener

FIELD = "issuers[1].introspection.client_secret"


@pytest.fixture(scope="module")
def secret_rig():
    if not WASM.exists():
        pytest.fail(f"{WASM} is missing: run `make build` (make e2e does it)")
    # Envoy's own log at info, as in production: at debug Envoy prints the headers of the
    # filter's calls, the introspection call's Authorization too (docs/secrets.md)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ENVOY_LOG_LEVEL", "info")
        rig = FaultRig().start()
    try:
        yield rig
    finally:
        rig.stop()


def opaque(rig: FaultRig) -> str:
    return rig.issuer.mint_opaque("patient", aud=rig.base())


def test_introspection_authenticates_with_the_secret_from_envoys_environment(secret_rig):
    r = secret_rig.request("GET", "/Patient/pat-a", token=opaque(secret_rig))
    assert r.status == 200 and r.audit and r.audit["reason"] == "allowed", (r.status, r.body[:300])
    basic = secret_rig.issuer.last_headers["/introspect"]["authorization"].removeprefix("Basic ")
    assert base64.b64decode(basic).decode() == f"{INTROSPECTION_CLIENT_ID}:{secret_rig.introspection_secret}"
    # The issuer now wants another secret: the filter's call is refused, so the secret the
    # filter sends is the one from Envoy's environment (and nothing else lets it through).
    secret_rig.issuer.introspection_client = (INTROSPECTION_CLIENT_ID, "another-secret")
    try:
        refused = secret_rig.request("GET", "/Patient/pat-a", token=opaque(secret_rig))
    finally:
        secret_rig.issuer.introspection_client = (INTROSPECTION_CLIENT_ID, secret_rig.introspection_secret)
    assert (refused.status, reason_of(refused)) == (401, "introspection_unavailable"), refused.body[:300]


def test_no_secret_in_config_dump_audit_or_logs(secret_rig):
    # at least one introspection call and its audit record, whatever ran before
    r = secret_rig.request("GET", "/Patient/pat-a", token=opaque(secret_rig))
    assert r.status == 200, r.body[:300]
    secret = secret_rig.introspection_secret
    basic = base64.b64encode(f"{INTROSPECTION_CLIENT_ID}:{secret}".encode()).decode()
    dump = requests.get(f"{secret_rig.envoy.admin_url}/config_dump?include_eds", timeout=10).text
    # the dump holds the reference and the variable's name, never its value
    assert f'\\"client_secret\\":{{\\"env\\":\\"{INTROSPECTION_SECRET_ENV}\\"}}' in dump.replace(" ", "")
    assert INTROSPECTION_SECRET_ENV in dump
    files = [p for p in secret_rig.workdir.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert secret_rig.access_log.path.name in names and secret_rig.envoy.log.name in names, names
    for where, text in [("/config_dump", dump)] + [(str(p), p.read_text(errors="replace")) for p in files]:
        assert secret not in text, f"the secret is in {where}"
        assert basic not in text, f"the Basic credentials are in {where}"


def plugin_with_secret(rig: FaultRig, secret: Any, **top: Any) -> dict[str, Any]:
    plugin = rig.plugin("faults")
    plugin["issuers"][1]["introspection"]["client_secret"] = secret
    plugin.update(top)
    return plugin


def envoy_validate(rig: FaultRig, tmp_path: Path, plugin: dict[str, Any]) -> subprocess.CompletedProcess:
    """`envoy --mode validate` (which starts the VM and configures the plugin) on a bootstrap
    with this plugin, the rig's secret in Envoy's environment and `host_env_keys` naming it."""
    lst = listener("faults", free_port(), "recorder", plugin, WASM, tmp_path / "access.log",
                   env_keys=(INTROSPECTION_SECRET_ENV,))
    boot = envoy_bootstrap(free_port(), [lst], [cluster("recorder", 1), cluster("issuer", 2)], tmp_path / "admin.log")
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(boot, sort_keys=False))
    return subprocess.run([str(envoy_binary()), "--mode", "validate", "-c", str(path), "--base-id", str(free_port())],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, INTROSPECTION_SECRET_ENV: rig.introspection_secret})


INLINE_REFUSED = (f"invalid configuration at `{FIELD}`: is a secret written in the configuration, which Envoy's "
                  "/config_dump and the Istio WasmPlugin show to everyone who can read them; give a reference "
                  'instead ({"env": "NAME"} or {"file": "/path"}), or set allow_insecure_inline_secrets: true')


def test_envoy_refuses_an_inline_secret_without_the_opt_in(secret_rig, tmp_path):
    secret = secret_rig.introspection_secret
    r = envoy_validate(secret_rig, tmp_path, plugin_with_secret(secret_rig, secret))
    out = r.stdout + r.stderr
    assert r.returncode != 0 and INLINE_REFUSED in out, out[-3000:]
    assert secret not in out
    # the same configuration with the opt-in loads (and is warned about)
    opted = envoy_validate(secret_rig, tmp_path, plugin_with_secret(secret_rig, secret, allow_insecure_inline_secrets=True))
    out = opted.stdout + opted.stderr
    assert opted.returncode == 0, out[-3000:]
    assert f"`{FIELD}` is a secret written in the configuration (allow_insecure_inline_secrets)" in out, out[-3000:]


def test_envoy_refuses_a_variable_it_does_not_pass_to_the_vm(secret_rig, tmp_path):
    """Only `host_env_keys` reach the VM: a reference to any other variable of Envoy's
    environment (here PATH, which Envoy has) is refused, naming the field and the reference."""
    r = envoy_validate(secret_rig, tmp_path, plugin_with_secret(secret_rig, {"env": "PATH"}))
    out = r.stdout + r.stderr
    assert r.returncode != 0, out[-3000:]
    assert (f'invalid configuration at `{FIELD}`: {{"env": "PATH"}}: the environment variable is not set '
            "(the .wasm in Envoy: vm_config.environment_variables.host_env_keys;") in out, out[-3000:]
    ok = envoy_validate(secret_rig, tmp_path, plugin_with_secret(secret_rig, {"env": INTROSPECTION_SECRET_ENV}))
    assert ok.returncode == 0, (ok.stdout + ok.stderr)[-3000:]


def test_check_config_refuses_an_inline_secret_and_reads_references_from_its_environment(secret_rig, tmp_path):
    if not CLI.exists():
        pytest.fail(f"{CLI} is missing: run `make cli` (make e2e does it)")
    secret = secret_rig.introspection_secret

    def check(plugin: dict[str, Any], env: dict[str, str]) -> tuple[int, str, str]:
        path = tmp_path / "plugin.json"
        path.write_text(json.dumps(plugin))
        base = {k: v for k, v in os.environ.items() if k != INTROSPECTION_SECRET_ENV}
        r = subprocess.run([str(CLI), "check-config", str(path)], capture_output=True, text=True, timeout=30,
                           env={**base, **env})
        return r.returncode, r.stdout, r.stderr

    assert check(plugin_with_secret(secret_rig, secret), {}) == (1, "", f"error: {INLINE_REFUSED}\n")
    reference = secret_rig.plugin("faults")
    # valid; the rig's plain-HTTP JWKS URL is the one warning (exit 3), the secret none
    code, out, err = check(reference, {INTROSPECTION_SECRET_ENV: secret})
    assert (code, out) == (3, "ok with 1 warning\n") and err.startswith("warning: at `issuers[0].jwks_uri`"), err
    assert secret not in out + err
    code, out, err = check(reference, {})
    assert (code, out) == (1, "") and err.startswith(
        f'error: invalid configuration at `{FIELD}`: {{"env": "{INTROSPECTION_SECRET_ENV}"}}: '
        "the environment variable is not set"), err
