"""The deadline of one exchange: the whole answer in time, or the connection shut down.

A socket's read timeout restarts with every byte, so a node that drips its answer a byte at a
time would hold the run without end; a deadline bounds the whole exchange, headers included. The
transports register the connection they use with the deadline of their thread.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

_local = threading.local()


class Deadline:
    """Shuts a request's connection down when the whole answer has not arrived in time."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._lock = threading.Lock()
        self._conn: Any = None
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        _local.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        _local.deadline = None

    def watch(self, conn: Any) -> None:
        """The connection (a socket, or anything with a ``sock``) to shut down at the deadline."""
        with self._lock:
            self._conn = conn
            if self.expired:
                _shut(conn)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            if self._conn is not None:
                _shut(self._conn)


def watch(conn: Any) -> None:
    """``conn`` is watched by the deadline of this thread's exchange, if one runs."""
    deadline: Deadline | None = getattr(_local, "deadline", None)
    if deadline is not None:
        deadline.watch(conn)


def _shut(conn: Any) -> None:
    sock = conn if isinstance(conn, socket.socket) else getattr(conn, "sock", None)
    if sock is not None:
        # Already closed: the exchange is over either way.
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def bounded(read1: Callable[[int], bytes], cap: int, deadline: float) -> tuple[bytes, bool]:
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
