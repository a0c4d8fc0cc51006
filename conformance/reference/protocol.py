"""The HTTP protocol of the node: uvicorn's h11 protocol with ATS error bodies.

h11, not httptools: llhttp refuses a request line whose method it does not know, so an extension
method (``FROB /api/v1/node``) would never reach the application, which must answer it 405
``METHOD_NOT_ALLOWED`` on a known path and 404 on an unknown one (ATS-API-04). h11 accepts any
method token and leaves that decision to the application.

A request the HTTP parser refuses (a malformed ``Content-Length``, a broken request line) never
reaches the application; uvicorn would answer it with a plain-text 400. Here it gets the ATS
error body, a fresh ``X-Request-Id`` and the security headers like every other answer
(ATS-API-02, ATS-API-03, ATS-API-05, ATS-SEC-02).
"""

from __future__ import annotations

import uuid

from uvicorn.protocols.http.h11_impl import H11Protocol

from conformance.reference.errors import error_body, json_bytes

_MESSAGE = "HTTP 请求格式错误 / malformed HTTP request"


class AtsH11Protocol(H11Protocol):
    """The h11 protocol whose parser errors answer 400 INVALID_REQUEST as ATS says."""

    def send_400_response(self, msg: str) -> None:
        request_id = str(uuid.uuid4())
        body = json_bytes(error_body(400, "INVALID_REQUEST", _MESSAGE, request_id))
        content = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"x-request-id: " + request_id.encode("ascii") + b"\r\n",
                b"x-content-type-options: nosniff\r\n",
                b"cache-control: no-store\r\n",
                b"connection: close\r\n",
                b"\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()
