"""`make bench`: the filter inside real Envoy, with a trivial fast upstream (an Envoy
direct_response listener), measured with wrk.

Scenarios (GET [base]/Patient/pat-a with a patient token):
  no filter            Envoy without the wasm filter (baseline)
  cache hit            the filter, the same valid token on every request
  cold RS256 host      verified on every request (`token.cache_max_entries: 0`), RS256 through
                       Envoy's verify_signature (BoringSSL)
  cold RS256 pure      the same with `token.host_crypto: false` (pure-Rust verifier)
  cold ES256 / EdDSA   verified on every request (always pure Rust)

Each scenario runs twice: throughput (BENCH_CONNECTIONS connections, BENCH_THREADS wrk threads)
and latency at concurrency 1 (one connection, requests back to back). The per-request filter
cost is the median latency at concurrency 1 minus the no-filter median at concurrency 1: Envoy
has no per-filter timing, and at concurrency 1 nothing queues, so the difference is the time the
request spends in the filter (wasm calls, host calls, signature checks).

Memory: a second Envoy with one worker (one VM) gets BENCH_MEMORY_TOKENS (10000) distinct valid
tokens once each, so the VM's verified-token cache holds them all; the filter's
`<prefix>.vm.memory_bytes` gauge (the VM's linear memory) is read from the admin /stats before and
after.

Env: BENCH_DURATION (s per throughput run, default 5), BENCH_CONNECTIONS (16), BENCH_THREADS (2),
ENVOY_CONCURRENCY (2), BENCH_REPEAT (3 concurrency-1 rounds), BENCH_C1_DURATION (3 s per
concurrency-1 run), BENCH_MEMORY_TOKENS (10000; 0 skips the memory run).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

from .rig import (WASM, Envoy, Issuer, SigningKey, cluster, envoy_bootstrap, free_port, issuer_entry, listener, plugin_config,
                  serve_issuer, wait_until)

DURATION = int(os.environ.get("BENCH_DURATION", "5"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
CONCURRENCY = int(os.environ.get("ENVOY_CONCURRENCY", "2"))
MEMORY_TOKENS = int(os.environ.get("BENCH_MEMORY_TOKENS", "10000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
C1_DURATION = int(os.environ.get("BENCH_C1_DURATION", "3"))

WRK_LUA = r"""
local tokens = {}
local n = 0
local i = 0
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  local path = args[1]
  if path ~= nil and path ~= "" then
    for line in io.lines(path) do n = n + 1; tokens[n] = line end
    -- each wrk thread starts at a different offset
    i = (id or 0) * math.floor(n / (tonumber(args[3]) or 1))
  end
end
function request()
  if n > 0 then
    i = i + 1
    if i > n then i = 1 end
    return wrk.format(nil, nil, {["Authorization"] = "Bearer " .. tokens[i]})
  end
  return wrk.format(nil, nil)
