"""Choices ATS leaves to a node are accepted: the checks judge by the standard, not by one node."""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from requests.structures import CaseInsensitiveDict

from conformance.checks import CheckContext, Finding, RunState, registry
from conformance.checks.api import _content_type_problem, _judge_walk
from conformance.client import EvidenceLog, Exchange, NodeClient
from conformance.profile import load_profile
from conformance.target import load_target

LIMIT = 1_048_576


def _answer(status: int, reason: str, body: dict[str, object], close: bool) -> bytes:
    data = json.dumps(body).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\nX-Request-Id: edge-0000001\r\n"
        + ("Connection: close\r\n" if close else "")
        + "\r\n"
    )
    return head.encode() + data


class _EarlyRefusal(socketserver.StreamRequestHandler):
    """Answers an oversized body with 413 after its headers and drops the connection unread."""

    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            head += chunk
        header_block, _, rest = head.partition(b"\r\n\r\n")
        lines = header_block.decode("latin-1").split("\r\n")
        fields = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
        length = int(fields.get("content-length", "0"))
        if length > LIMIT:
            # ATS-API-06: refused before authentication; the node may close the connection.
            error = {"code": "PAYLOAD_TOO_LARGE", "message": "too large"}
            self.request.sendall(
                _answer(413, "Payload Too Large", {**error, "request_id": "edge-0000001"}, True)
            )
            self.request.shutdown(socket.SHUT_RDWR)
            return
        while len(rest) < length:
            chunk = self.request.recv(65536)
            if not chunk:
                return
            rest += chunk
        body: dict[str, object] = {"rate_limit_per_app": 1000, "items": []}
        self.request.sendall(_answer(200, "OK", body, True))


@pytest.fixture
def early_refusal(tmp_path: Path) -> Iterator[CheckContext]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _EarlyRefusal)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    secret = "s" * 40
    target_file = tmp_path / "target.yaml"
    target_file.write_text(
        yaml.safe_dump(
            {
                "node": {
                    "base_url": f"http://127.0.0.1:{server.server_address[1]}",
                    "level": "provincial",
                    "node_id": "330000",
                    "parent_id": "100000",
                },
                "apps": {
                    name: {"app_id": name.replace("_", "-"), "secret": secret}
                    for name in ("consumer", "consumer_b", "admin")
                },
                "resources": {
                    "unconditional": "101001/000001",
                    "conditional": "101001/000002",
                    "not_shared": "101001/000003",
                    "population": "101001/000004",
                },
                "lab": True,
            }
        ),
        "utf-8",
    )
    target = load_target(target_file)
    evidence = EvidenceLog(target.secrets())
    client = NodeClient(target, evidence)
    try:
        yield CheckContext(
            clause=load_profile("provincial").clause("ATS-API-06"),
            target=target,
            client=client,
            run=RunState(),
            evidence=evidence,
        )
    finally:
        client.close()
        server.shutdown()
        server.server_close()


@pytest.mark.timeout(60)
def test_a_connection_dropped_after_a_413_is_conformant(early_refusal: CheckContext) -> None:
    registry()["ATS-API-06"].function(early_refusal)


@pytest.mark.parametrize(
    "value",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON; charset=UTF-8",
        'application/json;charset="utf-8"',
    ],
)
def test_json_content_types_with_or_without_charset_are_conformant(value: str) -> None:
    assert _content_type_problem(_with_content_type(value), "application/json", ["utf-8"]) is None


@pytest.mark.parametrize(
    "value",
    [
        "text/plain; charset=utf-8",
        "application/json; charset=gbk",
        "application/problem+json",
        "application/json; version=1",
    ],
)
def test_other_content_types_are_findings(value: str) -> None:
    assert _content_type_problem(_with_content_type(value), "application/json", ["utf-8"])


def _with_content_type(value: str) -> Exchange:
    return Exchange(
        "GET", "/api/v1/node", {}, b"", 200, CaseInsensitiveDict({"Content-Type": value}), b"{}", 0
    )


def test_a_walk_in_order_with_each_entry_once_passes() -> None:
    _judge_walk(["101001/000001", "101001/000002", "201001/000001"], 3)


@pytest.mark.parametrize(
    ("seen", "total", "message"),
    [
        (["101001/000001", "101001/000001"], 2, "more than once"),
        (["101001/000002", "101001/000001"], 2, "expected ascending"),
        (["101001/000001"], 2, "expected total 2"),
    ],
)
def test_a_broken_walk_is_a_finding(seen: list[str], total: int, message: str) -> None:
    with pytest.raises(Finding, match=message):
        _judge_walk(seen, total)
