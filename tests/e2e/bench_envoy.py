"""Envoy configuration for `make bench` (tests/e2e/bench.py) and the performance experiments:
listeners that answer with a `direct_response`, so that the only difference between two
listeners is the authorization filter chain in front of the router.

- `shipped_*` read envoy/envoy.yaml, so "the filter as shipped" is its default configuration
  with the access loggers of that file (the audit record as the whole line, and Envoy's own
  JSON line for requests the filter did not decide); only the issuer, the JWKS cluster and the
  FHIR base URL are replaced by the bench's.
- `native_filters` is the nearest equivalent built from Envoy's own filters: `jwt_authn`
  (optionally with `jwt_cache_config`) + `rbac` (method, path prefix, scope claim taken from
  the JWT payload that `jwt_authn` puts in dynamic metadata).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

from .rig import AUDIT_STATE, FILE_LOG_TYPE, audit_access_logs, shipped_access_logs, shipped_hcm

# The answer of every bench listener (and its content type): a small FHIR resource.
DIRECT_BODY = '{"resourceType":"Patient","id":"pat-a"}'

ROUTER = {"name": "envoy.filters.http.router",
          "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}

HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
JWT_AUTHN_TYPE = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"
RBAC_TYPE = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"

# Metadata namespace and key of the verified JWT payload (native filters).
JWT_NAMESPACE = "envoy.filters.http.jwt_authn"
JWT_PAYLOAD_KEY = "jwt_payload"

# The scope entries that grant `GET Patient/<id>` to a patient-context token (SMART v1 and v2
# forms; `*` resource type or permissions): one RE2 expression over each space-delimited scope.
PATIENT_READ_SCOPE_RE = r"^patient/(Patient|\*)\.(read|\*|c?ru?d?s?)$"

# The filter's fact headers and the claims they carry (upstream.forward_headers, all six by
# default): the native equivalent forwards the same claims with `claim_to_headers`.
FACT_HEADER_CLAIMS = {
    "x-smart-patient": "patient",
    "x-smart-fhir-user": "fhirUser",
    "x-smart-client-id": "client_id",
    "x-smart-scope": "scope",
    "x-smart-subject": "sub",
    "x-smart-issuer": "iss",
}


def _shipped_wasm_filter() -> dict[str, Any]:
    """The wasm filter of envoy/envoy.yaml (found by name: other filters, e.g. CORS, come before it
    and are not part of the comparison, since a native setup would need them alike)."""
    return next(f for f in shipped_hcm()["http_filters"] if f["name"] == "envoy.filters.http.wasm")


def base_log_format() -> dict[str, Any]:
    """The `log_format` envoy/envoy.yaml uses for requests without an audit record (a
    `json_format` of Envoy's own fields: response code and details, flags, start time, duration,
    request id, method, path without query): what the listeners without the filter log."""
    logs = shipped_hcm()["access_log"]
    return copy.deepcopy(next(log for log in logs if "json_format" in log["typed_config"]["log_format"])
                         ["typed_config"]["log_format"])


def json_log_format(fields: dict[str, str]) -> dict[str, Any]:
    """The base `log_format` with more `json_format` fields."""
    fmt = base_log_format()
    fmt["json_format"].update(fields)
    return fmt


def record_field_log_format(encoding: str) -> dict[str, Any]:
    """The base `log_format` with the audit record in a field `audit`, as the former default logged
    it: `audit.encoding: "struct"` with `:TYPED`, `"json"` with `:PLAIN`."""
    form = "TYPED" if encoding == "struct" else "PLAIN"
    return json_log_format({"audit": f"%FILTER_STATE({AUDIT_STATE}:{form})%"})


def native_log_format() -> dict[str, Any]:
    """The base format plus who made the request, from the payload `jwt_authn` verified: the
    nearest a native configuration gets to the filter's audit record (the filter's record also
    says which interaction, the decision and its reason, which RBAC does not expose)."""
    claim = lambda name: f"%DYNAMIC_METADATA({JWT_NAMESPACE}:{JWT_PAYLOAD_KEY}:{name})%"  # noqa: E731
    return json_log_format(dict(iss=claim("iss"), sub=claim("sub"), client_id=claim("client_id"),
                                patient=claim("patient"), fhir_user=claim("fhirUser"), scope=claim("scope")))


def shipped_plugin_config(issuer_url: str, jwks_cluster: str, base_url: str,
                          overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The plugin configuration of envoy/envoy.yaml with the bench's issuer (JWKS fetched through
    `jwks_cluster`, as shipped) and FHIR base URL; `overrides` are merged one level deep
    (e.g. `{"audit": {"encoding": "json"}}` keeps the shipped `audit.source`)."""
    wasm = _shipped_wasm_filter()["typed_config"]["config"]
    cfg = json.loads(wasm["configuration"]["value"])
    cfg["fhir_base_url"] = base_url
    issuer = dict(cfg["issuers"][0], issuer=issuer_url, jwks_uri=issuer_url + "/.well-known/jwks.json",
                  jwks_cluster=jwks_cluster)
    cfg["issuers"] = [issuer]
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