end
function done(summary, latency, requests)
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"errors":%d,"non2xx":%d,' ..
    '"p50":%d,"p90":%d,"p99":%d,"mean":%.1f}\n',
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean))
end
"""


def fast_upstream_listener(port: int) -> dict[str, Any]:
    return {
        "name": "fast_upstream",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "fast_upstream",
                "route_config": {"virtual_hosts": [{"name": "fast", "domains": ["*"], "routes": [{
                    "match": {"prefix": "/"},
                    "direct_response": {"status": 200, "body": {
                        "inline_string": '{"resourceType":"Patient","id":"pat-a"}'}},
                    "response_headers_to_add": [{"header": {"key": "content-type",
                                                             "value": "application/fhir+json"}}],
                }]}]},
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
            },
        }]}],
    }


def run_wrk(url: str, token: str | None = None, tokens_file: Path | None = None,
            connections: int = CONNECTIONS, threads: int = THREADS, duration: int = DURATION) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    if wrk is None:
        return run_python_client(url, token, tokens_file, connections)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_LUA)
        lua = f.name
    threads = min(threads, connections)
    args = [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration}s", "-s", lua]
    if token:
        args += ["-H", f"Authorization: Bearer {token}"]
    args += [url, "--", str(tokens_file or ""), "0", str(threads)]
    out = subprocess.run(args, capture_output=True, text=True, timeout=duration + 60)
    os.unlink(lua)
    for line in out.stdout.splitlines():
        if line.startswith("WRKJSON "):
            res = json.loads(line[len("WRKJSON "):])
            res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
            return res
    raise RuntimeError(f"wrk failed: {out.stdout}\n{out.stderr}")


def run_python_client(url: str, token: str | None, tokens_file: Path | None,
                      connections: int = CONNECTIONS) -> dict[str, Any]:
    """Fallback when wrk is missing: threads with keep-alive sessions."""
    tokens = tokens_file.read_text().split() if tokens_file else [token]
    lat: list[float] = []
    errors = [0, 0]
    lock = threading.Lock()
    end = time.monotonic() + DURATION
    counter = [0]

    def worker() -> None:
        s = requests.Session()
        while time.monotonic() < end:
            with lock:
                counter[0] += 1
                t = tokens[counter[0] % len(tokens)]
            t0 = time.perf_counter()
            try:
                r = s.get(url, headers={"Authorization": f"Bearer {t}"} if t else {}, timeout=10)
                ok = r.status_code == 200
            except requests.RequestException:
                ok = False
            dt = (time.perf_counter() - t0) * 1e6
            with lock:
                lat.append(dt)
                errors[0 if ok else 1] += 0 if ok else 1

    ts = [threading.Thread(target=worker) for _ in range(connections)]
    start = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    lat.sort()
    n = len(lat)
    pick = lambda q: int(lat[min(n - 1, int(q * n))]) if n else 0  # noqa: E731
    return {"requests": n, "duration_us": int((time.monotonic() - start) * 1e6), "errors": 0, "non2xx": errors[1],
            "p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99), "mean": sum(lat) / n if n else 0,
            "rps": n / (time.monotonic() - start)}


def ed25519_key() -> tuple[SigningKey, dict[str, str]]:
    """An EdDSA signing key for the issuer (its demo JWKS has RS256 and ES256 only) and its JWK."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    private = Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    key = SigningKey(alg="EdDSA", kid="eddsa-bench", private=private)
    return key, {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": key.kid, "alg": "EdDSA", "use": "sig"}


def stat(envoy: Envoy, suffix: str) -> int | None:
    """A filter metric from the admin /stats (`wasmcustom.<prefix>.<suffix>`)."""
    text = requests.get(f"{envoy.admin_url}/stats?filter={suffix.replace('.', '[.]')}$", timeout=5).text
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        if name.endswith("." + suffix):
            return int(value)
    return None


def memory_run(work: Path, issuer: Issuer, iss_port: int) -> dict[str, Any]:
    """One worker, one VM: fill its token cache with MEMORY_TOKENS distinct tokens."""
    port = free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    upstream = free_port()
    cfg = plugin_config(issuer.audience, [issuer_entry(issuer, "issuer")], cluster="fast")
    boot = envoy_bootstrap(free_port(), [
        fast_upstream_listener(upstream),
        listener("filter", port, "fast", cfg, WASM, Path("/dev/null")),
    ], [cluster("fast", upstream), cluster("issuer", iss_port)], work / "admin-mem.log")
    (work / "mem").mkdir(exist_ok=True)
    envoy = Envoy(work / "mem", "bench-memory", boot, concurrency=1)
    url = base + "/Patient/pat-a"
    try:
        envoy.start()
        first = issuer.mint("patient")
        wait_until(lambda: requests.get(url, headers={"Authorization": f"Bearer {first}"},
                                        timeout=5).status_code == 200, 90, "the filter to serve", envoy.log,
                   envoy.proc)
        time.sleep(1.5)
        before = stat(envoy, "vm.memory_bytes")
        t0 = time.monotonic()
        tokens = [issuer.mint("patient") for _ in range(MEMORY_TOKENS)]
        print(f"minted {len(tokens)} RS256 tokens in {time.monotonic() - t0:.1f}s", flush=True)
        bad = [0]
        lock = threading.Lock()

        def send(chunk: list[str]) -> None:
            s = requests.Session()
            for t in chunk:
                if s.get(url, headers={"Authorization": f"Bearer {t}"}, timeout=10).status_code != 200:
                    with lock:
                        bad[0] += 1

        ts = [threading.Thread(target=send, args=(tokens[i::8],)) for i in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        time.sleep(1.5)  # the gauge is set on the 1 s tick
        return {"before": before, "after": stat(envoy, "vm.memory_bytes"),
                "misses": stat(envoy, "token_cache.miss"), "errors": bad[0]}
    finally:
        envoy.stop()


def main() -> int:
    if not WASM.exists():
        print(f"{WASM} is missing: run `make build`", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="fhir-authz-bench-"))
    names = ("upstream", "nofilter", "filter", "cold", "cold_pure")
    ports = {n: free_port() for n in names}
    iss_port = free_port()
    aud = f"http://127.0.0.1:{ports['filter']}/fhir"
    issuer = Issuer(issuer_url=f"http://127.0.0.1:{iss_port}", audience=aud)
    server = serve_issuer(issuer, "127.0.0.1", iss_port)
    ed_key, ed_jwk = ed25519_key()
    cfg = plugin_config(aud, [issuer_entry(issuer, "issuer")], cluster="fast")
    inline = issuer_entry(issuer, "issuer", inline=True)
    inline["jwks"] = {"keys": issuer.jwks()["keys"] + [ed_jwk]}
    cold = plugin_config(aud, [inline], cluster="fast", token={"cache_max_entries": 0})
    cold_pure = plugin_config(aud, [inline], cluster="fast",
                              token={"cache_max_entries": 0, "host_crypto": False})
    log = work / "access.log" if os.environ.get("BENCH_ACCESS_LOG") else Path("/dev/null")
    boot = envoy_bootstrap(free_port(), [
        fast_upstream_listener(ports["upstream"]),
        listener("nofilter", ports["nofilter"], "fast", None, WASM, log),
        listener("filter", ports["filter"], "fast", cfg, WASM, log),
        listener("cold", ports["cold"], "fast", cold, WASM, log),
        listener("cold_pure", ports["cold_pure"], "fast", cold_pure, WASM, log),
    ], [cluster("fast", ports["upstream"]), cluster("issuer", iss_port)], work / "admin.log")
    envoy = Envoy(work, "bench", boot, concurrency=CONCURRENCY)
    url = {n: f"http://127.0.0.1:{ports[n]}/fhir/Patient/pat-a" for n in names}
    token = issuer.mint("patient")
    scenarios = [
        ("no filter (baseline)", url["nofilter"], None),
        ("cache hit", url["filter"], token),
        ("cold RS256, host crypto", url["cold"], token),
        ("cold RS256, pure Rust", url["cold_pure"], token),
        ("cold ES256 (pure Rust)", url["cold"], issuer.mint("patient", alg="ES256")),
        ("cold EdDSA (pure Rust)", url["cold"], issuer.sign(issuer.claims("patient"), key=ed_key)),
    ]
    results: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    memory: dict[str, Any] | None = None
    try:
        envoy.start()
        for name, u, t in scenarios:
            wait_until(lambda: requests.get(u, headers={"Authorization": f"Bearer {t}"} if t else {},
                                            timeout=5).status_code == 200, 90, f"{name} to serve", envoy.log,
                       envoy.proc)
        print(f"wrk: {THREADS} threads, {CONNECTIONS} connections, {DURATION}s per run, then 1 connection; "
              f"Envoy --concurrency {CONCURRENCY}; {os.cpu_count()} CPUs", flush=True)
        loaded = {}
        for name, u, t in scenarios:
            loaded[name] = run_wrk(u, token=t)
            print(f"  {name}: {loaded[name]['rps']:.0f} req/s", flush=True)
        # Concurrency 1, round-robin over the scenarios REPEAT times (the machine's other load
        # drifts): each scenario's figure is the median of its REPEAT medians.
        singles: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in scenarios}
        for rep in range(REPEAT):
            for name, u, t in scenarios:
                singles[name].append(run_wrk(u, token=t, connections=1, threads=1, duration=C1_DURATION))
            print(f"  concurrency 1, round {rep + 1}: " + ", ".join(
                f"{n} {v[-1]['p50']}" for n, v in singles.items()) + " (p50 us)", flush=True)
        for name, _, _ in scenarios:
            runs = sorted(singles[name], key=lambda r: r["p50"])
            one = dict(runs[len(runs) // 2])
            one["non2xx"] = sum(r["non2xx"] for r in runs)
            one["errors"] = sum(r["errors"] for r in runs)
            results.append((name, loaded[name], one))
    finally:
        envoy.stop()
    try:
        if MEMORY_TOKENS > 0:
            memory = memory_run(work, issuer, iss_port)
    finally:
        server.shutdown()
        shutil.rmtree(work, ignore_errors=True)

    base_p50 = results[0][2]["p50"]
    print()
    print(f"{'scenario':26} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'c1 p50 us':>10} {'filter us':>10} {'errors':>7}")
    for name, r, one in results:
        cost = "" if name.startswith("no filter") else f"{one['p50'] - base_p50:10d}"
        print(f"{name:26} {r['rps']:8.0f} {r['p50'] / 1000:7.2f} {r['p99'] / 1000:7.2f} {one['p50']:10d} {cost:>10} "
              f"{r['non2xx'] + r['errors'] + one['non2xx'] + one['errors']:7d}")
    print(f"\nreq/s, p50, p99: {CONNECTIONS} connections, {DURATION}s. c1 p50: median latency at concurrency 1 "
          f"(median of {REPEAT} runs of {C1_DURATION}s). filter us = c1 p50 minus the no-filter c1 p50 "
          f"({base_p50} us): the time a request spends in the filter.")
    ok = True
    if memory is not None:
        mib = lambda b: f"{b / 1048576:.1f} MiB" if b is not None else "n/a"  # noqa: E731
        print(f"memory (one VM): vm.memory_bytes {mib(memory['before'])} after warm-up, {mib(memory['after'])} "
              f"holding {MEMORY_TOKENS} cached tokens (token_cache.miss = {memory['misses']}, "
              f"errors {memory['errors']}); goal < 16 MiB")
        ok = not memory["errors"]
    bad = [n for n, r, one in results if r["non2xx"] or r["errors"] or one["non2xx"] or one["errors"]]
    if bad:
        print(f"\nWARNING: errors or non-2xx answers in: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
