"""The reference topology: four real nodes on loopback, each its own process, wired per ATS §0/§8.

`conformance serve` without `--node` starts national, a department, provincial and municipal
nodes, writes a target file for certifying the provincial node against its real neighbours
(and the child slot the suite emulates beside them, fixtures/topology.yaml) and runs until
interrupted; with `--node` it runs one node. Tests and benchmarks use
`start_topology` and `start_node`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

from conformance.codes import uscc_problem
from conformance.data import data_dir

_STOP_GRACE_S = 5.0
_START_TIMEOUT_S = 30.0
_SYNC_TIMEOUT_S = 20.0
_POLL_S = 0.05


class LaunchError(Exception):
    """A node or the topology could not be started; the message is one line naming the cause."""


class StartCancelled(Exception):
    """The start of the topology was cancelled (Ctrl-C); every node started so far has ended."""


@dataclass(frozen=True)
class TopologyNode:
    """One node of the topology plan: who it is, its parent and its port offset."""

    node_id: str
    name: str
    level: str
    parent: str | None
    port_offset: int
    systems_integrated: int
    # Wired into its parent, never started: the child slot a live run emulates.
    emulated: bool = False


@dataclass(frozen=True)
class TopologyPlan:
    """The topology plan of fixtures/topology.yaml with the department id resolved."""

    nodes: tuple[TopologyNode, ...]
    candidate: str
    rate_limit_per_app: int
    cascade_timeout_s: float
    apps: Mapping[str, Mapping[str, Any]]

    def node(self, node_id: str) -> TopologyNode:
        """The plan of the node with this id."""
        return next(n for n in self.nodes if n.node_id == node_id)

    def children(self, node_id: str) -> tuple[TopologyNode, ...]:
        """The nodes whose parent is this node, the emulated slots among them."""
        return tuple(n for n in self.nodes if n.parent == node_id)

    @property
    def started(self) -> tuple[TopologyNode, ...]:
        """The nodes that run, every node but the emulated slots."""
        return tuple(n for n in self.nodes if not n.emulated)


@dataclass
class RunningNode:
    """A reference node running in its own process, listening at `url`."""

    node_id: str
    url: str
    process: subprocess.Popen[bytes]
    config_path: Path
    log_path: Path

    def stop(self, timeout_s: float = _STOP_GRACE_S) -> None:
        """The process has ended: terminated, and killed when it outlives the grace period."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout_s)


@dataclass
class Topology:
    """Running nodes of the reference topology, their node files and the candidate's target."""

    workdir: Path
    plan: TopologyPlan
    configs: dict[str, dict[str, Any]]
    nodes: dict[str, RunningNode] = field(default_factory=dict)

    def url(self, node_id: str) -> str:
        """The base URL of a node."""
        return self.nodes[node_id].url

    def secret(self, node_id: str, app_id: str) -> str:
        """The secret of an app registered at a node."""
        for app in self.configs[node_id]["apps"]:
            if app["app_id"] == app_id:
                return str(app["secret"])
        raise KeyError(f"{app_id} is not registered at {node_id}")

    def wired_child(self, node_id: str, child_id: str) -> Mapping[str, Any]:
        """The entry of a child in a node's `children` list: its URL and the node's credential
        there."""
        children = self.configs[node_id]["node"]["children"]
        return next(c for c in children if c["node_id"] == child_id)

    def address(self, node_id: str) -> str:
        """Where a node answers; for an emulated slot, where the suite emulates it."""
        node = self.plan.node(node_id)
        if node.emulated and node.parent is not None:
            url = self.wired_child(node.parent, node_id)["url"]
            return f"{url} (emulated by the suite during a live run)"
        return self.url(node_id)

    @property
    def department_id(self) -> str:
        """The id of the department node."""
        return next(n.node_id for n in self.plan.nodes if n.level == "department")

    def target(self, candidate: str | None = None) -> dict[str, Any]:
        """The target file (DESIGN "Target file") certifying `candidate` with real neighbours."""
        return _target_for(self, candidate or self.plan.candidate)

    def write_target(self, path: str | Path, candidate: str | None = None) -> Path:
        """The target file is written at `path` (created with owner-only permissions)."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(self.target(candidate), allow_unicode=True, sort_keys=False)
        out.touch(mode=0o600, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        return out

    def stop(self) -> None:
        """Every node process has ended, children before parents."""
        deepest_first = sorted(
            self.nodes.values(), key=lambda n: _depth(self.plan, n.node_id), reverse=True
        )
        _end([node.process for node in deepest_first])

    def __enter__(self) -> Topology:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def load_plan(department_id: str | None = None) -> TopologyPlan:
    """The topology plan; the department id is that of the department catalog of the fixtures."""
    raw = yaml.safe_load((data_dir("fixtures") / "topology.yaml").read_text(encoding="utf-8"))
    department = department_id or _fixture_department_id()
    nodes = tuple(
        TopologyNode(
            node_id=str(n["node_id"] or department),
            name=str(n["name"]),
            level=str(n["level"]),
            parent=None if n["parent"] is None else str(n["parent"]),
            port_offset=int(n["port_offset"]),
            systems_integrated=int(n["systems_integrated"]),
            emulated=bool(n.get("emulated", False)),
        )
        for n in raw["nodes"]
    )
    return TopologyPlan(
        nodes=nodes,
        candidate=str(raw["candidate"]),
        rate_limit_per_app=int(raw["rate_limit_per_app"]),
        cascade_timeout_s=float(raw["cascade_timeout_s"]),
        apps=raw["apps"],
    )


def _fixture_department_id() -> str:
    folder = data_dir("fixtures") / "catalogs"
    index = folder / "index.json"
    if index.is_file():
        return str(json.loads(index.read_text(encoding="utf-8"))["department"])
    ids = sorted(p.stem for p in folder.glob("*.json") if uscc_problem(p.stem) is None)
    if not ids:
        raise LaunchError(f"{folder}: no department catalog (a file named <USCC>.json)")
    return ids[0]


def _secret() -> str:
    # ATS §0: a secret is 32–128 characters of [A-Za-z0-9_-]; token_urlsafe(48) gives 64.
    return secrets.token_urlsafe(48)


def _free_ports(host: str, count: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in socks]


def _end(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    """The processes have ended: terminated in this order, killed when they outlive the grace."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + _STOP_GRACE_S
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=_STOP_GRACE_S)


