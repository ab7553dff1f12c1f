"""Shipped deployment files are valid: Envoy configs (`envoy --mode validate`),
the docker-compose rig (`docker-compose config -q`), the Istio example (YAML
parses, its pluginConfig is the documented example and passes the CLI's
`check-config`), the example plugin configs, and the rig's own rendered config."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .rig import CLI, REPO, WASM, native_unsupported_reason, validate_config

ENVOY_YAMLS = sorted((REPO / "envoy").glob("*.yaml"))
# the proxy-wasm ones (envoy-native.yaml loads the dynamic module instead)
WASM_YAMLS = [p for p in ENVOY_YAMLS if "filters.http.wasm.v3.Wasm" in p.read_text()]
NATIVE_YAML = REPO / "envoy" / "envoy-native.yaml"
ISTIO_DIR = REPO / "examples" / "istio"
EXAMPLE_CONFIGS = sorted((REPO / "examples" / "configs").glob("*.json"))


def substitute_wasm(text: str) -> str:
    """Point every local .wasm filename at the built artifact."""
    return re.sub(r"(filename:\s*)[\"']?[^\s\"']+\.wasm[\"']?", lambda m: f"{m.group(1)}{WASM}", text)


# The secrets the shipped configurations reference (`{"env": ...}`), as the operator's
# environment gives them to Envoy and to the CLI (docs/secrets.md); never in the files.
EXAMPLE_SECRETS = {"INTROSPECTION_CLIENT_SECRET": "placeholder-not-a-secret"}


def check_config(path: Path) -> subprocess.CompletedProcess:
    if not CLI.exists():
        pytest.fail(f"{CLI} is missing: run `make cli` (make e2e does it)")
    return subprocess.run([str(CLI), "check-config", str(path)], capture_output=True, text=True, timeout=30,
                          env={**os.environ, **EXAMPLE_SECRETS})


def throwaway_tls(directory: Path) -> Path:
    """A self-signed certificate and key as tls.crt/tls.key (for configs naming /etc/envoy/tls/)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fhir.example.org")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "tls.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    return directory


@pytest.mark.parametrize("path", ENVOY_YAMLS, ids=[p.name for p in ENVOY_YAMLS])
def test_envoy_yaml_validates(path: Path, tmp_path: Path):
    if "dynamic_modules" in path.read_text() and native_unsupported_reason():
        pytest.skip(native_unsupported_reason())
    out = tmp_path / path.name
    text = substitute_wasm(path.read_text())
    if "/etc/envoy/tls/" in text:
        text = text.replace("/etc/envoy/tls/", f"{throwaway_tls(tmp_path / 'tls')}/")
    out.write_text(text)
    r = validate_config(out, env=EXAMPLE_SECRETS)
    assert r.returncode == 0, f"envoy --mode validate {path}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"


def wasm_plugin_configs(node):
    """Every envoy.extensions.filters.http.wasm.v3.Wasm `config` in a parsed Envoy config."""
    if isinstance(node, dict):
        if str(node.get("@type", "")).endswith("filters.http.wasm.v3.Wasm") and "config" in node:
            yield node["config"]
        for v in node.values():
            yield from wasm_plugin_configs(v)
    elif isinstance(node, list):
        for v in node:
            yield from wasm_plugin_configs(v)


@pytest.mark.parametrize("path", WASM_YAMLS, ids=[p.name for p in WASM_YAMLS])
def test_envoy_yaml_plugin_settings(path: Path):
    """FAIL_CLOSED, and Envoy's allow_on_headers_stop_iteration set exactly when the plugin
    holds headers for body decisions (upstream.hold_headers_for_body): with the option but
    without the flag a held request would stall; with the flag but without the option
    denied body requests would still send their headers upstream."""
    configs = list(wasm_plugin_configs(yaml.safe_load(path.read_text())))
    assert configs, f"{path.name} has no wasm filter"
    for c in configs:
        assert c.get("failure_policy") == "FAIL_CLOSED", c.get("name")
        plugin = json.loads(c["configuration"]["value"])
        hold = bool(plugin.get("upstream", {}).get("hold_headers_for_body"))
        assert bool(c.get("allow_on_headers_stop_iteration")) == hold, (
            f"{path.name}: allow_on_headers_stop_iteration and upstream.hold_headers_for_body must agree")


