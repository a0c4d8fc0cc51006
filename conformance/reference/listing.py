"""Query parameters and pages of list endpoints (ATS-API-05, ATS-API-08)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request

from conformance.reference.errors import AtsError
from conformance.reference.faults import FaultSet

DEFAULT_SIZE = 20
MAX_SIZE = 100
# ATS-API-08 sets no upper bound on page; Python turns at most this many digits into an int
# (its int_max_str_digits guard), which is beyond any collection's end.
_MAX_DIGITS = 4000


def invalid(message: str) -> AtsError:
    """A 400 INVALID_REQUEST with this message."""
    return AtsError(400, "INVALID_REQUEST", message)


def query_params(request: Request, known: Iterable[str], faults: FaultSet) -> dict[str, str]:
    """The known single-valued query parameters of a request; unknown ones are ignored.

    The raw query is split on ``&`` and ``=`` and percent-decoded with ``+`` a literal plus, as
    the signature's canonical query reads it (ATS §3). A repeated known parameter answers 400
    (ATS-API-05).
    """
    names = frozenset(known)
    raw = request.scope.get("query_string", b"").decode("latin-1")
    found: dict[str, str] = {}
    for piece in raw.split("&"):
        if not piece:
            continue
        raw_name, _, raw_value = piece.partition("=")
        try:
            name = unquote(raw_name, errors="strict")
            value = unquote(raw_value, errors="strict")
        except UnicodeDecodeError:
            raise invalid(
                "查询参数不是有效的 UTF-8 / a query parameter is not valid UTF-8"
            ) from None
        if name not in names:
            if faults.on("reject-unknown-members"):
                raise invalid("未知查询参数 / unknown query parameter")
            continue
        if name in found and not faults.on("accept-repeated-param"):
            raise invalid(f"查询参数 {name} 重复 / query parameter {name} is repeated")
        found[name] = value
    return found


# ATS-API-05: a filter of the wrong shape answers 400. The shapes are those of ATS §0 (app_id),
# ATS-API-02 (request_id) and ATS §4 (resource_code).
FILTER_SHAPES = {
    "app_id": re.compile(r"[A-Za-z0-9._-]{1,64}"),
    "request_id": re.compile(r"[A-Za-z0-9-]{8,64}"),
    "resource_code": re.compile(r"[1-3][0-9]{5}(?:[0-9]{3})?/[0-9]{6}"),
}


def shaped_filter(params: dict[str, str], name: str) -> str | None:
    """The filter ``name`` when given in its shape, None when absent; 400 when misshapen."""
    value = params.get(name)
    if value is not None and not FILTER_SHAPES[name].fullmatch(value):
        raise invalid(f"{name} 格式错误 / {name} is malformed")
    return value


def _bounded_int(params: dict[str, str], name: str, default: int, upper: int | None) -> int:
    text = params.get(name)
    if text is None:
        return default
    if not text.isascii() or not text.isdigit():
        raise invalid(f"{name} 必须是整数 / {name} must be an integer")
    if len(text.lstrip("0")) > _MAX_DIGITS:
        raise invalid(f"{name} 位数过多 / {name} has too many digits")
    value = int(text)
    if value < 1 or (upper is not None and value > upper):
        bounds = f"1..{upper}" if upper else "≥ 1"
        raise invalid(f"{name} 超出范围 {bounds} / {name} must be {bounds}")
    return value


def page_and_size(params: dict[str, str], faults: FaultSet) -> tuple[int, int]:
    """``page`` (≥ 1, default 1) and ``size`` (1..100, default 20) of ATS-API-08."""
    if faults.on("accept-size-zero") and params.get("size") in ("0", "101"):
        params = {**params, "size": "1" if params["size"] == "0" else "100"}
    return _bounded_int(params, "page", 1, None), _bounded_int(
        params, "size", DEFAULT_SIZE, MAX_SIZE
    )


def row_offset(page: int, size: int, total: int, faults: FaultSet) -> int:
    """The SQL OFFSET of a page: past the end it is ``total`` (no rows), never beyond int64."""
    offset = min((page - 1) * size, total)
    if faults.on("subscription-audit-pages-overlap") and page > 1:
        # The defect: a page repeats the last item of the page before it (ATS-API-08).
        offset -= 1
    return offset


def page_of(items: Sequence[Any], page: int, size: int) -> list[Any]:
    """The items of one page (empty past the end)."""
    start = (page - 1) * size
    return list(items[start : start + size])


def page_answer(
    items: list[Any], page: int, size: int, total: int, faults: FaultSet
) -> dict[str, Any]:
    """The list answer ``{"items", "page", "size", "total"}`` of ATS-API-08."""
    if faults.on("wrong-page-total"):
        total += 1
    return {"items": items, "page": page, "size": size, "total": total}
