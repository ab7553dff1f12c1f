"""`make bench`: the filter side by side with Envoy alone and Envoy's native jwt_authn + RBAC,
in one Envoy process and one run, measured with wrk.

One Envoy (`--concurrency 1`: one worker, so one wasm VM serving requests), one listener per configuration, each
answering `GET /fhir/Patient/pat-a` with the same `direct_response` (so only the authorization
chain differs) and writing an access log (one JSON object per request) to the same file:

  none           Envoy alone: no auth filter; the base access-log fields of envoy/envoy.yaml
  native_cache   jwt_authn with jwt_cache_config + rbac (method, path prefix, scope claim from
                 the JWT payload in dynamic metadata); the base fields plus the token's identity
  native         the same without jwt_cache_config
  filter         this filter as shipped (envoy/envoy.yaml: its plugin configuration, audit record
                 logged exactly as that file logs it: the record is the whole line, its members
                 written by the filter with `audit.encoding: "fields"`, completed by Envoy)
  filter_line    the same with `audit.encoding: "line"` (the default: the filter writes the whole
                 line at log time), logged with the filter state alone as the line
  filter_struct  the same with `audit.encoding: "struct"`, the record in a field of the base
                 JSON line with `:TYPED` (the default before `"line"`)
  filter_json    the same with `audit.encoding: "json"`, logged with `:PLAIN` in that field
  filter_noaudit the same with `audit.enabled: false` (envoy.yaml's loggers: Envoy's own line)
  cold_pure      `token.cache_max_entries: 0`, `token.host_crypto: false` (pure-Rust verifier)
  cold_inline    `token.cache_max_entries: 0`, inline JWKS with an extra EdDSA key
  filter_baseline with BENCH_BASELINE_WASM=<path>: the shipped configuration of `filter` running
                 another build of the filter (its own VM), for an A/B of two builds in one run
  filter_module  the same filter as an Envoy dynamic module (envoy/envoy-native.yaml's filter and
                 access loggers: a metadata_filter on the module's mark instead of CEL)
  filter_floor   the proxy-wasm floor (`make bench-floor`, tests/bench-floor/): a no-op filter that
                 makes only the host calls of the filter's contract (one header-map read, one clock
                 read, two counters, six fact headers, the audit record's members in filter state),
                 with `filter`'s VM settings and access loggers
  filter_dpop, module_dpop  wasm and module with DPoP accepted for the issuer (ES256 proofs,
                 `max_age_seconds: 600`, a replay cache of 2^20 entries)

Rows (what wrk sends, a patient token in every request):
  warm   one token on every request: the filter's (and jwt_authn's) verified-token cache hits
  cold   a fresh RS256 token on every request, from a ring of BENCH_COLD_TOKENS tokens (2.5× the
         filter's default cache of 10 000 entries, which evicts oldest first: the native module's
         cache is split in shards by token hash, so each shard must get more than its share; each
         run goes on where the previous one stopped: every request is a cache miss; the bench
         reports the filter's miss ratio to prove it). Native jwt_authn without cache gets the
         same ring.
  token paths (not with BENCH_ONLY=compare): RS256 verified in pure Rust, ES256 through Envoy's
         verify_signature and in pure Rust, EdDSA (always pure Rust), each with one token on a
         listener whose cache is off.
  module_warm, module_cold: the same filter as an Envoy dynamic module (`make native`, listener
         `filter_module`, envoy/envoy-native.yaml's filter) warm and with the fresh-token ring
         (rows present when target/native/libfhir_smart_authz.so exists).
  floor  the proxy-wasm floor (listener `filter_floor`), with the warm row's token.
  dpop, module_dpop: a DPoP-bound token (`cnf.jkt`, cached after its first use) with a fresh
         ES256 proof on every request (`DPoP` header; `jti`, `htm`, `htu`, `iat`, `ath`), from a
         ring of BENCH_DPOP_PROOFS proofs minted before Envoy starts; a proof is never sent twice
         (a replay is refused), so the ring must not wrap (the bench stops if it would). Every
         proof's `jti` stays in the replay cache for the run: its fill grows to the proofs used.
  base_warm, base_cold (with BENCH_BASELINE_WASM): warm and cold on `filter_baseline` (its own
         token ring, so every request misses there too).

Method: a warm-up (BENCH_WARMUP s per row), then BENCH_REPEAT rounds; each round runs every row
once at load (wrk -t1 -c16, BENCH_DURATION s) and once at concurrency 1 (wrk -t1 -c1,
BENCH_C1_DURATION s), starting each round at a different row so no row always follows the same
one. Each figure is the median over the rounds; each ratio is the median of the per-round ratios
(both rows of a ratio measured minutes apart at most). "added µs" = median latency at
concurrency 1 minus Envoy alone's. Any non-2xx answer fails the bench (a denial is fast: it would
make the numbers meaningless).

Memory: the filter's `<prefix>.vm.memory_bytes` gauge (the worker VM's linear memory; see
`vm_memory`) after start and after the cold runs, whose tokens fill the shipped configuration's
cache (10 000 entries). The module: Envoy's resident memory (VmRSS) before and after it verified
10 000+ fresh tokens from the ring, before any other load run (its cache holds 10 000 per worker).

The last line of the output is
  ratio_warm_vs_native=X.XX ratio_cold_vs_native=X.XX ratio_warm_vs_none=X.XX
  [ratio_native_module_vs_native=X.XX ratio_native_module_cold_vs_native_cold=X.XX]
  [ratio_wasm_vs_floor=X.XX] [added_cpu_dpop_vs_native_cold=X.XX added_cpu_module_dpop_vs_native_cold=X.XX]
(filter warm ÷ native jwt_authn with cache + rbac; filter cold ÷ native jwt_authn without cache
+ rbac; filter warm ÷ Envoy alone; the module warm and cold ÷ the same; wasm warm ÷ the floor;
req/s at load; then the CPU µs a DPoP request adds over Envoy alone ÷ what native jwt_authn
without cache adds on a fresh RS256 token, wasm and module: issue 19's target is <= 1). The lines
before it give each issue 18 / 19 target with its figures, the module's size and memory, and the
first three ratios from the CPU time the Envoy process spends per request (all its threads, from
/proc), which other work on a shared machine disturbs much less than req/s or latency.

Env: BENCH_ONLY=compare (only the side-by-side rows: about 2.5 minutes instead of 4),
BENCH_REPEAT (3 rounds), BENCH_DURATION (3 s per load run), BENCH_C1_DURATION (2 s per
concurrency-1 run), BENCH_WARMUP (1 s), BENCH_CONNECTIONS (16), BENCH_THREADS (1),
ENVOY_CONCURRENCY (1), BENCH_COLD_TOKENS (25000; every shard of the cache must overflow for cold rows),
BENCH_KEEP (keep the work directory: Envoy config and log), BENCH_DPOP_PROOFS (proofs minted for
each DPoP row: enough for ~6000 req/s over all its runs by default), BENCH_FLOOR_WASM (the floor's
.wasm, default target/bench-floor.wasm), BENCH_BASELINE_WASM (a second .wasm,
e.g. main's build, measured as `filter_baseline` beside `filter`; the output ends with an A/B line:
this build ÷ baseline, req/s and CPU per request, warm and cold), BENCH_ONLY=ab (with
BENCH_BASELINE_WASM: only Envoy alone, native, `filter` and `filter_baseline` rows).
"""

