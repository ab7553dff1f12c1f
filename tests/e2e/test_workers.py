"""State of the filter across Envoy's worker threads (`--concurrency 2`), on both artifacts:
the verified-token cache. The native module keeps one cache for the process, shared by its
workers: a token verified once is a cache hit on every other worker (`token_cache.miss` once,
then `token_cache.hit`). A wasm VM is one worker's: each worker verifies the token once
(one miss per worker that served it). Which worker serves a request is Envoy's choice (new
connections spread over the workers): the per-worker listener counters say which did.
Both workers serve a request before the counted ones, so each has its key set: a worker
that loads the shared key set during a request counts that request's fresh verification
as a hit (the shell's token phase verifies once to end the fetch it no longer makes, then
again)."""

from __future__ import annotations

import re

import pytest
import requests

from .rig import Rig, built_artifact

REQUESTS = 24


@pytest.fixture(scope="module", params=["wasm", "native"])
def workers_rig(request):
    artifact = request.param
    built_artifact(artifact)
    rig = Rig(artifact=artifact, upstream="recorder", concurrency=2).start()
    try:
        yield rig
    finally:
        rig.stop()


def counters(rig: Rig) -> dict[str, int]:
    text = requests.get(f"{rig.envoy.admin_url}/stats", params={"usedonly": ""}, timeout=5).text
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\S+): (\d+)$", text, re.M)}


def worker_connections(stats: dict[str, int], port: int) -> dict[str, int]:
    """Connections each worker accepted on the listener of `port` (Envoy's per-handler stats)."""
    pattern = re.compile(rf"^listener\.127\.0\.0\.1_{port}\.(worker_\d+)\.downstream_cx_total$")
    return {m.group(1): v for k, v in stats.items() if (m := pattern.match(k))}


def get_on_new_connections(rig: Rig, token: str, n: int) -> None:
    for i in range(n):
        r = rig.request("GET", "/Patient/pat-a", token=token, listener="recorder",
                        headers={"connection": "close"}, wait_log=False)
        assert r.status == 200, (i, r.status, r.body[:300])


def warm_both_workers(rig: Rig) -> None:
    """Until each worker has verified a token of its own (so has its key set)."""
    port = rig.ports["recorder"]
    token = rig.issuer.mint("patient", aud=rig.base("recorder"))
    start = worker_connections(counters(rig), port)
    for _ in range(40):
        get_on_new_connections(rig, token, 1)
        served = {w: n - start.get(w, 0) for w, n in worker_connections(counters(rig), port).items()}
        if len([n for n in served.values() if n > 0]) == 2:
            return
    pytest.fail(f"Envoy never gave a connection to both workers: {served}")


def test_a_token_verified_on_one_worker_is_a_cache_hit_on_the_other(workers_rig):
    rig = workers_rig
    prefix = "wasmcustom.fhir_smart_authz.token_cache."
    warm_both_workers(rig)
    token = rig.issuer.mint("patient", aud=rig.base("recorder"))
    before = counters(rig)
    get_on_new_connections(rig, token, REQUESTS)
    after = counters(rig)
    port = rig.ports["recorder"]
    served = {w: n - worker_connections(before, port).get(w, 0)
              for w, n in worker_connections(after, port).items()}
    workers = [w for w, n in served.items() if n > 0]
    assert len(workers) == 2, f"both workers must serve some of the requests: {served}"
    misses = after.get(prefix + "miss", 0) - before.get(prefix + "miss", 0)
    hits = after.get(prefix + "hit", 0) - before.get(prefix + "hit", 0)
    assert misses + hits == REQUESTS, (misses, hits)
    # Natively one verification for the process; in wasm one per worker VM.
    assert misses == (1 if rig.artifact == "native" else len(workers)), (rig.artifact, misses, served)
