"""One reference node between a scripted parent and dead children, over real HTTP (ATS chapter 8).

The node under test is the provincial node 330000. Its parent is a small HTTP server of this
module on 127.0.0.1 that records what it receives and answers as the test scripts it (accept,
hang, refuse with 401, fail with 500, answer non-ATS text, …); its children 330100 and 330200 are
closed ports, so the pushes of the tests stand in for them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from support.nodes import free_port

from conformance import signing
from conformance.topology import RunningNode, start_node, stop_processes

pytestmark = pytest.mark.timeout(120)

NODE, PARENT, CITY, OTHER_CITY = "330000", "100000", "330100", "330200"
LOCAL_CODE = "101001/330001"
CASCADE_TIMEOUT_S = 1.0
# ATS-CAS-08: a 502 or 504 comes within 12 s of the request.
ANSWER_WITHIN_S = 12.0
SECRETS = {
    "consumer-a": "c" * 40,
    "admin": "a" * 40,
    f"node-{PARENT}": "p" * 40,
    f"node-{CITY}": "m" * 40,
    f"node-{OTHER_CITY}": "o" * 40,
    "node-at-parent": "u" * 40,
    "node-at-child": "d" * 40,
}


def entry(code: str, node_id: str, **changes: Any) -> dict[str, Any]:
    """A valid catalog entry (ATS §4) held by `node_id`."""
    value = {
        "resource_code": code,
        "name": "区县人口统计",
        "classification": {"type": "BASE", "path": ["人口", "户籍", "常住人口"]},
        "provider": {"name": "统计局", "code": "330000"},
        "summary": "按区县统计的常住人口",
        "format": {"kind": "DATABASE", "type": "json"},
        "items": [{"name": "region", "data_type": "C", "length": 6}],
        "share": {"type": "UNCONDITIONAL", "condition": "", "method": "API"},
        "open": {"open": False, "condition": "不开放"},
        "update_cycle": "YEARLY",
        "published_at": "2024-01-01",
        "related_codes": [],
        "node_id": node_id,
        "updated_at": "2024-01-02T08:00:00+08:00",
    }
    value.update(changes)
    return value


# -- the scripted parent ------------------------------------------------------------------------


@dataclass
class Seen:
    """A request the scripted parent received."""

    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Script:
    """What the scripted parent answers, and what it received."""

    mode: str = "accept"
    seen: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def pushes(self, signer: str | None = None) -> list[dict[str, Any]]:
        return [
            s.json()
            for s in self.seen
            if s.path == "/api/v1/cascade/catalog" and signer in (None, s.headers["X-App-Id"])
        ]

    def queries(self) -> list[Seen]:
        return [s for s in self.seen if s.path.startswith("/api/v1/share/")]


def _handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the tests read `script.seen`."""

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            script.seen.append(Seen(self.path, dict(self.headers), body))
            mode = script.mode
            request_id = self.headers.get("X-Request-Id", "")
            route = f"{self.headers.get('X-Route', '')},{PARENT}"
            if mode == "hang":
                script.release.wait(20)
                return
            if mode == "stall-body":
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.write(b'{"resource_code":')
                self.wfile.flush()
                script.release.wait(20)
                return
            if mode == "text":
                self._send(200, b"hello", {"X-Route": route})
                return
            if mode.startswith("error-"):
                status = int(mode.removeprefix("error-"))
                code = {401: "UNAUTHENTICATED", 404: "NOT_FOUND", 429: "RATE_LIMITED"}.get(
                    status, "INTERNAL_ERROR" if status == 500 else "LOOP_DETECTED"
                )
                answer = {"code": code, "message": "scripted", "request_id": request_id}
                self._send(
                    status, json.dumps(answer).encode(), {"X-Route": route, "Retry-After": "3"}
                )
                return
            if self.path == "/api/v1/cascade/catalog":
                accepted = len(json.loads(body)["entries"])
                self._send(200, json.dumps({"accepted": accepted}).encode())
                return
            code = self.path.removeprefix("/api/v1/share/").removesuffix("/query")
            answer = {
                "resource_code": code,
                "items": [],
                "page": 1,
                "size": 20,
                "total": 0,
                "masked": [],
            }
            self._send(200, json.dumps(answer).encode(), {"X-Route": route})

    return Handler


