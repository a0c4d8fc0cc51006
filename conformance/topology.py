"""The wiring of nodes: one plan format, the node files and target file it gives, one readiness
protocol and one way to stop.

A plan (``fixtures/topology.yaml``, ``fixtures/embedded.yaml``) names the nodes, their parents
and the tester's apps. A slot marked ``emulated`` is wired into its parent but never started: the
suite emulates it (``conformance.neighbours``). The embedded default of ``conformance run`` is
the plan ``embedded`` (reference node 330000 between emulated slots 100000 and 330100);
``conformance serve`` starts the plan ``topology``.

This module sits on the ground floor: the runner (harness) and the launcher (reference node) both
use it, and it imports neither. It starts a node as a separate process
(``python -m conformance.reference --config FILE``); the node announces itself with one line,
``ready <node_id> <url>``, once it listens — the one readiness protocol.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from conformance.codes import uscc_problem
from conformance.data import data_dir

START_TIMEOUT_S = 30.0
STOP_GRACE_S = 5.0
_POLL_S = 0.05
_LEVELS = ("national", "department", "provincial", "municipal", "county")


class LaunchError(Exception):
    """A plan is unusable or a node could not be started; the message is one line naming why."""


class StartCancelled(Exception):
    """A start was cancelled (Ctrl-C); every node started so far has ended."""


@dataclass(frozen=True)
class Slot:
    """One node of a plan: who it is, its parent, its port offset; ``emulated`` when the suite
    stands in for it (wired into its parent, never started)."""

    node_id: str
    name: str
    level: str
    parent: str | None
    port_offset: int
    systems_integrated: int
    emulated: bool = False


@dataclass(frozen=True)
class Plan:
    """The nodes and their wiring, the candidate a target file certifies, the tester's apps."""

    nodes: tuple[Slot, ...]
    candidate: str
    rate_limit_per_app: int
    cascade_timeout_s: float
    # Registered at every started node; the key is the target file's name for the app.
    apps: Mapping[str, Mapping[str, Any]]
    source: str = "<plan>"

    def node(self, node_id: str) -> Slot:
        """The slot with this id."""
        return next(n for n in self.nodes if n.node_id == node_id)

    def children(self, node_id: str) -> tuple[Slot, ...]:
        """The slots whose parent is this node, emulated ones among them."""
        return tuple(n for n in self.nodes if n.parent == node_id)

    @property
    def started(self) -> tuple[Slot, ...]:
        """The slots that run: every slot but the emulated ones."""
        return tuple(n for n in self.nodes if not n.emulated)

    def without(self, *node_ids: str) -> Plan:
        """The plan without these slots (a node with fewer neighbours)."""
        return replace(self, nodes=tuple(n for n in self.nodes if n.node_id not in node_ids))

    def depth(self, node_id: str) -> int:
        """How many parents are above this node."""
        parent = self.node(node_id).parent
        return 0 if parent is None else 1 + self.depth(parent)


# -- the plan file -------------------------------------------------------------------------


