"""The native module against the Envoy binary in use (issue 18): every Envoy callback the
built module imports is one this Envoy exports, and every event hook this Envoy resolves
for an HTTP filter is one the module exports (a name missing on either side would fail
the load, or worse, bind nothing)."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from .rig import NATIVE, REPO, envoy_binary, native_unsupported_reason


def dynamic_symbols(path, which: str) -> set[str]:
    out = subprocess.run(["nm", "-D", which, str(path)], capture_output=True, text=True, timeout=120, check=True)
    return {line.split()[-1] for line in out.stdout.splitlines() if "envoy_dynamic_module_" in line}


@pytest.fixture(scope="module")
def module():
    why = native_unsupported_reason()
    if why:
        pytest.skip(why)
    if not NATIVE.exists():
        pytest.fail(f"{NATIVE} is missing: run `make build`")
    return NATIVE


def test_every_callback_the_module_calls_is_exported_by_envoy(module):
    imported = dynamic_symbols(module, "--undefined-only")
    exported = dynamic_symbols(envoy_binary(), "--defined-only")
    assert imported, "the module imports no Envoy callback: not the module"
    assert sorted(imported - exported) == []


def test_every_http_filter_hook_envoy_resolves_is_exported_by_the_module(module):
    strings = subprocess.run(["strings", str(envoy_binary())], capture_output=True, text=True, timeout=300,
                             check=True).stdout
    hooks = set(re.findall(r"^(envoy_dynamic_module_on_(?:http_filter_\w+|program_init))$", strings, re.M))
    assert "envoy_dynamic_module_on_http_filter_request_headers" in hooks
    assert sorted(hooks - dynamic_symbols(module, "--defined-only")) == []


def test_envoy_matches_the_abi_version_the_module_answers(module, tmp_path):
    """The module answers the ABI version string of the release that loaded it (v0.1.0 on
    1.39, v0.2.0 on 1.40): Envoy logs "matched", never "deprecated" or "mismatch"."""
    config = tmp_path / "envoy-native.yaml"
    config.write_text((REPO / "envoy" / "envoy-native.yaml").read_text())
    r = subprocess.run([str(envoy_binary()), "--mode", "validate", "-c", str(config), "-l", "info"],
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "ENVOY_DYNAMIC_MODULES_SEARCH_PATH": str(module.parent),
                            "INTROSPECTION_CLIENT_SECRET": "placeholder-not-a-secret"})
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-3000:]
    versions = re.findall(r"Dynamic module ABI version (\S+) (matched|is deprecated)", log)
    assert versions and all(verdict == "matched" for _, verdict in versions), versions or log[-3000:]
