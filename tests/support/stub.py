"""A check's context against a purpose-built server on loopback (a stub node of a test's own)."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from conformance.checks import CheckContext, RunState
from conformance.client import EvidenceLog, NodeClient
from conformance.profile import load_profile
from conformance.target import load_target
from conformance.topology import write_file

ROLES = ("unconditional", "conditional", "not_shared", "population")


@contextmanager
def stub_context(
    server: socketserver.TCPServer, folder: Path, clause_id: str, resources: Mapping[str, str]
) -> Iterator[CheckContext]:
    """The context of ``clause_id`` for a lab run against ``server`` (served from a thread for
    the block, shut down after it): a provincial target with three apps and these resources."""
    threading.Thread(target=server.serve_forever, daemon=True).start()
    target_file = folder / "target.yaml"
    write_file(
        target_file,
        {
            "node": {
                "base_url": f"http://127.0.0.1:{server.server_address[1]}",
                "level": "provincial",
                "node_id": "330000",
                "parent_id": "100000",
            },
            "apps": {
                name: {"app_id": name.replace("_", "-"), "secret": "s" * 40}
                for name in ("consumer", "consumer_b", "admin")
            },
            "resources": dict(resources),
            "lab": True,
        },
    )
    target = load_target(target_file)
    evidence = EvidenceLog(target.secrets())
    client = NodeClient(target, evidence)
    try:
        yield CheckContext(
            clause=load_profile("provincial").clause(clause_id),
            target=target,
            client=client,
            run=RunState(),
            evidence=evidence,
        )
    finally:
        client.close()
        server.shutdown()
        server.server_close()
