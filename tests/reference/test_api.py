"""Chapter 1 (API) and the security headers of ATS-SEC-02 and ATS-SEC-05, over real HTTP."""

from __future__ import annotations

import re
import socket

import pytest
from refnode import ROLES, TIMEOUT_S, Node

REQUEST_ID = re.compile(r"[A-Za-z0-9-]{8,64}")


def assert_error(response, status: int, code: str) -> None:
    """The response is the ATS error body of ATS-API-03 with this status and code."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["message"], str)
    assert body["message"]
    assert body["request_id"] == response.headers["x-request-id"]
    assert response.headers["content-type"].startswith("application/json")


def test_every_answer_carries_a_generated_request_id(node: Node) -> None:
    for response in (
        node.call("GET", "/api/v1/health", app=None),
        node.call("GET", "/api/v1/node"),
        node.call("GET", "/api/v1/nowhere"),
        node.call("GET", "/api/v1/node", app=None),
    ):
        assert REQUEST_ID.fullmatch(response.headers["x-request-id"])


def test_a_well_formed_request_id_is_echoed(node: Node) -> None:
    response = node.call("GET", "/api/v1/node", headers={"X-Request-Id": "abc-12345-XYZ"})
    assert response.headers["x-request-id"] == "abc-12345-XYZ"
    failed = node.call("GET", "/api/v1/nowhere", headers={"X-Request-Id": "abc-12345-XYZ"})
    assert failed.json()["request_id"] == "abc-12345-XYZ"


@pytest.mark.parametrize("sent", ["short", "has space in it", "x" * 65, "semi;colon-123"])
def test_a_malformed_request_id_is_replaced(node: Node, sent: str) -> None:
    response = node.call("GET", "/api/v1/node", headers={"X-Request-Id": sent})
    assert response.headers["x-request-id"] != sent
    assert REQUEST_ID.fullmatch(response.headers["x-request-id"])


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH", "TRACE", "OPTIONS"])
def test_an_unknown_path_is_404_whatever_the_method(node: Node, method: str) -> None:
    assert_error(node.call(method, "/api/v1/no/such/path"), 404, "NOT_FOUND")
    assert_error(node.call(method, "/outside/the/api"), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("method", "target", "served"),
    [
        ("POST", "/api/v1/node", {"GET"}),
        ("TRACE", "/api/v1/catalog/resources", {"GET"}),
        ("PUT", "/api/v1/health", {"GET"}),
        ("GET", f"/api/v1/share/{ROLES['unconditional']}/query", {"POST"}),
        ("PATCH", "/api/v1/subscriptions", {"GET", "POST"}),
        ("OPTIONS", "/api/v1/subscriptions", {"GET", "POST"}),
        ("PUT", "/api/v1/subscriptions/SUB-1", {"GET", "DELETE"}),
        ("GET", "/api/v1/subscriptions/SUB-1/decision", {"POST"}),
        ("HEAD", "/api/v1/stats", {"GET"}),
    ],
)
def test_an_unserved_method_is_405_with_allow_listing_every_method_served(
    node: Node, method: str, target: str, served: set[str]
) -> None:
    # ATS-API-04: Allow lists every method the path serves; HEAD answers 405 here, so it is not
    # among them.
    response = node.call(method, target)
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["allow"].split(",")} == served
    if method != "HEAD":
        assert_error(response, 405, "METHOD_NOT_ALLOWED")


def test_the_method_check_precedes_authentication(node: Node) -> None:
    assert_error(node.call("PUT", "/api/v1/node", app=None), 405, "METHOD_NOT_ALLOWED")


def test_an_oversized_body_is_413_before_authentication(node: Node) -> None:
    big = b"{" + b" " * 1_048_576 + b"}"
    code = ROLES["unconditional"]
    unsigned = node.call("POST", f"/api/v1/share/{code}/query", app=None, body=big)
    assert_error(unsigned, 413, "PAYLOAD_TOO_LARGE")
    signed = node.call("POST", f"/api/v1/share/{code}/query", body=big)
    assert_error(signed, 413, "PAYLOAD_TOO_LARGE")


def test_a_body_of_exactly_one_mebibyte_is_accepted(node: Node) -> None:
    body = b"{" + b" " * (1_048_576 - 2) + b"}"
    response = node.call("POST", f"/api/v1/share/{ROLES['unconditional']}/query", body=body)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"[]",
        b"null",
        b'"text"',
        b"\xff\xfe",
        b'{"page": "1"}',
        b'{"size": 0}',
        b'{"size": 101}',
        b'{"page": true}',
        b'{"filter": []}',
        b'{"fields": "name"}',
        b'{"fields": [1]}',
    ],
)
def test_a_malformed_share_body_is_400(node: Node, body: bytes) -> None:
    response = node.call("POST", f"/api/v1/share/{ROLES['unconditional']}/query", body=body)
    assert_error(response, 400, "INVALID_REQUEST")


def test_unknown_members_and_parameters_are_ignored(node: Node) -> None:
    code = ROLES["unconditional"]
    assert node.query(code, {"unknown": {"deep": [1]}}).status_code == 200
    assert node.call("GET", "/api/v1/catalog/resources?colour=blue").status_code == 200


def test_a_repeated_single_valued_parameter_is_400(node: Node) -> None:
    assert_error(
        node.call("GET", "/api/v1/catalog/resources?page=1&page=2"), 400, "INVALID_REQUEST"
    )


@pytest.mark.parametrize(
    "query", ["size=0", "size=101", "page=0", "page=-1", "size=abc", "page=1.5"]
)
def test_out_of_range_paging_is_400(node: Node, query: str) -> None:
    assert_error(node.call("GET", f"/api/v1/catalog/resources?{query}"), 400, "INVALID_REQUEST")


def test_pages_walk_the_whole_collection_once(node: Node) -> None:
    first = node.call("GET", "/api/v1/catalog/resources?size=3").json()
    total = first["total"]
    codes = []
    for page in range(1, total // 3 + 2):
        answer = node.call("GET", f"/api/v1/catalog/resources?size=3&page={page}").json()
        assert (answer["page"], answer["size"], answer["total"]) == (page, 3, total)
        codes += [e["resource_code"] for e in answer["items"]]
    assert len(codes) == total == len(set(codes))
    assert codes == sorted(codes)
    past = node.call("GET", f"/api/v1/catalog/resources?size=3&page={total + 1}").json()
    assert past["items"] == []


def test_security_headers_are_on_every_answer(node: Node) -> None:
    for response in (
        node.call("GET", "/api/v1/health", app=None),
        node.call("GET", "/api/v1/catalog/resources"),
        node.call("GET", "/api/v1/catalog/resources", app=None),
        node.query(ROLES["not_shared"]),
        node.call("GET", "/api/v1/subscriptions"),
        node.call("GET", "/api/v1/audit/events"),
        node.call("GET", "/api/v1/stats", app="admin"),
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
        assert not re.search(r"\d", response.headers.get("server", ""))


def test_no_cross_origin_grant(node: Node) -> None:
    response = node.call("GET", "/api/v1/node", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-credentials" not in response.headers


def _raw(node: Node, request: bytes) -> bytes:
    host, port = node.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=TIMEOUT_S) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_malformed_content_length_is_an_ats_400(node: Node) -> None:
    answer = _raw(
        node,
        b"POST /api/v1/share/101001/330001/query HTTP/1.1\r\nHost: x\r\n"
        b"Content-Length: 12abc\r\nConnection: close\r\n\r\n{}",
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b"x-request-id" in head.lower()
    assert b'"code":"INVALID_REQUEST"' in body


def test_an_extension_method_on_a_known_path_is_not_served(node: Node) -> None:
    answer = _raw(node, b"FROB /api/v1/node HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status = int(answer.split(b" ", 2)[1])
    assert status in (400, 405)
    assert b"x-request-id" in answer.lower()
