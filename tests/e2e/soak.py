"""`make soak`: a few minutes of mixed traffic through real Envoy (2 workers) running the
built .wasm, on 127.0.0.1 only; not part of `make test`.

Traffic: allowed reads, pinned searches, response-checked reads, introspected opaque
tokens and /metadata, mixed with intended denials (another patient, a type not granted,
no token, expired and forged tokens, a token in the query). Half-way the issuer rotates
its keys (new kids published next to the old ones): the workers fetch and share the new
key set while the traffic goes on.

Checks (exit status 1 when one fails):
- every answer has the status its kind expects (no errors but the intended denials);
- exactly one access-log line with an audit record per request sent (by x-request-id),
  whose decision and reason are the expected ones;
- the new kids are verified after the rotation (the issuer served the JWKS again);
- memory is flat: the `vm.memory_bytes` gauge, sampled about every second, never exceeds
  its value at the end of the warm-up (the first fifth of the run) by more than
  SOAK_MEMORY_SLACK bytes (default 1 MiB);
- the Envoy log has no critical line (a panic) and no VM failure.

Environment: SOAK_SECONDS (default 180), SOAK_THREADS (default 6), SOAK_MEMORY_SLACK.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import requests

from .fault_rig import FaultRig
from .rig import normalise_record


@dataclass(frozen=True)
class Kind:
    name: str
    method: str
    path: str
    token: str  # "patient" | "clinician" | "opaque" | "none" | "expired" | "forged" | "query"
    status: int
    reason: str


KINDS = [
    Kind("read-own", "GET", "/Patient/pat-a", "patient", 200, "allowed"),
    Kind("search-pinned", "GET", "/Observation?patient=pat-a", "patient", 200, "allowed"),
    Kind("read-checked", "GET", "/Observation/obs-1", "patient", 200, "allowed"),
    Kind("clinician-read", "GET", "/Patient/pat-b", "clinician", 200, "allowed"),
    Kind("introspected", "GET", "/Patient/pat-a", "opaque", 200, "allowed"),
    Kind("metadata", "GET", "/metadata", "none", 200, "public_endpoint"),
    Kind("other-patient", "GET", "/Patient/pat-b", "patient", 403, "patient_compartment_violation"),
    Kind("not-granted", "GET", "/MedicationRequest?patient=pat-a", "patient", 403, "insufficient_scope"),
    Kind("clinician-delete", "DELETE", "/Patient/pat-b", "clinician", 403, "insufficient_scope"),
    Kind("no-token", "GET", "/Patient/pat-a", "none", 401, "missing_token"),
    Kind("expired", "GET", "/Patient/pat-a", "expired", 401, "invalid_token"),
    Kind("forged", "GET", "/Patient/pat-a", "forged", 401, "invalid_token"),
    Kind("query-token", "GET", "/Patient/pat-a?access_token=abc", "query", 400, "invalid_request"),
]
POOL = 50  # distinct tokens per profile and key generation: the token cache stays bounded


class Tokens:
    """Pools of tokens per profile; `rotate()` switches them to the issuer's new keys."""

    def __init__(self, rig: FaultRig) -> None:
        self.rig = rig
        self.lock = threading.Lock()
        self.fill()

    def fill(self) -> None:
        iss, aud = self.rig.issuer, self.rig.base()
        now = int(time.time())
        pools = {p: [iss.mint(p, aud=aud) for _ in range(POOL)] for p in ("patient", "clinician")}
        pools["opaque"] = [iss.mint_opaque("patient", aud=aud) for _ in range(POOL)]
        pools["expired"] = [iss.sign(iss.claims("patient", aud=aud, iat=now - 7200, nbf=now - 7200, exp=now - 600))]
        forged = iss.mint("patient", aud=aud)
        pools["forged"] = [forged[:-8] + ("AAAAAAAA" if not forged.endswith("AAAAAAAA") else "BBBBBBBB")]
        with self.lock:
            self.pools = pools

    def pick(self, kind: str) -> str | None:
        if kind in ("none", "query"):
            return None
        with self.lock:
            return random.choice(self.pools[kind])


def gauge(rig: FaultRig) -> int:
    return rig.counter("vm.memory_bytes")


