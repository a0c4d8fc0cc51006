"""Share queries (ATS chapter 5) with projection, exact filters and masking (ATS chapter 7).

After authentication and the role check a query is decided in the order of ATS §5: body shape
→ 400; malformed code → 404, never forwarded; not local → routed (chapter 8); NOT_SHARED → 403;
method not API → 400; CONDITIONAL without an approved subscription → 403 SUBSCRIPTION_REQUIRED;
undeclared or duplicate items → 400; items outside the subscription → 403.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from conformance import ats, codes, compare
from conformance.reference import routing
from conformance.reference.audit import amend
from conformance.reference.auth import Caller, require
from conformance.reference.bodies import json_object
from conformance.reference.errors import JSON_TYPE, AtsError, json_bytes
from conformance.reference.faults import FaultSet
from conformance.reference.listing import DEFAULT_SIZE, MAX_SIZE, invalid
from conformance.reference.runtime import NodeRuntime, runtime_of
from conformance.reference.subscriptions import Subscription, applicable

_STRING_TYPES = frozenset("CMDTBG")
# Faults of chapter 12 (ATS-PERF): the delay of slow-share-query, the hold of
# 5xx-under-concurrency.
_SLOW_QUERY_S = 0.7
_HOLD_S = 0.025
_NUMBER_TYPES = frozenset("NYF")


@dataclass(frozen=True)
class ShareQuery:
    """A share query's parsed body: filter pairs, selected fields (None: all), page and size."""

    filter: Mapping[str, Any]
    fields: tuple[str, ...] | None
    page: int
    size: int


def _page_member(request: Mapping[str, Any], name: str, default: int, upper: int | None) -> int:
    value = compare.integer(request.get(name, default))
    if value is None:
        raise invalid(f"{name} 必须是 JSON 整数 / {name} must be a JSON integer")
    if value < 1 or (upper is not None and value > upper):
        raise invalid(f"{name} 超出范围 / {name} is out of range")
    return value


def parse_query(body: bytes, faults: FaultSet) -> ShareQuery:
    """The share query of a body; 400 when it is not a JSON object of the right shape."""
    request = json_object(body, faults, ("filter", "fields", "page", "size"))
    filters = request.get("filter", {})
    if not isinstance(filters, dict):
        raise invalid("filter 必须是 JSON 对象 / filter must be a JSON object")
    fields = request.get("fields", [])
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise invalid("fields 必须是字符串列表 / fields must be a list of strings")
    return ShareQuery(
        filter=filters,
        fields=tuple(fields) or None,
        page=_page_member(request, "page", 1, None),
        size=_page_member(request, "size", DEFAULT_SIZE, MAX_SIZE),
    )


def fits_type(value: object, data_type: str) -> bool:
    """The value has the JSON type of its item's data type (ATS-SHR-01, ATS-SHR-03)."""
    if value is None:
        return True
    if data_type in _STRING_TYPES:
        return isinstance(value, str)
    if isinstance(value, bool):
        return data_type == "L"
    if data_type in _NUMBER_TYPES:
        return isinstance(value, int | float)
    if data_type == "I":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    return False