def test_production_yaml_passes_check_config_without_warnings():
    """The production example: TLS clusters, admin on localhost, the base path routed through the
    filter, the health route without it: check-config finds nothing to say."""
    path = REPO / "envoy" / "production.yaml"
    r = check_config(path)
    assert r.returncode == 0 and r.stderr == "", r.stdout + r.stderr
    boot = yaml.safe_load(path.read_text())
    assert boot["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    for c in boot["static_resources"]["clusters"]:
        assert c["transport_socket"]["name"] == "envoy.transport_sockets.tls", c["name"]


def native_module_filters(node):
    """Every DynamicModuleFilter in a parsed Envoy config."""
    if isinstance(node, dict):
        if str(node.get("@type", "")).endswith("filters.http.dynamic_modules.v3.DynamicModuleFilter"):
            yield node
        for v in node.values():
            yield from native_module_filters(v)
    elif isinstance(node, list):
        for v in node:
            yield from native_module_filters(v)


def test_native_yaml_is_the_wasm_yaml_with_the_module():
    """envoy-native.yaml differs from envoy.yaml only in the filter and in how its access
    loggers pick the requests with an audit record: the same plugin configuration JSON, clusters
    and access-log formats; the module named as `make build` builds it, never unloaded, its
    metrics under the wasm build's namespace."""
    wasm = yaml.safe_load((REPO / "envoy" / "envoy.yaml").read_text())
    native = yaml.safe_load(NATIVE_YAML.read_text())
    (plugin,) = list(wasm_plugin_configs(wasm))
    (module,) = list(native_module_filters(native))
    assert json.loads(module["filter_config"]["value"]) == json.loads(plugin["configuration"]["value"])
    assert module["dynamic_module_config"] == {"name": "fhir_smart_authz", "do_not_close": True,
                                               "metrics_namespace": "wasmcustom"}

    def hcm_of(cfg):
        return cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]

    # The access loggers select the requests with an audit record through the module's
    # dynamic-metadata mark (a metadata_filter) where envoy.yaml needs CEL over the filter state.
    mark = {"filter": "fhir_smart_authz", "path": [{"key": "audit_record"}]}
    assert [log["filter"] for log in hcm_of(native)["access_log"]] == [
        {"metadata_filter": {"matcher": {**mark, "value": {"bool_match": True}}, "match_if_key_not_found": False}},
        {"metadata_filter": {"matcher": {**mark, "value": {"bool_match": False}}, "match_if_key_not_found": True}},
    ]

    def without_filter(cfg):
        hcm = hcm_of(cfg)
        hcm["http_filters"] = [f["name"] for f in hcm["http_filters"]
                               if f["name"] not in ("envoy.filters.http.wasm", "envoy.filters.http.dynamic_modules")]
        for log in hcm["access_log"]:
            log.pop("filter")
        return cfg

    assert without_filter(native) == without_filter(wasm)


def test_there_is_an_envoy_yaml():
    assert ENVOY_YAMLS, "envoy/*.yaml missing (the compose rig's Envoy config)"


