"""Emulated neighbours: a parent and a child node the suite stands up around a candidate.

Each is a real HTTP server on the address the candidate is configured to call. It answers
health, verifies the candidate's ATS chapter 3 signature on every other request (with the
candidate's credential at that neighbour; its timestamp and nonce fresh per ATS-AUTH-04/05),
reads request bodies framed by ``Content-Length`` or ``Transfer-Encoding: chunked``,
accepts the candidate's catalog pushes (``{"accepted": n}``, ATS §8), answers share queries for
the codes it is told it holds, and records every request — signature masked — for the cascade
checks to judge.

A check changes how a neighbour answers for its own duration only::

    with neighbour.behaving(Behaviour(mode="hang")):
        ...  # the candidate's forwarded queries now get no answer (ATS-CAS-08)
"""

from __future__ import annotations

import io
import json
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from conformance import ats, compare, signing
from conformance.masking import mask_headers
from conformance.target import Neighbours, NeighbourSpec

# Bounds of what an emulated neighbour accepts, so that a misbehaving candidate cannot exhaust it.
_MAX_BODY = 8 * 1024 * 1024
_MAX_RECORDED = 10_000
# A chunked body: its size lines and trailer lines are short, and they are few.
_MAX_LINE = 1024
_MAX_CHUNKS = 65_536
_MAX_TRAILERS = 64
# ATS-AUTH-04/05 hold for the candidate's own requests too (ATS §3): a timestamp more than
# ats.TIMESTAMP_WINDOW_S from the neighbour's clock, or a nonce the candidate used within
# ats.NONCE_MEMORY_S, is refused.
# A hanging neighbour gives up after this long, so that no thread outlives a check for long
# (ATS-CAS-08 bounds the cascade timeout at 10 s and the answer at 12 s).
HANG_S = 15.0
# A looping neighbour waits this long for the candidate's answer to the request it sent back.
_LOOP_TIMEOUT_S = 15.0

MODES = ("normal", "error", "refuse", "hang", "garbage", "loop")


@dataclass(frozen=True)
class Behaviour:
    """How an emulated neighbour answers the candidate.

    ``normal``: pushes accepted, share queries for ``holds`` answered with an empty ATS query
    answer, others 404; ``error``: every signed request answered ``status``/``code`` (with
    ``retry_after`` when given); ``refuse``: the listening socket is closed; ``hang``: no answer
    for ``HANG_S`` seconds, then the connection closes; ``garbage``: 200 with a body that is not
    JSON; ``loop``: a share query is sent back to ``loop_url`` (the candidate) signed with the
    neighbour's credential there and ``X-Route`` holding the candidate, and its answer relayed.
    """

    mode: str = "normal"
    holds: frozenset[str] = frozenset()
    status: int = 500
    code: str = "INTERNAL_ERROR"
    retry_after: str | None = None
    loop_url: str | None = None
    # The CA bundle that verifies ``loop_url`` over HTTPS (the target's ``node.ca_bundle``).
    loop_ca: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown neighbour mode {self.mode!r}; one of {', '.join(MODES)}")


DEFAULT = Behaviour()