def _depth(plan: TopologyPlan, node_id: str) -> int:
    parent = plan.node(node_id).parent
    return 0 if parent is None else 1 + _depth(plan, parent)


def node_files(
    plan: TopologyPlan,
    host: str,
    ports: Mapping[str, int],
    *,
    cascade_timeout_s: float | None = None,
    seeds: Mapping[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """The node files of the topology, keyed by node id, with fresh random secrets.

    Every neighbour pair is wired both ways: the child's `node` app at the parent is the
    child's `parent` credential, and the parent's `node` app at the child is the parent's
    credential in its `children` list (ATS §8: each node signs with its own node app). An
    emulated slot has no file: only its parent's side of the wiring exists.
    """
    timeout = plan.cascade_timeout_s if cascade_timeout_s is None else cascade_timeout_s
    files: dict[str, dict[str, Any]] = {}
    for n in plan.started:
        apps = [{**app, "secret": _secret()} for app in plan.apps.values()]
        files[n.node_id] = {
            "node": {
                "node_id": n.node_id,
                "name": n.name,
                "level": n.level,
                "listen": f"{host}:{ports[n.node_id]}",
                "database": f"{n.node_id}.sqlite3",
                "rate_limit_per_app": plan.rate_limit_per_app,
                "cascade_timeout_s": timeout,
                "systems_integrated": n.systems_integrated,
                "parent": None,
                "children": [],
            },
            "apps": apps,
            "seed": {"catalog": (seeds or {}).get(n.node_id, n.node_id)},
            "faults": [],
        }
    for n in plan.nodes:
        if n.parent is None:
            continue
        parent = files[n.parent]
        up, down = _secret(), _secret()
        parent["apps"].append(
            {"app_id": f"node-{n.node_id}", "secret": up, "role": "node", "bound_node": n.node_id}
        )
        parent["node"]["children"].append(
            {
                "node_id": n.node_id,
                "name": n.name,
                "level": n.level,
                "url": f"http://{host}:{ports[n.node_id]}",
                "app_id": f"node-{n.parent}",
                "secret": down,
            }
        )
        # An emulated slot's side of the pair is in the target file (neighbours.emulated_child).
        child = files.get(n.node_id)
        if child is None:
            continue
        child["node"]["parent"] = {
            "node_id": n.parent,
            "url": f"http://{host}:{ports[n.parent]}",
            "app_id": f"node-{n.node_id}",
            "secret": up,
        }
        child["apps"].append(
            {"app_id": f"node-{n.parent}", "secret": down, "role": "node", "bound_node": n.parent}
        )
    return files


def start_node(
    config_path: str | Path,
    faults: Sequence[str] = (),
    *,
    timeout_s: float = _START_TIMEOUT_S,
    variants: Sequence[str] = (),
) -> RunningNode:
    """A node process started from a node file, listening once this returns.

    The node prints `ready <node_id> <url>` when it listens; its stdout and stderr go to
    `<node file>.log` beside the node file.
    """
    return _await_ready(_spawn(Path(config_path), faults, variants), timeout_s)


def _spawn(
    config_path: Path, faults: Sequence[str], variants: Sequence[str] = ()
) -> tuple[Path, Path, subprocess.Popen[bytes]]:
    log_path = config_path.with_suffix(".log")
    command = [sys.executable, "-m", "conformance.reference", "--config", str(config_path)]
    for name in faults:
        command += ["--fault", name]
    for name in variants:
        command += ["--variant", name]
    with log_path.open("wb") as log:
        # A process group of its own: a terminal's Ctrl-C reaches the launcher, which stops the
        # nodes children first, not every node at once in the middle of its start.
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            process_group=0,
        )
    return config_path, log_path, process


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise StartCancelled("the start was cancelled")


def _await_ready(
    spawned: tuple[Path, Path, subprocess.Popen[bytes]],
    timeout_s: float,
    cancel: threading.Event | None = None,
) -> RunningNode:
    config_path, log_path, process = spawned
    deadline = time.monotonic() + timeout_s
    while True:
        _check_cancel(cancel)
        for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            words = line.split()
            if len(words) == 3 and words[0] == "ready":
                return RunningNode(words[1], words[2], process, config_path, log_path)
        if process.poll() is not None:
            lines = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
            reason = lines[-1] if lines else f"exit status {process.returncode}"
            raise LaunchError(f"{config_path}: the node did not start: {reason}")
        if time.monotonic() > deadline:
            process.kill()
            process.wait(timeout=_STOP_GRACE_S)
            raise LaunchError(f"{config_path}: the node was not ready within {timeout_s:g} s")
        time.sleep(_POLL_S)


def start_topology(
    workdir: str | Path,
    base_port: int = 0,
    faults: Mapping[str, Sequence[str]] | None = None,
    *,
    host: str = "127.0.0.1",
    cascade_timeout_s: float | None = None,
    seeds: Mapping[str, str] | None = None,
    department_id: str | None = None,
    cancel: threading.Event | None = None,
    variants: Mapping[str, Sequence[str]] | None = None,
) -> Topology:
    """The reference topology, started, healthy and synced (every node's subtree catalog pushed
    up to the national node); use it as a context manager so that every process ends.

    `base_port` 0 picks free ports; `faults` maps node ids to fault switch names; `seeds` maps
    node ids to seed catalogs (a fixture name or a file path) in place of the fixtures'.
    Once `cancel` is set, the start ends every node and raises StartCancelled.
    """
    plan = load_plan(department_id)
    folder = Path(workdir)
    folder.mkdir(parents=True, exist_ok=True)
    if base_port:
        ports = {n.node_id: base_port + n.port_offset for n in plan.nodes}
    else:
        ports = dict(
            zip((n.node_id for n in plan.nodes), _free_ports(host, len(plan.nodes)), strict=True)
        )
    configs = node_files(plan, host, ports, cascade_timeout_s=cascade_timeout_s, seeds=seeds)
    topology = Topology(folder, plan, configs)
    spawned: list[tuple[Path, Path, subprocess.Popen[bytes]]] = []
    try:
        for node_id, config in configs.items():
            path = folder / f"{node_id}.yaml"
            path.touch(mode=0o600, exist_ok=True)
            path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), "utf-8")
            spawned.append(
                _spawn(
                    path,
                    tuple((faults or {}).get(node_id, ())),
                    tuple((variants or {}).get(node_id, ())),
                )
            )
        for item in spawned:
            node = _await_ready(item, _START_TIMEOUT_S, cancel)
            topology.nodes[node.node_id] = node
        _await_synced(topology, cancel)
    except BaseException:
        _end([process for _, _, process in reversed(spawned)])
        raise
    return topology


