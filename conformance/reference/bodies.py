"""Request bodies: JSON objects or a 400 that says why (ATS-API-05)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from conformance.reference.errors import AtsError
from conformance.reference.faults import FaultSet
from conformance.reference.listing import invalid


def _not_json(constant: str) -> None:
    # NaN and Infinity are Python's extensions, not JSON (RFC 8259).
    raise ValueError(f"{constant} is not JSON")


def json_object(body: bytes, faults: FaultSet, known: Iterable[str]) -> dict[str, Any]:
    """The JSON object of a body (an empty body is ``{}``); unknown members are ignored."""
    if not body.strip():
        return {}
    try:
        value = json.loads(body, parse_constant=_not_json)
    except (ValueError, RecursionError) as exc:
        if faults.on("500-on-bad-json"):
            raise AtsError(500, "INTERNAL_ERROR", "内部错误 / internal error") from exc
        raise invalid("请求体不是有效的 JSON / the body is not valid UTF-8 JSON") from exc
    if not isinstance(value, dict):
        raise invalid("请求体必须是 JSON 对象 / the body must be a JSON object")
    if faults.on("reject-unknown-members") and set(value) - set(known):
        raise invalid("请求体含有未知成员 / the body has an unknown member")
    return value
