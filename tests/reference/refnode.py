"""A real reference node on loopback for the reference node's own tests, and a signing client.

The session node runs as its own process (``python -m conformance.reference``) from a node file
written to a temporary folder; fault tests run a node per fault in a thread of this process.
Every request has a timeout; every test only talks to nodes started here.
"""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from support.nodes import CHILD_ID, PARENT_ID, PlannedNode, plan_node, running, wait_until

from conformance import signing
from conformance.data import data_dir

TIMEOUT_S = 10.0
START_TIMEOUT_S = 30.0
NODE_ID = "330000"
CATALOG = json.loads((data_dir("fixtures") / "catalogs" / f"{NODE_ID}.json").read_text("utf-8"))
ROLES: Mapping[str, str] = CATALOG["roles"]


@dataclass(frozen=True)
class App:
    """An app registered at the test node."""

    app_id: str
    secret: str = field(repr=False)
    role: str


def planned_node(
    folder: Path, database: str, faults: Sequence[str] = ()
) -> tuple[PlannedNode, dict[str, App]]:
    """Node 330000 (parent and child down) written into ``folder``, and its apps by short name."""
    planned = plan_node(folder, database=database, omit=(PARENT_ID, CHILD_ID))
    planned.node["faults"] = list(faults)
    planned.write()
    short = {"parent": f"node-{PARENT_ID}", "child": f"node-{CHILD_ID}"}
    names = {**{name: app["app_id"] for name, app in planned.plan.apps.items()}, **short}
    apps = {
        name: App(app_id, str(planned.app(app_id)["secret"]), str(planned.app(app_id)["role"]))
        for name, app_id in names.items()
    }
    return planned, apps


def node_document(
    database: str, faults: Sequence[str] = ()
) -> tuple[dict[str, Any], dict[str, App]]:
    """A provincial node file (parent and child down) and its apps by short name."""
    with tempfile.TemporaryDirectory(prefix="ats-refnode-") as folder:
        planned, apps = planned_node(Path(folder), database, faults)
    return planned.node, apps


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


@pytest.fixture(scope="session")
def node_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, App]]]:
    folder = tmp_path_factory.mktemp("node")
    planned, apps = planned_node(folder, "node.sqlite3")
    with running(planned) as node:
        yield node.url, apps


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
    wait_until(lambda: server.started, START_TIMEOUT_S, "the node in a thread did not start")
    port = server.servers[0].sockets[0].getsockname()[1]
    return ThreadNode(server, thread, f"http://127.0.0.1:{port}", apps, faults)
