"""ATS error answers: the one exception every error path raises and the one response it becomes.

ATS-API-03: an error body is at least ``{"code", "message", "request_id"}`` with ``request_id``
equal to the ``X-Request-Id`` header, which the request-id middleware adds to every response.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from starlette.responses import Response

JSON_TYPE = "application/json"


class AtsError(Exception):
    """An ATS error answer: status, code from the §1 table, and a human-readable message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def json_bytes(value: object) -> bytes:
    """The compact UTF-8 JSON of a value (Chinese text kept as is)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def error_body(status: int, code: str, message: str, request_id: str) -> dict[str, object]:
    """The ATS error body (ATS-API-03)."""
    return {"code": code, "message": message, "request_id": request_id, "status": status}


def error_response(
    request_id: str,
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, object] | None = None,
) -> Response:
    """The response of an ATS error; ``extra`` members are added to the body."""
    body = error_body(status, code, message, request_id)
    if extra:
        body.update(extra)
    return Response(json_bytes(body), status_code=status, headers=headers, media_type=JSON_TYPE)