def load_plan(name_or_path: str | Path = "topology", department_id: str | None = None) -> Plan:
    """The plan of a packaged name (``topology``, ``embedded``) or a file; a slot whose
    ``node_id`` is null is the department of the fixtures' department catalog. Raises
    LaunchError with one line: file, place, problem."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = data_dir("fixtures") / f"{name_or_path}.yaml"
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise LaunchError(f"{path}: unreadable plan: {str(exc).splitlines()[0]}") from None
    return parse_plan(document, str(path), department_id)


def parse_plan(document: object, source: str, department_id: str | None = None) -> Plan:
    """The plan of a parsed plan document (see ``load_plan``)."""

    def fail(place: str, problem: str) -> LaunchError:
        return LaunchError(f"{source}: {place}: {problem}")

    def member(data: Mapping[str, Any], key: str, place: str, kind: type | tuple[type, ...]) -> Any:
        if key not in data:
            raise fail(f"{place}{key}", "missing")
        value = data[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise fail(f"{place}{key}", f"not a {getattr(kind, '__name__', 'value')}: {value!r}")
        return value

    if not isinstance(document, dict):
        raise fail("(top)", "not a mapping")
    raw_nodes = member(document, "nodes", "", list)
    nodes: list[Slot] = []
    for index, raw in enumerate(raw_nodes):
        place = f"nodes[{index}]."
        if not isinstance(raw, dict):
            raise fail(place.rstrip("."), "not a mapping")
        node_id = raw.get("node_id") or department_id or _fixture_department_id()
        level = member(raw, "level", place, str)
        if level not in _LEVELS:
            raise fail(f"{place}level", f"{level!r} is not one of {', '.join(_LEVELS)}")
        parent = raw.get("parent")
        nodes.append(
            Slot(
                node_id=str(node_id),
                name=member(raw, "name", place, str),
                level=level,
                parent=None if parent is None else str(parent),
                port_offset=member(raw, "port_offset", place, int),
                systems_integrated=member(raw, "systems_integrated", place, int),
                emulated=bool(raw.get("emulated", False)),
            )
        )
    ids = [n.node_id for n in nodes]
    for index, node in enumerate(nodes):
        if ids.count(node.node_id) > 1:
            raise fail(f"nodes[{index}].node_id", f"{node.node_id} appears twice")
        if node.parent is not None and node.parent not in ids:
            raise fail(f"nodes[{index}].parent", f"{node.parent} is not a node of the plan")
    candidate = str(member(document, "candidate", "", (str, int)))
    if candidate not in ids:
        raise fail("candidate", f"{candidate} is not a node of the plan")
    if nodes[ids.index(candidate)].emulated:
        raise fail("candidate", f"{candidate} is an emulated slot; the candidate must run")
    apps = member(document, "apps", "", dict)
    for name, app in apps.items():
        if not isinstance(app, dict) or "app_id" not in app or "role" not in app:
            raise fail(f"apps.{name}", "needs app_id and role")
    return Plan(
        nodes=tuple(nodes),
        candidate=candidate,
        rate_limit_per_app=member(document, "rate_limit_per_app", "", int),
        cascade_timeout_s=member(document, "cascade_timeout_s", "", (int, float)),
        apps=apps,
        source=source,
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


# -- ports and secrets ---------------------------------------------------------------------


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports free on ``host`` at the time of the call (bound together, then
    released); a port nobody binds afterwards is a closed port."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def new_secret() -> str:
    """A fresh app secret: ATS §0 asks 32–128 characters of [A-Za-z0-9_-]; this gives 64."""
    return secrets.token_urlsafe(48)


def plan_ports(plan: Plan, host: str = "127.0.0.1", base_port: int = 0) -> dict[str, int]:
    """The port of every slot: base port + offset, or free ports when ``base_port`` is 0."""
    if base_port:
        return {n.node_id: base_port + n.port_offset for n in plan.nodes}
    ports = free_ports(len(plan.nodes), host)
    return dict(zip((n.node_id for n in plan.nodes), ports, strict=True))


# -- node files and the target file --------------------------------------------------------


def node_files(
    plan: Plan,
    host: str,
    ports: Mapping[str, int],
    *,
    seeds: Mapping[str, str] | None = None,
    scheme: str = "http",
) -> dict[str, dict[str, Any]]:
    """The node file of every started slot, keyed by node id, with fresh random secrets.

    ``scheme`` is how the nodes call each other (``https`` for an HTTPS topology, whose node
    files then get their ``tls`` member from ``launcher``, and whose emulated slots the suite
    serves over HTTPS with a certificate of the same CA).

    Every neighbour pair is wired both ways: the child's ``node`` app at the parent is the
    child's ``parent`` credential, and the parent's ``node`` app at the child is the parent's
    credential in its ``children`` list (ATS §8: each node signs with its own node app). An
    emulated slot has no file: only the started side of its pair exists, and the target file
    carries the other (``neighbours.parent``, ``child`` or ``emulated_child``).
    """
    files: dict[str, dict[str, Any]] = {}
    for n in plan.started:
        files[n.node_id] = {
            "node": {
                "node_id": n.node_id,
                "name": n.name,
                "level": n.level,
                "listen": f"{host}:{ports[n.node_id]}",
                "database": f"{n.node_id}.sqlite3",
                "rate_limit_per_app": plan.rate_limit_per_app,
                "cascade_timeout_s": plan.cascade_timeout_s,
                "systems_integrated": n.systems_integrated,
                "parent": None,
                "children": [],
            },
            "apps": [{**app, "secret": new_secret()} for app in plan.apps.values()],
            "seed": {"catalog": (seeds or {}).get(n.node_id, n.node_id)},
            "faults": [],
        }
    for n in plan.nodes:
        if n.parent is None:
            continue
        up, down = new_secret(), new_secret()
        parent = files.get(n.parent)
        if parent is not None:
            parent["apps"].append(_node_app(n.node_id, up))
            parent["node"]["children"].append(
                {
                    "node_id": n.node_id,
                    "name": n.name,
                    "level": n.level,
                    "url": f"{scheme}://{host}:{ports[n.node_id]}",
                    "app_id": f"node-{n.parent}",
                    "secret": down,
                }
            )
        child = files.get(n.node_id)
        if child is not None:
            child["node"]["parent"] = {
                "node_id": n.parent,
                "url": f"{scheme}://{host}:{ports[n.parent]}",
                "app_id": f"node-{n.node_id}",
                "secret": up,
            }
            child["apps"].append(_node_app(n.parent, down))
    return files


def _node_app(peer: str, secret: str) -> dict[str, str]:
    # ATS §8: the app a neighbour signs with, bound to that neighbour's node id.
    return {"app_id": f"node-{peer}", "secret": secret, "role": "node", "bound_node": peer}


def seed_roles(seed: str, folder: Path | None = None) -> dict[str, str]:
    """The ``roles`` of a seed catalog (a packaged name, or a path relative to ``folder``)."""
    path = (
        (folder or Path.cwd()) / seed
        if "/" in seed or seed.endswith(".json")
        else data_dir("fixtures") / "catalogs" / f"{seed}.json"
    )
    try:
        roles = json.loads(path.read_text(encoding="utf-8"))["roles"]
    except (OSError, ValueError, KeyError) as exc:
        raise LaunchError(f"{path}: the seed catalog is unusable: {exc}") from None
    return {role: str(code) for role, code in roles.items()}


def _credential(files: Mapping[str, Mapping[str, Any]], at: str, app_id: str) -> dict[str, str]:
    app = next(a for a in files[at]["apps"] if a["app_id"] == app_id)
    return {"app_id": app_id, "secret": str(app["secret"])}


def target_document(
    plan: Plan,
    files: Mapping[str, Mapping[str, Any]],
    candidate: str | None = None,
    *,
    base_url: str | None = None,
    folder: Path | None = None,
    omit: Iterable[str] = (),
    ca_bundle: str | None = None,
) -> dict[str, Any]:
    """The target file (DESIGN "Target file") certifying ``candidate`` (the plan's by default).

    ``base_url`` is where the candidate answers (by default its ``listen``); ``omit`` names
    neighbours the target file leaves out (they are wired but nothing answers there). When a
    neighbour of the candidate runs, the run is live (``neighbours.live``) and the first
    emulated child is the ``emulated_child`` slot; else the suite emulates every neighbour.
    ``ca_bundle`` is the private CA of an HTTPS plan (its node files carry ``tls``).
    """
    me = plan.node(candidate or plan.candidate)
    mine = files[me.node_id]
    left_out = set(omit)
    around = [n for n in plan.nodes if n.node_id == me.parent or n.parent == me.node_id]
    live = any(not n.emulated for n in around)
    neighbours: dict[str, Any] = {"live": True} if live else {}
    wired_parent = mine["node"]["parent"]
    if wired_parent is not None and me.parent not in left_out:
        neighbours["parent"] = {
            **_address(str(wired_parent["url"])),
            "node_id": me.parent,
            "as_parent": _credential(files, me.node_id, f"node-{me.parent}"),
            "candidate": {"app_id": wired_parent["app_id"], "secret": wired_parent["secret"]},
        }
    for wired in mine["node"]["children"]:
        if wired["node_id"] in left_out:
            continue
        member = "emulated_child" if live and plan.node(wired["node_id"]).emulated else "child"
        if member in neighbours:
            continue
        neighbours[member] = {
            **_address(str(wired["url"])),
            "node_id": wired["node_id"],
            "as_child": _credential(files, me.node_id, f"node-{wired['node_id']}"),
            "candidate": {"app_id": wired["app_id"], "secret": wired["secret"]},
        }
    tls = mine.get("tls")
    document: dict[str, Any] = {
        "node": {
            "base_url": base_url or f"{'https' if tls else 'http'}://{mine['node']['listen']}",
            "level": me.level,
            "node_id": me.node_id,
            "parent_id": me.parent,
            "ca_bundle": ca_bundle,
            "http_url": f"http://{tls['http_listen']}" if tls else None,
        },
        "apps": {
            name: _credential(files, me.node_id, str(app["app_id"]))
            for name, app in plan.apps.items()
        },
        "resources": seed_roles(str(mine["seed"]["catalog"]), folder),
        # ATS §0, §11: a plan on plain HTTP is for lab runs; over HTTPS (a private CA, which
        # ATS-SEC-01 allows) a run against it can certify.
        "lab": not tls,
    }
    if neighbours:
        document["neighbours"] = neighbours
    return document


def _address(url: str) -> dict[str, str]:
    """A neighbour's ``listen``, and its ``url`` when it is not plain HTTP there."""
    listen = url.split("://", 1)[1]
    return {"listen": listen} if url.startswith("http://") else {"listen": listen, "url": url}


def write_file(path: str | Path, document: Mapping[str, Any]) -> Path:
    """A node file or target file is written at ``path`` as YAML, owner-only (it holds secrets)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.touch(mode=0o600, exist_ok=True)
    out.chmod(0o600)
    out.write_text(yaml.safe_dump(dict(document), allow_unicode=True, sort_keys=False), "utf-8")
    return out


# -- node processes ------------------------------------------------------------------------


@dataclass
class RunningNode:
    """A reference node running in its own process, listening at ``url``."""

    node_id: str
    url: str
    process: subprocess.Popen[bytes]
    config_path: Path
    log_path: Path

    def stop(self) -> None:
        """The process has ended (see ``stop_processes``)."""
        stop_processes([self.process])


@dataclass(frozen=True)
class Spawned:
    """A node process just started, not yet known to listen."""

    config_path: Path
    log_path: Path
    process: subprocess.Popen[bytes]


def spawn_node(
    config_path: str | Path,
    faults: Sequence[str] = (),
    variants: Sequence[str] = (),
    ca_bundle: str | Path | None = None,
) -> Spawned:
    """A node process started from a node file; its stdout and stderr go to
    ``<node file>.log`` beside it, and it runs in a session of its own, so that a terminal's
    Ctrl-C reaches the starter, which stops the nodes in order. With ``ca_bundle`` the node's
    calls to its HTTPS neighbours verify with that CA (its HTTP client reads SSL_CERT_FILE)."""
    config = Path(config_path)
    log_path = config.with_suffix(".log")
    command = [sys.executable, "-m", "conformance.reference", "--config", str(config)]
    for name in faults:
        command += ["--fault", name]
    for name in variants:
        command += ["--variant", name]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=config.parent,
            start_new_session=True,
            env={**os.environ, "SSL_CERT_FILE": str(ca_bundle)} if ca_bundle else None,
        )
    return Spawned(config, log_path, process)


def await_ready(
    spawned: Spawned,
    timeout_s: float = START_TIMEOUT_S,
    cancel: threading.Event | None = None,
) -> RunningNode:
    """The node once it printed ``ready <node_id> <url>``; LaunchError (one line, the node's last
    line of output) when it ends first or stays silent for ``timeout_s``; StartCancelled once
    ``cancel`` is set. A node that failed is stopped."""
    deadline = time.monotonic() + timeout_s
    while True:
        if cancel is not None and cancel.is_set():
            stop_processes([spawned.process])
            raise StartCancelled("the start was cancelled")
        output = spawned.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        for line in output:
            words = line.split()
            if len(words) == 3 and words[0] == "ready":
                return RunningNode(
                    words[1], words[2], spawned.process, spawned.config_path, spawned.log_path
                )
        if spawned.process.poll() is not None:
            last = [line for line in output if line.strip()]
            reason = last[-1].strip() if last else f"exit status {spawned.process.returncode}"
            raise LaunchError(f"{spawned.config_path}: the node did not start: {reason}")
        if time.monotonic() > deadline:
            stop_processes([spawned.process])
            raise LaunchError(
                f"{spawned.config_path}: the node was not ready within {timeout_s:g} s"
            )
        time.sleep(_POLL_S)


def start_node(
    config_path: str | Path,
    faults: Sequence[str] = (),
    *,
    timeout_s: float = START_TIMEOUT_S,
    variants: Sequence[str] = (),
) -> RunningNode:
    """A node process started from a node file (with these faults and variants switched on),
    listening once this returns."""
    return await_ready(spawn_node(config_path, faults, variants), timeout_s)


def stop_processes(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    """The one way to stop: SIGTERM to each process's session in this order, then SIGKILL to
    those that outlive the common grace of ``STOP_GRACE_S``."""
    for process in processes:
        _signal(process, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal(process, signal.SIGKILL)
            process.wait(timeout=STOP_GRACE_S)


def _signal(process: subprocess.Popen[bytes], signum: int) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        # Not (or no longer) the leader of its own session: signal the process alone.
        with suppress(ProcessLookupError):
            process.send_signal(signum)