@pytest.mark.parametrize("hold", [False, True], ids=["released", "held"])
def test_rig_rendered_config_validates(tmp_path: Path, hold: bool):
    from .rig import cluster, envoy_bootstrap, listener, plugin_config

    cfg = plugin_config("http://127.0.0.1:1/fhir", [{"issuer": "http://127.0.0.1:2", "audiences": ["http://127.0.0.1:1/fhir"],
                                                    "jwks_uri": "http://127.0.0.1:2/.well-known/jwks.json",
                                                    "jwks_cluster": "issuer"}], hold=hold)
    boot = envoy_bootstrap(10001, [listener("main", 10000, "fhir", cfg, WASM, tmp_path / "a.log")],
                           [cluster("fhir", 8080), cluster("issuer", 8081)], tmp_path / "admin.log")
    wasm = next(wasm_plugin_configs(boot))
    assert bool(wasm.get("allow_on_headers_stop_iteration")) == hold
    p = tmp_path / "rig.yaml"
    p.write_text(yaml.safe_dump(boot))
    r = validate_config(p)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    j = tmp_path / "plugin.json"
    j.write_text(json.dumps(cfg))
    # The rig's issuer is plain HTTP: valid, with that one warning (exit 3).
    r = check_config(j)
    assert r.returncode == 3 and r.stderr.startswith("warning: at `issuers[0].jwks_uri`"), r.stdout + r.stderr
    # The whole bootstrap: the same warning, and every cluster the plugin calls exists.
    r = check_config(p)
    assert r.returncode == 3, r.stdout + r.stderr
    assert r.stdout.endswith(": ok with 1 warning\n") and "error" not in r.stderr, r.stdout + r.stderr


def test_docker_compose_config():
    exe = shutil.which("docker-compose")
    args = [exe, "-f", str(REPO / "envoy" / "docker-compose.yml"), "config", "-q"] if exe else None
    if args is None:
        docker = shutil.which("docker")
        if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
            args = [docker, "compose", "-f", str(REPO / "envoy" / "docker-compose.yml"), "config", "-q"]
    if args is None:
        pytest.skip("neither docker-compose nor `docker compose` is installed: cannot check envoy/docker-compose.yml")
    r = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr


def test_compose_pins_images():
    doc = yaml.safe_load((REPO / "envoy" / "docker-compose.yml").read_text())
    services = doc["services"]
    assert set(services) >= {"envoy", "fhir", "issuer"}
    assert "${ENVOY_IMAGE:-envoyproxy/envoy:v1.40" in services["envoy"]["image"]
    assert services["envoy"].get("entrypoint"), "explicit entrypoint (so istio/proxyv2 works too)"
    assert services["fhir"]["image"] == "hapiproject/hapi:v8.10.0-3"
    for name in ("envoy", "fhir", "issuer"):
        assert "healthcheck" in services[name], f"{name} has no healthcheck"


def test_compose_matches_envoy_yaml():
    """The compose rig and envoy/envoy.yaml agree: cluster hosts are compose services,
    the listener port is published, the wasm path is mounted, and the issuer's audience
    is the plugin's fhir_base_url (the default audience)."""
    compose = yaml.safe_load((REPO / "envoy" / "docker-compose.yml").read_text())["services"]
    envoy = yaml.safe_load((REPO / "envoy" / "envoy.yaml").read_text())
    res = envoy["static_resources"]
    for c in res["clusters"]:
        for ep in c["load_assignment"]["endpoints"][0]["lb_endpoints"]:
            host = ep["endpoint"]["address"]["socket_address"]["address"]
            assert host in compose, f"cluster {c['name']} points at {host!r}, not a compose service"
    port = res["listeners"][0]["address"]["socket_address"]["port_value"]
    published = [p.split(":")[-1] for p in compose["envoy"]["ports"]]
    assert str(port) in published, (port, published)
    wasm_paths = [c["vm_config"]["code"]["local"]["filename"] for c in wasm_plugin_configs(envoy)]
    mounts = [v.rsplit(":", 2)[1] for v in compose["envoy"]["volumes"]]  # SRC:DST:MODE
    assert all(p in mounts for p in wasm_paths), (wasm_paths, mounts)
    plugin = json.loads(next(wasm_plugin_configs(envoy))["configuration"]["value"])
    assert compose["issuer"]["environment"]["ISSUER_AUDIENCE"] == plugin["fhir_base_url"]
    assert compose["issuer"]["environment"]["ISSUER_URL"] == plugin["issuers"][0]["issuer"]


