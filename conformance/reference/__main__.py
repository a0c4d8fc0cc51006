"""``python -m conformance.reference --config NODE.yaml [--fault NAME ...] [--variant NAME ...]``:
run one node.

The node prints ``ready <node_id> <url>`` on stdout once it listens. A bad node file stops it at
start with one line on stderr (file, place, problem) and exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
import sqlite3
import sys
from collections.abc import Sequence

import uvicorn

from conformance.reference.app import create_app
from conformance.reference.config import ConfigError, NodeConfig, load_config
from conformance.reference.faults import FaultSet
from conformance.reference.protocol import AtsH11Protocol
from conformance.reference.tls import plain_http_server, restrict_tls, serve_plain, tls_options


class _Server(uvicorn.Server):
    """A uvicorn server that announces ``ready <node_id> <url>`` once its socket listens."""

    def __init__(
        self,
        config: uvicorn.Config,
        node: NodeConfig,
        plain: tuple[uvicorn.Server, socket.socket] | None = None,
    ) -> None:
        super().__init__(config)
        self._node = node
        # The plain-HTTP listener of an HTTPS node (ATS-SEC-06) and its socket, served beside
        # this one.
        self._plain = plain
        self._plain_task: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.should_exit or not self.servers:
            return
        if self._plain is not None:
            self._plain_task = await serve_plain(*self._plain)
        host, port = self.servers[0].sockets[0].getsockname()[:2]
        scheme = "https" if self._node.tls else "http"
        print(f"ready {self._node.node_id} {scheme}://{host}:{port}", flush=True)
        # The switched-on faults and variants follow the ready line (kept at three words for
        # the launchers that read it), so nobody certifies a broken node unawares.
        faults = ", ".join(self._node.faults) or "none"
        variants = ", ".join(self._node.variants) or "none"
        print(f"  node {self._node.node_id} faults: {faults}; variants: {variants}", flush=True)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._plain is not None and self._plain_task is not None:
            self._plain[0].should_exit = True
            await self._plain_task
        await super().shutdown(sockets)


def _fail(config_path: str, place: str, problem: str) -> int:
    print(f"conformance.reference: {config_path}: {place}: {problem}", file=sys.stderr)
    return 2


def _bind(host: str, port: int) -> socket.socket:
    """The node's listening socket, bound before uvicorn starts so a refusal is one clear line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def run_node(
    config_path: str,
    faults: Sequence[str] = (),
    variants: Sequence[str] = (),
    target_out: str | None = None,
) -> int:
    """Serve one node until interrupted; the exit status (2: bad node file or cannot listen).

    ``target_out``: where to write the target file certifying this node (``serve --node``)."""
    try:
        config = load_config(config_path, tuple(faults), tuple(variants))
    except ConfigError as exc:
        print(f"conformance.reference: {exc}", file=sys.stderr)
        return 2
    if target_out:
        from conformance.reference.node_target import write_target_of

        print(f"target file for {config.node_id}: {write_target_of(config, target_out)}")
    try:
        sock = _bind(config.host, config.port)
    except OSError as exc:
        return _fail(
            config.source,
            "node.listen",
            f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}",
        )
    with contextlib.ExitStack() as sockets:
        sockets.callback(sock.close)
        plain_sock = None
        if config.tls is not None and config.tls.http_listen:
            # The plain-HTTP listener is bound up front too, so a taken port is one clear line.
            host, _, port = config.tls.http_listen.rpartition(":")
            try:
                plain_sock = _bind(host, int(port))
            except OSError as exc:
                return _fail(
                    config.source,
                    "tls.http_listen",
                    f"cannot listen on {config.tls.http_listen}: {exc.strerror or exc}",
                )
            sockets.callback(plain_sock.close)
        try:
            app = create_app(config, FaultSet.of(config.faults))
        except ConfigError as exc:
            print(f"conformance.reference: {exc}", file=sys.stderr)
            return 2
        except sqlite3.Error as exc:
            return _fail(config.source, "node.database", f"{config.database}: {exc}")
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        fault_set = FaultSet.of(config.faults)
        options = uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            http=AtsH11Protocol,
            loop="auto",
            workers=1,
            access_log=False,
            server_header=False,
            date_header=True,
            log_level="warning",
            lifespan="on",
            **tls_options(config),
        )
        try:
            # ATS-SEC-01: TLS 1.2 or newer only (the allow-tls1-0 fault lowers it).
            restrict_tls(options, fault_set)
        except OSError as exc:  # ssl.SSLError included
            return _fail(config.source, "tls", f"the certificate and key cannot be used: {exc}")
        plain = (plain_http_server(config, app, fault_set), plain_sock) if plain_sock else None
        server = _Server(options, config, plain)
        server.run(sockets=[sock])
    return 0 if server.started else 2


def main(argv: Sequence[str] | None = None) -> int:
    """The command line of one reference node."""
    parser = argparse.ArgumentParser(prog="python -m conformance.reference")
    parser.add_argument("--config", required=True, metavar="NODE.yaml", help="the node file")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME",
        help="switch on a fault (repeatable)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME",
        help="switch on a conformant variant (repeatable)",
    )
    args = parser.parse_args(argv)
    return run_node(args.config, args.fault, args.variant)


if __name__ == "__main__":
    sys.exit(main())
