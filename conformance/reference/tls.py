"""HTTPS for the reference node (ATS §11): TLS options, the protocol floor, the plain listener.

An HTTPS node (``tls: {cert, key}`` in its node file) accepts TLS 1.2 or newer only
(ATS-SEC-01). With ``tls.http_listen`` it also listens for plain HTTP there and answers every
request with a 308 redirect to its HTTPS address and no data (ATS-SEC-06). The faults
``allow-tls1-0`` and ``serve-data-over-http`` break exactly these two properties.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import warnings
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from conformance.reference.config import NodeConfig
from conformance.reference.faults import FaultSet

# How long the plain listener may take to bind before the node announces itself.
_PLAIN_START_S = 10.0


def tls_options(config: NodeConfig) -> dict[str, Any]:
    """The uvicorn options of the node's certificate and key (none for a plain-HTTP node)."""
    if config.tls is None:
        return {}
    return {"ssl_certfile": config.tls.cert, "ssl_keyfile": config.tls.key}


def restrict_tls(options: uvicorn.Config, faults: FaultSet) -> None:
    """The server's TLS context accepts TLS 1.2 or newer (the allow-tls1-0 fault: 1.0 too)."""
    if options.ssl_certfile is None:
        return
    options.load()
    context = options.ssl
    assert context is not None  # load() builds it from ssl_certfile
    if faults.on("allow-tls1-0"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
        # Security level 0: OpenSSL's own policy would refuse TLS 1.0 otherwise.
        context.set_ciphers("ALL:@SECLEVEL=0")
    else:
        context.minimum_version = ssl.TLSVersion.TLSv1_2


class RedirectToHttps:
    """An ASGI app answering every request with 308 to the same target over HTTPS, no body."""

    def __init__(self, https_base: str) -> None:
        self.https_base = https_base

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        target = scope.get("raw_path") or scope["path"].encode("utf-8")
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        location = self.https_base.encode("ascii") + target
        await send(
            {
                "type": "http.response.start",
                "status": 308,
                "headers": [(b"location", location), (b"content-length", b"0")],
            }
        )
        await send({"type": "http.response.body", "body": b""})


def plain_http_server(config: NodeConfig, app: ASGIApp, faults: FaultSet) -> uvicorn.Server:
    """The plain-HTTP listener of an HTTPS node, served on the socket the node bound at
    ``tls.http_listen`` (``serve_plain``), so it names no address of its own."""
    served: ASGIApp = (
        app
        if faults.on("serve-data-over-http")
        else RedirectToHttps(f"https://{config.host}:{config.port}")
    )
    return uvicorn.Server(
        uvicorn.Config(
            served,
            workers=1,
            access_log=False,
            server_header=False,
            log_level="warning",
            lifespan="off",
        )
    )


async def serve_plain(server: uvicorn.Server, sock: socket.socket) -> asyncio.Task[None]:
    """Starts ``server`` on ``sock`` beside the node (its signals stay the node's); returns
    once it listens."""
    # _serve is uvicorn's serve without its signal capture: the node's server handles signals
    # and stops this one in its own shutdown.
    task = asyncio.create_task(server._serve(sockets=[sock]))
    deadline = asyncio.get_running_loop().time() + _PLAIN_START_S
    while not server.started and not task.done():
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.01)
    return task