def shipped_wasm_filter(plugin: dict[str, Any], wasm: Path, vm_id_suffix: str = "") -> dict[str, Any]:
    """The wasm HTTP filter of envoy/envoy.yaml (failure policy, `allow_on_headers_stop_iteration`,
    VM settings) with this plugin configuration and .wasm file (`vm_id_suffix`: another VM id, e.g.
    for another build of the filter in the same Envoy)."""
    filt = copy.deepcopy(_shipped_wasm_filter())
    cfg = filt["typed_config"]["config"]
    cfg["configuration"]["value"] = json.dumps(plugin)
    cfg["vm_config"]["code"] = {"local": {"filename": str(wasm)}}
    cfg["vm_config"]["vm_id"] = cfg["vm_config"]["vm_id"] + vm_id_suffix
    return filt


def _native_hcm() -> dict[str, Any]:
    """The HTTP connection manager of envoy/envoy-native.yaml's listener."""
    boot = yaml.safe_load((Path(__file__).resolve().parents[2] / "envoy" / "envoy-native.yaml").read_text())
    return boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]


def shipped_module_filter(plugin: dict[str, Any]) -> dict[str, Any]:
    """The dynamic-module filter of envoy/envoy-native.yaml (the same filter built as an Envoy
    dynamic module, `make native`) with this plugin configuration."""
    filt = copy.deepcopy(next(f for f in _native_hcm()["http_filters"]
                              if f["name"] == "envoy.filters.http.dynamic_modules"))
    filt["typed_config"]["filter_config"]["value"] = json.dumps(plugin)
    return filt


def shipped_module_access_logs(path: Path) -> list[dict[str, Any]]:
    """The access loggers of envoy/envoy-native.yaml (the formats of envoy.yaml; a
    `metadata_filter` on the module's `fhir_smart_authz` / `audit_record` mark where envoy.yaml
    has CEL filters), writing to the file `path`."""
    return shipped_access_logs(path, _native_hcm())


