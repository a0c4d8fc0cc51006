"""Routing of share queries between levels (ATS §8 "Routing", ATS-CAS-04..09).

A share query for a well-formed code the node does not hold locally is forwarded to the child
whose subtree catalog holds it, else (at a non-national node, for a request not received from its
parent) to the parent, else answered 404. The forwarding node signs with its own `node` app,
keeps the body and `X-Request-Id`, decrements `X-Hop-Limit`, sets `X-Origin-*` and appends its id
to `X-Route`; it relays the next hop's ATS answer, and answers 502/504/508 itself otherwise.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import Response

from conformance import ats, signing
from conformance.codes import division_problem
from conformance.reference.auth import Caller
from conformance.reference.config import ChildConfig, NodeConfig
from conformance.reference.errors import JSON_TYPE, AtsError, error_response
from conformance.reference.runtime import NodeRuntime, runtime_of

HOP_LIMIT_DEFAULT = 7
HOP_LIMIT_MAX = 8
# ATS-CAS-08: whatever the configured cascade timeout, the whole answer of the next hop is
# awaited at most 10 s, so the node answers within 12 s of receiving the request.
CASCADE_TIMEOUT_MAX_S = 10.0

_NODE_ID = re.compile(r"[0-9]{6}|[0-9A-HJ-NP-RTUW-Y]{18}", re.ASCII)
_APP_ID = ats.pattern("app_id")
# ATS-CAS-08: a next hop's 5xx is relayed only as one of these ATS errors.
_RELAYED_5XX = frozenset({502, 504, 508})


@dataclass(frozen=True)
class NextHop:
    """Where a query goes next: the neighbour's id, base URL and this node's credential there."""

    node_id: str
    url: str
    app_id: str
    secret: str


def in_subtree(node_id: str, child: ChildConfig) -> bool:
    """The node id lies in the child's subtree: the child itself or, for a provincial child, a
    division code with the same `PP` (ATS §8)."""
    if node_id == child.node_id:
        return True
    return (
        child.level == "provincial"
        and division_problem(node_id) is None
        and node_id[:2] == child.node_id[:2]
    )


def route_of(request: Request) -> list[str]:
    """The node ids of the incoming `X-Route`, in order (empty when absent)."""
    raw = request.headers.get("x-route", "")
    return [part.strip() for part in raw.split(",") if part.strip()]


def route_header(request: Request, node_id: str) -> str:
    """The `X-Route` of an answer given by this node: the incoming route, then its own id."""
    return ",".join([*route_of(request), node_id])


def origin_of(request: Request, caller: Caller) -> tuple[str, str]:
    """The (origin node, origin app) a share query is authorized, masked and audited for.

    From a `node` app they are the incoming `X-Origin-Node` and `X-Origin-App` (a child's origin
    node lies in its subtree, else 403); otherwise this node's id and the caller's app id (ATS §8).
    """
    config = runtime_of(request).config
    if caller.role != "node":
        return config.node_id, caller.app_id
    origin_node = request.headers.get("x-origin-node")
    origin_app = request.headers.get("x-origin-app")
    if (
        origin_node is None
        or not _NODE_ID.fullmatch(origin_node)
        or origin_app is None
        or not _APP_ID.fullmatch(origin_app)
    ):
        raise AtsError(
            400,
            "INVALID_REQUEST",
            "转发请求缺少或含有错误的 X-Origin-Node / X-Origin-App / "
            "a routed request needs a well-formed X-Origin-Node and X-Origin-App",
        )
    child = _child(config, caller.bound_node)
    if child is not None and not in_subtree(origin_node, child):
        raise AtsError(
            403,
            "FORBIDDEN",
            "X-Origin-Node 不在该下级节点的子树内 / X-Origin-Node lies outside the child's subtree",
        )
    return origin_node, origin_app


def hop_limit(request: Request) -> int:
    """The incoming hop limit: 8 when absent, so that the first forward carries 7 (ATS §8)."""
    raw = request.headers.get("x-hop-limit")
    if raw is None:
        return HOP_LIMIT_DEFAULT + 1
    value = raw.strip()
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= HOP_LIMIT_MAX:
        raise AtsError(
            400,
            "INVALID_REQUEST",
            f"X-Hop-Limit 必须是 1 到 {HOP_LIMIT_MAX} 的整数 / "
            f"X-Hop-Limit must be an integer from 1 to {HOP_LIMIT_MAX}",
        )
    return int(value)


def _child(config: NodeConfig, node_id: str | None) -> ChildConfig | None:
    return next((c for c in config.children if c.node_id == node_id), None)


def next_hop(node: NodeRuntime, caller: Caller, resource_code: str) -> NextHop | None:
    """The neighbour a query for this code goes to, or None when routing ends here (ATS §8)."""
    config = node.config
    child = _child(config, node.catalog.holder(resource_code))
    if child is not None:
        return NextHop(child.node_id, child.url, child.app_id, child.secret)
    parent = config.parent
    if parent is None or node.faults.on("no-upward-routing"):
        return None
    from_parent = caller.role == "node" and caller.bound_node == parent.node_id
    if from_parent and not node.faults.on("route-back-to-parent"):
        return None
    return NextHop(parent.node_id, parent.url, parent.app_id, parent.secret)


async def route_share_query(
    request: Request, caller: Caller, resource_code: str, body: bytes
) -> Response:
    """The answer to a share query for a code not in the local catalog (ATS-CAS-04..08).

    Either the next hop's ATS answer relayed (status, body, `X-Route`, `Retry-After`), or this
    node's own 400, 403, 404, 502, 504 or 508 with `X-Route` ending with this node's id.
    """
    node = runtime_of(request)
    own_route = route_header(request, node.config.node_id)
    try:
        incoming_hops = hop_limit(request)
        origin_node, origin_app = origin_of(request, caller)
        hop = next_hop(node, caller, resource_code)
        if hop is None:
            raise AtsError(
                404,
                "NOT_FOUND",
                f"资源 {resource_code} 不存在 / no node of this route holds {resource_code}",
            )
        if incoming_hops <= 1 and not node.faults.on("ignore-hop-limit"):
            raise AtsError(
                508, "LOOP_DETECTED", "跳数已用尽 / the hop limit is exhausted (X-Hop-Limit 1)"
            )
        if node.config.node_id in route_of(request) and not node.faults.on("no-loop-check"):
            raise AtsError(
                508, "LOOP_DETECTED", "请求已经过本节点 / the request already passed this node"
            )
        headers = _forward_headers(
            request, node, hop, resource_code, body, max(incoming_hops - 1, 1), own_route
        )
        headers["X-Origin-Node"], headers["X-Origin-App"] = origin_node, origin_app
        if node.faults.on("no-origin-headers"):
            del headers["X-Origin-Node"], headers["X-Origin-App"]
        return await _forward(node, hop, resource_code, body, headers, own_route)
    except AtsError as exc:
        return error_response(
            _request_id(request),
            exc.status,
            exc.code,
            exc.message,
            headers={"X-Route": own_route},
        )


def _request_id(request: Request) -> str:
    return str(request.state.request_id)


def _forward_headers(
    request: Request,
    node: NodeRuntime,
    hop: NextHop,
    resource_code: str,
    body: bytes,
    hops: int,
    own_route: str,
) -> dict[str, str]:
    target = urlsplit(hop.url).path.rstrip("/") + ats.share_query_path(resource_code)
    request_id = _request_id(request)
    if node.faults.on("new-request-id-on-forward"):
        request_id = signing.new_nonce()
    headers = {
        "Content-Type": JSON_TYPE,
        "X-Request-Id": request_id,
        "X-Hop-Limit": str(hops),
        # ATS §8: whitespace around a comma is allowed (the spaced-route variant writes it).
        "X-Route": ", ".join(own_route.split(","))
        if node.variants.on("spaced-route")
        else own_route,
    }
    if node.faults.on("forward-caller-headers"):
        headers.update(
            {
                name: request.headers[name]
                for name in ats.SIGNATURE_HEADERS
                if name in request.headers
            }
        )
    else:
        # ATS-CAS-09: the node's own signature at the next hop, never the caller's.
        headers.update(
            signing.sign_headers(
                method="POST", target=target, body=body, app_id=hop.app_id, secret=hop.secret
            )
        )
    return headers


async def _forward(
    node: NodeRuntime,
    hop: NextHop,
    resource_code: str,
    body: bytes,
    headers: dict[str, str],
    own_route: str,
) -> Response:
    url = hop.url.rstrip("/") + ats.share_query_path(resource_code)
    client = node.http
    assert client is not None, "the node's HTTP client is created when it starts serving"
    unbounded = node.faults.on("no-forward-timeout")
    budget = min(node.config.cascade_timeout_s, CASCADE_TIMEOUT_MAX_S)
    try:
        async with asyncio.timeout(None if unbounded else budget):
            answer = await client.post(
                url, content=body, headers=headers, timeout=None if unbounded else budget
            )
    except (TimeoutError, httpx.TimeoutException):
        # ATS-CAS-08: 504, the whole answer did not arrive within the cascade timeout.
        raise AtsError(
            504,
            "UPSTREAM_TIMEOUT",
            f"下一跳节点 {hop.node_id} 未在 {budget:g} 秒内应答 / "
            f"the next hop {hop.node_id} did not answer within {budget:g} s",
        ) from None
    except httpx.HTTPError:
        raise _unavailable(hop, "cannot be reached") from None
    return _relay(node, hop, answer, own_route)


def _unavailable(hop: NextHop, why: str) -> AtsError:
    return AtsError(
        502,
        "UPSTREAM_UNAVAILABLE",
        f"下一跳节点 {hop.node_id} 不可用 / the next hop {hop.node_id} {why}",
    )


def _json_object(content: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def is_query_answer(value: dict[str, Any]) -> bool:
    """The object has the members of a share query answer (ATS §5)."""
    return (
        isinstance(value.get("resource_code"), str)
        and isinstance(value.get("items"), list)
        and isinstance(value.get("masked"), list)
        and all(
            isinstance(value.get(k), int) and not isinstance(value.get(k), bool)
            for k in ("page", "size", "total")
        )
    )


def is_error_body(value: dict[str, Any]) -> bool:
    """The object is an ATS error body (ATS-API-03)."""
    return all(isinstance(value.get(k), str) and value.get(k) for k in ("code", "message")) and (
        isinstance(value.get("request_id"), str)
    )


def _relay(node: NodeRuntime, hop: NextHop, answer: httpx.Response, own_route: str) -> Response:
    status = answer.status_code
    value = _json_object(answer.content)
    ats = value is not None and (is_query_answer(value) if status < 400 else is_error_body(value))
    relay_anything = node.faults.on("relay-upstream-failure")
    if not relay_anything:
        if not ats:
            raise _unavailable(hop, f"gave no ATS answer (status {status})")
        if status == 401:
            # ATS-CAS-08: the next hop refused this node's own credential.
            raise _unavailable(hop, "refused this node's credential (401)")
        if status >= 500 and status not in _RELAYED_5XX:
            raise _unavailable(hop, f"failed (status {status})")
    if status >= 400 and node.faults.on("upstream-error-as-502"):
        raise _unavailable(hop, f"answered status {status}")
    headers = {"X-Route": answer.headers.get("x-route") or f"{own_route},{hop.node_id}"}
    if "retry-after" in answer.headers:
        headers["Retry-After"] = answer.headers["retry-after"]
    return Response(answer.content, status_code=status, headers=headers, media_type=JSON_TYPE)
