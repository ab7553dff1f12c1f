"""The native module against the Envoy binary in use (issue 18): every Envoy callback the
built module imports is one this Envoy exports, and every event hook this Envoy resolves
for an HTTP filter is one the module exports (a name missing on either side would fail
the load, or worse, bind nothing)."""

from __future__ import annotations

import re
import subprocess

import pytest

from .rig import NATIVE, envoy_binary, native_unsupported_reason


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