def same_json(a: object, b: object) -> bool:
    """The two values are equal with the same JSON type (a boolean never equals a number)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def _corrupt_check_character(value: object) -> object:
    if not isinstance(value, str) or not value:
        return value
    last = value[-1]
    return value[:-1] + ("0" if last != "0" else "1")


def _shown(value: object, item: Mapping[str, Any], masked: bool, faults: FaultSet) -> object:
    if faults.on("bad-check-character-in-records") and item.get("semantic") in (
        "ID_NUMBER",
        "USCC",
    ):
        value = _corrupt_check_character(value)
    if masked and isinstance(value, str):
        rule = item["mask"]
        if faults.on("wrong-mask") and rule == "ID_NUMBER" and len(value) > 10:
            return value[:4] + "*" * (len(value) - 8) + value[-4:]
        return codes.mask(value, rule)
    if (
        faults.on("wrong-data-type")
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    ):
        return str(value)
    return value


def _sensitive(item: Mapping[str, Any], faults: FaultSet) -> bool:
    if faults.on("unmarked-sensitive-item") and item.get("mask") == "PHONE":
        return False
    if faults.on("phone-without-semantic") and item.get("semantic") == "PHONE":
        # Only natural-person resources declare PHONE items sensitive; this fault drops both.
        return False
    return bool(item.get("sensitive")) and "mask" in item


def _matches(
    record: Mapping[str, Any],
    filters: Mapping[str, Any],
    items: Mapping[str, Mapping[str, Any]],
    faults: FaultSet,
) -> bool:
    for name, wanted in filters.items():
        value = record.get(name)
        if faults.on("mask-breaks-filter") and _sensitive(items[name], faults):
            value = codes.mask(value, items[name]["mask"]) if isinstance(value, str) else value
        if faults.on("loose-filter"):
            if str(value) != str(wanted):
                return False
        elif faults.on("substring-filter") and isinstance(wanted, str) and wanted:
            if not isinstance(value, str) or wanted.casefold() not in value.casefold():
                return False
        elif not same_json(value, wanted):
            return False
    return True


def _selected_items(
    query: ShareQuery,
    declared: Sequence[str],
    subscription: Subscription | None,
    conditional: bool,
    faults: FaultSet,
) -> list[str]:
    fields = list(query.fields or ())
    if len(set(fields)) != len(fields):
        raise invalid("fields 含有重复项 / fields holds a duplicate item")
    undeclared = [n for n in [*fields, *query.filter] if n not in declared]
    if undeclared and not faults.on("accept-undeclared-item"):
        raise invalid(
            "fields 或 filter 含有未声明的信息项 / fields or filter names an undeclared item"
        )
    fields = [n for n in fields if n in declared]
    approved: Sequence[str] = declared
    if (
        conditional
        and subscription is not None
        and subscription.fields
        and not faults.on("ignore-approved-items")
    ):
        approved = [n for n in declared if n in subscription.fields]
        outside = [n for n in [*fields, *query.filter] if n in declared and n not in approved]
        if outside:
            raise AtsError(
                403,
                "FORBIDDEN",
                "信息项不在已批准的订阅范围内 / an item lies outside the approved subscription",
            )
    if not fields or faults.on("ignore-fields"):
        return list(approved)
    return fields


def _check_filter_types(
    filters: Mapping[str, Any], items: Mapping[str, Mapping[str, Any]], faults: FaultSet
) -> None:
    if faults.on("loose-filter"):
        return
    for name, value in filters.items():
        if name in items and not fits_type(value, items[name]["data_type"]):
            shown = f" ({value!r})" if faults.on("leak-filter-value-in-error") else ""
            # ATS-PRIV-04: the message names the item, never the value.
            raise invalid(
                f"filter 中 {name} 的值类型错误{shown} / "
                f"the filter value of {name} has the wrong type"
            )


def local_answer(
    node: NodeRuntime,
    entry: Mapping[str, Any],
    query: ShareQuery,
    origin: tuple[str, str],
) -> dict[str, Any]:
    """The answer of this node for one of its own resources, or the AtsError that decides it."""
    faults = node.faults
    code = str(entry["resource_code"])
    share = entry["share"]
    if share["type"] == "NOT_SHARED" and not faults.on("serve-not-shared"):
        raise AtsError(403, "FORBIDDEN", "该资源不予共享 / the resource is NOT_SHARED")
    if share.get("method") != "API":
        raise invalid("该资源不通过接口共享 / the resource is not shared over the API")
    subscription = applicable(node, origin[0], origin[1], code)
    conditional = share["type"] == "CONDITIONAL"
    if conditional and subscription is None and not faults.on("no-subscription-check"):
        raise AtsError(
            403,
            "SUBSCRIPTION_REQUIRED",
            "该资源有条件共享，需要已批准的订阅 / the resource needs an approved subscription",
        )
    items = {item["name"]: item for item in entry.get("items", [])}
    selected = _selected_items(query, list(items), subscription, conditional, faults)
    filters = {k: v for k, v in query.filter.items() if k in items}
    _check_filter_types(filters, items, faults)
    if faults.on("ignore-filter"):
        filters = {}
    unmasked = (
        subscription is not None and subscription.unmasked and not faults.on("mask-unmasked-grant")
    )
    masking = {
        name: not unmasked and _sensitive(items[name], faults) and not faults.on("skip-masking")
        for name in selected
    }
    records = node.catalog.records(code)
    if node.variants.on("reverse-record-order"):
        # ATS §5: records come in a stable order, which one is the node's choice.
        records = records[::-1]
    if filters:
        records = tuple(r for r in records if _matches(r, filters, items, faults))
    start = (query.page - 1) * query.size
    page = records[start : start + query.size]
    answered: list[dict[str, object]] = []
    for record in page:
        shown = {
            name: _shown(record.get(name), items[name], masking[name], faults) for name in selected
        }
        if faults.on("undeclared-item-in-records"):
            shown["_internal_id"] = start + len(answered)
        answered.append(shown)
    return {
        "resource_code": code,
        "items": answered,
        "page": query.page,
        "size": query.size,
        "total": len(records),
        "masked": [name for name in selected if masking[name]],
    }


async def _held(node: NodeRuntime) -> None:
    # 5xx-under-concurrency: a backend that serves one query at a time and collapses beyond it.
    node.share_queries_held += 1
    try:
        if node.share_queries_held > 1:
            raise AtsError(503, "UNAVAILABLE", "节点繁忙 / the node is temporarily unable to serve")
        await asyncio.sleep(_HOLD_S)
    finally:
        node.share_queries_held -= 1


router = APIRouter()


@router.post(f"{ats.SHARE_PREFIX}{{resource_code:path}}{ats.SHARE_SUFFIX}")
async def share_query(
    request: Request,
    resource_code: str,
    caller: Annotated[Caller, Depends(require("consumer", "node", action="QUERY"))],
) -> Response:
    """A share query, answered here for a local resource or routed (ATS §5, §8)."""
    node = runtime_of(request)
    body: bytes = request.state.body
    query = parse_query(body, node.faults)
    if node.faults.on("audit-records-filter-values") and query.filter:
        amend(request, detail=json.dumps(query.filter, ensure_ascii=False))
    if node.faults.on("500-on-nul-in-code") and "\0" in resource_code:
        raise ValueError("embedded null character in the resource code")
    if node.faults.on("500-on-quote-in-filter") and any(
        isinstance(v, str) and "'" in v for v in query.filter.values()
    ):
        raise ValueError("unterminated quoted string in the filter")
    if node.faults.on("forward-quoted-code") and "'" in resource_code:
        return await routing.route_share_query(request, caller, resource_code, body)
    if codes.resource_code_problem(resource_code) is not None:
        if node.faults.on("forward-malformed-code"):
            raise AtsError(
                502, "UPSTREAM_UNAVAILABLE", "下一跳不可用 / the next hop is unavailable"
            )
        # ATS-SHR-07: never forwarded.
        raise AtsError(404, "NOT_FOUND", "资源代码格式错误 / the resource code is not well formed")
    found = node.catalog.local(resource_code)
    if found is None:
        if caller.role == "node":
            origin_node, origin_app = routing.origin_of(request, caller)
            amend(request, origin_node=origin_node, origin_app=origin_app)
        return await routing.route_share_query(request, caller, resource_code, body)
    origin = routing.origin_of(request, caller)
    if node.faults.on("audit-forwarder-as-origin") and caller.role == "node":
        # ATS-AUD-04 forbids this: the owner records the forwarding node's app as the origin.
        amend(request, origin_node=origin[0], origin_app=caller.app_id)
    else:
        amend(request, origin_node=origin[0], origin_app=origin[1])
    if node.faults.on("slow-share-query"):
        await asyncio.sleep(_SLOW_QUERY_S)
    if node.faults.on("5xx-under-concurrency"):
        await _held(node)
    answer = local_answer(node, found.entry, query, origin)
    route = routing.route_header(request, node.config.node_id)
    return Response(json_bytes(answer), media_type=JSON_TYPE, headers={"X-Route": route})
