"""The burst transport: many signed GETs pipelined over a few keep-alive connections.

ATS-SEC-03 asks for 2 × ``rate_limit_per_app`` requests within one second; written ahead of
their answers, the requests reach the node as fast as it can take them, whatever the tester's
CPU. Each connection is read in order; a connection the node closes early leaves its remaining
requests unanswered.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from requests.structures import CaseInsensitiveDict

from conformance.client.deadline import Deadline, bounded
from conformance.client.exchange import Exchange, Sent, answered, joined
from conformance.client.raw import wrap_tls


@dataclass(frozen=True)
class BurstAnswer:
    """One answered request of a burst: the exchange, when it was sent and when answered."""

    exchange: Exchange
    sent_at: float
    answered_at: float


@dataclass(frozen=True)
class Pipeline:
    """Where a burst goes and how long it may take: ``bound`` seconds a connection."""

    address: tuple[str, int]
    tls: bool
    ca_bundle: str | None
    connect: float
    read: float
    bound: float
    max_body: int


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


def send_burst(
    pipeline: Pipeline,
    wire_target: str,
    batches: Sequence[Sequence[tuple[bytes, Mapping[str, str]]]],
) -> list[BurstAnswer]:
    """Each batch of ``(request bytes, masked headers)`` written on a connection of its own,
    all connections at once; the answers in the order of the batches."""
    answers: list[list[BurstAnswer]] = [[] for _ in batches]
    threads = [
        threading.Thread(
            target=_pipeline, args=(pipeline, wire_target, batch, answers[i]), daemon=True
        )
        for i, batch in enumerate(batches)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(pipeline.bound + 1)
    return [answer for sent in answers for answer in sent]


def _pipeline(
    pipeline: Pipeline,
    wire_target: str,
    batch: Sequence[tuple[bytes, Mapping[str, str]]],
    answers: list[BurstAnswer],
) -> None:
    """Writes every request of ``batch`` on one connection, then reads the answers in order."""
    bound = pipeline.bound
    with Deadline(bound) as deadline, contextlib.ExitStack() as stack:
        try:
            sock = socket.create_connection(pipeline.address, timeout=pipeline.connect)
        except OSError:
            return
        try:
            deadline.watch(sock)
            sock.settimeout(pipeline.read)
            if pipeline.tls:
                sock = wrap_tls(sock, pipeline.address[0], deadline, pipeline.ca_bundle)
            sent_at = time.monotonic()
            sock.sendall(b"".join(data for data, _ in batch))
            fp = sock.makefile("rb")
            stack.callback(fp.close)
            reader = _SharedReader(fp)
            for _, headers in batch:
                resp = http.client.HTTPResponse(reader, method="GET")  # type: ignore[arg-type]
                resp.begin()
                content, truncated = bounded(resp.read1, pipeline.max_body, sent_at + bound)
                if deadline.expired:
                    return  # a fragment the deadline cut off, not an answer
                sent = Sent("GET", wire_target, headers, b"", sent_at)
                answer = (resp.status, CaseInsensitiveDict(joined(resp.getheaders())),
                          resp.reason or "")  # fmt: skip
                exchange = answered(sent, answer, content, truncated, pipeline.max_body)
                answers.append(BurstAnswer(exchange, sent_at, time.monotonic()))
                if resp.will_close:
                    return
        except (OSError, http.client.HTTPException, ValueError):
            return
        finally:
            sock.close()
