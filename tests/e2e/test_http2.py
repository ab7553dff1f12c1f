"""HTTP/2 request trailers through real Envoy (h2c with prior knowledge).

A request decided on its body (here a transaction Bundle and a create) must not reach the FHIR
server when the client ends it with trailers: proxy-wasm's default for the trailers callback is
to continue, which would release held headers and the buffered body undecided. The filter
refuses such requests (400 `invalid_request`, "send the request without trailers") while it has
not decided. The same request without trailers, over the same client, is allowed: the control
that shows the client works and the test can fail.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from dataclasses import dataclass

import h2.config
import h2.connection
import h2.events
import pytest

from .test_e2e import WRITER, obs_for, txn_creating
from .tokens import make_token


@dataclass
class H2Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def h2_post(port: int, path: str, headers: list[tuple[str, str]], body: bytes,
            trailers: list[tuple[str, str]] | None, timeout: float = 10) -> H2Answer:
    """One POST on a fresh h2c connection: headers, the body in one DATA frame, then the
    trailers (a HEADERS frame ending the stream) when given."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(":method", "POST"), (":path", path), (":scheme", "http"),
                            (":authority", f"127.0.0.1:{port}")] + headers)
    conn.send_data(sid, body, end_stream=not trailers)
    if trailers:
        conn.send_headers(sid, trailers, end_stream=True)
    sock.sendall(conn.data_to_send())
    answer = H2Answer(0, {}, b"")
    ended = False
    try:
        while not ended:
            chunk = sock.recv(65535)
            if not chunk:
                break
            for ev in conn.receive_data(chunk):
                if getattr(ev, "stream_id", None) != sid:
                    continue
                if isinstance(ev, h2.events.ResponseReceived):
                    answer.headers = {str(k): str(v) for k, v in ev.headers}
                    answer.status = int(answer.headers.get(":status", "0"))
                elif isinstance(ev, h2.events.DataReceived):
                    answer.body += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, sid)
                elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                    ended = True
            sock.sendall(conn.data_to_send())
    finally:
        sock.close()
    return answer


# (listener, path, body): held headers (recorder: upstream.hold_headers_for_body with Envoy's
# allow_on_headers_stop_iteration) and released headers (rotation: Envoy's default).
BODY_DECIDED = [
    ("recorder", "/fhir", txn_creating("pat-a")),
    ("recorder", "/fhir/Observation", obs_for("pat-a")),
    ("rotation", "/fhir/Observation", obs_for("pat-a")),
]


@pytest.mark.parametrize("listener_name,path,body", BODY_DECIDED,
                         ids=["held-transaction", "held-create", "released-create"])
@pytest.mark.parametrize("with_trailers", [True, False], ids=["trailers", "no-trailers"])
def test_request_trailers_on_a_body_decision_are_refused(rig, listener_name, path, body, with_trailers):
    token = make_token(rig, WRITER, listener_name)
    rid = "e2e-h2-" + uuid.uuid4().hex
    headers = [("authorization", f"Bearer {token}"), ("content-type", "application/fhir+json"),
               ("x-request-id", rid)]
    trailers = [("x-checksum", "abc")] if with_trailers else None
    answer = h2_post(rig.ports[listener_name], path, headers, json.dumps(body).encode(), trailers)
    rec = rig.access_log.wait_for(rid)
    if not with_trailers:
        assert answer.status in (200, 201), answer
        assert rec["audit"]["decision"] == "allow", rec
        assert rig.recorder.find(rid) is not None, "the allowed request reached the upstream whole"
        return
    assert answer.status == 400, answer
    assert answer.headers.get("content-type", "").startswith("application/fhir+json"), answer.headers
    outcome = json.loads(answer.body)
    assert outcome["resourceType"] == "OperationOutcome", outcome
    assert "without trailers" in outcome["issue"][0]["diagnostics"], outcome
    assert rec["audit"]["decision"] == "deny" and rec["audit"]["reason"] == "invalid_request", rec
    assert rec["response_code"] == 400, rec
    time.sleep(0.3)
    assert rig.recorder.find(rid) is None, "the upstream never gets the body of a refused request"
    if listener_name == "recorder":
        assert not rig.recorder.arrived(rid), "held headers never go upstream"
