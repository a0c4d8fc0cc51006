"""Emulated neighbours: a parent and a child node the suite stands up around a candidate.

Each is a real HTTP server on the address the candidate is configured to call. It answers
health, verifies the candidate's ATS chapter 3 signature on every other request (with the
candidate's credential at that neighbour), accepts the candidate's catalog pushes
(``{"accepted": n}``, ATS §8) and records every request for the cascade checks to judge.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from conformance import signing
from conformance.target import Neighbours, NeighbourSpec

# Bounds of what an emulated neighbour accepts, so that a misbehaving candidate cannot exhaust it.
_MAX_BODY = 8 * 1024 * 1024
_MAX_RECORDED = 10_000


@dataclass(frozen=True)
class RecordedRequest:
    """A request the candidate sent to an emulated neighbour, as received."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    status: int
    received_at: float

    @property
    def path(self) -> str:
        """The path of the request target, without the query."""
        return self.target.split("?", 1)[0]

    def json(self) -> Any:
        """The parsed body, or ``None`` when it is not JSON."""
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None


@dataclass
class EmulatedNeighbour:
    """One emulated parent or child node, serving on ``spec.listen`` once started."""

    spec: NeighbourSpec
    requests: list[RecordedRequest] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        """Where the neighbour serves (``http://host:port``)."""
        if self._server is None:
            return self.spec.url
        port = self._server.server_address[1]
        return f"http://{self.spec.host}:{port}"

    def start(self) -> EmulatedNeighbour:
        """Starts serving; raises ``OSError`` when the address is taken."""
        handler = type("Handler", (_Handler,), {"neighbour": self})
        self._server = ThreadingHTTPServer((self.spec.host, self.spec.port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"neighbour-{self.spec.node_id}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving and frees the address."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def recorded(self, path_prefix: str = "") -> list[RecordedRequest]:
        """The requests received so far whose path starts with ``path_prefix``."""
        with self._lock:
            return [r for r in self.requests if r.path.startswith(path_prefix)]

    def record(self, request: RecordedRequest) -> None:
        """Keeps ``request`` (the oldest are dropped beyond a bound)."""
        with self._lock:
            self.requests.append(request)
            del self.requests[:-_MAX_RECORDED]

    def verify(self, method: str, target: str, headers: dict[str, str], body: bytes) -> bool:
        """The request carries the candidate's valid signature at this neighbour (ATS §3)."""
        lower = {k.lower(): v for k, v in headers.items()}
        cred = self.spec.candidate
        method_name = lower.get("x-signature-method", signing.DEFAULT_SIGNATURE_METHOD)
        if lower.get("x-app-id") != cred.app_id or method_name not in signing.SIGNATURE_METHODS:
            return False
        path, _, query = target.partition("?")
        canonical = signing.canonical_string(
            method=method,
            path=path,
            query=query,
            app_id=cred.app_id,
            timestamp=lower.get("x-timestamp", ""),
            nonce=lower.get("x-nonce", ""),
            body=body,
            signature_method=method_name,
        )
        return signing.verify(cred.secret, canonical, lower.get("x-signature", ""), method_name)

    def answer(self, method: str, path: str, body: bytes, verified: bool) -> tuple[int, Any]:
        """The neighbour's ATS answer to a request (status, JSON body)."""
        if path == "/api/v1/health" and method == "GET":
            return 200, {"status": "UP", "time": datetime.now(UTC).isoformat()}
        if not verified:
            return 401, ("UNAUTHENTICATED", "signature verification failed")
        if path == "/api/v1/cascade/catalog" and method == "POST":
            if self.spec.role != "parent":
                return 403, ("FORBIDDEN", "a child receives no catalog pushes")
            try:
                push = json.loads(body.decode("utf-8"))
                entries = push["entries"]
            except (UnicodeDecodeError, ValueError, KeyError, TypeError):
                return 400, ("INVALID_REQUEST", "a push is a JSON object with entries")
            return 200, {"accepted": len(entries) if isinstance(entries, list) else 0}
        return 404, ("NOT_FOUND", "the emulated neighbour holds no such resource")


class _Handler(BaseHTTPRequestHandler):
    neighbour: EmulatedNeighbour
    protocol_version = "HTTP/1.1"
    server_version = "ats-neighbour"
    sys_version = ""

    def _serve(self) -> None:
        if self.neighbour._server is not self.server:
            # A stopped neighbour answers nothing, not even on a connection kept alive from
            # before it stopped (ATS-STAT-02: a child that stops answering).
            self.close_connection = True
            return
        length = self.headers.get("Content-Length", "0")
        size = int(length) if length.isdigit() else 0
        body = self.rfile.read(min(size, _MAX_BODY)) if size else b""
        headers = dict(self.headers.items())
        path = self.path.split("?", 1)[0]
        verified = path != "/api/v1/health" and self.neighbour.verify(
            self.command, self.path, headers, body
        )
        status, payload = self.neighbour.answer(self.command, path, body, verified)
        request_id = self.headers.get("X-Request-Id") or uuid.uuid4().hex
        if isinstance(payload, tuple):
            code, message = payload
            payload = {"code": code, "message": message, "request_id": request_id}
        self.neighbour.record(
            RecordedRequest(self.command, self.path, headers, body, verified, status, time.time())
        )
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status, HTTPStatus(status).phrase)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Request-Id", request_id)
        route = self.headers.get("X-Route")
        if path.startswith("/api/v1/share/"):
            own = self.neighbour.spec.node_id
            self.send_header("X-Route", f"{route},{own}" if route else own)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are recorded, not logged."""


@dataclass
class NeighbourSet:
    """The emulated parent and child of a run (either may be absent)."""

    parent: EmulatedNeighbour | None
    child: EmulatedNeighbour | None

    def all(self) -> list[EmulatedNeighbour]:
        """The neighbours that exist."""
        return [n for n in (self.parent, self.child) if n is not None]

    def stop(self) -> None:
        """Stops every neighbour."""
        for neighbour in self.all():
            neighbour.stop()


def start_neighbours(neighbours: Neighbours) -> NeighbourSet:
    """Starts the emulated neighbours of a target; a taken address raises ``OSError``."""
    started = NeighbourSet(
        parent=EmulatedNeighbour(neighbours.parent) if neighbours.parent else None,
        child=EmulatedNeighbour(neighbours.child) if neighbours.child else None,
    )
    try:
        for neighbour in started.all():
            neighbour.start()
    except OSError:
        started.stop()
        raise
    return started


@contextmanager
def emulated(neighbours: Neighbours) -> Iterator[NeighbourSet]:
    """The emulated neighbours, serving for the duration of the block."""
    started = start_neighbours(neighbours)
    try:
        yield started
    finally:
        started.stop()
