"""A real reference node on loopback for the reference node's own tests, and a signing client.

The session node runs as its own process (``python -m conformance.reference``) from a node file
written to a temporary folder; fault tests run a node per fault in a thread of this process.
Every request has a timeout; every test only talks to nodes started here.
"""

from __future__ import annotations

import json
import queue
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml

from conformance import signing
from conformance.data import data_dir

TIMEOUT_S = 10.0
START_TIMEOUT_S = 30.0
NODE_ID = "330000"
CATALOG = json.loads((data_dir("fixtures") / "catalogs" / f"{NODE_ID}.json").read_text("utf-8"))
ROLES: Mapping[str, str] = CATALOG["roles"]


def _secret() -> str:
    return secrets.token_urlsafe(48)


def _closed_port() -> int:
    # A port nothing listens on: neighbours that are down.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class App:
    """An app registered at the test node."""

    app_id: str
    secret: str = field(repr=False)
    role: str


def node_document(
    database: str, faults: Sequence[str] = ()
) -> tuple[dict[str, Any], dict[str, App]]:
    """A provincial node file (parent and child down) and its apps by short name."""
    apps = {
        "consumer": App("consumer-a", _secret(), "consumer"),
        "consumer_b": App("consumer-b", _secret(), "consumer"),
        "admin": App("admin", _secret(), "provider-admin"),
        "load": App("load", _secret(), "consumer"),
        "parent": App("node-100000", _secret(), "node"),
        "child": App("node-330100", _secret(), "node"),
    }
    document = {
        "node": {
            "node_id": NODE_ID,
            "name": "浙江省政务数据共享交换平台",
            "level": "provincial",
            "listen": "127.0.0.1:0",
            "database": database,
            "rate_limit_per_app": 50,
            "cascade_timeout_s": 2,
            "systems_integrated": 12,
            "parent": {
                "node_id": "100000",
                "url": f"http://127.0.0.1:{_closed_port()}",
                "app_id": "node-330000",
                "secret": _secret(),
            },
            "children": [
                {
                    "node_id": "330100",
                    "name": "杭州市政务数据共享交换平台",
                    "level": "municipal",
                    "url": f"http://127.0.0.1:{_closed_port()}",
                    "app_id": "node-330000",
                    "secret": _secret(),
                }
            ],
        },
        "apps": [
            {"app_id": a.app_id, "secret": a.secret, "role": a.role}
            | ({"rate_limit": 400} if name == "load" else {})
            | ({"bound_node": "100000"} if name == "parent" else {})
            | ({"bound_node": "330100"} if name == "child" else {})
            for name, a in apps.items()
        ],
        "seed": {"catalog": NODE_ID},
        "faults": list(faults),
    }
    return document, apps


class Node:
    """A running test node: its base URL, apps and a signing HTTP client."""

    def __init__(self, url: str, apps: Mapping[str, App]) -> None:
        self.url = url
        self.apps = apps
        self.http = httpx.Client(base_url=url, timeout=TIMEOUT_S)

    def signed(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        app: str = "load",
        **options: Any,
    ) -> dict[str, str]:
        """The signature headers of a request by one of the node's apps."""
        credential = self.apps[app]
        return signing.sign_headers(
            method=method,
            target=target,
            body=body,
            app_id=credential.app_id,
            secret=credential.secret,
            **options,
        )

    def call(
        self,
        method: str,
        target: str,
        *,
        app: str | None = "load",
        json_body: object = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        signature_method: str = "HMAC-SM3",
    ) -> httpx.Response:
        """One request, signed by ``app`` (None: unsigned); ``target`` is sent as written."""
        raw = (
            body
            if body is not None
            else b""
            if json_body is None
            else json.dumps(json_body).encode()
        )
        sent = {"Content-Type": "application/json"} if raw else {}
        if app is not None:
            sent.update(self.signed(method, target, raw, app, signature_method=signature_method))
        sent.update(headers or {})
        return self.http.request(method, target, content=raw, headers=sent)

    def query(self, code: str, request: object = None, app: str = "load") -> httpx.Response:
        """A share query on a resource code."""
        return self.call("POST", f"/api/v1/share/{code}/query", app=app, json_body=request or {})

    def close(self) -> None:
        """The client is closed."""
        self.http.close()


def _wait_ready(process: subprocess.Popen[str]) -> str:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        line = lines.get(timeout=START_TIMEOUT_S)
    except queue.Empty:
        process.kill()
        raise RuntimeError("the node did not announce itself") from None
    kind, _, url = line.split()
    assert kind == "ready", line
    return url


@pytest.fixture(scope="session")
def node_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, App]]]:
    folder = tmp_path_factory.mktemp("node")
    document, apps = node_document("node.sqlite3")
    path = folder / "node.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "conformance.reference", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield _wait_ready(process), apps
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def node(node_process: tuple[str, dict[str, App]]) -> Iterator[Node]:
    """The clean reference node of the session."""
    url, apps = node_process
    client = Node(url, apps)
    yield client
    client.close()


class ThreadNode(Node):
    """A node served by uvicorn in a thread of the test process."""

    def __init__(
        self,
        server: uvicorn.Server,
        thread: threading.Thread,
        url: str,
        apps: Mapping[str, App],
        faults: Sequence[str] = (),
    ) -> None:
        super().__init__(url, apps)
        self.faults = tuple(faults)
        self._server = server
        self._thread = thread

    def stop(self) -> None:
        """The node stops serving."""
        self.close()
        self._server.should_exit = True
        self._thread.join(timeout=TIMEOUT_S)


def start_thread_node(folder: Path, faults: Sequence[str] = ()) -> ThreadNode:
    """A node with these faults, served in a thread on a free loopback port."""
    from conformance.reference.app import create_app
    from conformance.reference.config import build_config
    from conformance.reference.protocol import AtsH11Protocol

    document, apps = node_document(":memory:", faults)
    config = build_config(document, "test-node.yaml", folder)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config),
            host="127.0.0.1",
            port=0,
            http=AtsH11Protocol,
            access_log=False,
            server_header=False,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(int(START_TIMEOUT_S / 0.01)):
        if server.started:
            break
        threading.Event().wait(0.01)
    else:
        raise RuntimeError("the node did not start")
    port = server.servers[0].sockets[0].getsockname()[1]
    return ThreadNode(server, thread, f"http://127.0.0.1:{port}", apps, faults)