@pytest.fixture(scope="module")
def script() -> Script:
    return Script()


@pytest.fixture(scope="module")
def parent_url(script: Script) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    script.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _reset(script: Script) -> Iterator[None]:
    script.mode = "accept"
    script.release.clear()
    yield
    script.release.set()


# -- the node under test ------------------------------------------------------------------------


def signer_at_parent(node: RunningNode) -> str:
    """The app id a node under test signs its pushes and forwards to the parent with."""
    return f"up-{node.config_path.parent.name}"


def write_node(folder: Path, parent_url: str) -> Path:
    """The node file of the provincial node under test and its one-entry seed catalog.

    Every node of the module has its own app id at the scripted parent, so that the pushes of
    one node can be told from another's.
    """
    seed = {
        "node_id": NODE,
        "roles": {},
        "entries": [entry(LOCAL_CODE, NODE)],
        "records": {LOCAL_CODE: [{"region": "330102"}]},
    }
    (folder / "seed.json").write_text(json.dumps(seed, ensure_ascii=False), encoding="utf-8")
    dead = f"http://127.0.0.1:{free_port()}"
    apps = [
        {"app_id": "consumer-a", "role": "consumer"},
        {"app_id": "admin", "role": "provider-admin"},
        {"app_id": f"node-{PARENT}", "role": "node", "bound_node": PARENT},
        {"app_id": f"node-{CITY}", "role": "node", "bound_node": CITY},
        {"app_id": f"node-{OTHER_CITY}", "role": "node", "bound_node": OTHER_CITY},
    ]
    config = {
        "node": {
            "node_id": NODE,
            "name": "浙江省政务数据共享交换平台",
            "level": "provincial",
            "listen": "127.0.0.1:0",
            "database": ":memory:",
            "cascade_timeout_s": CASCADE_TIMEOUT_S,
            "parent": {
                "node_id": PARENT,
                "url": parent_url,
                "app_id": f"up-{folder.name}",
                "secret": SECRETS["node-at-parent"],
            },
            "children": [
                {
                    "node_id": child,
                    "name": child,
                    "level": "municipal",
                    "url": dead,
                    "app_id": "node-at-child",
                    "secret": SECRETS["node-at-child"],
                }
                for child in (CITY, OTHER_CITY)
            ],
        },
        "apps": [{**app, "secret": SECRETS[app["app_id"]]} for app in apps],
        "seed": {"catalog": "seed.json"},
    }
    path = folder / "node.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


NodeFactory = Callable[..., RunningNode]


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory, parent_url: str) -> Iterator[NodeFactory]:
    started: dict[tuple[str, ...], RunningNode] = {}

    def node(*faults: str) -> RunningNode:
        if faults not in started:
            folder = tmp_path_factory.mktemp("node")
            started[faults] = start_node(write_node(folder, parent_url), faults)
        return started[faults]

    yield node
    stop_processes([running.process for running in started.values()])