def istio_docs() -> list[dict]:
    docs = []
    for p in sorted(ISTIO_DIR.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(p.read_text()) if d]
    return docs


def test_istio_yaml_parses_and_plugin_config_is_the_example(tmp_path: Path):
    docs = istio_docs()
    plugins = [d for d in docs if d.get("kind") == "WasmPlugin"]
    assert len(plugins) == 1, [d.get("kind") for d in docs]
    spec = plugins[0]["spec"]
    assert spec["phase"] == "AUTHN"
    assert spec["failStrategy"] == "FAIL_CLOSE"
    assert spec["url"].startswith("oci://")
    example = json.loads((REPO / "examples" / "configs" / "istio.json").read_text())
    assert spec["pluginConfig"] == example, "pluginConfig must equal examples/configs/istio.json"
    p = tmp_path / "istio-plugin.json"
    p.write_text(json.dumps(spec["pluginConfig"]))
    r = check_config(p)
    assert r.returncode == 0, r.stdout + r.stderr
    assert any(d.get("kind") == "Telemetry" for d in docs), "a Telemetry resource printing the audit record"


@pytest.mark.parametrize("path", EXAMPLE_CONFIGS, ids=[p.name for p in EXAMPLE_CONFIGS])
def test_example_configs(path: Path):
    r = check_config(path)
    if path.stem.startswith("bad"):
        assert r.returncode == 1 and "invalid configuration at" in r.stderr, r.stdout + r.stderr
    elif path.stem.startswith("rig"):
        # The rig's demo issuer is plain HTTP: the one warning, exit 3.
        assert r.returncode == 3 and r.stderr.startswith("warning: at `issuers[0].jwks_uri`"), r.stdout + r.stderr
    else:
        assert r.returncode == 0, r.stdout + r.stderr


def test_dockerfile_is_compat_oci_image():
    text = (REPO / "Dockerfile").read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert lines[0].upper() == "FROM SCRATCH", lines
    copies = [ln for ln in lines if ln.upper().startswith(("COPY", "ADD"))]
    assert len(copies) == 1 and copies[0].endswith("plugin.wasm"), copies


def test_native_dockerfile_packages_the_module_for_its_envoy_release():
    """Dockerfile.native: the Envoy image of the newest release the module supports, the
    module `make build` writes, where ENVOY_DYNAMIC_MODULES_SEARCH_PATH points."""
    from .rig import NATIVE, NATIVE_ENVOY_RELEASES

    lines = [ln.strip() for ln in (REPO / "Dockerfile.native").read_text().splitlines()
             if ln.strip() and not ln.strip().startswith("#")]
    assert lines[0] == f"FROM envoyproxy/envoy:v{NATIVE_ENVOY_RELEASES[-1]}.0"
    module = NATIVE.relative_to(REPO)
    assert lines[1] == f"COPY {module} /usr/local/lib/envoy/modules/{NATIVE.name}", lines
    assert lines[2] == "ENV ENVOY_DYNAMIC_MODULES_SEARCH_PATH=/usr/local/lib/envoy/modules", lines


EXAMPLE_TOKEN_DECISIONS = [  # examples/tokens/requests.jsonl, line by line
    (200, "allowed"), (403, "patient_compartment_violation"), (200, "allowed"), (200, "allowed"),
    (403, "insufficient_scope"), (200, "allowed"), (401, "invalid_token"), (401, "invalid_token"),
    (401, "missing_token"),
]


