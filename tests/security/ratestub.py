"""A purpose-built bad node for ATS-SEC-03: a loopback server answering only the node descriptor,
with a rate limiter that is wrong in a chosen way.

``strict``: the limit enforced is 40 % of the declared ``rate_limit_per_app``, so a steady rate
at half the limit draws 429. ``stuck``: after its first 429 an app is refused for good, whatever
it waits.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml
from secenv import NODE_ID, ROLES
from support.nodes import new_secret

from conformance.target import Target, load_target

LIMIT = 20
_STRICT_SHARE = 0.4


class _Limiter:
    """A sliding 1-second window per app, wrong as ``mode`` says."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._lock = threading.Lock()
        self._seen: dict[str, deque[float]] = {}
        self._refused: set[str] = set()

    def admit(self, app_id: str) -> bool:
        limit = LIMIT * _STRICT_SHARE if self.mode == "strict" else LIMIT
        with self._lock:
            if app_id in self._refused:
                return False
            window = self._seen.setdefault(app_id, deque())
            now = time.monotonic()
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= limit:
                if self.mode == "stuck":
                    self._refused.add(app_id)
                return False
            window.append(now)
            return True


def _handler(limiter: _Limiter) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            request_id = self.headers.get("X-Request-Id") or secrets.token_hex(8)
            if limiter.admit(self.headers.get("X-App-Id", "")):
                status, headers = 200, {}
                body = {"node_id": NODE_ID, "level": "provincial", "rate_limit_per_app": LIMIT}
            else:
                status, headers = 429, {"Retry-After": "1"}
                body = {"code": "RATE_LIMITED", "message": "too many", "request_id": request_id}
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            for name, value in {
                **headers,
                "Content-Type": "application/json",
                "Content-Length": str(len(data)),
                "X-Request-Id": request_id,
            }.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def bad_limiter(folder: Path, mode: str) -> Iterator[Target]:
    """The target of a stub node on loopback whose rate limiter is wrong as ``mode`` says."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(_Limiter(mode)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        apps = {
            name: {"app_id": name.replace("_", "-"), "secret": new_secret()}
            for name in ("consumer", "consumer_b", "admin")
        }
        document = {
            "node": {
                "base_url": f"http://127.0.0.1:{server.server_address[1]}",
                "level": "provincial",
                "node_id": NODE_ID,
                "parent_id": "100000",
            },
            "apps": apps,
            "resources": dict(ROLES),
            "lab": True,
        }
        path = folder / "target.yaml"
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        path.chmod(0o600)
        yield load_target(path)
    finally:
        server.shutdown()
        server.server_close()