def run(seconds: float, threads: int, slack: int) -> int:
    rig = FaultRig(concurrency=2).start()
    failures: list[str] = []
    sent: dict[str, Kind] = {}
    answers: Counter[str] = Counter()
    lock = threading.Lock()
    stop = threading.Event()
    try:
        tokens = Tokens(rig)
        fetches_before = rig.issuer.jwks_fetches

        def client() -> None:
            session = requests.Session()
            while not stop.is_set():
                kind = random.choice(KINDS)
                rid = "soak-" + uuid.uuid4().hex
                headers = {"x-request-id": rid}
                token = tokens.pick(kind.token)
                if token:
                    headers["authorization"] = f"Bearer {token}"
                try:
                    r = session.request(kind.method, rig.base() + kind.path, headers=headers, timeout=30)
                    status = r.status_code
                except requests.RequestException as e:
                    status = -1
                    with lock:
                        failures.append(f"{kind.name} {rid}: {e}")
                with lock:
                    sent[rid] = kind
                    answers[kind.name] += 1
                    if status != kind.status and status != -1:
                        failures.append(f"{kind.name} {rid}: status {status}, expected {kind.status}: {r.text[:200]}")

        workers = [threading.Thread(target=client, daemon=True) for _ in range(threads)]
        start = time.monotonic()
        for w in workers:
            w.start()
        samples: list[tuple[float, int]] = []
        rotated = False
        while (elapsed := time.monotonic() - start) < seconds:
            samples.append((elapsed, gauge(rig)))
            if not rotated and elapsed >= seconds / 2:
                rig.issuer.rotate(keep_old=True)  # new kids next to the old ones
                tokens.fill()
                rotated = True
                print(f"soak: {elapsed:.0f}s: keys rotated, new kids {rig.issuer.kid('RS256')}", flush=True)
            # The gauge holds the value of the VM that set it last (each sets it every
            # second): sample at random intervals so every worker VM is seen.
            time.sleep(random.uniform(0.4, 1.6))
        stop.set()
        for w in workers:
            w.join(35)
        samples.append((time.monotonic() - start, gauge(rig)))
        total = len(sent)
        print(f"soak: {total} requests in {seconds:.0f}s ({total / seconds:.0f}/s) by {threads} clients: "
              + ", ".join(f"{k} {n}" for k, n in sorted(answers.items())), flush=True)

        # exactly one audit record per request, with the expected decision
        time.sleep(2)  # Envoy flushes the access log every 50 ms
        seen: Counter[str] = Counter()
        for line in rig.access_log.path.read_text(errors="replace").splitlines():
            rec = normalise_record(json.loads(line))
            rid = rec.get("request_id") or ""
            if rid not in sent:
                continue
            seen[rid] += 1
            kind, audit = sent[rid], rec.get("audit")
            if not audit:
                failures.append(f"{kind.name} {rid}: no audit record")
            elif (audit["reason"], audit["status"]) != (kind.reason, kind.status):
                failures.append(f"{kind.name} {rid}: audit {audit['reason']}/{audit['status']}, "
                                f"expected {kind.reason}/{kind.status}")
        missing = [rid for rid in sent if seen[rid] == 0]
        doubled = [rid for rid, n in seen.items() if n > 1]
        print(f"soak: access log: {sum(seen.values())} lines for {total} requests "
              f"({len(missing)} missing, {len(doubled)} more than once)", flush=True)
        failures += [f"no access-log line for {rid}" for rid in missing[:20]]
        failures += [f"{seen[rid]} access-log lines for {rid}" for rid in doubled[:20]]

        # the rotation was picked up (the new kids verified, see the statuses above)
        fetched = rig.issuer.jwks_fetches - fetches_before
        print(f"soak: JWKS served {fetched} times during the run", flush=True)
        if fetched < 1:
            failures.append("the rotated keys were never fetched")

        # memory flat after the warm-up
        warm = [m for t, m in samples if t <= seconds / 5] or [samples[0][1]]
        after = [m for t, m in samples if t > seconds / 5]
        bound = max(warm) + slack
        windows: dict[int, int] = {}
        for t, m in samples:
            windows[int(t // 30) * 30] = max(windows.get(int(t // 30) * 30, 0), m)
        print(f"soak: vm.memory_bytes: warm-up max {max(warm)}, after {min(after, default=0)}..{max(after, default=0)} "
              f"(bound {bound}); max per 30 s: " + ", ".join(f"{t}s {m // 1024} KiB" for t, m in sorted(windows.items())),
              flush=True)
        if any(m > bound for m in after):
            failures.append(f"memory grew past {bound} bytes after the warm-up: {after}")

        log = rig.envoy.log.read_text(errors="replace") if rig.envoy else ""
        bad = [line for line in log.splitlines() if "[critical]" in line or "wasm_fail" in line.lower()]
        failures += [f"envoy log: {line[:200]}" for line in bad[:10]]
    finally:
        stop.set()
        rig.stop()
    for f in failures[:50]:
        print("soak: FAIL " + f, file=sys.stderr)
    print(f"soak: {'FAILED' if failures else 'passed'} ({len(failures)} problems)", flush=True)
    return 1 if failures else 0


def main() -> int:
    return run(float(os.environ.get("SOAK_SECONDS", "180")), int(os.environ.get("SOAK_THREADS", "6")),
               int(os.environ.get("SOAK_MEMORY_SLACK", str(1 << 20))))


if __name__ == "__main__":
    sys.exit(main())
