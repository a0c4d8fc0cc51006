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
import signal
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from conformance import ats
from conformance.topology import (
    START_TIMEOUT_S,
    LaunchError,
    Plan,
    RunningNode,
    Slot,
    Spawned,
    StartCancelled,
    await_ready,
    free_ports,
    load_plan,
    node_files,
    plan_ports,
    spawn_node,
    start_node,
    stop_processes,
    target_document,
    write_file,
)

# Where `conformance serve` writes the topology's target file unless told otherwise.
_TOPOLOGY_TARGET = "target.yaml"
_SYNC_TIMEOUT_S = 20.0
_POLL_S = 0.05

# The plan format, node files, target file, readiness and stop are conformance.topology's;
# these names stay importable here for the tests and benchmarks that start nodes.
TopologyPlan = Plan
TopologyNode = Slot
__all__ = [
    "LaunchError",
    "RunningNode",
    "StartCancelled",
    "Topology",
    "TopologyNode",
    "TopologyPlan",
    "load_plan",
    "node_files",
    "serve",
    "start_node",
    "start_topology",
]


@dataclass
class Topology:
    """Running nodes of the reference topology, their node files and the candidate's target."""

    workdir: Path
    plan: Plan
    configs: dict[str, dict[str, Any]]
    nodes: dict[str, RunningNode] = field(default_factory=dict)
    # The private CA of an HTTPS topology (`conformance serve --tls`), else None.
    ca_bundle: Path | None = None

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
        me = candidate or self.plan.candidate
        document = target_document(
            self.plan,
            self.configs,
            me,
            base_url=self.url(me),
            folder=self.workdir,
            ca_bundle=str(self.ca_bundle) if self.ca_bundle else None,
        )
        if self.ca_bundle is not None:
            # The suite serves an emulated slot over HTTPS with the certificate made for it.
            for member in document.get("neighbours", {}).values():
                if isinstance(member, dict) and self.plan.node(member["node_id"]).emulated:
                    stem = self.workdir / f"node-{member['node_id']}"
                    member["tls"] = {"cert": f"{stem}.pem", "key": f"{stem}.key"}
        return document

    def write_target(self, path: str | Path, candidate: str | None = None) -> Path:
        """The target file is written at `path` (created with owner-only permissions)."""
        return write_file(path, self.target(candidate))

    def stop(self) -> None:
        """Every node process has ended, children before parents."""
        deepest_first = sorted(
            self.nodes.values(), key=lambda n: self.plan.depth(n.node_id), reverse=True
        )
        stop_processes([node.process for node in deepest_first])

    def __enter__(self) -> Topology:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


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
    tls: bool = False,
) -> Topology:
    """The reference topology, started, healthy and synced (every node's subtree catalog pushed
    up to the national node); use it as a context manager so that every process ends.

    `base_port` 0 picks free ports; `faults` maps node ids to fault switch names; `seeds` maps
    node ids to seed catalogs (a fixture name or a file path) in place of the fixtures'.
    Once `cancel` is set, the start ends every node and raises StartCancelled. With `tls` every
    node serves HTTPS with a certificate of a private CA made here (`workdir/ca.pem`), and plain
    HTTP on a port of its own that redirects to it (ATS-SEC-06).
    """
    plan = load_plan("topology", department_id)
    if cascade_timeout_s is not None:
        plan = replace(plan, cascade_timeout_s=cascade_timeout_s)
    folder = Path(workdir)
    folder.mkdir(parents=True, exist_ok=True)
    scheme = "https" if tls else "http"
    ports = plan_ports(plan, host, base_port)
    configs = node_files(plan, host, ports, seeds=seeds, scheme=scheme)
    ca_bundle = _secure(folder, host, configs, plan) if tls else None
    topology = Topology(folder, plan, configs, ca_bundle=ca_bundle)
    spawned: list[Spawned] = []
    try:
        for node_id, config in configs.items():
            path = write_file(folder / f"{node_id}.yaml", config)
            spawned.append(
                spawn_node(
                    path,
                    tuple((faults or {}).get(node_id, ())),
                    tuple((variants or {}).get(node_id, ())),
                    ca_bundle,
                )
            )
        for item in spawned:
            node = await_ready(item, START_TIMEOUT_S, cancel)
            topology.nodes[node.node_id] = node
        _await_synced(topology, cancel)
    except BaseException:
        stop_processes([item.process for item in reversed(spawned)])
        raise
    return topology


def _secure(folder: Path, host: str, configs: Mapping[str, dict[str, Any]], plan: Plan) -> Path:
    """Makes the private CA of an HTTPS topology and a certificate per node; adds each node's
    `tls` member (certificate, key, a plain-HTTP port) to its node file; answers `ca.pem`."""
    from conformance.reference.pki import make_authority

    authority = make_authority(folder)
    hosts = [host, *(("localhost",) if host in ("127.0.0.1", "::1") else ())]
    plain = free_ports(len(configs), host)
    for (node_id, config), port in zip(configs.items(), plain, strict=True):
        cert, key = authority.issue(folder, f"node-{node_id}", hosts)
        config["tls"] = {"cert": str(cert), "key": str(key), "http_listen": f"{host}:{port}"}
    # The emulated slots too: the suite serves them over HTTPS where their parent calls them.
    for slot in plan.nodes:
        if slot.emulated:
            authority.issue(folder, f"node-{slot.node_id}", hosts)
    return authority.cert_path


def _await_synced(topology: Topology, cancel: threading.Event | None = None) -> None:
    # "Really wired": every node answers health, and the national node's subtree catalog holds
    # every node's seed entries, i.e. the first full pushes (ATS §8) went through.
    from conformance.signing import sign_headers

    national = next(n.node_id for n in topology.plan.nodes if n.parent is None)
    admin = topology.plan.apps["admin"]["app_id"]
    deadline = time.monotonic() + _SYNC_TIMEOUT_S
    verify: ssl.SSLContext | bool = True
    if topology.ca_bundle is not None:
        verify = ssl.create_default_context(cafile=str(topology.ca_bundle))
    with httpx.Client(timeout=5.0, verify=verify) as http:
        for node in topology.nodes.values():
            if http.get(f"{node.url}/api/v1/health").status_code != 200:
                raise LaunchError(f"{node.config_path}: the node does not answer health")
        expected = sum(_local_total(http, topology, n, admin) for n in topology.nodes)
        while True:
            if cancel is not None and cancel.is_set():
                raise StartCancelled("the start was cancelled")
            target = f"{ats.CATALOG}?scope=subtree&size=1"
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

    target = f"{ats.CATALOG}?scope=local&size=1"
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

        # The target file is written only where asked (the default names the topology's).
        target_out = args.target_out if args.target_out != _TOPOLOGY_TARGET else None
        return run_node(args.node, tuple(args.fault), tuple(args.variant), target_out)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="ats-topology-"))
    plan = load_plan("topology")
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
                tls=args.tls,
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
            if topology.ca_bundle is not None:
                print(f"private CA (node.ca_bundle of the target file): {topology.ca_bundle}")
                print(
                    f"certify it: conformance run --target {out} --load full "
                    "(about 20 minutes; --load smoke for a quick rehearsal)",
                    flush=True,
                )
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
