"""The pooled transport: requests over keep-alive connections, each exchange under a deadline.

urllib3 opens the connections; the deadline of the exchange must be able to shut the one in use
down. The hook is public: the pools this session's adapter creates (``pool_classes_by_scheme``)
make their connections of a class (``ConnectionCls``) that registers itself with the deadline
when it connects and when it sends a request.
"""

from __future__ import annotations

import http.client
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError

from conformance.client.deadline import Deadline, bounded, watch
from conformance.client.exchange import Exchange, Sent, answered, describe, failed, late


class _Watched:
    """A connection the whole-answer deadline of its request can shut (``deadline.watch``)."""

    def connect(self) -> None:
        watch(self)
        super().connect()  # type: ignore[misc]

    def request(self, *args: Any, **kwargs: Any) -> None:
        watch(self)
        super().request(*args, **kwargs)  # type: ignore[misc]


class _WatchedConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedPool(HTTPConnectionPool):
    ConnectionCls = _WatchedConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _WatchedAdapter(HTTPAdapter):
    """requests' adapter whose connections a ``Deadline`` can shut down."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _WatchedPool,
            "https": _WatchedHTTPSPool,
        }


def new_session() -> requests.Session:
    """A session of watched connections that trusts nothing from the environment."""
    session = requests.Session()
    # Neither proxies nor .netrc from the environment: the tester talks to the node only.
    session.trust_env = False
    for scheme in ("http://", "https://"):
        session.mount(scheme, _WatchedAdapter())
    return session


def send(
    session: requests.Session,
    prepared: requests.PreparedRequest,
    sent: Sent,
    *,
    connect: float,
    read: float,
    verify: str | bool,
    max_body: int,
) -> Exchange:
    """``prepared`` sent over ``session``; at most ``max_body`` bytes of the answer are kept,
    and the whole exchange takes at most ``connect + read`` seconds."""
    with Deadline(connect + read) as bound:
        try:
            resp = session.send(
                prepared,
                stream=True,
                timeout=(connect, read),
                allow_redirects=False,
                verify=verify,
            )
            with resp:
                content, truncated = bounded(
                    lambda n: resp.raw.read1(n, decode_content=True),
                    max_body,
                    sent.started + connect + read,
                )
        except (
            requests.RequestException,
            OSError,
            http.client.HTTPException,
            HTTPError,
        ) as exc:
            return failed(
                sent, late(connect, read) if bound.expired else describe(exc, connect, read)
            )
    if bound.expired:
        # The connection was shut down mid-answer: what arrived is a fragment, not an answer
        # (headers cut off read as complete ones).
        return failed(sent, late(connect, read))
    answer = (resp.status_code, CaseInsensitiveDict(resp.headers), resp.reason or "")
    return answered(sent, answer, content, truncated, max_body)