def native_filters(issuer_url: str, audience: str, jwks_cluster: str, cache: bool) -> list[dict[str, Any]]:
    """`jwt_authn` + `rbac`: the nearest native equivalent of the filter's decision for
    `GET <base>/Patient/<id>` with a patient token.

    - `jwt_authn`: the same issuer and audience; keys from the issuer's JWKS URI through the
      same cluster as the filter (`remote_jwks`, fetched at startup and cached, like the filter's
      `jwks_uri`); the payload in dynamic metadata with `scope` split into a list; the same six
      claims forwarded as headers as the filter's fact headers; the Authorization header kept
      (the filter's default). `cache`: `jwt_cache_config` (verified tokens cached).
    - `rbac`: allow `GET` on the path prefix `/fhir/Patient/` when one scope of the token grants
      reading Patient (`PATIENT_READ_SCOPE_RE`). RBAC cannot bind the resource id to the token's
      `patient` claim, which the filter does.
    """
    provider: dict[str, Any] = {
        "issuer": issuer_url,
        "audiences": [audience],
        "remote_jwks": {
            "http_uri": {"uri": issuer_url + "/.well-known/jwks.json", "cluster": jwks_cluster, "timeout": "5s"},
            "cache_duration": "3600s",
            "async_fetch": {},
        },
        "forward": True,
        "payload_in_metadata": JWT_PAYLOAD_KEY,
        "normalize_payload_in_metadata": {"space_delimited_claims": ["scope"]},
        "claim_to_headers": [{"header_name": h, "claim_name": c} for h, c in FACT_HEADER_CLAIMS.items()],
    }
    if cache:
        provider["jwt_cache_config"] = {"jwt_cache_size": 100}
    jwt_authn = {"name": "envoy.filters.http.jwt_authn", "typed_config": {
        "@type": JWT_AUTHN_TYPE,
        "providers": {"smart": provider},
        "rules": [{"match": {"prefix": "/fhir"}, "requires": {"provider_name": "smart"}}],
    }}
    scope_grants_read = {"metadata": {
        "filter": JWT_NAMESPACE,
        "path": [{"key": JWT_PAYLOAD_KEY}, {"key": "scope"}],
        "value": {"list_match": {"one_of": {"string_match": {"safe_regex": {"regex": PATIENT_READ_SCOPE_RE}}}}},
    }}
    rbac = {"name": "envoy.filters.http.rbac", "typed_config": {
        "@type": RBAC_TYPE,
        "rules": {"action": "ALLOW", "policies": {"patient-read": {
            "permissions": [{"and_rules": {"rules": [
                {"header": {"name": ":method", "string_match": {"exact": "GET"}}},
                {"url_path": {"path": {"prefix": "/fhir/Patient/"}}},
            ]}}],
            "principals": [scope_grants_read],
        }}},
    }}
    return [jwt_authn, rbac]


def direct_listener(name: str, port: int, http_filters: list[dict[str, Any]], log_path: Path,
                    log_format: dict[str, Any] | list[dict[str, Any]] | str | None = None) -> dict[str, Any]:
    """A listener whose only route answers `DIRECT_BODY` itself, after `http_filters`. Its access
    log writes `log_format` (a `log_format` message, e.g. `{"json_format": {...}}`) to `log_path`,
    with the listener's name added to a `json_format`; an `audit.encoding` name instead, the
    audit loggers for it (`audit_access_logs`); a list, those access loggers; without one, the
    access loggers of envoy/envoy.yaml (`shipped_access_logs`)."""
    if log_format is None:
        access_logs = shipped_access_logs(log_path)
    elif isinstance(log_format, list):  # the access loggers themselves
        access_logs = log_format
    elif isinstance(log_format, str):
        access_logs = audit_access_logs(log_format, log_path)
    else:
        fmt = copy.deepcopy(log_format)
        if "json_format" in fmt:
            fmt["json_format"]["listener"] = name
        access_logs = [{"name": "envoy.access_loggers.file", "typed_config": {
            "@type": FILE_LOG_TYPE, "path": str(log_path), "log_format": fmt}}]
    return {
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": HCM_TYPE,
                "stat_prefix": name,
                "generate_request_id": True,
                "preserve_external_request_id": True,
                "access_log": access_logs,
                "route_config": {"name": name, "virtual_hosts": [{
                    "name": name, "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"},
                                "direct_response": {"status": 200, "body": {"inline_string": DIRECT_BODY}},
                                "response_headers_to_add": [{"header": {
                                    "key": "content-type", "value": "application/fhir+json"}}]}],
                }]},
                "http_filters": [*http_filters, ROUTER],
            },
        }]}],
    }
