"""NodeClient: the one HTTP client of the harness.

It owns the base URL, signing (ATS chapter 3), timeouts, the response size cap, TLS and the
evidence log. Redirects are never followed: a redirect is an answer to judge, not a hop to
another host. Every exchange is appended to the evidence of the clause being checked, with app
secrets and ``X-Signature`` values removed. The suite's own traffic is paced per app so that it
never exceeds half of the node's ``rate_limit_per_app`` (ATS-SEC-03), unless a call passes
``pace=False`` (the rate-limit check itself).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError

from conformance import signing
from conformance.report.model import Inconclusive
from conformance.target import AppCredential, Target

MAX_BODY = 4 * 1024 * 1024
EVIDENCE_BODY = 4096
_MASK = "***"
# A node unreachable this many times in a row is not tried again until the pause has passed, so
# that a port which never answers costs one read timeout per pause, not one per request.
_FAILURES_BEFORE_PAUSE = 3
_PAUSE_S = 30.0
# Assumed when the node descriptor cannot be read: the pacing stays cautious.
_FALLBACK_RATE_LIMIT = 20.0

Headers = Mapping[str, str] | Sequence[tuple[str, str]]


class NodeUnreachable(Inconclusive):
    """The node could not be reached or gave no usable HTTP answer (refused, timeout, TLS,
    oversize): the check cannot decide."""


@dataclass(frozen=True)
class Exchange:
    """One request and its answer, as the node gave it; secrets are already masked."""

    method: str
    target: str
    request_headers: Mapping[str, str]
    request_body: bytes
    status: int | None
    headers: CaseInsensitiveDict[str]
    body: bytes
    elapsed_s: float
    error: str | None = None
    truncated: bool = False
    reason: str = ""

    def json(self) -> Any:
        """The parsed body; an answer that is not UTF-8 JSON makes the check inconclusive."""
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            kind = self.headers.get("Content-Type", "no Content-Type")
            raise Inconclusive(
                f"{self.summary()}: the body is not JSON ({kind}, {len(self.body)} bytes)"
            ) from None

    @property
    def error_code(self) -> str | None:
        """The ``code`` member of an ATS error body, else ``None``."""
        try:
            data = json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None
        code = data.get("code") if isinstance(data, dict) else None
        return code if isinstance(code, str) else None

    def summary(self) -> str:
        """``"POST /api/v1/… → 401 UNAUTHENTICATED"``: the request and what answered it."""
        if self.status is None:
            return f"{self.method} {self.target} → no answer ({self.error})"
        word = self.error_code or self.reason or _phrase(self.status)
        text = f"{self.method} {self.target} → {self.status} {word}".rstrip()
        return f"{text} ({self.error})" if self.error else text


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


class EvidenceLog:
    """The evidence of one clause: exchanges and notes, with the run's secrets removed."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.entries: list[dict[str, Any]] = []
        self._secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

    def scrub(self, text: str) -> str:
        """``text`` with every known secret replaced by ``***``."""
        for secret in self._secrets:
            text = text.replace(secret, _MASK)
        return text

    def note(self, text: str) -> None:
        """Adds a line of explanation to the evidence."""
        self.entries.append({"note": self.scrub(text)})

    def add(self, ex: Exchange) -> None:
        """Adds an exchange, bodies cut at 4 KiB with their original size noted."""
        self.entries.append(
            {
                "method": ex.method,
                "target": self.scrub(ex.target),
                "request_headers": {k: self.scrub(v) for k, v in ex.request_headers.items()},
                "request_body": self._cut(ex.request_body),
                "request_body_size": len(ex.request_body),
                "status": ex.status,
                "headers": {k: self.scrub(v) for k, v in ex.headers.items()},
                "body": self._cut(ex.body),
                "body_size": len(ex.body),
                "truncated": ex.truncated,
                "elapsed_s": round(ex.elapsed_s, 4),
                "error": self.scrub(ex.error) if ex.error else None,
                "summary": self.scrub(ex.summary()),
            }
        )

    def _cut(self, body: bytes) -> str:
        return self.scrub(body[:EVIDENCE_BODY].decode("utf-8", "replace"))


