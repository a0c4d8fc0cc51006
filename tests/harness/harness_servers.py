"""Purpose-built servers on 127.0.0.1 for the harness tests: good, bad and hostile nodes."""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from support.nodes import free_port

Responder = Callable[[bytes], bytes]
_MAX_REQUEST = 64 * 1024


class _Handler(socketserver.BaseRequestHandler):
    responder: Responder
    received: list[bytes]

    def handle(self) -> None:
        self.request.settimeout(5)
        data = b""
        try:
            while b"\r\n\r\n" not in data and len(data) < _MAX_REQUEST:
                chunk = self.request.recv(4096)
                if not chunk:
                    break
                data += chunk
        except OSError:
            return
        self.received.append(data)
        answer = self.responder(data)
        if answer:
            try:
                self.request.sendall(answer)
            except OSError:
                return


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextmanager
def serve(responder: Responder) -> Iterator[tuple[str, list[bytes]]]:
    """A TCP server answering every request with ``responder(request_bytes)``; its base URL."""
    received: list[bytes] = []
    handler = type("H", (_Handler,), {"responder": staticmethod(responder), "received": received})
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def http_answer(
    status: int, body: bytes, content_type: str = "application/json", **extra: str
) -> bytes:
    """A complete HTTP/1.1 answer; the server closes the connection after it, and says so."""
    headers = {
        "Content-Type": content_type,
        "Content-Length": str(len(body)),
        "Connection": "close",
        **extra,
    }
    head = f"HTTP/1.1 {status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode() + b"\r\n" + body


def json_answer(status: int, document: object, **extra: str) -> bytes:
    """An HTTP answer with a JSON body."""
    return http_answer(status, json.dumps(document).encode(), **extra)


def health_body() -> dict[str, str]:
    """A valid health answer."""
    return {"status": "UP", "time": datetime.now(UTC).isoformat()}


@contextmanager
def silent_port() -> Iterator[str]:
    """A port that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                accepted.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in accepted:
            conn.close()
        listener.close()


@contextmanager
def dripping_port(interval_s: float = 0.2, bound_s: float = 60.0) -> Iterator[str]:
    """A server that answers every connection one byte every ``interval_s`` — always under a
    read timeout, never complete — for at most ``bound_s``."""
    stop = threading.Event()
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Padding: " + b"a" * 4096

    def drip(conn: socket.socket, _: object) -> None:
        with conn:
            for byte in answer:
                if stop.wait(interval_s):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            drip(self.request, None)

    server = _Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    timer = threading.Timer(bound_s, stop.set)
    timer.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        stop.set()
        timer.cancel()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port() -> str:
    """The URL of a loopback port nothing listens on."""
    return f"http://127.0.0.1:{free_port()}"
