"""The raw transport: a request sent byte for byte over its own socket, under a deadline.

What the checks of malformed requests need (ATS-API, ATS-AUTH): a ``Content-Length`` that does
not parse, a header twice, a body larger than the node accepts. A node may answer such a request
before it has read all of it and close; the answer is read all the same.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl

from requests.structures import CaseInsensitiveDict

from conformance.client.deadline import Deadline, bounded
from conformance.client.exchange import Exchange, Sent, answered, describe, failed, joined, late


def send_raw(
    data: bytes,
    address: tuple[str, int, bool],
    sent: Sent,
    *,
    connect: float,
    read: float,
    ca_bundle: str | None,
    max_body: int,
) -> Exchange:
    """``data`` written to ``(host, port, tls)`` and the answer read, at most ``max_body``
    bytes of it, the whole exchange in at most ``connect + read`` seconds."""
    host, port, tls = address
    try:
        sock = socket.create_connection((host, port), timeout=connect)
    except OSError as exc:
        return failed(sent, describe(exc, connect, read))
    with Deadline(connect + read) as deadline:
        deadline.watch(sock)
        try:
            sock.settimeout(read)
            if tls:
                sock = wrap_tls(sock, host, deadline, ca_bundle)
            # A node may answer (413 for a long body) and close before it has read the
            # whole request; its answer is already on the way and is what counts.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(data)
            resp = http.client.HTTPResponse(sock, method=sent.method)
            resp.begin()
            content, truncated = bounded(resp.read1, max_body, sent.started + connect + read)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            return failed(
                sent, late(connect, read) if deadline.expired else describe(exc, connect, read)
            )
        finally:
            sock.close()
    if deadline.expired:
        # The connection was shut down mid-answer: what arrived is a fragment, not an answer
        # (headers cut off read as complete ones).
        return failed(sent, late(connect, read))
    answer = (resp.status, CaseInsensitiveDict(joined(resp.getheaders())), resp.reason or "")
    return answered(sent, answer, content, truncated, max_body)


def wrap_tls(
    sock: socket.socket, host: str, deadline: Deadline, ca_bundle: str | None
) -> ssl.SSLSocket:
    """``sock`` wrapped in TLS for ``host`` (verified against ``ca_bundle`` or the system's
    roots), watched by ``deadline``: the wrapped socket, not the detached one, is what it shuts
    down."""
    context = ssl.create_default_context(cafile=ca_bundle)
    wrapped = context.wrap_socket(sock, server_hostname=host)
    deadline.watch(wrapped)
    return wrapped
