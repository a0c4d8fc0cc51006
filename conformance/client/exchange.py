"""The exchange: one request and the node's answer, as every transport returns it.

Also what the transports share to build one: the request as sent, the answer as read, and a
transport failure described in one line a vendor can act on.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import requests
from requests.structures import CaseInsensitiveDict

from conformance.outcomes import Inconclusive


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


@dataclass(frozen=True)
class Sent:
    """A request as a transport sent it: its headers already masked, ``started`` monotonic."""

    method: str
    target: str
    headers: Mapping[str, str]
    body: bytes
    started: float


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


def answered(
    sent: Sent,
    answer: tuple[int, CaseInsensitiveDict[str], str],
    content: bytes,
    truncated: bool,
    max_body: int,
) -> Exchange:
    """The exchange of ``sent`` answered ``(status, headers, reason)`` with ``content`` (its
    content coding removed: the raw and pipelined transports read the bytes as they came)."""
    status, headers, reason = answer
    if not truncated:
        content, truncated = _decoded(content, headers.get("Content-Encoding"), max_body)
    return Exchange(
        method=sent.method,
        target=sent.target,
        request_headers=sent.headers,
        request_body=sent.body,
        status=status,
        headers=headers,
        body=content,
        elapsed_s=time.monotonic() - sent.started,
        error=f"answer larger than {max_body} bytes" if truncated else None,
        truncated=truncated,
        reason=reason,
    )


def failed(sent: Sent, error: str) -> Exchange:
    """The exchange of ``sent`` without an answer; a body that broke off mid-way is no answer
    to judge either."""
    return Exchange(
        method=sent.method,
        target=sent.target,
        request_headers=sent.headers,
        request_body=sent.body,
        status=None,
        headers=CaseInsensitiveDict(),
        body=b"",
        elapsed_s=time.monotonic() - sent.started,
        error=error,
    )


def joined(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Header pairs as one mapping, repeated names joined with ``, `` (RFC 9110 §5.3)."""
    result: dict[str, str] = {}
    for name, value in pairs:
        key = next((k for k in result if k.lower() == name.lower()), name)
        result[key] = f"{result[key]}, {value}" if key in result else value
    return result


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it, outermost first (requests wraps urllib3 wraps the socket)."""
    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in chain and len(chain) < 8:
        chain.append(cur)
        nested = [a for a in cur.args if isinstance(a, BaseException)]
        cur = cur.__cause__ or (nested[0] if nested else None) or cur.__context__
    return chain


def describe(exc: BaseException, connect: float, read: float) -> str:
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


def late(connect: float, read: float) -> str:
    """The failure of an exchange its deadline cut short."""
    return f"no complete answer within {connect + read:g} s (connection and read time together)"


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:197] + "..."
