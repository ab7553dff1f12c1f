"""The monitoring examples (issue 20): the Grafana dashboard and the Prometheus alert rules name
only metrics the filter really emits, as real Envoy exports them with the shipped stats_tags
(labels `decision`, `reason`, `issuer`); every counter is there at zero before it fires. On both
artifacts: the native module's series carry the prefix Envoy gives a dynamic module's metrics
namespace in `/stats/prometheus` (`envoy_wasmcustom_`, docs/native.md), read here without it."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
import requests
import yaml

from .fault_rig import FaultRig
from .rig import REPO, STATS_CONFIG, built_artifact

MONITORING = REPO / "examples" / "monitoring"
METRIC = re.compile(r"\b(fhir_smart_authz_[a-z_]+)(\{[^}]*\})?")
# What Envoy puts before the module's names in Prometheus (`metrics_namespace: wasmcustom`).
NATIVE_PROMETHEUS_PREFIX = "envoy_wasmcustom_"
# A wasm VM's own: the native module has no VM (docs/native.md); its panel stays empty there.
WASM_ONLY = {"fhir_smart_authz_vm_memory_bytes"}


class LatencyRig(FaultRig):
    def plugin(self, name: str) -> dict[str, Any]:
        cfg = super().plugin(name)
        cfg["metrics"] = {"decision_latency": True}
        return cfg


@pytest.fixture(scope="module", params=["wasm", "native"])
def exported(request):
    """Metric name → the label sets Envoy exports for it, after one allowed and one denied
    request and a root tick (the gauges)."""
    artifact = request.param
    built_artifact(artifact)
    rig = LatencyRig(artifact=artifact).start()
    try:
        rig.request("GET", "/Patient/pat-a")  # 401 missing_token
        time.sleep(2.5)  # ticks: key-set age, memory
        text = requests.get(f"{rig.envoy.admin_url}/stats/prometheus", timeout=10).text
    finally:
        rig.stop()
    series: dict[str, list[dict[str, str]]] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s", line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
            name = m.group(1)
            if artifact == "native":
                name = name.removeprefix(NATIVE_PROMETHEUS_PREFIX)
            series.setdefault(name, []).append(labels)
    if artifact == "native":
        assert not WASM_ONLY & set(series), "a wasm-only metric is emitted natively: WASM_ONLY is stale"
        series.update({name: [{}] for name in WASM_ONLY})  # absent by design (asserted above)
    return series


def expressions() -> list[tuple[str, str]]:
    """(where, PromQL) of every rule and dashboard target."""
    out = []
    rules = yaml.safe_load((MONITORING / "prometheus-rules.yaml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            out.append((f"rule {rule['alert']}", rule["expr"]))
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            out.append((f"panel {panel['title']!r}", target["expr"]))
    return out


def test_every_referenced_metric_and_label_is_emitted(exported):
    assert len(expressions()) >= 15
    for where, expr in expressions():
        for name, selector in METRIC.findall(expr):
            assert name in exported, f"{where}: {name} is not emitted (emitted: {sorted(exported)})"
            for label in re.findall(r"(\w+)\s*=", selector or ""):
                assert any(label in s for s in exported[name]), f"{where}: {name} has no label {label}"


def test_counters_are_exported_at_zero_with_tags(exported):
    decisions = exported["fhir_smart_authz_decision"]
    reasons = {(s["decision"], s["reason"]) for s in decisions}
    assert ("deny", "missing_token") in reasons and ("deny", "insufficient_scope") in reasons
    assert ("allow", "allowed") in reasons
    assert len(reasons) == len(decisions) >= 22, "one series per reason, each at zero before it fires"
    for name in ["fhir_smart_authz_shadow_call_failed", "fhir_smart_authz_precheck_upstream_failure",
                 "fhir_smart_authz_rewrite_narrowed"]:
        assert name in exported, name
    assert exported["fhir_smart_authz_jwks_key_set_age_seconds"] == [{"issuer": "0"}]


def test_envoy_yaml_uses_the_shipped_stats_tags():
    envoy = yaml.safe_load((REPO / "envoy" / "envoy.yaml").read_text())
    assert envoy["stats_config"] == STATS_CONFIG
