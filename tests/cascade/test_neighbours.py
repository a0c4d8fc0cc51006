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
from support.nodes import free_port

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


@pytest.fixture
def child() -> Iterator[EmulatedNeighbour]:
    spec = NeighbourSpec(
        "child",
        f"127.0.0.1:{free_port()}",
        "330100",
        AppCredential("node-330100", "d" * 40),
        CANDIDATE,
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
        f"127.0.0.1:{free_port()}",
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


def _chunked(
    neighbour: EmulatedNeighbour, path: str, framed: bytes, headers: dict[str, str]
) -> bytes:
    """The raw answer to a POST whose body is sent as ``framed`` chunked bytes (RFC 9112 §7.1)."""
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {neighbour.spec.listen}\r\n"
        f"Transfer-Encoding: chunked\r\nConnection: close\r\n{head}\r\n"
    ).encode() + framed
    with socket.create_connection((neighbour.spec.host, neighbour.spec.port), 5) as s:
        s.sendall(request)
        s.settimeout(5)
        answer = b""
        for _ in range(1000):
            data = s.recv(65536)
            if not data:
                break
            answer += data
    return answer


def _signed(body: bytes, **kwargs: str) -> dict[str, str]:
    return signing.sign_headers(
        method="POST", target=QUERY, body=body, app_id=CANDIDATE.app_id, secret=CANDIDATE.secret,
        **kwargs,
    )  # fmt: skip


def test_a_chunked_signed_query_is_read_whole_and_verified(child: EmulatedNeighbour) -> None:
    # ATS-CAS-04/09: a candidate may forward with Transfer-Encoding: chunked; the signature is
    # over the body's bytes, however framed.
    body = json.dumps({"page": 1, "size": 5}).encode()
    framed = (
        b"".join([b"5;ext=1\r\n", body[:5], b"\r\n", b"%x\r\n" % len(body[5:]), body[5:], b"\r\n"])
        + b"0\r\nX-Trailer: t\r\n\r\n"
    )
    with child.behaving(Behaviour(holds=frozenset({CODE}))):
        answer = _chunked(child, QUERY, framed, _signed(body))
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    record = child.recorded(QUERY)[-1]
    assert record.verified
    assert record.stale is None
    assert record.body == body


def test_a_chunked_request_by_a_http_client_is_read(child: EmulatedNeighbour) -> None:
    body = json.dumps({"page": 1}).encode()
    with child.behaving(Behaviour(holds=frozenset({CODE}))):
        answer = requests.post(
            f"{child.url}{QUERY}",
            data=iter([body[:3], body[3:]]),
            headers={**_signed(body), "Content-Type": "application/json"},
            timeout=5,
        )
    assert answer.status_code == 200
    assert child.recorded(QUERY)[-1].header("Transfer-Encoding") == "chunked"
    assert child.recorded(QUERY)[-1].verified


@pytest.mark.parametrize(
    ("framed", "status"),
    [
        pytest.param(b"zz\r\nabc\r\n0\r\n\r\n", b"400", id="a chunk size that is not hex is 400"),
        pytest.param(b"5\r\nab\r\n0\r\n\r\n", b"400", id="a chunk shorter than its size is 400"),
        pytest.param(b"900000\r\n", b"413", id="a chunk over the body bound is 413"),
    ],
)
def test_a_malformed_or_oversized_chunked_body_is_refused(
    child: EmulatedNeighbour, framed: bytes, status: bytes
) -> None:
    answer = _chunked(child, QUERY, framed, _signed(b"{}"))
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:200]
    assert child.recorded(QUERY)[-1].verified is False


@pytest.mark.parametrize(
    ("offset_s", "accepted"),
    [
        pytest.param(-301, False, id="a timestamp 301 s old is stale"),
        pytest.param(301, False, id="a timestamp 301 s ahead is stale"),
        pytest.param(-270, True, id="a timestamp 270 s old is accepted"),
    ],
)
def test_the_timestamp_window_is_300_s(
    child: EmulatedNeighbour, offset_s: int, accepted: bool
) -> None:
    stamp = str(int((time.time() + offset_s) * 1000))
    body = b"{}"
    with child.behaving(Behaviour(holds=frozenset({CODE}))):
        answer = requests.post(
            f"{child.url}{QUERY}", data=body, headers=_signed(body, timestamp=stamp), timeout=5
        )
    record = child.recorded(QUERY)[-1]
    assert record.verified
    assert answer.status_code == (200 if accepted else 401)
    assert (record.stale is None) is accepted
    if not accepted:
        assert "ATS-AUTH-04" in str(record.stale)


def test_a_reused_nonce_is_refused(child: EmulatedNeighbour) -> None:
    nonce = signing.new_nonce()
    body = b"{}"
    with child.behaving(Behaviour(holds=frozenset({CODE}))):
        statuses = [
            requests.post(
                f"{child.url}{QUERY}", data=body, headers=_signed(body, nonce=nonce), timeout=5
            ).status_code
            for _ in range(2)
        ]
    assert statuses == [200, 401]
    first, second = child.recorded(QUERY)[-2:]
    assert first.stale is None
    assert "ATS-AUTH-05" in str(second.stale)
    assert nonce in str(second.stale)
