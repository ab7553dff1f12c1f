"""`make bench`: throughput and latency through real Envoy with a trivial fast
upstream (an Envoy direct_response listener), measured with wrk:

  no-filter        Envoy without the wasm filter (baseline)
  cache-hit        the filter, the same valid token on every request
  cold-RS256       the filter, a fresh RS256 token (new jti) on every request
  cold-ES256       the filter, a fresh ES256 token on every request

Env: BENCH_DURATION (s, default 5), BENCH_CONNECTIONS (default 16), BENCH_THREADS (2),
ENVOY_CONCURRENCY (2), BENCH_COLD_TOKENS (tokens minted per cold run, default 40000).
Prints a table; numbers depend on the machine (2 shared cores here).
"""

from __future__ import annotations

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

from .rig import (WASM, Envoy, Issuer, cluster, envoy_bootstrap, free_port, issuer_entry, listener, plugin_config,
                  serve_issuer, wait_until)

DURATION = int(os.environ.get("BENCH_DURATION", "5"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
CONCURRENCY = int(os.environ.get("ENVOY_CONCURRENCY", "2"))
COLD_TOKENS = int(os.environ.get("BENCH_COLD_TOKENS", "40000"))

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


def run_wrk(url: str, token: str | None = None, tokens_file: Path | None = None) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    if wrk is None:
        return run_python_client(url, token, tokens_file)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_LUA)
        lua = f.name
    args = [wrk, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{DURATION}s", "-s", lua]
    if token:
        args += ["-H", f"Authorization: Bearer {token}"]
    args += [url, "--", str(tokens_file or ""), "0", str(THREADS)]
    out = subprocess.run(args, capture_output=True, text=True, timeout=DURATION + 60)
    os.unlink(lua)
    for line in out.stdout.splitlines():
        if line.startswith("WRKJSON "):
            res = json.loads(line[len("WRKJSON "):])
            res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
            return res
    raise RuntimeError(f"wrk failed: {out.stdout}\n{out.stderr}")


def run_python_client(url: str, token: str | None, tokens_file: Path | None) -> dict[str, Any]:
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

    ts = [threading.Thread(target=worker) for _ in range(CONNECTIONS)]
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


def main() -> int:
    if not WASM.exists():
        print(f"{WASM} is missing: run `make build`", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="fhir-authz-bench-"))
    ports = {n: free_port() for n in ("upstream", "nofilter", "filter")}
    iss_port = free_port()
    base = f"http://127.0.0.1:{ports['filter']}/fhir"
    issuer = Issuer(issuer_url=f"http://127.0.0.1:{iss_port}", audience=base)
    server = serve_issuer(issuer, "127.0.0.1", iss_port)
    cfg = plugin_config(base, [issuer_entry(issuer, "issuer")], cluster="fast")
    log = work / "access.log" if os.environ.get("BENCH_ACCESS_LOG") else Path("/dev/null")
    boot = envoy_bootstrap(free_port(), [
        fast_upstream_listener(ports["upstream"]),
        listener("nofilter", ports["nofilter"], "fast", None, WASM, log),
        listener("filter", ports["filter"], "fast", cfg, WASM, log),
    ], [cluster("fast", ports["upstream"]), cluster("issuer", iss_port)], work / "admin.log")
    envoy = Envoy(work, "bench", boot, concurrency=CONCURRENCY)
    results: list[tuple[str, dict[str, Any]]] = []
    try:
        envoy.start()
        token = issuer.mint("patient")
        url_filter = base + "/Patient/pat-a"
        url_plain = f"http://127.0.0.1:{ports['nofilter']}/fhir/Patient/pat-a"
        wait_until(lambda: requests.get(url_filter, headers={"Authorization": f"Bearer {token}"},
                                        timeout=5).status_code == 200, 90, "the filter to serve", envoy.log,
                   envoy.proc)
        print(f"wrk: {THREADS} threads, {CONNECTIONS} connections, {DURATION}s per run; Envoy --concurrency "
              f"{CONCURRENCY}; {os.cpu_count()} CPUs", flush=True)
        results.append(("no filter (baseline)", run_wrk(url_plain)))
        results.append(("filter, cached token", run_wrk(url_filter, token=token)))
        for alg in ("RS256", "ES256"):
            t0 = time.monotonic()
            toks = [issuer.mint("patient", alg=alg) for _ in range(COLD_TOKENS)]
            f = work / f"tokens-{alg}.txt"
            f.write_text("\n".join(toks) + "\n")
            print(f"minted {len(toks)} {alg} tokens in {time.monotonic() - t0:.1f}s", flush=True)
            res = run_wrk(url_filter, tokens_file=f)
            res["note"] = "tokens reused (cache hits mixed in)" if res["requests"] > COLD_TOKENS else ""
            results.append((f"filter, cold verify {alg}", res))
    finally:
        envoy.stop()
        server.shutdown()
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"{'scenario':32} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'non-2xx':>8}  note")
    for name, r in results:
        print(f"{name:32} {r['rps']:9.0f} {r['p50'] / 1000:8.2f} {r['p90'] / 1000:8.2f} {r['p99'] / 1000:8.2f} "
              f"{r['non2xx'] + r['errors']:8d}  {r.get('note', '')}")
    bad = [n for n, r in results if r["non2xx"] or r["errors"]]
    if bad:
        print(f"\nWARNING: errors or non-2xx answers in: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