@dataclass(frozen=True)
class RecordedRequest:
    """A request the candidate sent to an emulated neighbour, as received (signature masked).

    ``verified``: the signature matches with the candidate's credential; ``stale``: why the
    neighbour refused it nonetheless (ATS-AUTH-04/05: timestamp, nonce), else None.
    """

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    status: int
    received_at: float
    stale: str | None = None

    @property
    def path(self) -> str:
        """The path of the request target, without the query."""
        return self.target.split("?", 1)[0]

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (case-insensitive), or ``None``."""
        lower = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lower), None)

    def json(self) -> Any:
        """The parsed body, or ``None`` when it is not JSON."""
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None


def error_body(behaviour: Behaviour, request_id: str) -> dict[str, Any]:
    """The ATS error body (ATS-API-03) an ``error`` neighbour answers."""
    return {
        "code": behaviour.code,
        "message": f"the emulated neighbour answers {behaviour.status}",
        "request_id": request_id,
    }


def share_answer(resource_code: str) -> dict[str, Any]:
    """An ATS §5 query answer holding no record: what the emulated neighbour answers."""
    return {
        "resource_code": resource_code,
        "items": [],
        "page": 1,
        "size": 20,
        "total": 0,
        "masked": [],
    }


@dataclass
class EmulatedNeighbour:
    """One emulated parent or child node, serving on ``spec.listen`` once started."""

    spec: NeighbourSpec
    requests: list[RecordedRequest] = field(default_factory=list)
    behaviour: Behaviour = DEFAULT
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _scope: threading.RLock = field(default_factory=threading.RLock)
    _stopping: threading.Event = field(default_factory=threading.Event)
    # The candidate's answers (status, error code) to the queries a ``loop`` neighbour sent back.
    loop_answers: list[tuple[int, str | None]] = field(default_factory=list)
    # Why a query could not be sent back at all: the tester's transport, never the candidate's
    # answer (a check reads these as ERROR naming the exception).
    loop_errors: list[str] = field(default_factory=list)
    # The nonces of the candidate's verified requests, by when they were first used, oldest first.
    _nonces: dict[str, float] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Where the neighbour serves (``http://host:port``)."""
        if self._server is None:
            return self.spec.url
        port = self._server.server_address[1]
        return f"{'https' if self.spec.cert else 'http'}://{self.spec.host}:{port}"

    @property
    def serving(self) -> bool:
        """The neighbour accepts connections."""
        return self._server is not None

    def start(self) -> EmulatedNeighbour:
        """Starts serving; raises ``OSError`` when the address is taken."""
        handler = type("Handler", (_Handler,), {"neighbour": self})
        self._stopping.clear()
        self._server = ThreadingHTTPServer((self.spec.host, self.spec.port), handler)
        self._server.daemon_threads = True
        if self.spec.cert and self.spec.key:
            # A candidate wired to https:// reaches its emulated neighbour over TLS 1.2 or newer
            # (ATS-SEC-01 binds the neighbour too). The handshake runs in the request's thread,
            # so a client that never completes it cannot block the accept loop.
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(self.spec.cert, self.spec.key)
            self._server.socket = context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"neighbour-{self.spec.node_id}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving and frees the address; a hanging answer gives up at once."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @contextmanager
    def behaving(self, behaviour: Behaviour) -> Iterator[EmulatedNeighbour]:
        """The neighbour answers as ``behaviour`` says for the block, then as before.

        One check at a time holds a neighbour: a second block waits for the first to end.
        ``refuse`` closes the listening socket for the block and listens again after it.
        """
        with self._scope:
            with self._lock:
                previous, self.behaviour = self.behaviour, behaviour
            was_serving = self.serving
            if behaviour.mode == "refuse" and was_serving:
                self.stop()
            try:
                yield self
            finally:
                if behaviour.mode == "hang":
                    # Answers still hanging give up now rather than after HANG_S.
                    self._stopping.set()
                if behaviour.mode == "refuse" and was_serving:
                    self.start()
                with self._lock:
                    self.behaviour = previous
                self._stopping.clear()

    def current(self) -> Behaviour:
        """The behaviour in force."""
        with self._lock:
            return self.behaviour

    def recorded(self, path_prefix: str = "", since: float = 0.0) -> list[RecordedRequest]:
        """The requests received at or after ``since`` whose path starts with ``path_prefix``."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.path.startswith(path_prefix) and r.received_at >= since
            ]

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

    def staleness(self, headers: dict[str, str], now: float | None = None) -> str | None:
        """Why a verified request is refused all the same (ATS-AUTH-04/05), else None; its
        nonce counts as used from now on, whatever the answer (ATS §3)."""
        lower = {k.lower(): v for k, v in headers.items()}
        now = time.time() if now is None else now
        stamp, nonce = lower.get("x-timestamp", ""), lower.get("x-nonce", "")
        if not ats.pattern("timestamp_ms").fullmatch(stamp):
            return f"X-Timestamp {stamp[:40]!r} is not 13 digits of epoch milliseconds (ATS §3)"
        if not ats.pattern("nonce").fullmatch(nonce):
            return f"X-Nonce {nonce[:80]!r} is not 16 to 64 letters and digits (ATS §3)"
        with self._lock:
            # Oldest first: forget the nonces older than the nonce memory, and the oldest beyond
            # a bound.
            while self._nonces and (
                len(self._nonces) >= _MAX_RECORDED
                or next(iter(self._nonces.values())) < now - ats.NONCE_MEMORY_S
            ):
                del self._nonces[next(iter(self._nonces))]
            first = self._nonces.get(nonce)
            if first is None:
                self._nonces[nonce] = now
        if first is not None:
            return (
                f"X-Nonce {nonce} was already used by the node at this neighbour "
                f"{now - first:.0f} s before (ATS-AUTH-05: refused within {ats.NONCE_MEMORY_S:g} s)"
            )
        skew = int(stamp) / 1000 - now
        if abs(skew) > ats.TIMESTAMP_WINDOW_S:
            return (
                f"X-Timestamp is {skew:+.0f} s from the neighbour's clock (ATS-AUTH-04: "
                f"refused beyond {ats.TIMESTAMP_WINDOW_S:g} s)"
            )
        return None

    def answer(self, method: str, path: str, body: bytes, verified: bool) -> tuple[int, Any]:
        """The neighbour's ATS answer to a request in the normal behaviour (status, JSON body);
        ``verified``: the signature verified and the request is not stale."""
        if path == ats.HEALTH and method == "GET":
            return 200, {"status": "UP", "time": datetime.now(UTC).isoformat()}
        if not verified:
            return 401, ("UNAUTHENTICATED", "signature verification failed")
        if path == ats.CASCADE_PUSH and method == "POST":
            if self.spec.role != "parent":
                return 403, ("FORBIDDEN", "a child receives no catalog pushes")
            try:
                push = json.loads(body.decode("utf-8"))
                entries = push["entries"]
            except (UnicodeDecodeError, ValueError, KeyError, TypeError):
                return 400, ("INVALID_REQUEST", "a push is a JSON object with entries")
            return 200, {"accepted": len(entries) if isinstance(entries, list) else 0}
        code = ats.share_code(path)
        if code is not None and method == "POST" and code in self.current().holds:
            return 200, share_answer(code)
        return 404, ("NOT_FOUND", "the emulated neighbour holds no such resource")

    def send_back(self, request: _Handler, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """The candidate's answer to ``request`` sent back to it (ATS-CAS-07 loop)."""
        behaviour = self.current()
        route = compare.route_ids(request.headers.get("X-Route"))
        hops = request.headers.get("X-Hop-Limit", "8")
        target = request.path
        creds = self.spec.at_candidate
        headers = signing.sign_headers(
            method="POST", target=target, body=body, app_id=creds.app_id, secret=creds.secret
        )
        headers.update(
            {
                "Content-Type": "application/json",
                "X-Route": ",".join([*route, self.spec.node_id]),
                "X-Hop-Limit": str(max(1, int(hops) - 1)) if hops.isdigit() else "7",
                # The origin a child may name lies in its own subtree (ATS §8): its own id.
                "X-Origin-Node": self.spec.node_id,
                "X-Origin-App": request.headers.get("X-Origin-App") or creds.app_id,
            }
        )
        if request.headers.get("X-Request-Id"):
            headers["X-Request-Id"] = request.headers["X-Request-Id"]
        try:
            with requests.Session() as session:
                session.trust_env = False
                answer = session.post(
                    f"{behaviour.loop_url}{target}",
                    data=body,
                    headers=headers,
                    timeout=(3, _LOOP_TIMEOUT_S),
                    verify=behaviour.loop_ca or True,
                )
        except requests.RequestException as exc:
            with self._lock:
                self.loop_errors.append(f"{type(exc).__name__}: {exc}")
            return 502, {}, b'{"code": "UPSTREAM_UNAVAILABLE", "message": "loop", "request_id": ""}'
        try:
            code = answer.json().get("code")
        except (ValueError, AttributeError):
            code = None
        with self._lock:
            self.loop_answers.append((answer.status_code, code if isinstance(code, str) else None))
        relayed = {k: answer.headers[k] for k in ("X-Route", "Retry-After") if k in answer.headers}
        return answer.status_code, relayed, answer.content