def _await_synced(topology: Topology, cancel: threading.Event | None = None) -> None:
    # "Really wired": every node answers health, and the national node's subtree catalog holds
    # every node's seed entries, i.e. the first full pushes (ATS §8) went through.
    from conformance.signing import sign_headers

    national = next(n.node_id for n in topology.plan.nodes if n.parent is None)
    admin = topology.plan.apps["admin"]["app_id"]
    deadline = time.monotonic() + _SYNC_TIMEOUT_S
    with httpx.Client(timeout=5.0) as http:
        for node in topology.nodes.values():
            if http.get(f"{node.url}/api/v1/health").status_code != 200:
                raise LaunchError(f"{node.config_path}: the node does not answer health")
        expected = sum(_local_total(http, topology, n, admin) for n in topology.nodes)
        while True:
            _check_cancel(cancel)
            target = "/api/v1/catalog/resources?scope=subtree&size=1"
            headers = sign_headers(
                method="GET",
                target=target,
                body=b"",
                app_id=admin,
                secret=topology.secret(national, admin),
            )
            answer = http.get(topology.url(national) + target, headers=headers)
            if answer.status_code == 200 and answer.json().get("total") == expected:
                return
            if time.monotonic() > deadline:
                raise LaunchError(
                    f"the national node's subtree catalog did not reach {expected} entries "
                    f"within {_SYNC_TIMEOUT_S:g} s"
                )
            time.sleep(_POLL_S * 2)


