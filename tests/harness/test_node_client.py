"""NodeClient against real loopback servers: signing, bounds, evidence, bad answers."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness_servers import (
    closed_port,
    dripping_port,
    http_answer,
    json_answer,
    serve,
    silent_port,
)

from conformance.client import NodeClient, NodeUnreachable, Pacer
from conformance.neighbours import EmulatedNeighbour
from conformance.outcomes import Inconclusive
from conformance.target import AppCredential, NeighbourSpec, load_target

APP = AppCredential("node-330000", "s" * 48)


@pytest.fixture
def verifier() -> Iterator[EmulatedNeighbour]:
    """A real server that checks ATS §3 signatures made with APP."""
    spec = NeighbourSpec("parent", "127.0.0.1:0", "100000", AppCredential("x", "x" * 40), APP)
    neighbour = EmulatedNeighbour(spec).start()
    yield neighbour
    neighbour.stop()


def client_for(write_target: Callable[..., Path], base_url: str) -> NodeClient:
    return NodeClient(load_target(write_target(base_url)), pacer=Pacer(1000))


def test_signed_requests_verify_at_the_server(
    write_target: Callable[..., Path], verifier: EmulatedNeighbour
) -> None:
    client = client_for(write_target, verifier.url)
    ex = client.post("/api/v1/cascade/catalog", app=APP, json={"entries": [{}, {}], "名": "值"})
    assert (ex.status, ex.json()) == (200, {"accepted": 2})
    ex = client.get(
        "/api/v1/catalog/resources",
        app=APP,
        params=[("page", "1"), ("page", "2"), ("keyword", "a+b 人")],
        signature_method="HMAC-SHA256",
    )
    assert ex.status == 404
    assert "page=1&page=2&keyword=a%2Bb%20%E4%BA%BA" in ex.target
    recorded = verifier.recorded("/api/v1/")
    assert recorded
    assert all(r.verified for r in recorded)


def test_a_wrong_credential_is_refused_by_the_server(
    write_target: Callable[..., Path], verifier: EmulatedNeighbour
) -> None:
    client = client_for(write_target, verifier.url)
    ex = client.post("/api/v1/cascade/catalog", app="consumer", json={"entries": []})
    assert (ex.status, ex.error_code) == (401, "UNAUTHENTICATED")
    assert ex.summary() == "POST /api/v1/cascade/catalog → 401 UNAUTHENTICATED"


def test_the_gateway_prefix_is_sent_and_signed(write_target: Callable[..., Path]) -> None:
    with serve(lambda _: json_answer(200, {})) as (url, received):
        client = client_for(write_target, url + "/gw")
        client.get("/api/v1/node", app="consumer")
        headers = client.signed_headers("consumer", "GET", "/api/v1/node")
        client.raw("GET", "/api/v1/node", headers=headers)
    assert [r.split(b"\r\n", 1)[0] for r in received] == [b"GET /gw/api/v1/node HTTP/1.1"] * 2


def test_raw_sends_a_malformed_content_length_as_given(write_target: Callable[..., Path]) -> None:
    with serve(lambda _: json_answer(400, {"code": "INVALID_REQUEST"})) as (url, received):
        client = client_for(write_target, url)
        ex = client.raw("POST", "/api/v1/node", headers={"Content-Length": "12abc"}, body=b"{}")
    assert b"\r\nContent-Length: 12abc\r\n" in received[0]
    assert (ex.status, ex.error_code) == (400, "INVALID_REQUEST")


def test_a_redirect_is_an_answer_not_a_hop(write_target: Callable[..., Path]) -> None:
    with (
        serve(lambda _: json_answer(200, {"status": "UP"})) as (elsewhere, hops),
        serve(lambda _: http_answer(302, b"", Location=f"{elsewhere}/api/v1/health")) as (url, _),
    ):
        ex = client_for(write_target, url).get("/api/v1/health", app=None)
    assert ex.status == 302
    assert ex.headers["location"].startswith(elsewhere)
    assert hops == []


def test_an_html_answer_is_inconclusive_json(write_target: Callable[..., Path]) -> None:
    with serve(lambda _: http_answer(200, b"<html>hi</html>", "text/html")) as (url, _):
        ex = client_for(write_target, url).get("/api/v1/health", app=None)
    with pytest.raises(Inconclusive, match="the body is not JSON"):
        ex.json()
    assert ex.error_code is None


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda _: b"garbage that is no HTTP\r\n\r\n", "not an HTTP answer"),
        (lambda _: b"", "closed the connection"),
        (lambda _: http_answer(200, b"x" * (10 * 1024 * 1024)), "answer larger than"),
    ],
    ids=["garbage", "a closed connection", "a 10 MB body"],
)
def test_unusable_answers_make_the_node_unreachable(
    write_target: Callable[..., Path], answer: Callable[[bytes], bytes], message: str
) -> None:
    with serve(answer) as (url, _):
        client = client_for(write_target, url)
        with pytest.raises(NodeUnreachable, match=message):
            client.get("/api/v1/health", app=None)
        with pytest.raises(NodeUnreachable, match=message):
            client.raw("GET", "/api/v1/health")


def test_an_oversize_body_is_cut_when_transport_errors_are_allowed(
    write_target: Callable[..., Path],
) -> None:
    with serve(lambda _: http_answer(200, b"x" * (10 * 1024 * 1024))) as (url, _):
        ex = client_for(write_target, url).get(
            "/api/v1/health", app=None, allow_transport_error=True
        )
    assert ex.truncated
    assert len(ex.body) == 4 * 1024 * 1024


def test_a_silent_port_times_out_within_the_bound(write_target: Callable[..., Path]) -> None:
    with silent_port() as url:
        client = client_for(write_target, url)
        started = time.monotonic()
        with pytest.raises(NodeUnreachable, match="no complete answer within 1 s"):
            client.get("/api/v1/node", app="consumer")
        with pytest.raises(NodeUnreachable, match="no complete answer within 1 s"):
            client.raw("GET", "/api/v1/node")
        assert time.monotonic() - started < 4


def test_a_dripping_answer_is_cut_at_the_deadline_on_every_transport(
    write_target: Callable[..., Path],
) -> None:
    """A byte every 50 ms never trips the 1 s read timeout; the deadline of connect + read
    time bounds the whole answer of the pooled, the raw and the burst transport alike."""
    with dripping_port(interval_s=0.05) as url:
        client = client_for(write_target, url)
        for send in (
            lambda: client.get("/api/v1/node", app=None),
            lambda: client.raw("GET", "/api/v1/node"),
        ):
            started = time.monotonic()
            with pytest.raises(NodeUnreachable, match="connection and read time together"):
                send()
            assert time.monotonic() - started < 3.5
        started = time.monotonic()
        assert client.burst("consumer", "/api/v1/node", 4, connections=2) == []
        assert time.monotonic() - started < 4.5


def test_a_refused_connection_and_then_a_pause(write_target: Callable[..., Path]) -> None:
    client = client_for(write_target, closed_port())
    for _ in range(3):
        with pytest.raises(NodeUnreachable, match="connection refused"):
            client.get("/api/v1/health", app=None)
    with pytest.raises(NodeUnreachable, match="not tried again yet"):
        client.get("/api/v1/health", app=None)
    ex = client.get("/api/v1/health", app=None, allow_transport_error=True)
    assert ex.status is None
    assert ex.error == "connection refused"


def test_evidence_masks_signatures_and_secrets(
    write_target: Callable[..., Path], verifier: EmulatedNeighbour
) -> None:
    client = client_for(write_target, verifier.url)
    secret = client.target.apps["consumer"].secret
    client.post("/api/v1/cascade/catalog", app="consumer", data=f"{secret}{'z' * 9000}".encode())
    client.evidence.note(f"the secret {secret} leaked into a note")
    entry, note = client.evidence.entries
    text = json.dumps(client.evidence.entries)
    assert secret not in text
    assert entry["request_headers"]["X-Signature"] == "***"
    assert entry["request_body_size"] == 9040
    assert len(entry["request_body"]) < 4200
    assert note == {"note": "the secret *** leaked into a note"}


def test_pacing_keeps_an_app_under_half_the_limit() -> None:
    pacer = Pacer(20)  # the suite may send 10 per second per app
    started = time.monotonic()
    for _ in range(12):
        pacer.wait("a")
    paced = time.monotonic() - started
    started = time.monotonic()
    pacer.wait("b")
    assert paced >= 1.0
    assert time.monotonic() - started < 0.05


def test_pacing_reads_the_node_rate_limit(write_target: Callable[..., Path]) -> None:
    with serve(lambda _: json_answer(200, {"rate_limit_per_app": 40})) as (url, _):
        client = NodeClient(load_target(write_target(url)))
        client.get("/api/v1/node", app="consumer")
    assert client.pacer.rate_limit == 40