def call(
    node: RunningNode,
    app_id: str,
    method: str,
    path: str,
    body: object = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    content = b"" if body is None else json.dumps(body, ensure_ascii=False).encode()
    signed = signing.sign_headers(
        method=method, target=path, body=content, app_id=app_id, secret=SECRETS[app_id]
    )
    signed["Content-Type"] = "application/json"
    return httpx.request(
        method,
        node.url + path,
        content=content,
        headers={**signed, **(headers or {})},
        timeout=httpx.Timeout(20.0),
    )


def push(
    node: RunningNode,
    *,
    seq: int,
    entries: list[dict[str, Any]],
    full: bool = True,
    deleted: tuple[str, ...] = (),
    child: str = CITY,
    signer: str | None = None,
) -> httpx.Response:
    body = {
        "source_node_id": child,
        "seq": seq,
        "full": full,
        "entries": entries,
        "deleted": list(deleted),
    }
    return call(node, signer or f"node-{child}", "POST", "/api/v1/cascade/catalog", body)


def subtree(node: RunningNode) -> dict[str, str]:
    listed = call(node, "admin", "GET", "/api/v1/catalog/resources?scope=subtree&size=100")
    return {e["resource_code"]: e["node_id"] for e in listed.json()["items"]}


def query(node: RunningNode, code: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return call(node, "consumer-a", "POST", f"/api/v1/share/{code}/query", {}, headers)


def wait_for(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


# -- pushes received from children (ATS-CAS-02, ATS-CAS-03) -------------------------------------


def test_a_valid_push_is_accepted_and_appears_in_the_subtree_only(nodes: NodeFactory) -> None:
    node = nodes()
    answer = push(node, seq=1, entries=[entry("101001/330101", CITY)])
    assert (answer.status_code, answer.json()) == (200, {"accepted": 1})
    assert subtree(node) == {LOCAL_CODE: NODE, "101001/330101": CITY}
    local = call(node, "admin", "GET", "/api/v1/catalog/resources").json()
    assert [e["resource_code"] for e in local["items"]] == [LOCAL_CODE]


def test_incremental_pushes_follow_seq_and_full_pushes_replace(nodes: NodeFactory) -> None:
    node = nodes()
    a, b, c = "101001/330111", "101001/330112", "101001/330113"
    assert push(node, seq=10, entries=[entry(a, CITY), entry(b, CITY)]).status_code == 200
    out_of_order = push(node, seq=12, full=False, entries=[entry(c, CITY)])
    assert (out_of_order.status_code, out_of_order.json()["code"]) == (409, "CONFLICT")
    assert push(node, seq=10, full=False, entries=[entry(c, CITY)]).status_code == 409
    assert c not in subtree(node)
    assert push(node, seq=11, full=False, entries=[entry(c, CITY)], deleted=(a,)).status_code == 200
    assert {a, b, c} & set(subtree(node)) == {b, c}
    # A full push is accepted with any seq and replaces everything held from that child.
    assert push(node, seq=3, entries=[entry(a, CITY)]).status_code == 200
    held = subtree(node)
    assert (a in held, b in held, c in held) == (True, False, False)


def test_deleted_codes_not_held_from_that_child_are_ignored(nodes: NodeFactory) -> None:
    node = nodes()
    other = push(node, seq=1, child=OTHER_CITY, entries=[entry("101001/330201", OTHER_CITY)])
    assert other.status_code == 200
    answer = push(node, seq=1, entries=[], deleted=(LOCAL_CODE, "101001/330201"))
    assert answer.status_code == 200
    assert {LOCAL_CODE, "101001/330201"} <= set(subtree(node))


@pytest.mark.parametrize(
    ("description", "kwargs", "status"),
    [
        ("a push signed by the parent's app is foreign", {"signer": f"node-{PARENT}"}, 403),
        ("a source_node_id other than the signer's", {"signer": f"node-{OTHER_CITY}"}, 403),
        (
            "an entry outside the child's subtree",
            {"entries": [entry("101001/330102", "330102")]},
            403,
        ),
        (
            "an invalid entry",
            {"entries": [entry("101001/330102", CITY, update_cycle="HOURLY")]},
            400,
        ),
        ("a code held locally", {"entries": [entry(LOCAL_CODE, CITY)]}, 409),
        ("a code held from another child", {"entries": [entry("101001/330299", CITY)]}, 409),
    ],
)
def test_a_refused_push_changes_nothing(
    nodes: NodeFactory, description: str, kwargs: dict[str, Any], status: int
) -> None:
    node = nodes()
    other = push(node, seq=1, child=OTHER_CITY, entries=[entry("101001/330299", OTHER_CITY)])
    assert other.status_code == 200
    before = subtree(node)
    body = {"entries": [entry("101001/330150", CITY)], **kwargs}
    entries = body.pop("entries")
    answer = push(node, seq=1, entries=[entry("101001/330151", CITY), *entries], **body)
    assert answer.status_code == status, description
    expected_code = {400: "INVALID_REQUEST", 403: "FORBIDDEN", 409: "CONFLICT"}[status]
    assert answer.json()["code"] == expected_code
    assert subtree(node) == before


def test_a_consumer_cannot_push(nodes: NodeFactory) -> None:
    body = {"source_node_id": CITY, "seq": 1, "full": True, "entries": [], "deleted": []}
    answer = call(nodes(), "consumer-a", "POST", "/api/v1/cascade/catalog", body)
    assert answer.status_code == 403


# -- pushes sent to the parent (ATS-CAS-01, ATS-CAS-10, ATS-CAS-11) -----------------------------


def test_the_first_push_after_start_is_full_and_signed_by_the_node(
    nodes: NodeFactory, script: Script
) -> None:
    signer = signer_at_parent(nodes())
    assert wait_for(lambda: bool(script.pushes(signer)))
    body = script.pushes(signer)[0]
    assert (body["source_node_id"], body["seq"], body["full"]) == (NODE, 1, True)
    assert [e["resource_code"] for e in body["entries"]] == [LOCAL_CODE]


def test_a_sync_pushes_the_whole_subtree_with_the_next_seq(
    nodes: NodeFactory, script: Script
) -> None:
    node = nodes()
    first = call(node, "admin", "POST", "/api/v1/cascade/sync")
    second = call(node, "admin", "POST", "/api/v1/cascade/sync")
    assert first.status_code == second.status_code == 200
    assert second.json()["seq"] == first.json()["seq"] + 1
    pushed = script.pushes(signer_at_parent(node))[-1]
    assert (pushed["seq"], pushed["full"]) == (second.json()["seq"], True)
    assert {e["resource_code"] for e in pushed["entries"]} == set(subtree(node))
    assert second.json()["pushed"] == len(pushed["entries"])


@pytest.mark.parametrize(("mode", "status"), [("error-409", 502), ("text", 502), ("hang", 504)])
def test_a_sync_the_parent_does_not_accept_answers_502_or_504(
    nodes: NodeFactory, script: Script, mode: str, status: int
) -> None:
    node = nodes()
    script.mode = mode
    started = time.monotonic()
    answer = call(node, "admin", "POST", "/api/v1/cascade/sync")
    assert answer.status_code == status
    assert time.monotonic() - started < ANSWER_WITHIN_S


def test_a_consumer_cannot_sync(nodes: NodeFactory) -> None:
    assert call(nodes(), "consumer-a", "POST", "/api/v1/cascade/sync").status_code == 403


def test_changes_from_children_are_pushed_on_at_once(nodes: NodeFactory, script: Script) -> None:
    node = nodes()
    signer = signer_at_parent(node)
    last = call(node, "admin", "POST", "/api/v1/cascade/sync").json()["seq"]
    code = "101001/330161"
    assert push(node, seq=50, entries=[entry(code, CITY)]).status_code == 200
    assert wait_for(lambda: code in str(script.pushes(signer)[-1]["entries"]), 5.0)
    added = script.pushes(signer)[-1]
    assert (added["seq"], added["full"]) == (last + 1, False)
    assert push(node, seq=51, full=False, entries=[], deleted=(code,)).status_code == 200
    assert wait_for(lambda: code in script.pushes(signer)[-1]["deleted"], 5.0)
    assert script.pushes(signer)[-1]["seq"] == last + 2


# -- routing to failing neighbours (ATS-CAS-04, ATS-CAS-08, ATS-CAS-09) -------------------------


def test_a_forwarded_query_carries_the_nodes_own_signature_and_the_routing_headers(
    nodes: NodeFactory, script: Script
) -> None:
    node = nodes()
    answer = query(node, "101001/990001", {"X-Request-Id": "forward-check-01"})
    assert answer.status_code == 200
    assert answer.headers["X-Route"] == f"{NODE},{PARENT}"
    sent = script.queries()[-1]
    assert sent.body == b"{}"
    assert sent.headers["X-App-Id"] == signer_at_parent(node)
    assert sent.headers["X-Request-Id"] == "forward-check-01"
    assert sent.headers["X-Hop-Limit"] == "7"
    assert (sent.headers["X-Origin-Node"], sent.headers["X-Origin-App"]) == (NODE, "consumer-a")
    assert sent.headers["X-Route"] == NODE
    canonical = signing.canonical_string(
        method="POST",
        path=sent.path,
        query="",
        app_id=signer_at_parent(node),
        timestamp=sent.headers["X-Timestamp"],
        nonce=sent.headers["X-Nonce"],
        body=sent.body,
        signature_method=sent.headers["X-Signature-Method"],
    )
    assert signing.verify(
        SECRETS["node-at-parent"],
        canonical,
        sent.headers["X-Signature"],
        sent.headers["X-Signature-Method"],
    )


def test_a_hop_limit_is_decremented_when_forwarded(nodes: NodeFactory, script: Script) -> None:
    assert query(nodes(), "101001/990001", {"X-Hop-Limit": "5"}).status_code == 200
    assert script.queries()[-1].headers["X-Hop-Limit"] == "4"


@pytest.mark.parametrize(
    ("mode", "status", "code"),
    [
        ("hang", 504, "UPSTREAM_TIMEOUT"),
        ("stall-body", 504, "UPSTREAM_TIMEOUT"),
        ("error-401", 502, "UPSTREAM_UNAVAILABLE"),
        ("error-500", 502, "UPSTREAM_UNAVAILABLE"),
        ("text", 502, "UPSTREAM_UNAVAILABLE"),
        ("error-404", 404, "NOT_FOUND"),
        ("error-508", 508, "LOOP_DETECTED"),
    ],
)
def test_the_next_hops_answer_is_relayed_or_replaced_by_502_or_504(
    nodes: NodeFactory, script: Script, mode: str, status: int, code: str
) -> None:
    node = nodes()
    script.mode = mode
    started = time.monotonic()
    answer = query(node, "101001/990001")
    assert time.monotonic() - started < ANSWER_WITHIN_S
    assert (answer.status_code, answer.json()["code"]) == (status, code)
    relayed = status < 500 or status == 508
    assert answer.headers["X-Route"] == (f"{NODE},{PARENT}" if relayed else NODE)
    script.release.set()
    assert httpx.get(node.url + "/api/v1/health", timeout=5.0).status_code == 200


def test_a_relayed_answer_keeps_retry_after(nodes: NodeFactory, script: Script) -> None:
    script.mode = "error-429"
    answer = query(nodes(), "101001/990001")
    assert (answer.status_code, answer.headers["Retry-After"]) == (429, "3")


def test_a_child_refusing_the_connection_answers_502(nodes: NodeFactory) -> None:
    node = nodes()
    code = "101001/330171"
    assert push(node, seq=70, entries=[entry(code, CITY)]).status_code == 200
    started = time.monotonic()
    answer = query(node, code)
    assert (answer.status_code, answer.json()["code"]) == (502, "UPSTREAM_UNAVAILABLE")
    assert time.monotonic() - started < ANSWER_WITHIN_S
    assert answer.headers["X-Route"] == NODE


def test_a_query_from_the_parent_is_not_sent_back_up(nodes: NodeFactory, script: Script) -> None:
    before = len(script.queries())
    answer = call(
        nodes(),
        f"node-{PARENT}",
        "POST",
        "/api/v1/share/101001/990001/query",
        {},
        {"X-Origin-Node": PARENT, "X-Origin-App": "someone", "X-Route": PARENT},
    )
    assert answer.status_code == 404
    assert len(script.queries()) == before


def test_a_childs_origin_outside_its_subtree_answers_403(nodes: NodeFactory) -> None:
    answer = call(
        nodes(),
        f"node-{CITY}",
        "POST",
        f"/api/v1/share/{LOCAL_CODE}/query",
        {},
        {"X-Origin-Node": "320100", "X-Origin-App": "someone", "X-Route": CITY},
    )
    assert answer.status_code == 403


# -- every cascade fault switch breaks its clause -----------------------------------------------


def _query_seen(script: Script, request_id: str) -> Seen | None:
    return next((s for s in script.queries() if s.headers.get("X-Request-Id") == request_id), None)


def test_fault_accept_foreign_push_breaks_cas_03(nodes: NodeFactory) -> None:
    node = nodes("accept-foreign-push")
    assert push(node, seq=1, entries=[], signer=f"node-{PARENT}").status_code == 200
    assert push(node, seq=1, entries=[], signer=f"node-{OTHER_CITY}").status_code == 200


def test_fault_accept_out_of_subtree_entry_breaks_cas_03(nodes: NodeFactory) -> None:
    node = nodes("accept-out-of-subtree-entry")
    assert push(node, seq=1, entries=[entry("101001/330181", "330102")]).status_code == 200
    assert "101001/330181" in subtree(node)


def test_fault_accept_invalid_entry_breaks_cas_03(nodes: NodeFactory) -> None:
    node = nodes("accept-invalid-entry")
    invalid = entry("101001/330182", CITY, update_cycle="HOURLY")
    assert push(node, seq=1, entries=[invalid]).status_code == 200


def test_fault_partial_push_on_error_breaks_cas_03(nodes: NodeFactory) -> None:
    node = nodes("partial-push-on-error")
    answer = push(node, seq=1, entries=[entry("101001/330183", CITY), entry(LOCAL_CODE, CITY)])
    assert answer.status_code == 409
    assert "101001/330183" in subtree(node)


def test_fault_accept_out_of_order_push_breaks_cas_02(nodes: NodeFactory) -> None:
    node = nodes("accept-out-of-order-push")
    assert push(node, seq=1, entries=[]).status_code == 200
    assert push(node, seq=9, full=False, entries=[]).status_code == 200


def test_fault_full_push_keeps_missing_breaks_cas_02(nodes: NodeFactory) -> None:
    node = nodes("full-push-keeps-missing")
    assert push(node, seq=1, entries=[entry("101001/330184", CITY)]).status_code == 200
    assert push(node, seq=2, entries=[]).status_code == 200
    assert "101001/330184" in subtree(node)


def test_fault_ignore_deleted_breaks_cas_02(nodes: NodeFactory) -> None:
    node = nodes("ignore-deleted")
    assert push(node, seq=1, entries=[entry("101001/330185", CITY)]).status_code == 200
    assert push(node, seq=2, full=False, entries=[], deleted=("101001/330185",)).status_code == 200
    assert "101001/330185" in subtree(node)


def test_fault_seq_not_increasing_breaks_cas_01(nodes: NodeFactory) -> None:
    node = nodes("seq-not-increasing")
    first = call(node, "admin", "POST", "/api/v1/cascade/sync").json()
    second = call(node, "admin", "POST", "/api/v1/cascade/sync").json()
    assert first["seq"] == second["seq"]


def test_fault_sync_local_only_breaks_cas_01(nodes: NodeFactory) -> None:
    node = nodes("sync-local-only")
    assert push(node, seq=1, entries=[entry("101001/330186", CITY)]).status_code == 200
    assert call(node, "admin", "POST", "/api/v1/cascade/sync").json()["pushed"] == 1
    assert len(subtree(node)) == 2


def test_fault_incremental_sync_breaks_cas_01(nodes: NodeFactory, script: Script) -> None:
    node = nodes("incremental-sync")
    seq = call(node, "admin", "POST", "/api/v1/cascade/sync").json()["seq"]
    sent = [p for p in script.pushes(signer_at_parent(node)) if p["seq"] == seq]
    assert sent[-1]["full"] is False


def test_fault_invalid_sync_entries_breaks_cas_01(nodes: NodeFactory, script: Script) -> None:
    node = nodes("invalid-sync-entries")
    call(node, "admin", "POST", "/api/v1/cascade/sync")
    assert "update_cycle" not in script.pushes(signer_at_parent(node))[-1]["entries"][0]


@pytest.mark.parametrize("fault", ["no-repush", "slow-sync"])
def test_faults_delaying_changes_from_children_break_cas_11(
    nodes: NodeFactory, script: Script, fault: str
) -> None:
    node = nodes(fault)
    signer = signer_at_parent(node)
    assert wait_for(lambda: bool(script.pushes(signer)))
    assert push(node, seq=1, entries=[entry("101001/330187", CITY)]).status_code == 200
    time.sleep(1.0)
    assert "101001/330187" not in str(script.pushes(signer))


def test_fault_drop_deletions_breaks_cas_10(nodes: NodeFactory, script: Script) -> None:
    node = nodes("drop-deletions")
    signer = signer_at_parent(node)
    assert push(node, seq=1, entries=[entry("101001/330188", CITY)]).status_code == 200
    assert wait_for(lambda: "101001/330188" in str(script.pushes(signer)))
    assert push(node, seq=2, full=False, entries=[], deleted=("101001/330188",)).status_code == 200
    assert wait_for(lambda: script.pushes(signer)[-1]["entries"] == [], 5.0)
    assert all(p["deleted"] == [] for p in script.pushes(signer))


def test_fault_ignore_hop_limit_breaks_cas_06(nodes: NodeFactory, script: Script) -> None:
    answer = query(
        nodes("ignore-hop-limit"),
        "101001/990001",
        {"X-Hop-Limit": "1", "X-Request-Id": "hop-1-fault"},
    )
    assert answer.status_code == 200
    seen = _query_seen(script, "hop-1-fault")
    assert seen is not None
    assert seen.headers["X-Hop-Limit"] == "1"


def test_fault_no_loop_check_breaks_cas_07(nodes: NodeFactory) -> None:
    answer = query(nodes("no-loop-check"), "101001/990001", {"X-Route": NODE})
    assert answer.status_code == 200


def test_fault_no_forward_timeout_breaks_cas_08(nodes: NodeFactory, script: Script) -> None:
    node = nodes("no-forward-timeout")
    script.mode = "hang"
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            node.url + "/api/v1/share/101001/990001/query",
            content=b"{}",
            headers=signing.sign_headers(
                method="POST",
                target="/api/v1/share/101001/990001/query",
                body=b"{}",
                app_id="consumer-a",
                secret=SECRETS["consumer-a"],
            ),
            timeout=CASCADE_TIMEOUT_S + 2,
        )


def test_fault_relay_upstream_failure_breaks_cas_08(nodes: NodeFactory, script: Script) -> None:
    script.mode = "error-401"
    assert query(nodes("relay-upstream-failure"), "101001/990001").status_code == 401


def test_fault_upstream_error_as_502_breaks_cas_04(nodes: NodeFactory, script: Script) -> None:
    script.mode = "error-404"
    assert query(nodes("upstream-error-as-502"), "101001/990001").status_code == 502


def test_fault_new_request_id_on_forward_breaks_cas_04(nodes: NodeFactory, script: Script) -> None:
    before = len(script.queries())
    query(nodes("new-request-id-on-forward"), "101001/990001", {"X-Request-Id": "keep-me-0001"})
    assert script.queries()[before].headers["X-Request-Id"] != "keep-me-0001"


def test_fault_no_origin_headers_breaks_cas_04(nodes: NodeFactory, script: Script) -> None:
    query(nodes("no-origin-headers"), "101001/990001", {"X-Request-Id": "no-origin-0001"})
    seen = _query_seen(script, "no-origin-0001")
    assert seen is not None
    assert "X-Origin-Node" not in seen.headers


def test_fault_forward_caller_headers_breaks_cas_09(nodes: NodeFactory, script: Script) -> None:
    query(nodes("forward-caller-headers"), "101001/990001", {"X-Request-Id": "caller-hdrs-01"})
    seen = _query_seen(script, "caller-hdrs-01")
    assert seen is not None
    assert seen.headers["X-App-Id"] == "consumer-a"


def test_fault_no_upward_routing_breaks_cas_05(nodes: NodeFactory, script: Script) -> None:
    answer = query(nodes("no-upward-routing"), "101001/990001", {"X-Request-Id": "no-upward-001"})
    assert answer.status_code == 404
    assert _query_seen(script, "no-upward-001") is None


def test_fault_route_back_to_parent_breaks_cas_05(nodes: NodeFactory, script: Script) -> None:
    answer = call(
        nodes("route-back-to-parent"),
        f"node-{PARENT}",
        "POST",
        "/api/v1/share/101001/990001/query",
        {},
        {"X-Origin-Node": PARENT, "X-Origin-App": "someone", "X-Request-Id": "back-up-0001"},
    )
    assert answer.status_code == 200
    assert _query_seen(script, "back-up-0001") is not None