def test_example_tokens_decide():
    """The example tokens verify against their JWKS and decide as documented."""
    folder = REPO / "examples" / "tokens"
    if not CLI.exists():
        pytest.fail(f"{CLI} is missing: run `make cli` (make e2e does it)")
    r = subprocess.run([str(CLI), "decide", "--config", str(folder / "config.json")],
                       input=(folder / "requests.jsonl").read_text(), capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    got = [(d["status"], d["reason"]) for d in map(json.loads, r.stdout.splitlines())]
    assert got == EXAMPLE_TOKEN_DECISIONS


# --- CORS, discovery and links on the shipped rigs ---------------------------------

def http_filter_chains(node):
    """Every `http_filters` list of an Envoy config with the virtual hosts of its route config."""
    if isinstance(node, dict):
        if "http_filters" in node:
            yield node["http_filters"], node.get("route_config", {}).get("virtual_hosts", [])
        for v in node.values():
            yield from http_filter_chains(v)
    elif isinstance(node, list):
        for v in node:
            yield from http_filter_chains(v)


def cors_policies(virtual_hosts) -> list[dict]:
    return [vh.get("typed_per_filter_config", {}).get("envoy.filters.http.cors") for vh in virtual_hosts]


@pytest.mark.parametrize("path", ENVOY_YAMLS, ids=[p.name for p in ENVOY_YAMLS])
def test_envoy_yaml_cors_before_the_filter(path: Path):
    """Envoy's CORS filter sits before the wasm filter (preflights never reach it; its local
    replies get the CORS headers) and every virtual host carries the rig's policy."""
    from .rig import CORS_POLICY

    chains = list(http_filter_chains(yaml.safe_load(path.read_text())))
    assert chains, path.name
    for filters, vhosts in chains:
        names = [f["name"] for f in filters]
        if "envoy.filters.http.wasm" in names:
            assert "envoy.filters.http.cors" in names, names
            assert names.index("envoy.filters.http.cors") < names.index("envoy.filters.http.wasm"), names
        if path.name == "production.yaml":
            # production lists its apps' origins: never any origin
            for policy in cors_policies(vhosts):
                assert ".*" not in json.dumps(policy["allow_origin_string_match"]), policy
                assert {k: v for k, v in policy.items() if k != "allow_origin_string_match"} == \
                    {k: v for k, v in CORS_POLICY.items() if k != "allow_origin_string_match"}
            continue
        assert cors_policies(vhosts) == [CORS_POLICY] * len(vhosts), "the CORS policy differs from rig.CORS_POLICY"


def test_rig_listener_has_cors_before_the_filter(tmp_path: Path):
    from .rig import CORS_POLICY, listener

    filters, vhosts = next(http_filter_chains(listener("main", 1, "fhir", {"x": 1}, WASM, tmp_path / "a.log")))
    assert [f["name"] for f in filters] == ["envoy.filters.http.cors", "envoy.filters.http.wasm",
                                            "envoy.filters.http.router"]
    assert cors_policies(vhosts) == [CORS_POLICY]


def test_discovery_lists_what_the_demo_issuer_supports():
    """The demo discovery documents (compose rig, native rig) list exactly the capabilities the
    demo issuer implements (envoy/issuer/issuer.py CAPABILITIES)."""
    from .rig import CAPABILITIES, plugin_config

    envoy = yaml.safe_load((REPO / "envoy" / "envoy.yaml").read_text())
    plugin = json.loads(next(wasm_plugin_configs(envoy))["configuration"]["value"])
    assert plugin["discovery"]["capabilities"] == CAPABILITIES
    assert plugin_config("http://127.0.0.1:1/fhir", [{"issuer": "http://i"}])["discovery"]["capabilities"] == CAPABILITIES
    assert "launch-standalone" in CAPABILITIES and "client-confidential-asymmetric" not in CAPABILITIES


def test_compose_hapi_writes_links_naming_the_gateway():
    """HAPI builds paging links, fullUrls and Location from hapi.fhir.server_address: it must be
    the gateway's FHIR base (the plugin's fhir_base_url), never HAPI's own address."""
    compose = yaml.safe_load((REPO / "envoy" / "docker-compose.yml").read_text())["services"]
    envoy = yaml.safe_load((REPO / "envoy" / "envoy.yaml").read_text())
    plugin = json.loads(next(wasm_plugin_configs(envoy))["configuration"]["value"])
    assert compose["fhir"]["environment"]["HAPI_FHIR_SERVER_ADDRESS"].rstrip("/") == plugin["fhir_base_url"]


def test_istio_virtual_service_cors_policy():
    services = [d for d in istio_docs() if d.get("kind") == "VirtualService"]
    assert len(services) == 1
    for route in services[0]["spec"]["http"]:
        cors = route["corsPolicy"]
        assert cors["allowOrigins"] and "authorization" in cors["allowHeaders"], cors
        assert "www-authenticate" in cors["exposeHeaders"], cors


def test_istio_resources_apply_as_documented():
    """What `kubectl apply` takes (no IstioOperator in the kubectl files: it is istioctl's, in
    mesh-config.yaml), a Telemetry resource of telemetry.istio.io/v1 with the two providers
    mesh-config.yaml defines, and the IdP ServiceEntry/DestinationRule kept to the namespace
    (exportTo) so port 443 is not HTTP for the whole mesh."""
    def docs(name: str) -> list[dict]:
        return [d for d in yaml.safe_load_all((REPO / "examples" / "istio" / name).read_text()) if d]

    assert [d["kind"] for d in docs("mesh-config.yaml")] == ["IstioOperator"]
    providers = {p["name"] for p in docs("mesh-config.yaml")[0]["spec"]["meshConfig"]["extensionProviders"]}
    telemetry = docs("telemetry.yaml")
    assert [(d["apiVersion"], d["kind"]) for d in telemetry] == [("telemetry.istio.io/v1", "Telemetry")]
    used = {p["name"] for a in telemetry[0]["spec"]["accessLogging"] for p in a["providers"]}
    assert used == providers == {"fhir-audit", "fhir-envoy"}
    plugin_file = docs("wasmplugin.yaml")
    assert "IstioOperator" not in {d["kind"] for d in plugin_file + telemetry + docs("virtualservice.yaml")}
    for d in plugin_file:
        if d["kind"] in ("ServiceEntry", "DestinationRule"):
            assert d["spec"].get("exportTo") == ["."], d["kind"]
    fmt = docs("mesh-config.yaml")[0]["spec"]["meshConfig"]["extensionProviders"][0]["envoyFileAccessLog"]["logFormat"]["text"]
    encoding = next(d for d in plugin_file if d["kind"] == "WasmPlugin")["spec"]["pluginConfig"]["audit"]["encoding"]
    assert encoding == "fields" and ",%FILTER_STATE(wasm.fhir_smart_authz_audit:PLAIN)%}" in fmt


def test_shipped_configs_reference_secrets_never_hold_them():
    """Examples show only the reference form (docs/secrets.md): no plain-string secret (the
    configs pass check-config above without the opt-in, which refuses one), no opt-in, and
    no Envoy `key_values` (their values are in the configuration and in /config_dump)."""
    texts = {p.name: p.read_text() for p in EXAMPLE_CONFIGS + ENVOY_YAMLS + sorted(ISTIO_DIR.glob("*.yaml"))}
    for name, text in texts.items():
        assert "allow_insecure_inline_secrets" not in text, name
        assert "key_values" not in text, name
    envoy = yaml.safe_load((REPO / "envoy" / "envoy.yaml").read_text())
    for c in wasm_plugin_configs(envoy):
        keys = c["vm_config"]["environment_variables"]["host_env_keys"]
        plugin = json.loads(c["configuration"]["value"])
        refs = [i["introspection"]["client_secret"] for i in plugin["issuers"] if "introspection" in i]
        assert refs and all(set(r) == {"env"} and r["env"] in keys for r in refs), (refs, keys)