from __future__ import annotations

import base64
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import requests

from .bench_envoy import (base_log_format, direct_listener, native_filters, native_log_format,
                          record_field_log_format, shipped_module_access_logs, shipped_module_filter,
                          shipped_plugin_config, shipped_wasm_filter)
from .dpop_client import DpopKey
from .rig import (NATIVE, REPO, WASM, Envoy, Issuer, SigningKey, cluster, envoy_bootstrap, free_port, serve_issuer,
                  wait_until)
from issuer import jwk_thumbprint  # noqa: E402 (envoy/issuer, on the path through .rig)

# The proxy-wasm floor (`make bench-floor`, tests/bench-floor/): the host calls of the filter's contract, no logic.
FLOOR = Path(os.environ.get("BENCH_FLOOR_WASM", REPO / "target/bench-floor.wasm"))

ONLY = os.environ.get("BENCH_ONLY", "")
DURATION = int(os.environ.get("BENCH_DURATION", "3"))
C1_DURATION = int(os.environ.get("BENCH_C1_DURATION", "2"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "1"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
THREADS = int(os.environ.get("BENCH_THREADS", "1"))
CONCURRENCY = int(os.environ.get("ENVOY_CONCURRENCY", "1"))
COLD_TOKENS = int(os.environ.get("BENCH_COLD_TOKENS", "25000"))
# DPoP rows: one proof per request, never reused; enough for ~6000 req/s over every run of a row.
DPOP_PROOFS = int(os.environ.get("BENCH_DPOP_PROOFS", str(6000 * (WARMUP + REPEAT * (DURATION + C1_DURATION)) + 20000)))
# Proofs are minted before Envoy starts, with `iat` this far ahead (seconds).
DPOP_IAT_AHEAD = 240
KEEP = bool(os.environ.get("BENCH_KEEP"))
BASELINE_WASM = Path(os.environ["BENCH_BASELINE_WASM"]).resolve() if os.environ.get("BENCH_BASELINE_WASM") else None

PATH = "/fhir/Patient/pat-a"
AUDIENCE = "http://localhost:10000/fhir"  # fhir_base_url of every filter listener = the tokens' aud

WRK_LUA = r"""
-- args: [1] token file (one token a line; empty: no token from the script)
--       [2] index of the first token   [3] wrk threads
--       [4] a DPoP-bound token: then the file holds DPoP proofs, one per request
local tokens = {}
local dpop_token = nil
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
    -- each wrk thread starts at its own offset after the given start
    i = ((tonumber(args[2]) or 0) + (id or 0) * math.floor(n / (tonumber(args[3]) or 1))) % n
  end
  if args[4] ~= nil and args[4] ~= "" then dpop_token = args[4] end
end
function request()
  if n > 0 then
    i = i + 1
    if i > n then i = 1 end
    if dpop_token then
      return wrk.format(nil, nil, {["Authorization"] = "DPoP " .. dpop_token, ["DPoP"] = tokens[i]})
    end
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


# --------------------------------------------------------------------------
# Load generation
# --------------------------------------------------------------------------

@dataclass
class Ring:
    """Tokens sent in order, one per request; each run goes on where the previous one stopped.
    With `dpop_token`: DPoP proofs for that token, each usable once (a replayed proof is refused),
    so the ring must never wrap (BENCH_DPOP_PROOFS)."""
    path: Path
    size: int
    next: int = 0
    dpop_token: str | None = None
    used: int = 0


def run_wrk(url: str, token: str | None = None, ring: Ring | None = None, connections: int = CONNECTIONS,
            threads: int = THREADS, duration: int = DURATION) -> dict[str, Any]:
    """One wrk run; `rps`, latency percentiles (µs), `errors` and `non2xx` counts."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return run_python_client(url, token, ring, connections, duration)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_LUA)
        lua = f.name
    threads = min(threads, connections)
    args = [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration}s", "-s", lua]
    if token:
        args += ["-H", f"Authorization: Bearer {token}"]
    args += [url, "--", str(ring.path) if ring else "", str(ring.next if ring else 0), str(threads),
             (ring.dpop_token or "") if ring else ""]
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=duration + 60)
    finally:
        os.unlink(lua)
    for line in out.stdout.splitlines():
        if line.startswith("WRKJSON "):
            res = json.loads(line[len("WRKJSON "):])
            res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
            if ring:  # requests in flight at the end were sent too: skip past them
                ring.next = (ring.next + res["requests"] + connections) % ring.size
                ring.used += res["requests"] + connections
                if ring.dpop_token and ring.used > ring.size:
                    raise RuntimeError(f"the DPoP proof ring of {ring.size} proofs wrapped (replayed proofs are "
                                       f"refused): raise BENCH_DPOP_PROOFS")
            return res
    raise RuntimeError(f"wrk failed: {out.stdout}\n{out.stderr}")


def run_python_client(url: str, token: str | None, ring: Ring | None, connections: int,
                      duration: int) -> dict[str, Any]:
    """Fallback when wrk is missing (much slower: compare its figures with each other only)."""
    if ring is not None and ring.dpop_token:
        raise RuntimeError("the DPoP rows need wrk")
    tokens = ring.path.read_text().split() if ring else [token]
    lat: list[float] = []
    bad = [0]
    lock = threading.Lock()
    end = time.monotonic() + duration
    counter = [ring.next if ring else 0]

    def worker() -> None:
        s = requests.Session()
        while time.monotonic() < end:
            with lock:
                counter[0] += 1
                t = tokens[counter[0] % len(tokens)]
            t0 = time.perf_counter()
            try:
                ok = s.get(url, headers={"Authorization": f"Bearer {t}"} if t else {}, timeout=10).status_code == 200
            except requests.RequestException:
                ok = False
            dt = (time.perf_counter() - t0) * 1e6
            with lock:
                lat.append(dt)
                bad[0] += 0 if ok else 1

    start = time.monotonic()
    ts = [threading.Thread(target=worker) for _ in range(connections)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.monotonic() - start
    if ring:
        ring.next = counter[0] % ring.size
    lat.sort()
    n = len(lat)
    pick = lambda q: int(lat[min(n - 1, int(q * n))]) if n else 0  # noqa: E731
    return {"requests": n, "duration_us": int(elapsed * 1e6), "errors": 0, "non2xx": bad[0], "p50": pick(0.5),
            "p90": pick(0.9), "p99": pick(0.99), "mean": sum(lat) / n if n else 0, "rps": n / elapsed}


# --------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------

_MINTING: Issuer | None = None


def _mint_patient_tokens(count: int) -> list[str]:
    assert _MINTING is not None
    return [_MINTING.mint("patient") for _ in range(count)]


def mint_many(issuer: Issuer, count: int) -> list[str]:
    """`count` distinct RS256 patient tokens, minted on every CPU (RSA signing is the slow part).
    Call before any thread of this process holds the issuer's lock (the workers are forked)."""
    global _MINTING
    _MINTING = issuer
    procs = max(1, min(os.cpu_count() or 1, 4))
    shares = [count // procs + (1 if i < count % procs else 0) for i in range(procs)]
    with multiprocessing.get_context("fork").Pool(procs) as pool:
        return [t for chunk in pool.map(_mint_patient_tokens, shares) for t in chunk]


_PROVING: tuple[DpopKey, str, int] | None = None


def _mint_proofs(count: int) -> list[str]:
    assert _PROVING is not None
    key, token, iat = _PROVING
    return [key.proof("GET", AUDIENCE + PATH.removeprefix("/fhir"), token, iat=iat) for _ in range(count)]


def mint_proofs(key: DpopKey, token: str, count: int) -> list[str]:
    """`count` DPoP proofs of `key` for `GET <fhir_base_url>/Patient/pat-a` with `token` (fresh
    `jti`s), minted on every CPU. Their `iat` is DPOP_IAT_AHEAD seconds ahead (within the bench
    listeners' `clock_skew_seconds`), so with `max_age_seconds: 600` they stay valid for about
    14 minutes after minting."""
    global _PROVING
    _PROVING = (key, token, int(time.time()) + DPOP_IAT_AHEAD)
    procs = max(1, min(os.cpu_count() or 1, 4))
    shares = [count // procs + (1 if i < count % procs else 0) for i in range(procs)]
    with multiprocessing.get_context("fork").Pool(procs) as pool:
        return [p for chunk in pool.map(_mint_proofs, shares) for p in chunk]


def dpop_plugin_config(issuer_url: str) -> dict[str, Any]:
    """The shipped plugin configuration with DPoP accepted for the issuer (ES256 proofs) and a
    replay cache large enough for every proof of the run: each proof's `jti` stays in it for
    `max_age_seconds` + 1, and a full cache refuses proofs."""
    cfg = shipped_plugin_config(issuer_url, "issuer", AUDIENCE)
    cfg["issuers"][0]["dpop"] = {"mode": "accepted", "algorithms": ["ES256"], "max_age_seconds": 600,
                                 "clock_skew_seconds": DPOP_IAT_AHEAD + 30}
    cfg["sender_constraint"] = {**cfg.get("sender_constraint", {}), "replay_cache_entries": 1 << 20}
    return cfg


def envoy_rss(pid: int) -> int:
    """Resident memory of the Envoy process (bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def ed25519_key() -> tuple[SigningKey, dict[str, str]]:
    """An EdDSA signing key for the issuer (its demo JWKS has RS256 and ES256 only) and its JWK."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    private = Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    key = SigningKey(alg="EdDSA", kid="eddsa-bench", private=private)
    return key, {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": key.kid, "alg": "EdDSA", "use": "sig"}


# --------------------------------------------------------------------------
# Rows and measurement
# --------------------------------------------------------------------------

@dataclass
class Row:
    """One measured configuration: a listener and what wrk sends to it."""
    key: str
    label: str
    listener: str
    token: str | None = None
    ring: Ring | None = None
    path: str = PATH
    # Filled in by `measure`.
    load: list[dict[str, Any]] = field(default_factory=list)
    single: list[dict[str, Any]] = field(default_factory=list)
    # Rows whose listener runs the filter with a token ring: token-cache misses seen (every run,
    # warm-up included) and the requests completed in those runs.
    misses: int = 0
    requests_cold: int = 0

    def counts_misses(self) -> bool:
        return self.ring is not None and self.ring.dpop_token is None and self.listener.startswith("filter")

    def failures(self) -> int:
        return sum(r["non2xx"] + r["errors"] for r in self.load + self.single)


def stat(envoy: Envoy, suffix: str) -> int | None:
    """A filter metric from the admin /stats (`wasmcustom.<prefix>.<suffix>`)."""
    text = requests.get(f"{envoy.admin_url}/stats?filter={suffix.replace('.', '[.]')}$", timeout=5).text
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        if name.endswith("." + suffix):
            return int(value)
    return None


def process_cpu_ns(pid: int) -> int:
    """CPU time used so far by every thread of a process (ns; /proc/<pid>/task/*/schedstat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # the thread ended
    return total


def vm_memory(envoy: Envoy, samples: int = 8) -> int | None:
    """The worker VM's `vm.memory_bytes`. Envoy also runs a copy of the plugin on its main
    thread, which never serves a request, and both set the one gauge on their 1 s tick: the
    largest of several reads over 3 s is the worker's."""
    values = []
    for _ in range(samples):
        v = stat(envoy, "vm.memory_bytes")
        if v is not None:
            values.append(v)
        time.sleep(3 / samples)
    return max(values) if values else None


def wait_serving(envoy: Envoy, rows: list[Row], ports: dict[str, int],
                 fresh_proof: Callable[[str], str] | None = None) -> None:
    """`/ready` answers before the worker VM runs the plugin and before remote JWKS arrive:
    wait until every row gets a 200 (DPoP rows: with a fresh proof from `fresh_proof(token)` on
    each try, never one of the ring's)."""
    for row in rows:
        url = f"http://127.0.0.1:{ports[row.listener]}{row.path}"
        dpop_token = row.ring.dpop_token if row.ring else None
        token = row.token or (row.ring.path.read_text().split("\n", 1)[0] if row.ring else None)

        def headers(row_token: str | None = token, bound: str | None = dpop_token) -> dict[str, str]:
            if bound is not None and fresh_proof is not None:
                return {"Authorization": f"DPoP {bound}", "DPoP": fresh_proof(bound)}
            return {"Authorization": f"Bearer {row_token}"} if row_token else {}
        wait_until(lambda: requests.get(url, headers=headers(), timeout=5).status_code == 200, 90,
                   f"{row.label} to answer 200", envoy.log, envoy.proc)


def check_access_log(log: Path, ports: dict[str, int], expect: dict[str, Callable[[dict[str, Any]], bool]]) -> None:
    """One request per listener; its access-log line must be one JSON object and pass `expect`."""
    for name, ok in expect.items():
        rid = f"bench-check-{name}"
        requests.get(f"http://127.0.0.1:{ports[name]}{PATH}", headers={"x-request-id": rid}, timeout=5)
        deadline = time.monotonic() + 5
        while True:
            lines = [json.loads(x) for x in log.read_text().splitlines() if rid in x]
            if lines or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if len(lines) != 1 or not ok(lines[0]):
            raise RuntimeError(f"unexpected access-log line for listener {name}: {lines}")


def measure(rows: list[Row], ports: dict[str, int], envoy: Envoy, log: Path | None = None,
            rounds: int = REPEAT, progress: bool = True) -> None:
    """Warm-up, then `rounds` interleaved rounds (load, then concurrency 1) over `rows`."""
    url = lambda row: f"http://127.0.0.1:{ports[row.listener]}{row.path}"  # noqa: E731

    def run(row: Row, **kw: Any) -> dict[str, Any]:
        before = stat(envoy, "token_cache.miss") if row.counts_misses() else None
        assert envoy.proc is not None
        cpu = process_cpu_ns(envoy.proc.pid)
        res = run_wrk(url(row), row.token, row.ring, **kw)
        res["cpu_us"] = (process_cpu_ns(envoy.proc.pid) - cpu) / 1000 / max(1, res["requests"])
        if before is not None:
            row.misses += (stat(envoy, "token_cache.miss") or 0) - before
            row.requests_cold += res["requests"]
        if log is not None:  # keep the access log small (Envoy appends)
            os.truncate(log, 0)
        return res

    for row in rows:
        if WARMUP > 0:
            run(row, duration=WARMUP)
    for rnd in range(rounds):
        order = rows[rnd % len(rows):] + rows[:rnd % len(rows)]
        for row in order:
            row.load.append(run(row))
        for row in order:
            row.single.append(run(row, connections=1, threads=1, duration=C1_DURATION))
        if progress:
            print(f"  round {rnd + 1}/{rounds}: " + ", ".join(
                f"{r.key} {r.load[-1]['rps']:.0f}/s {r.single[-1]['p50']}us" for r in rows), flush=True)


def fill_module_cache(envoy: Envoy, row: Row, ports: dict[str, int], tokens: int = 10000) -> tuple[int, int, int]:
    """Send the module `tokens` fresh tokens (its cache holds 10 000 per worker) before anything
    else fills memory: Envoy's resident memory before and after, and the tokens sent."""
    assert envoy.proc is not None and row.ring is not None
    before = envoy_rss(envoy.proc.pid)
    sent = 0
    while sent < tokens:
        res = run_wrk(f"http://127.0.0.1:{ports[row.listener]}{row.path}", ring=row.ring, duration=2)
        if res["non2xx"] or res["errors"]:
            raise RuntimeError(f"errors or non-2xx answers while filling the module's cache: {res}")
        sent += res["requests"]
    time.sleep(0.5)
    return before, envoy_rss(envoy.proc.pid), sent


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def ratio(a: Row, b: Row) -> float:
    """Median over the rounds of a's req/s ÷ b's req/s in the same round."""
    return statistics.median(x["rps"] / y["rps"] for x, y in zip(a.load, b.load))


def print_table(rows: list[Row], base: Row) -> None:
    base_c1 = median_of(base.single, "p50")
    base_cpu = median_of(base.load, "cpu_us")
    print(f"{'configuration':58} {'req/s':>7} {'vs alone':>8} {'p50 ms':>6} {'p99 ms':>6} "
          f"{'c1 p50 us':>9} {'added us':>8} {'cpu us':>6} {'added':>6}")
    for row in rows:
        c1 = median_of(row.single, "p50")
        cpu = median_of(row.load, "cpu_us")
        added = "" if row is base else f"{c1 - base_c1:+8.0f}"
        added_cpu = "" if row is base else f"{cpu - base_cpu:+6.1f}"
        print(f"{row.label:58} {median_of(row.load, 'rps'):7.0f} {ratio(row, base):8.2f} "
              f"{median_of(row.load, 'p50') / 1000:6.2f} {median_of(row.load, 'p99') / 1000:6.2f} "
              f"{c1:9.0f} {added:>8} {cpu:6.1f} {added_cpu:>6}")


# --------------------------------------------------------------------------
# The bench
# --------------------------------------------------------------------------

def main() -> int:
    if not WASM.exists():
        print(f"{WASM} is missing: run `make build`", file=sys.stderr)
        return 2
    if ONLY not in ("", "compare", "ab"):
        print(f"BENCH_ONLY={ONLY!r}: use BENCH_ONLY=compare, BENCH_ONLY=ab or leave it unset", file=sys.stderr)
        return 2
    if BASELINE_WASM is not None and not BASELINE_WASM.exists():
        print(f"BENCH_BASELINE_WASM={BASELINE_WASM} does not exist", file=sys.stderr)
        return 2
    if ONLY == "ab" and BASELINE_WASM is None:
        print("BENCH_ONLY=ab needs BENCH_BASELINE_WASM=<path of the other .wasm>", file=sys.stderr)
        return 2
    full = ONLY == ""
    variants = ONLY != "ab"  # the struct/json/noaudit rows
    t_start = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="fhir-authz-bench-"))
    log = work / "access.log"
    iss_port = free_port()
    issuer = Issuer(issuer_url=f"http://127.0.0.1:{iss_port}", audience=AUDIENCE)
    ring_tokens = mint_many(issuer, COLD_TOKENS)
    ring_path = work / "tokens.txt"
    ring_path.write_text("\n".join(ring_tokens) + "\n")
    print(f"minted {len(ring_tokens)} RS256 tokens in {time.monotonic() - t_start:.1f}s", flush=True)
    dpop_key = DpopKey("ES256")
    dpop_token = issuer.mint("patient", cnf={"jkt": jwk_thumbprint(dpop_key.jwk())})
    dpop = ONLY != "ab"
    if dpop:
        t_proofs = time.monotonic()
        proofs_path = work / "proofs.txt"
        proofs_path.write_text("\n".join(mint_proofs(dpop_key, dpop_token, DPOP_PROOFS)) + "\n")
        print(f"minted {DPOP_PROOFS} ES256 DPoP proofs in {time.monotonic() - t_proofs:.1f}s", flush=True)
    server = serve_issuer(issuer, "127.0.0.1", iss_port)
    ed_key, ed_jwk = ed25519_key()

    # the same filter as an Envoy dynamic module (`make native`), when built
    module = NATIVE.exists() and ONLY != "ab"
    floor = FLOOR.exists() and ONLY != "ab"
    names = ["fhir", "none", "native_cache", "native", "filter"] + (["filter_module"] if module else [])
    names += ["filter_floor"] * floor + ["filter_dpop"] * dpop + ["module_dpop"] * (dpop and module)
    if variants:
        names += ["filter_line", "filter_struct", "filter_json", "filter_noaudit"]
    if full:
        names += ["cold_pure", "cold_inline"]
    if BASELINE_WASM is not None:
        names += ["filter_baseline"]
    ports = {n: free_port() for n in names}
    shipped = lambda **over: shipped_wasm_filter(  # noqa: E731
        shipped_plugin_config(issuer.issuer_url, "issuer", AUDIENCE, over), WASM)
    inline = [{"issuer": issuer.issuer_url, "jwks": {"keys": issuer.jwks()["keys"] + [ed_jwk]}}]
    shipped_log = None  # envoy/envoy.yaml's access loggers
    module_log = shipped_module_access_logs(log)  # envoy/envoy-native.yaml's
    chains: dict[str, tuple[list[dict[str, Any]], dict[str, Any] | list[dict[str, Any]] | str | None]] = {
        "fhir": ([], base_log_format()),
        "none": ([], base_log_format()),
        "native_cache": (native_filters(issuer.issuer_url, AUDIENCE, "issuer", cache=True), native_log_format()),
        "native": (native_filters(issuer.issuer_url, AUDIENCE, "issuer", cache=False), native_log_format()),
        "filter": ([shipped()], shipped_log),
        "filter_module": ([shipped_module_filter(shipped_plugin_config(issuer.issuer_url, "issuer", AUDIENCE))],
                          module_log),
        # the same VM settings and access loggers as `filter`, running the no-op floor filter (its own VM)
        "filter_floor": ([shipped_wasm_filter(shipped_plugin_config(issuer.issuer_url, "issuer", AUDIENCE), FLOOR,
                                              vm_id_suffix="_floor")], shipped_log),
        "filter_dpop": ([shipped_wasm_filter(dpop_plugin_config(issuer.issuer_url), WASM)], shipped_log),
        "module_dpop": ([shipped_module_filter(dpop_plugin_config(issuer.issuer_url))], module_log),
        "filter_line": ([shipped(audit={"encoding": "line"})], "line"),
        "filter_struct": ([shipped(audit={"encoding": "struct"})], record_field_log_format("struct")),
        "filter_json": ([shipped(audit={"encoding": "json"})], record_field_log_format("json")),
        "filter_noaudit": ([shipped(audit={"enabled": False})], shipped_log),
        "cold_pure": ([shipped(issuers=inline, token={"cache_max_entries": 0, "host_crypto": False})], shipped_log),
        "cold_inline": ([shipped(issuers=inline, token={"cache_max_entries": 0})], shipped_log),
    }
    if BASELINE_WASM is not None:
        # Its own VM (vm_id): no shared key set or lease with the build under test.
        baseline = shipped_wasm_filter(shipped_plugin_config(issuer.issuer_url, "issuer", AUDIENCE), BASELINE_WASM,
                                       vm_id_suffix="_baseline")
        chains["filter_baseline"] = ([baseline], shipped_log)
    listeners = [direct_listener(n, ports[n], chains[n][0], log, chains[n][1]) for n in names]
    # `fhir` (the filter's default upstream.cluster) and `issuer` (its JWKS cluster), as in envoy.yaml.
    boot = envoy_bootstrap(free_port(), listeners, [cluster("fhir", ports["fhir"]), cluster("issuer", iss_port)],
                           work / "admin.log")
    envoy = Envoy(work, "bench", boot, concurrency=CONCURRENCY)

    token = issuer.mint("patient")
    ring = Ring(ring_path, len(ring_tokens))
    native_ring = Ring(ring_path, len(ring_tokens))
    rows = [
        Row("none", "Envoy alone (direct response, no auth filter)", "none"),
        Row("native_cache", "native jwt_authn (jwt_cache_config) + rbac, warm", "native_cache", token),
        Row("native", "native jwt_authn (no cache) + rbac, fresh RS256 token", "native", ring=native_ring),
        Row("warm", "filter as shipped (audit record = log line, fields), warm", "filter", token),
        Row("cold", "filter as shipped, fresh RS256 token (host crypto)", "filter", ring=ring),
    ]
    if module:
        rows += [
            Row("module_warm", "filter as a dynamic module (native), as shipped, warm", "filter_module", token),
            Row("module_cold", "filter as a dynamic module, fresh RS256 token (ring)", "filter_module",
                ring=Ring(ring_path, len(ring_tokens))),
        ]
    if floor:
        rows.append(Row("floor", "proxy-wasm floor: no-op filter, the contract's host calls", "filter_floor", token))
    if dpop:
        rows.append(Row("dpop", "filter as shipped, DPoP: cached token, fresh ES256 proof", "filter_dpop",
                        ring=Ring(proofs_path, DPOP_PROOFS, dpop_token=dpop_token)))
    if dpop and module:
        rows.append(Row("module_dpop", "dynamic module, DPoP: cached token, fresh ES256 proof", "module_dpop",
                        ring=Ring(proofs_path, DPOP_PROOFS, dpop_token=dpop_token)))
    if variants:
        rows += [
            Row("line", "filter, audit.encoding line (whole line at log time), warm", "filter_line", token),
            Row("struct", "filter, audit.encoding struct, :TYPED, warm", "filter_struct", token),
            Row("json", "filter, audit.encoding json, :PLAIN, warm", "filter_json", token),
            Row("noaudit", "filter, audit.enabled false, warm", "filter_noaudit", token),
        ]
    if BASELINE_WASM is not None:
        rows += [
            Row("base_warm", f"baseline ({BASELINE_WASM.name}) as shipped, warm", "filter_baseline", token),
            Row("base_cold", f"baseline ({BASELINE_WASM.name}), fresh RS256 token", "filter_baseline",
                ring=Ring(ring_path, len(ring_tokens))),
        ]
    if full:
        es256 = issuer.mint("patient", alg="ES256")
        rows += [
            Row("pure_rs256", "filter, cache off, RS256 in pure Rust", "cold_pure", token),
            Row("es256", "filter, cache off, ES256 (host verify_signature)", "cold_inline", es256),
            Row("es256_pure", "filter, cache off, ES256 in pure Rust", "cold_pure", es256),
            Row("eddsa", "filter, cache off, EdDSA (pure Rust)", "cold_inline",
                issuer.sign(issuer.claims("patient"), key=ed_key)),
        ]
    by_key = {r.key: r for r in rows}
    memory: tuple[int | None, int | None] = (None, None)
    module_memory: tuple[int, int, int] | None = None  # Envoy RSS before and after, tokens cached
    try:
        envoy.start()
        wait_serving(envoy, rows, ports,
                     lambda bound: dpop_key.proof("GET", AUDIENCE + PATH.removeprefix("/fhir"), bound))
        is_record = lambda v: isinstance(v, dict) and isinstance(v.get("value", v).get("decision"), str)  # noqa: E731
        expect_lines: dict[str, Callable[[dict[str, Any]], bool]] = {
            "none": lambda line: line["path"] == PATH and line["response_code"] == 200,
            "native_cache": lambda line: line["response_code"] == 401,  # no token: jwt_authn refuses
            "filter": lambda line: line["response_code"] == 401 and is_record(line) and line["path"] == PATH,
            "filter_module": lambda line: line["response_code"] == 401 and is_record(line) and line["path"] == PATH,
            "filter_struct": lambda line: line["response_code"] == 401 and is_record(line["audit"]),
            "filter_json": lambda line: isinstance(line["audit"], str) and is_record(json.loads(line["audit"])),
            "filter_noaudit": lambda line: line["response_code"] == 401 and "decision" not in line,
            "filter_floor": lambda line: line["response_code"] == 200 and line.get("decision") == "allow",
            "filter_dpop": lambda line: line["response_code"] == 401 and is_record(line) and line["path"] == PATH,
            "module_dpop": lambda line: line["response_code"] == 401 and is_record(line) and line["path"] == PATH,
        }
        check_access_log(log, ports, {k: v for k, v in expect_lines.items() if k in names})
        rid = "bench-check-native-identity"
        requests.get(f"http://127.0.0.1:{ports['native_cache']}{PATH}", timeout=5,
                     headers={"Authorization": f"Bearer {token}", "x-request-id": rid})
        time.sleep(0.3)
        line = next(json.loads(x) for x in log.read_text().splitlines() if rid in x)
        if line.get("patient") != "pat-a" or line.get("response_code") != 200:
            raise RuntimeError(f"native access-log line without the token's identity: {line}")
        memory = (vm_memory(envoy), None)
        if module:
            module_memory = fill_module_cache(envoy, by_key["module_cold"], ports)
        os.truncate(log, 0)
        print(f"Envoy --concurrency {CONCURRENCY}; wrk -t{THREADS} -c{CONNECTIONS} {DURATION}s and -t1 -c1 "
              f"{C1_DURATION}s; {REPEAT} rounds; {os.cpu_count()} CPUs; load average "
              f"{os.getloadavg()[0]:.2f}", flush=True)
        measure(rows, ports, envoy, log)
        memory = (memory[0], vm_memory(envoy))
    finally:
        envoy.stop()
        server.shutdown()
        if KEEP:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    print()
    print_table(rows, by_key["none"])
    cold = by_key["cold"]
    print(f"\nreq/s, p50, p99: wrk -t{THREADS} -c{CONNECTIONS}, {DURATION}s, median of {REPEAT} rounds; vs alone: "
          f"median of per-round ratios. c1 p50: median latency at concurrency 1 ({C1_DURATION}s runs); added us: "
          f"minus Envoy alone's. cpu us: CPU time of the whole Envoy process per request at load (all threads, "
          f"/proc schedstat), which other work on the machine disturbs much less; added: minus Envoy alone's. Load average at the end {os.getloadavg()[0]:.2f} (other work on the machine "
          f"makes the figures noisy; compare rows of one run only).")
    print(f"cold row: {cold.misses} token-cache misses in {cold.requests_cold} requests "
          f"({100 * cold.misses / max(1, cold.requests_cold):.1f} %; requests in flight at the end of a run "
          f"are not counted as requests); ring of {len(ring_tokens)} tokens.")
    mib = lambda b: f"{b / 1048576:.1f} MiB" if b is not None else "n/a"  # noqa: E731
    print(f"memory (the worker VM): vm.memory_bytes {mib(memory[0])} after start, {mib(memory[1])} after the cold runs "
          f"(the shipped configuration's cache then holds {min(cold.misses, 10000)} tokens); goal < 16 MiB "
          f"with 10000")
    print(f"bench took {time.monotonic() - t_start:.0f}s")
    bad = [r.label for r in rows if r.failures()]
    if bad:
        print(f"ERROR: errors or non-2xx answers in: {', '.join(bad)}", file=sys.stderr)
        return 1
    colds = [cold] + ([by_key["base_cold"]] if BASELINE_WASM is not None else [])
    for c in colds + ([by_key["module_cold"]] if "module_cold" in by_key else []):
        if c.misses < 0.95 * c.requests_cold:
            print(f"ERROR: the {c.key} row hit the token cache; raise BENCH_COLD_TOKENS above cache_max_entries",
                  file=sys.stderr)
            return 1
    cpu = lambda a, b: median_of(by_key[b].load, "cpu_us") / median_of(by_key[a].load, "cpu_us")  # noqa: E731
    print(f"the same ratios from Envoy's CPU time per request (less disturbed by other work on the machine): "
          f"warm_vs_native={cpu('warm', 'native_cache'):.2f} cold_vs_native={cpu('cold', 'native'):.2f} "
          f"warm_vs_none={cpu('warm', 'none'):.2f}")
    if BASELINE_WASM is not None:
        print(f"A/B, this build ÷ baseline {BASELINE_WASM.name} (req/s; CPU: baseline's CPU µs/req ÷ this build's, "
              f">1 = this build is faster): warm {ratio(by_key['warm'], by_key['base_warm']):.2f} "
              f"(CPU {cpu('warm', 'base_warm'):.2f}) cold {ratio(cold, by_key['base_cold']):.2f} "
              f"(CPU {cpu('cold', 'base_cold'):.2f})")
    module_ratios = ""
    base_cpu = median_of(by_key["none"].load, "cpu_us")
    added = lambda key: median_of(by_key[key].load, "cpu_us") - base_cpu  # noqa: E731
    added_c1 = lambda key: median_of(by_key[key].single, "p50") - median_of(by_key["none"].single, "p50")  # noqa: E731
    if "module_warm" in by_key:
        print(f"dynamic module {NATIVE.name}: {NATIVE.stat().st_size} bytes; CPU ratios "
              f"module_vs_native={cpu('module_warm', 'native_cache'):.2f} "
              f"module_cold_vs_native_cold={cpu('module_cold', 'native'):.2f} "
              f"module_vs_wasm={cpu('module_warm', 'warm'):.2f}")
        if module_memory is not None:
            rss_before, rss_after, sent = module_memory
            print(f"dynamic module memory: Envoy's resident memory {mib(rss_before)} → {mib(rss_after)} while the "
                  f"module verified and cached {sent} fresh tokens ({min(sent, 10000)} cached): "
                  f"+{(rss_after - rss_before) / 1048576:.1f} MiB per 10 000 cached tokens (one worker)")
        module_ratios = (f" ratio_native_module_vs_native={ratio(by_key['module_warm'], by_key['native_cache']):.2f}"
                         f" ratio_native_module_cold_vs_native_cold={ratio(by_key['module_cold'], by_key['native']):.2f}")
        print(f"issue 18 targets: module warm ÷ native (cache) req/s {ratio(by_key['module_warm'], by_key['native_cache']):.2f} "
              f"(goal >= 1.5), added CPU {added('module_warm'):+.1f} vs {added('native_cache'):+.1f} us = "
              f"{added('module_warm') / added('native_cache'):.2f} (goal <= 0.67); module cold ÷ native no cache "
              f"{ratio(by_key['module_cold'], by_key['native']):.2f} (goal >= 2.0); added latency at concurrency 1 "
              f"module {added_c1('module_warm'):+.0f} vs native {added_c1('native_cache'):+.0f} us (goal: no higher)")
    if "floor" in by_key:
        module_ratios += f" ratio_wasm_vs_floor={ratio(by_key['warm'], by_key['floor']):.2f}"
        print(f"proxy-wasm floor: added CPU {added('floor'):+.1f} us; wasm as shipped ÷ floor req/s "
              f"{ratio(by_key['warm'], by_key['floor']):.2f} (goal >= 0.85), CPU {cpu('warm', 'floor'):.2f}")
    for key in ("dpop", "module_dpop"):
        if key in by_key:
            module_ratios += f" added_cpu_{key}_vs_native_cold={added(key) / added('native'):.2f}"
            print(f"issue 19 target, {by_key[key].label}: added CPU {added(key):+.1f} us vs native jwt_authn without "
                  f"cache {added('native'):+.1f} us = {added(key) / added('native'):.2f} (goal <= 1.0); ring of "
                  f"{by_key[key].ring.size} proofs, {by_key[key].ring.used} used")  # type: ignore[union-attr]
    print(f"ratio_warm_vs_native={ratio(by_key['warm'], by_key['native_cache']):.2f} "
          f"ratio_cold_vs_native={ratio(cold, by_key['native']):.2f} "
          f"ratio_warm_vs_none={ratio(by_key['warm'], by_key['none']):.2f}{module_ratios}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
