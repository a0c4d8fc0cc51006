"""The emulated neighbours: real loopback servers that verify the candidate's signature, record
what they receive with the signature masked, and answer as the check in force tells them."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from conformance import signing
from conformance.neighbours import (
    HANG_S,
    Behaviour,
    EmulatedNeighbour,
    error_body,
    share_answer,
)
from conformance.target import AppCredential, NeighbourSpec

CANDIDATE = AppCredential("node-330000", "c" * 40)
CODE = "101001/330199"
QUERY = f"/api/v1/share/{CODE}/query"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def child() -> Iterator[EmulatedNeighbour]:
    spec = NeighbourSpec(
        "child", f"127.0.0.1:{_port()}", "330100", AppCredential("node-330100", "d" * 40), CANDIDATE
    )
    neighbour = EmulatedNeighbour(spec).start()
    yield neighbour
    neighbour.stop()


def _post(
    neighbour: EmulatedNeighbour,
    path: str,
    body: object,
    *,
    secret: str = CANDIDATE.secret,
    headers: dict[str, str] | None = None,
    timeout: float = 5,
) -> requests.Response:
    data = json.dumps(body).encode()
    signed = signing.sign_headers(
        method="POST", target=path, body=data, app_id=CANDIDATE.app_id, secret=secret
    )
    sent = {**signed, "Content-Type": "application/json", **(headers or {})}
    return requests.post(f"{neighbour.url}{path}", data=data, headers=sent, timeout=timeout)


def test_a_held_code_is_answered_with_an_ats_query_answer_and_the_route(
    child: EmulatedNeighbour,
) -> None:
    with child.behaving(Behaviour(holds=frozenset({CODE}))):
        answer = _post(child, QUERY, {"page": 1}, headers={"X-Route": "330000"})
    assert answer.status_code == 200
    assert answer.json() == share_answer(CODE)
    assert answer.headers["X-Route"] == "330000,330100"
    record = child.recorded(QUERY)[-1]
    assert record.verified
    assert record.header("X-Signature") == "***"
    assert json.loads(record.body) == {"page": 1}


def test_the_default_behaviour_is_restored_after_the_block(child: EmulatedNeighbour) -> None:
    with child.behaving(Behaviour(holds=frozenset({CODE}))):
        pass
    assert _post(child, QUERY, {}).status_code == 404


def test_a_wrong_signature_is_answered_401_and_recorded_unverified(
    child: EmulatedNeighbour,
) -> None:
    answer = _post(child, QUERY, {}, secret="x" * 40)
    assert answer.status_code == 401
    assert answer.json()["code"] == "UNAUTHENTICATED"
    assert child.recorded(QUERY)[-1].verified is False


def test_an_error_behaviour_answers_the_ats_error_with_retry_after(
    child: EmulatedNeighbour,
) -> None:
    limited = Behaviour(mode="error", status=429, code="RATE_LIMITED", retry_after="7")
    with child.behaving(limited):
        answer = _post(child, QUERY, {}, headers={"X-Request-Id": "abcdef123456"})
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "7"
    assert answer.json() == error_body(limited, "abcdef123456")


def test_garbage_is_not_json(child: EmulatedNeighbour) -> None:
    with child.behaving(Behaviour(mode="garbage")):
        answer = _post(child, QUERY, {})
    assert answer.status_code == 200
    with pytest.raises(requests.JSONDecodeError):
        answer.json()


def test_refuse_closes_the_listening_socket_until_the_block_ends(
    child: EmulatedNeighbour,
) -> None:
    with child.behaving(Behaviour(mode="refuse")), pytest.raises(requests.ConnectionError):
        _post(child, QUERY, {})
    assert requests.get(f"{child.url}/api/v1/health", timeout=5).status_code == 200


def test_a_hanging_answer_gives_up_when_the_block_ends(child: EmulatedNeighbour) -> None:
    outcome: list[BaseException | requests.Response] = []

    def call() -> None:
        try:
            outcome.append(_post(child, QUERY, {}, timeout=HANG_S + 5))
        except requests.RequestException as exc:
            outcome.append(exc)

    started = time.monotonic()
    with child.behaving(Behaviour(mode="hang")):
        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(1)
        assert not outcome
    caller.join(timeout=10)
    assert isinstance(outcome[0], requests.ConnectionError)
    assert time.monotonic() - started < HANG_S


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown neighbour mode"):
        Behaviour(mode="sulk")


def test_the_parent_accepts_pushes_with_the_count(child: EmulatedNeighbour) -> None:
    spec = NeighbourSpec(
        "parent",
        f"127.0.0.1:{_port()}",
        "100000",
        AppCredential("node-100000", "e" * 40),
        CANDIDATE,
    )
    parent = EmulatedNeighbour(spec).start()
    try:
        push = {
            "source_node_id": "330000",
            "seq": 1,
            "full": True,
            "entries": [{}, {}],
            "deleted": [],
        }
        answer = _post(parent, "/api/v1/cascade/catalog", push)
    finally:
        parent.stop()
    assert answer.status_code == 200
    assert answer.json() == {"accepted": 2}
    assert _post(child, "/api/v1/cascade/catalog", push).status_code == 403