class _BodyRefused(Exception):
    """A request body the neighbour does not read: malformed framing or too large."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _read_body(headers: Message, rfile: io.BufferedIOBase) -> bytes:
    """The request body, framed by ``Transfer-Encoding: chunked`` (RFC 9112 §6.3: it wins over
    ``Content-Length``) or by ``Content-Length``, at most ``_MAX_BODY`` bytes."""
    transfer_encoding = headers.get("Transfer-Encoding")
    if transfer_encoding is not None:
        codings = [c.strip().lower() for c in transfer_encoding.split(",")]
        if codings[-1:] != ["chunked"]:
            raise _BodyRefused(
                400, "INVALID_REQUEST", f"Transfer-Encoding {transfer_encoding!r} is not chunked"
            )
        return _read_chunked(rfile)
    length = str(headers.get("Content-Length", "0")).strip()
    size = int(length) if length.isdigit() else 0
    if size > _MAX_BODY:
        raise _BodyRefused(413, "PAYLOAD_TOO_LARGE", f"a body of {size} bytes is too large")
    return rfile.read(size) if size else b""


def _read_chunked(rfile: io.BufferedIOBase) -> bytes:
    """A chunked body: chunks of a hexadecimal size line each, a last chunk of size 0, then
    trailer lines up to an empty line; the sizes, lines and counts bounded."""
    body = bytearray()
    for _ in range(_MAX_CHUNKS):
        line = rfile.readline(_MAX_LINE + 1)
        digits = line.split(b";", 1)[0].strip()
        if len(line) > _MAX_LINE or not line.endswith(b"\n") or not _is_hex(digits):
            raise _BodyRefused(400, "INVALID_REQUEST", f"a malformed chunk size line {line[:40]!r}")
        size = int(digits, 16)
        if size == 0:
            for _ in range(_MAX_TRAILERS):
                trailer = rfile.readline(_MAX_LINE + 1)
                if trailer in (b"\r\n", b"\n"):
                    return bytes(body)
                if not trailer.endswith(b"\n"):
                    break
            raise _BodyRefused(400, "INVALID_REQUEST", "a chunked body without its final line")
        if len(body) + size > _MAX_BODY:
            raise _BodyRefused(413, "PAYLOAD_TOO_LARGE", "a chunked body is too large")
        data = rfile.read(size)
        if len(data) != size or rfile.readline(3) not in (b"\r\n", b"\n"):
            raise _BodyRefused(400, "INVALID_REQUEST", "a chunk shorter than its size")
        body += data
    raise _BodyRefused(413, "PAYLOAD_TOO_LARGE", f"a chunked body of over {_MAX_CHUNKS} chunks")


def _is_hex(digits: bytes) -> bool:
    return 0 < len(digits) <= 16 and all(c in b"0123456789abcdefABCDEF" for c in digits)


class _Handler(BaseHTTPRequestHandler):
    neighbour: EmulatedNeighbour
    protocol_version = "HTTP/1.1"
    server_version = "ats-neighbour"
    sys_version = ""

    def _serve(self) -> None:
        neighbour = self.neighbour
        if neighbour._server is not self.server:
            # A stopped neighbour answers nothing, not even on a connection kept alive from
            # before it stopped (ATS-STAT-02: a child that stops answering).
            self.close_connection = True
            return
        headers = dict(self.headers.items())
        try:
            body = _read_body(self.headers, self.rfile)
        except _BodyRefused as exc:
            # The rest of the body is not read: the connection cannot serve another request.
            self.close_connection = True
            neighbour.record(
                RecordedRequest(
                    self.command,
                    self.path,
                    mask_headers(headers),
                    b"",
                    False,
                    exc.status,
                    time.time(),
                )
            )
            request_id = self.headers.get("X-Request-Id") or uuid.uuid4().hex
            refused = {"code": exc.code, "message": exc.message, "request_id": request_id}
            data = json.dumps(refused).encode("utf-8")
            self._send(exc.status, data, "application/json", {"Connection": "close"})
            return
        path = self.path.split("?", 1)[0]
        health = path == ats.HEALTH
        verified = not health and neighbour.verify(self.command, self.path, headers, body)
        stale = neighbour.staleness(headers) if verified else None
        behaviour = neighbour.current()
        mode = "normal" if health else behaviour.mode
        status = {"hang": 0, "garbage": 200, "error": behaviour.status}.get(mode, 0)
        if mode == "normal" or (mode == "loop" and ats.share_code(path) is None):
            status, payload = neighbour.answer(self.command, path, body, verified and stale is None)
        neighbour.record(
            RecordedRequest(
                self.command,
                self.path,
                mask_headers(headers),
                body,
                verified,
                status,
                time.time(),
                stale,
            )
        )
        if mode == "hang":
            # ATS-CAS-08: no answer until the candidate's cascade timeout has passed.
            neighbour._stopping.wait(HANG_S)
            self.close_connection = True
            return
        if mode == "garbage":
            self._send(200, b"<html>not an ATS answer</html>", "text/html", {})
            return
        if mode == "loop" and ats.share_code(path) is not None:
            status, extra, data = neighbour.send_back(self, body)
            self._send(status, data, "application/json", extra)
            return
        request_id = self.headers.get("X-Request-Id") or uuid.uuid4().hex
        extra = {}
        if mode == "error":
            payload = error_body(behaviour, request_id)
            if behaviour.retry_after is not None:
                extra["Retry-After"] = behaviour.retry_after
        if isinstance(payload, tuple):
            code, message = payload
            payload = {"code": code, "message": message, "request_id": request_id}
        if ats.share_code(path) is not None:
            route = self.headers.get("X-Route")
            own = neighbour.spec.node_id
            extra["X-Route"] = f"{route},{own}" if route else own
        extra["X-Request-Id"] = request_id
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self._send(status, data, "application/json", extra)

    def _send(self, status: int, data: bytes, content_type: str, extra: dict[str, str]) -> None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        try:
            self.send_response(status, phrase)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            # The candidate gave up on this answer (its cascade timeout); nothing to tell it.
            self.close_connection = True

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
    """Starts the neighbours of a target the suite emulates (in live mode only its
    ``emulated_child``); a taken address raises ``OSError``."""
    emulated = neighbours.emulated()
    started = NeighbourSet(
        parent=EmulatedNeighbour(emulated.parent) if emulated.parent else None,
        child=EmulatedNeighbour(emulated.child) if emulated.child else None,
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