class Pacer:
    """Per-app pacing keeping the suite under half of the node's per-app rate limit.

    A generic cell rate algorithm: each app may send ``burst`` requests at once and then
    ``rate`` per second, so no 1 s window holds more than ``burst + rate`` — half the limit.
    """

    def __init__(self, rate_limit_per_app: float | None = None) -> None:
        self._lock = threading.Lock()
        self._due: dict[str, float] = {}
        self.rate_limit: float | None = None
        self.rate = 1.0
        self.burst = 1.0
        if rate_limit_per_app is not None:
            self.configure(rate_limit_per_app)

    def configure(self, rate_limit_per_app: float) -> None:
        """Sets the node's per-app limit (requests per second)."""
        limit = max(float(rate_limit_per_app), 2.0)
        self.burst = max(1.0, limit // 10)
        self.rate = max(limit / 2 - self.burst, limit / 4)
        self.rate_limit = limit

    def wait(self, app_id: str) -> None:
        """Blocks until ``app_id`` may send one more request."""
        interval = 1.0 / self.rate
        tolerance = (self.burst - 1) * interval
        with self._lock:
            now = time.monotonic()
            due = max(self._due.get(app_id, now), now)
            delay = max(0.0, due - tolerance - now)
            self._due[app_id] = due + interval
        if delay:
            time.sleep(delay)


_local = threading.local()


class _Deadline:
    """Shuts a request's connection down when the whole answer has not arrived in time.

    A socket's read timeout restarts with every byte, so a node that drips its answer a byte at a
    time would hold the run without end; this bounds the whole exchange, headers included.
    """

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._lock = threading.Lock()
        self._conn: Any = None
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        _local.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        _local.deadline = None

    def watch(self, conn: Any) -> None:
        """The connection (anything with a ``sock``) to shut down at the deadline."""
        with self._lock:
            self._conn = conn
            if self.expired:
                _shut(conn)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            if self._conn is not None:
                _shut(self._conn)


def _shut(conn: Any) -> None:
    sock = conn if isinstance(conn, socket.socket) else getattr(conn, "sock", None)
    if sock is not None:
        # Already closed: the exchange is over either way.
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class _WatchedPool(HTTPConnectionPool):
    def _make_request(self, conn: Any, *args: Any, **kwargs: Any) -> Any:
        deadline = getattr(_local, "deadline", None)
        if deadline is not None:
            deadline.watch(conn)
        return super()._make_request(conn, *args, **kwargs)


class _WatchedHTTPSPool(_WatchedPool, HTTPSConnectionPool):
    pass


class _WatchedAdapter(HTTPAdapter):
    """requests' adapter whose connections a ``_Deadline`` can shut down."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _WatchedPool,
            "https": _WatchedHTTPSPool,
        }


@dataclass(frozen=True)
class BurstAnswer:
    """One answered request of a burst: the exchange, when it was sent and when answered."""

    exchange: Exchange
    sent_at: float
    answered_at: float


def _decoded(content: bytes, coding: str | None, limit: int) -> tuple[bytes, bool]:
    """The body with its gzip or deflate content coding removed, at most ``limit`` bytes (and
    whether it was cut there); a body that does not decode is kept as it came."""
    name = (coding or "").strip().lower()
    if name not in ("gzip", "x-gzip", "deflate") or not content:
        return content, False
    # wbits 47 reads gzip and zlib headers alike; a raw deflate stream needs -15.
    for wbits in (47, -15):
        decoder = zlib.decompressobj(wbits)
        try:
            plain = decoder.decompress(content, limit + 1)
        except zlib.error:
            continue
        return plain[:limit], len(plain) > limit
    return content, False


class _SharedReader:
    """One buffered reader for every answer of a pipelined connection: each HTTPResponse
    reads its own answer from it and leaves the next one there (their close is ignored)."""

    def __init__(self, fp: Any) -> None:
        self._fp = fp

    def makefile(self, *args: Any, **kwargs: Any) -> _SharedReader:
        return self

    def close(self) -> None:
        """The connection, not one answer, owns the reader."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fp, name)


@dataclass
class _Link:
    """What the clients of one run share: the connection pool, pacing and reachability."""

    session: requests.Session
    pacer: Pacer
    failures: int = 0
    last_failure: str = ""
    paused_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


class NodeClient:
    """Signed, bounded HTTP exchanges with the candidate node, recorded as evidence."""

    def __init__(
        self,
        target: Target,
        evidence: EvidenceLog | None = None,
        *,
        pacer: Pacer | None = None,
        max_body: int = MAX_BODY,
        _link: _Link | None = None,
    ) -> None:
        self.target = target
        self.evidence = evidence if evidence is not None else EvidenceLog(target.secrets())
        self.max_body = max_body
        self.connect_timeout = target.timeouts.connect_s
        self.read_timeout = target.timeouts.read_s
        if _link is None:
            session = requests.Session()
            # Neither proxies nor .netrc from the environment: the tester talks to the node only.
            session.trust_env = False
            for scheme in ("http://", "https://"):
                session.mount(scheme, _WatchedAdapter())
            _link = _Link(session=session, pacer=pacer or Pacer())
        self._link = _link
        parts = urlsplit(target.node.base_url)
        self._prefix = parts.path.rstrip("/")

    def for_clause(self, evidence: EvidenceLog) -> NodeClient:
        """A client sharing this one's connections and pacing, recording into ``evidence``."""
        return NodeClient(self.target, evidence, max_body=self.max_body, _link=self._link)

    def for_target(self, target: Target) -> NodeClient:
        """A client of the same node, connections, pacing and evidence, naming the credentials
        of ``target`` (the same node with other neighbours)."""
        return NodeClient(target, self.evidence, max_body=self.max_body, _link=self._link)

    def close(self) -> None:
        """Closes the pooled connections."""
        self._link.session.close()

    @property
    def pacer(self) -> Pacer:
        """The pacing shared by every client of the run."""
        return self._link.pacer

    # -- signing -----------------------------------------------------------------------

    def credential(self, app: str | AppCredential) -> AppCredential:
        """The credential named ``app`` in the target file (or ``app`` itself)."""
        if isinstance(app, AppCredential):
            return app
        try:
            return self.target.credential(app)
        except KeyError as exc:
            raise Inconclusive(f"{self.target.source}: {exc.args[0]}") from None

    def full_target(self, target: str) -> str:
        """``target`` with the gateway prefix of ``base_url`` in front."""
        return self._prefix + target if target.startswith("/") else target

    def signed_headers(
        self,
        app: str | AppCredential,
        method: str,
        target: str,
        body: bytes = b"",
        *,
        timestamp: str | int | None = None,
        nonce: str | None = None,
        signature_method: str = "HMAC-SM3",
    ) -> dict[str, str]:
        """The five signature headers for ``method target`` as ``raw`` will transmit it."""
        cred = self.credential(app)
        return signing.sign_headers(
            method=method,
            target=self.full_target(target),
            body=body,
            app_id=cred.app_id,
            secret=cred.secret,
            signature_method=signature_method,
            timestamp=timestamp,
            nonce=nonce,
        )

    # -- requests ----------------------------------------------------------------------

    def get(self, path: str, *, app: str | AppCredential | None, **kwargs: Any) -> Exchange:
        """A GET of ``path``."""
        return self.request("GET", path, app=app, **kwargs)

    def post(self, path: str, *, app: str | AppCredential | None, **kwargs: Any) -> Exchange:
        """A POST to ``path``."""
        return self.request("POST", path, app=app, **kwargs)

    def delete(self, path: str, *, app: str | AppCredential | None, **kwargs: Any) -> Exchange:
        """A DELETE of ``path``."""
        return self.request("DELETE", path, app=app, **kwargs)

    def request(
        self,
        method: str,
        path: str,
        *,
        app: str | AppCredential | None,
        params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        signature_method: str = "HMAC-SM3",
        timeout: float | tuple[float, float] | None = None,
        allow_transport_error: bool = False,
        pace: bool = True,
        base_url: str | None = None,
    ) -> Exchange:
        """One exchange; signed with ``app`` of the target file unless ``app`` is None.

        ``params`` as a list of pairs keeps repeated names; values are percent-encoded (a
        ``+`` included, ATS-API-09). ``json`` is sent as UTF-8 JSON, ``data`` as given.
        ``base_url`` replaces the target's (its plain-HTTP address, for ATS-SEC-06).
        """
        body = data if data is not None else b""
        send_headers: dict[str, str] = {}
        if json is not None:
            body = _json_bytes(json)
            send_headers["Content-Type"] = "application/json"
        send_headers.update(headers or {})
        query = urlencode(list(_pairs(params)), quote_via=quote, safe="-._~") if params else ""
        base = (base_url or self.target.node.base_url).rstrip("/")
        url = base + path + (f"?{query}" if query else "")
        prepared = requests.Request(method, url, headers=send_headers, data=body or None).prepare()
        # Sign exactly the target that goes on the wire (ATS §3 line 2 and 3).
        wire_target = prepared.path_url
        cred = self.credential(app) if app is not None else None
        if cred is not None:
            prepared.headers.update(
                signing.sign_headers(
                    method=method,
                    target=wire_target,
                    body=body,
                    app_id=cred.app_id,
                    secret=cred.secret,
                    signature_method=signature_method,
                )
            )
            if pace:
                self._pace(cred.app_id)
        connect, read = self._timeouts(timeout)
        self._check_paused(allow_transport_error)
        started = time.monotonic()
        ex = self._send(prepared, wire_target, body, connect, read, started)
        return self._finish(ex, allow_transport_error)

    def raw(
        self,
        method: str,
        target: str,
        *,
        headers: Headers | None = None,
        body: bytes = b"",
        add_content_length: bool = True,
        timeout: float | tuple[float, float] | None = None,
        allow_transport_error: bool = False,
        pace: bool = True,
    ) -> Exchange:
        """A request sent byte for byte over a socket: request line, headers, body.

        Only ``Host``, ``Connection: close`` and (when the body is not empty and
        ``add_content_length``) ``Content-Length`` are added, each only when absent; so a
        malformed ``Content-Length`` or a duplicate header is sent as given.
        """
        pairs = list(headers.items() if isinstance(headers, Mapping) else headers or ())
        names = {k.lower() for k, _ in pairs}
        parts = urlsplit(self.target.node.base_url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if "host" not in names:
            pairs.insert(0, ("Host", parts.netloc))
        if "connection" not in names:
            pairs.append(("Connection", "close"))
        if body and add_content_length and "content-length" not in names:
            pairs.append(("Content-Length", str(len(body))))
        wire_target = self.full_target(target)
        head = f"{method} {wire_target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in pairs)
        app_id = next((v for k, v in pairs if k.lower() == "x-app-id"), None)
        if pace and app_id:
            self._pace(app_id)
        connect, read = self._timeouts(timeout)
        self._check_paused(allow_transport_error)
        started = time.monotonic()
        ex = self._send_raw(
            head.encode("utf-8") + b"\r\n" + body,
            (host, port, parts.scheme == "https"),
            method,
            wire_target,
            dict(pairs),
            body,
            connect,
            read,
            started,
        )
        return self._finish(ex, allow_transport_error)

    def burst(
        self, app: str, target: str, count: int, *, connections: int = 4
    ) -> list[BurstAnswer]:
        """``count`` signed ``GET target`` requests of ``app``, each with its own nonce,
        pipelined over ``connections`` keep-alive connections: as fast as the node can take
        them, whatever the tester's CPU (ATS-SEC-03 asks for 2 × rate_limit_per_app within
        one second). Nothing is recorded as evidence: the caller adds the answers it judges.
        A connection the node closes early leaves its remaining requests unanswered.
        """
        wire_target = self.full_target(target)
        parts = urlsplit(self.target.node.base_url)
        address = (parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
        requests_by_connection: list[list[tuple[bytes, dict[str, str]]]] = [
            [] for _ in range(max(1, min(connections, count)))
        ]
        for number in range(count):
            headers = {"Host": parts.netloc, **self.signed_headers(app, "GET", target)}
            head = f"GET {wire_target} HTTP/1.1\r\n" + "".join(
                f"{k}: {v}\r\n" for k, v in headers.items()
            )
            batch = requests_by_connection[number % len(requests_by_connection)]
            batch.append(((head + "\r\n").encode("utf-8"), self._masked(headers)))
        bound = self.connect_timeout + self.read_timeout + count / 100
        answers: list[list[BurstAnswer]] = [[] for _ in requests_by_connection]
        threads = [
            threading.Thread(
                target=self._pipeline,
                args=(address, parts.scheme == "https", wire_target, batch, answers[i], bound),
                daemon=True,
            )
            for i, batch in enumerate(requests_by_connection)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(bound + 1)
        return [answer for sent in answers for answer in sent]

    def _pipeline(
        self,
        address: tuple[str, int],
        tls: bool,
        wire_target: str,
        batch: Sequence[tuple[bytes, Mapping[str, str]]],
        answers: list[BurstAnswer],
        bound: float,
    ) -> None:
        """Writes every request of ``batch`` on one connection, then reads the answers in order."""
        with _Deadline(bound) as deadline, contextlib.ExitStack() as stack:
            try:
                sock = socket.create_connection(address, timeout=self.connect_timeout)
            except OSError:
                return
            try:
                deadline.watch(sock)
                sock.settimeout(self.read_timeout)
                if tls:
                    sock = self._tls(sock, address[0], deadline)
                sent_at = time.monotonic()
                sock.sendall(b"".join(data for data, _ in batch))
                fp = sock.makefile("rb")
                stack.callback(fp.close)
                reader = _SharedReader(fp)
                for _, headers in batch:
                    resp = http.client.HTTPResponse(reader, method="GET")  # type: ignore[arg-type]
                    resp.begin()
                    content, truncated = _bounded(resp.read1, self.max_body, sent_at + bound)
                    sent = ("GET", wire_target, headers, b"", sent_at)
                    answer = (resp.status, CaseInsensitiveDict(_joined(resp.getheaders())),
                              resp.reason or "")  # fmt: skip
                    exchange = self._answered(sent, answer, content, truncated)
                    answers.append(BurstAnswer(exchange, sent_at, time.monotonic()))
                    if resp.will_close:
                        return
            except (OSError, http.client.HTTPException, ValueError):
                return
            finally:
                sock.close()

    # -- internals ---------------------------------------------------------------------

    def _timeouts(self, timeout: float | tuple[float, float] | None) -> tuple[float, float]:
        if timeout is None:
            return self.connect_timeout, self.read_timeout
        if isinstance(timeout, tuple):
            return timeout
        return self.connect_timeout, float(timeout)

    def _pace(self, app_id: str) -> None:
        pacer = self._link.pacer
        if pacer.rate_limit is None:
            pacer.configure(self._read_rate_limit())
        pacer.wait(app_id)

    def _read_rate_limit(self) -> float:
        """``rate_limit_per_app`` of the node descriptor, read once per run, unrecorded."""
        cred = next(iter(self.target.apps.values()))
        target = self.full_target("/api/v1/node")
        headers = signing.sign_headers(
            method="GET", target=target, body=b"", app_id=cred.app_id, secret=cred.secret
        )
        try:
            with (
                _Deadline(self.connect_timeout + self.read_timeout),
                self._link.session.get(
                    self.target.node.base_url.rstrip("/") + "/api/v1/node",
                    headers=headers,
                    timeout=(self.connect_timeout, self.read_timeout),
                    allow_redirects=False,
                    verify=self.target.node.ca_bundle or True,
                    stream=True,
                ) as resp,
            ):
                limit = json.loads(resp.raw.read(64 * 1024, decode_content=True)).get(
                    "rate_limit_per_app"
                )
        except (requests.RequestException, OSError, ValueError, AttributeError):
            return _FALLBACK_RATE_LIMIT
        if isinstance(limit, int | float) and not isinstance(limit, bool) and limit > 0:
            return float(limit)
        return _FALLBACK_RATE_LIMIT

    def _check_paused(self, allow_transport_error: bool) -> None:
        link = self._link
        with link.lock:
            paused = link.failures >= _FAILURES_BEFORE_PAUSE
            if (
                paused
                and time.monotonic() - link.paused_at < _PAUSE_S
                and not allow_transport_error
            ):
                raise NodeUnreachable(
                    f"node unreachable: the last {link.failures} requests failed "
                    f"(last: {link.last_failure}); not tried again yet"
                )

    def _finish(self, ex: Exchange, allow_transport_error: bool) -> Exchange:
        self.evidence.add(ex)
        link = self._link
        with link.lock:
            if ex.error is None:
                link.failures = 0
            elif not allow_transport_error:
                link.failures += 1
                link.last_failure = ex.error
                link.paused_at = time.monotonic()
        if ex.error is not None and not allow_transport_error:
            raise NodeUnreachable(self.evidence.scrub(ex.summary()))
        return ex

    def _masked(self, headers: Mapping[str, str]) -> dict[str, str]:
        return {k: (_MASK if k.lower() == "x-signature" else str(v)) for k, v in headers.items()}

    def _send(
        self,
        prepared: requests.PreparedRequest,
        wire_target: str,
        body: bytes,
        connect: float,
        read: float,
        started: float,
    ) -> Exchange:
        method = prepared.method or "GET"
        request_headers = self._masked(prepared.headers)
        with _Deadline(connect + read) as deadline:
            try:
                resp = self._link.session.send(
                    prepared,
                    stream=True,
                    timeout=(connect, read),
                    allow_redirects=False,
                    verify=self.target.node.ca_bundle or True,
                )
                with resp:
                    content, truncated = _bounded(
                        lambda n: resp.raw.read1(n, decode_content=True),
                        self.max_body,
                        started + connect + read,
                    )
            except (
                requests.RequestException,
                OSError,
                http.client.HTTPException,
                HTTPError,
            ) as exc:
                error = _late(connect, read) if deadline.expired else _describe(exc, connect, read)
                return _failed(method, wire_target, request_headers, body, started, error)
        sent = (method, wire_target, request_headers, body, started)
        answer = (resp.status_code, CaseInsensitiveDict(resp.headers), resp.reason or "")
        return self._answered(sent, answer, content, truncated)

    def _send_raw(
        self,
        data: bytes,
        address: tuple[str, int, bool],
        method: str,
        wire_target: str,
        headers: Mapping[str, str],
        body: bytes,
        connect: float,
        read: float,
        started: float,
    ) -> Exchange:
        host, port, tls = address
        request_headers = self._masked(headers)
        status: int | None = None
        try:
            sock = socket.create_connection((host, port), timeout=connect)
        except OSError as exc:
            return _failed(
                method, wire_target, request_headers, body, started, _describe(exc, connect, read)
            )
        with _Deadline(connect + read) as deadline:
            deadline.watch(sock)
            try:
                sock.settimeout(read)
                if tls:
                    sock = self._tls(sock, host, deadline)
                # A node may answer (413 for a long body) and close before it has read the
                # whole request; its answer is already on the way and is what counts.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    sock.sendall(data)
                resp = http.client.HTTPResponse(sock, method=method)
                resp.begin()
                status = resp.status
                content, truncated = _bounded(resp.read1, self.max_body, started + connect + read)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                error = _late(connect, read) if deadline.expired else _describe(exc, connect, read)
                return _failed(method, wire_target, request_headers, body, started, error, status)
            finally:
                sock.close()
        sent = (method, wire_target, request_headers, body, started)
        answer = (resp.status, CaseInsensitiveDict(_joined(resp.getheaders())), resp.reason or "")
        return self._answered(sent, answer, content, truncated)

    def _tls(self, sock: socket.socket, host: str, deadline: _Deadline) -> ssl.SSLSocket:
        """``sock`` wrapped in TLS for ``host`` (the target's CA bundle), watched by
        ``deadline``: the wrapped socket, not the detached one, is what it shuts down."""
        context = ssl.create_default_context(cafile=self.target.node.ca_bundle)
        wrapped = context.wrap_socket(sock, server_hostname=host)
        deadline.watch(wrapped)
        return wrapped

    def _answered(
        self,
        sent: tuple[str, str, Mapping[str, str], bytes, float],
        answer: tuple[int, CaseInsensitiveDict[str], str],
        content: bytes,
        truncated: bool,
    ) -> Exchange:
        method, wire_target, request_headers, body, started = sent
        status, headers, reason = answer
        if not truncated:
            content, truncated = _decoded(content, headers.get("Content-Encoding"), self.max_body)
        return Exchange(
            method=method,
            target=wire_target,
            request_headers=request_headers,
            request_body=body,
            status=status,
            headers=headers,
            body=content,
            elapsed_s=time.monotonic() - started,
            error=f"answer larger than {self.max_body} bytes" if truncated else None,
            truncated=truncated,
            reason=reason,
        )


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _pairs(params: Mapping[str, Any] | Sequence[tuple[str, Any]]) -> Iterable[tuple[str, str]]:
    items = params.items() if isinstance(params, Mapping) else params
    for name, value in items:
        yield str(name), value if isinstance(value, str) else str(value)


def _joined(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    joined: dict[str, str] = {}
    for name, value in pairs:
        key = next((k for k in joined if k.lower() == name.lower()), name)
        joined[key] = f"{joined[key]}, {value}" if key in joined else value
    return joined


def _bounded(read1: Any, cap: int, deadline: float) -> tuple[bytes, bool]:
    """At most ``cap`` bytes of a body, read until EOF or the overall deadline passes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = read1(65536)
        if not chunk:
            return b"".join(chunks), False
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            return b"".join(chunks)[:cap], True
        if time.monotonic() > deadline:
            raise TimeoutError("the whole answer did not arrive in time")


def _failed(
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes,
    started: float,
    error: str,
    status: int | None = None,
) -> Exchange:
    del status  # a body that broke off mid-way is no answer to judge
    return Exchange(
        method=method,
        target=target,
        request_headers=headers,
        request_body=body,
        status=None,
        headers=CaseInsensitiveDict(),
        body=b"",
        elapsed_s=time.monotonic() - started,
        error=error,
    )


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it, outermost first (requests wraps urllib3 wraps the socket)."""
    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in chain and len(chain) < 8:
        chain.append(cur)
        nested = [a for a in cur.args if isinstance(a, BaseException)]
        cur = cur.__cause__ or (nested[0] if nested else None) or cur.__context__
    return chain


def _describe(exc: BaseException, connect: float, read: float) -> str:
    """A transport failure in one line a vendor can act on."""
    chain = _causes(exc)
    inner = str(chain[-1]) or type(chain[-1]).__name__

    def seen(*kinds: type[BaseException]) -> bool:
        return any(isinstance(e, kinds) for e in chain)

    if seen(requests.exceptions.ConnectTimeout):
        return f"no connection within {connect:g} s"
    if seen(ssl.SSLError, requests.exceptions.SSLError):
        return f"TLS failure: {_short(inner)}"
    if seen(ConnectionRefusedError):
        return "connection refused"
    if seen(requests.exceptions.ReadTimeout, socket.timeout, TimeoutError):
        return f"no complete answer within {read:g} s"
    # RemoteDisconnected is a BadStatusLine: ask for it first.
    if seen(http.client.RemoteDisconnected, ConnectionResetError):
        return "the node closed the connection without answering"
    if seen(http.client.BadStatusLine, http.client.LineTooLong, http.client.HTTPException):
        return f"not an HTTP answer: {_short(inner)}"
    return f"transport failure: {_short(inner)}"


def _late(connect: float, read: float) -> str:
    return f"no complete answer within {connect + read:g} s (connection and read time together)"


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:197] + "..."
