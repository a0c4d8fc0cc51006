"""NodeClient: the one HTTP client of the harness.

It owns the base URL, signing (ATS chapter 3), timeouts, the response size cap, TLS and the
evidence log. Redirects are never followed: a redirect is an answer to judge, not a hop to
another host. Every exchange is appended to the evidence of the clause being checked, with app
secrets and ``X-Signature`` values removed. The suite's own traffic is paced per app so that it
never exceeds half of the node's ``rate_limit_per_app`` (ATS-SEC-03), unless a call passes
``pace=False`` (the rate-limit check itself).

The bytes travel by one of three transports: ``pooled`` (requests over keep-alive connections),
``raw`` (a request byte for byte over its own socket) and ``burst`` (requests pipelined over a
few connections).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import requests

from conformance import ats, signing
from conformance.client.burst import BurstAnswer, Pipeline, send_burst
from conformance.client.deadline import Deadline
from conformance.client.evidence import EvidenceLog
from conformance.client.exchange import Exchange, NodeUnreachable, Sent
from conformance.client.pacing import Pacer
from conformance.client.pooled import new_session, send
from conformance.client.raw import send_raw
from conformance.masking import mask_headers
from conformance.outcomes import Inconclusive
from conformance.target import AppCredential, Target

MAX_BODY = 4 * 1024 * 1024
# A node unreachable this many times in a row is not tried again until the pause has passed, so
# that a port which never answers costs one read timeout per pause, not one per request.
_FAILURES_BEFORE_PAUSE = 3
_PAUSE_S = 30.0
# Assumed when the node descriptor cannot be read: the pacing stays cautious.
_FALLBACK_RATE_LIMIT = 20.0

Headers = Mapping[str, str] | Sequence[tuple[str, str]]


@dataclass
class _Link:
    """What the clients of one run share: the connection pool, pacing and reachability."""

    session: requests.Session
    pacer: Pacer
    failures: int = 0
    last_failure: str = ""
    paused_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Apps the node refused at preflight, by name, with why: a check signing with one cannot
    # decide (ERROR naming the app), never a FAIL of the node for the tester's wrong secret.
    refused: dict[str, str] = field(default_factory=dict)


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
            _link = _Link(session=new_session(), pacer=pacer or Pacer())
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

    def refuse(self, refused: Mapping[str, str]) -> None:
        """Marks apps the node refused at preflight (name → why) for every client of the run."""
        self._link.refused.update(refused)

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
        if app in self._link.refused:
            raise Inconclusive(self._link.refused[app])
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
        sent = Sent(method, wire_target, mask_headers(prepared.headers), body, started)
        ex = send(
            self._link.session,
            prepared,
            sent,
            connect=connect,
            read=read,
            verify=self.target.node.ca_bundle or True,
            max_body=self.max_body,
        )
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
        ex = send_raw(
            head.encode("utf-8") + b"\r\n" + body,
            (host, port, parts.scheme == "https"),
            Sent(method, wire_target, mask_headers(dict(pairs)), body, started),
            connect=connect,
            read=read,
            ca_bundle=self.target.node.ca_bundle,
            max_body=self.max_body,
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
            batch.append(((head + "\r\n").encode("utf-8"), mask_headers(headers)))
        pipeline = Pipeline(
            address=address,
            tls=parts.scheme == "https",
            ca_bundle=self.target.node.ca_bundle,
            connect=self.connect_timeout,
            read=self.read_timeout,
            bound=self.connect_timeout + self.read_timeout + count / 100,
            max_body=self.max_body,
        )
        return send_burst(pipeline, wire_target, requests_by_connection)

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
        target = self.full_target(ats.NODE)
        headers = signing.sign_headers(
            method="GET", target=target, body=b"", app_id=cred.app_id, secret=cred.secret
        )
        try:
            with (
                Deadline(self.connect_timeout + self.read_timeout),
                self._link.session.get(
                    self.target.node.base_url.rstrip("/") + ats.NODE,
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


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _pairs(params: Mapping[str, Any] | Sequence[tuple[str, Any]]) -> Iterable[tuple[str, str]]:
    items = params.items() if isinstance(params, Mapping) else params
    for name, value in items:
        yield str(name), value if isinstance(value, str) else str(value)
