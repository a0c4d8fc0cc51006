"""ATS-API-04 judges the content of Allow: every method served, nothing refused, in any spelling.

A purpose-built node on loopback serves the ATS paths the check probes and answers every other
method 405 with an Allow header in a chosen style; the check passes on each conformant style
and fails on each that leaves out a served method or lists one the node refuses.
"""

from __future__ import annotations

import http.server
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.stub import ROLES, stub_context

from conformance.checks import CheckContext, Finding, registry

CODE = "101001/000001"
SERVED = {
    "/api/v1/health": ["GET"],
    "/api/v1/node": ["GET"],
    "/api/v1/catalog/resources": ["GET"],
    "/api/v1/stats": ["GET"],
    f"/api/v1/share/{CODE}/query": ["POST"],
    "/api/v1/audit/events": ["GET"],
    "/api/v1/subscriptions": ["GET", "POST"],
}

# A style is (serves HEAD where GET is, the Allow value for the methods served).
Style = tuple[bool, Callable[[list[str]], str]]


def _plain(methods: list[str]) -> str:
    return ", ".join(methods)


CONFORMANT: dict[str, Style] = {
    "plain, HEAD answered 405 and absent": (False, _plain),
    "reversed, no spaces": (False, lambda m: ",".join(reversed(m))),
    "lower case, odd whitespace, empty elements": (False, lambda m: " ,  ".join(m).lower() + ","),
    "HEAD served and listed": (True, lambda m: _plain([*m, "HEAD"] if "GET" in m else m)),
    "HEAD served and not listed": (True, _plain),
}
NONCONFORMANT: dict[str, tuple[Style, str]] = {
    "one route's methods only": (
        (False, lambda m: m[-1]),
        "which leaves out GET — served on /api/v1/subscriptions",
    ),
    "HEAD listed though refused": (
        (False, lambda m: _plain([*m, "HEAD"])),
        "which lists HEAD, but HEAD on /api/v1/health answers 405",
    ),
    "a refused method listed": ((False, lambda m: _plain([*m, "PUT"])), "which lists PUT"),
}


def _handler(style: Style) -> type[http.server.BaseHTTPRequestHandler]:
    serves_head, allow = style

    class Node(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, status: int, body: dict[str, object] | None, **headers: str) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Request-Id", "allow-test-0001")
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _error(self, status: int, code: str, **headers: str) -> None:
            body = {"code": code, "message": code.lower(), "request_id": "allow-test-0001"}
            self._send(status, body, **headers)

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            path = self.path.partition("?")[0]
            served = SERVED.get(path)
            if served is None:
                self._error(404, "NOT_FOUND")
            elif self.command in served or (
                serves_head and self.command == "HEAD" and "GET" in served
            ):
                if path == "/api/v1/health" or "X-Signature" in self.headers:
                    self._send(200, {"status": "UP"})
                else:
                    self._error(401, "UNAUTHENTICATED")
            else:
                self._error(405, "METHOD_NOT_ALLOWED", Allow=allow(served))

        def __getattr__(self, name: str) -> Callable[[], None]:
            # Every method, extension methods included, reaches the same dispatcher.
            if name.startswith("do_"):
                return self._answer
            raise AttributeError(name)

    return Node


@pytest.fixture
def api_04(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[CheckContext]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(request.param))
    server.daemon_threads = True
    with stub_context(server, tmp_path, "ATS-API-04", dict.fromkeys(ROLES, CODE)) as ctx:
        yield ctx


@pytest.mark.timeout(60)
@pytest.mark.parametrize("api_04", CONFORMANT.values(), ids=CONFORMANT.keys(), indirect=True)
def test_every_conformant_allow_passes(api_04: CheckContext) -> None:
    registry()["ATS-API-04"].function(api_04)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("api_04", "finding"),
    [(style, finding) for style, finding in NONCONFORMANT.values()],
    ids=NONCONFORMANT.keys(),
    indirect=["api_04"],
)
def test_an_allow_that_breaks_the_clause_is_a_finding(api_04: CheckContext, finding: str) -> None:
    with pytest.raises(Finding, match=finding):
        registry()["ATS-API-04"].function(api_04)