def _local_total(http: httpx.Client, topology: Topology, node_id: str, admin: str) -> int:
    from conformance.signing import sign_headers

    target = "/api/v1/catalog/resources?scope=local&size=1"
    headers = sign_headers(
        method="GET",
        target=target,
        body=b"",
        app_id=admin,
        secret=topology.secret(node_id, admin),
    )
    answer = http.get(topology.url(node_id) + target, headers=headers)
    if answer.status_code != 200:
        raise LaunchError(f"{topology.url(node_id)}: catalog answered {answer.status_code}")
    return int(answer.json()["total"])


def _seed_file(topology: Topology, node_id: str) -> Path:
    # The node file's seed.catalog: a packaged catalog name or a path (relative to the workdir).
    name = str(topology.configs[node_id]["seed"]["catalog"])
    if "/" in name or name.endswith(".json"):
        return topology.workdir / name
    return data_dir("fixtures") / "catalogs" / f"{name}.json"


def _credential(topology: Topology, at: str, app_id: str) -> dict[str, str]:
    return {"app_id": app_id, "secret": topology.secret(at, app_id)}


def _target_for(topology: Topology, candidate: str) -> dict[str, Any]:
    plan = topology.plan
    me = plan.node(candidate)
    roles = json.loads(_seed_file(topology, candidate).read_text(encoding="utf-8"))["roles"]
    target: dict[str, Any] = {
        "node": {
            "base_url": topology.url(candidate),
            "level": me.level,
            "node_id": candidate,
            "parent_id": me.parent,
            "ca_bundle": None,
            "http_url": None,
        },
        "apps": {
            name: _credential(topology, candidate, str(app["app_id"]))
            for name, app in plan.apps.items()
        },
        "resources": {name: roles[name] for name in sorted(roles)},
        # ATS §0, §11: the topology listens on plain HTTP, so a run against it is a lab run.
        "lab": True,
        # The neighbours are real nodes of the topology, not emulated by the suite.
        "neighbours": {"live": True},
    }
    neighbours = target["neighbours"]
    if me.parent is not None:
        neighbours["parent"] = {
            "listen": topology.configs[me.parent]["node"]["listen"],
            "node_id": me.parent,
            "as_parent": _credential(topology, candidate, f"node-{me.parent}"),
            "candidate": _credential(topology, me.parent, f"node-{candidate}"),
        }
    # The first real child, and the first emulated slot the suite stands in for (live mode).
    for child in plan.children(candidate):
        member = "emulated_child" if child.emulated else "child"
        if member in neighbours:
            continue
        wired = topology.wired_child(candidate, child.node_id)
        neighbours[member] = {
            "listen": wired["url"].removeprefix("http://"),
            "node_id": child.node_id,
            "as_child": _credential(topology, candidate, f"node-{child.node_id}"),
            "candidate": {"app_id": wired["app_id"], "secret": wired["secret"]},
        }
    return target


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    def handler(signum: int, frame: object) -> None:
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def serve(args: argparse.Namespace) -> int:
    """`conformance serve`: one node with --node, else the topology until Ctrl-C or SIGTERM."""
    if args.node:
        from conformance.reference.__main__ import run_node

        return run_node(args.node, tuple(args.fault), tuple(args.variant))
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="ats-topology-"))
    plan = load_plan()
    stop = threading.Event()
    with _stop_on_signals(stop):
        try:
            topology = start_topology(
                workdir,
                base_port=args.base_port,
                faults={plan.candidate: tuple(args.fault)},
                variants={plan.candidate: tuple(args.variant)},
                host=args.host,
                cancel=stop,
            )
        except StartCancelled:
            print("conformance serve: interrupted during start; every node stopped", flush=True)
            return 0
        except LaunchError as exc:
            print(f"conformance serve: {exc}", file=sys.stderr)
            return 2
        with topology:
            for n in plan.nodes:
                print(f"{n.level:<10} {n.node_id:<18} {topology.address(n.node_id)}", flush=True)
            out = topology.write_target(args.target_out)
            print(f"target file for {plan.candidate}: {out}", flush=True)
            print(f"node files and logs: {workdir}", flush=True)
            while not stop.wait(0.5):
                ended = [n for n in topology.nodes.values() if n.process.poll() is not None]
                if ended:
                    print(
                        f"conformance serve: node {ended[0].node_id} ended "
                        f"(exit status {ended[0].process.returncode}); see {ended[0].log_path}",
                        file=sys.stderr,
                    )
                    return 1
    return 0
