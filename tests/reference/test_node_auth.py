"""Chapters 2 (NODE) and 3 (AUTH): health, descriptor, node file errors, signatures, roles."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from refnode import ROLES, Node, node_document
from test_api import assert_error

from conformance import codes, signing
from conformance.reference import clock


def test_health_is_up_without_authentication(node: Node) -> None:
    response = node.call("GET", "/api/v1/health", app=None)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "UP"
    moment = clock.parse_rfc3339(body["time"])
    assert moment is not None
    assert abs(moment.timestamp() - time.time()) < 5


def test_every_other_endpoint_needs_authentication(node: Node) -> None:
    for method, target in [
        ("GET", "/api/v1/node"),
        ("GET", "/api/v1/catalog/resources"),
        ("POST", f"/api/v1/share/{ROLES['unconditional']}/query"),
        ("GET", "/api/v1/subscriptions"),
        ("GET", "/api/v1/audit/events"),
        ("GET", "/api/v1/stats"),
    ]:
        assert_error(node.call(method, target, app=None), 401, "UNAUTHENTICATED")


def test_the_descriptor_declares_the_node(node: Node) -> None:
    body = node.call("GET", "/api/v1/node").json()
    assert body["node_id"] == "330000"
    assert body["level"] == "provincial"
    assert body["parent_id"] == "100000"
    assert body["standard_version"] == "ATS-1.0"
    assert body["children"] == [
        {"node_id": "330100", "name": "杭州市政务数据共享交换平台", "level": "municipal"}
    ]
    assert "HMAC-SM3" in body["signature_methods"]
    assert body["rate_limit_per_app"] == 50
    assert body["capabilities"] == []
    assert codes.node_id_problem(body["node_id"], body["level"], body["parent_id"]) is None


def _run_node_file(
    folder: Path, document: object, *faults: str
) -> subprocess.CompletedProcess[str]:
    path = folder / "node.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    extra = [arg for fault in faults for arg in ("--fault", fault)]
    return subprocess.run(
        [sys.executable, "-m", "conformance.reference", "--config", str(path), *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("change", "place"),
    [
        (lambda d: d["node"].update(level="county"), "node.level"),
        (lambda d: d["node"].update(node_id="330001"), "node.node_id"),
        (lambda d: d["node"].update(listen="nowhere"), "node.listen"),
        (lambda d: d["apps"][0].update(secret="short"), "apps[0].secret"),
        (lambda d: d["apps"].append(dict(d["apps"][0])), "apps[6].app_id"),
        (lambda d: d["seed"].update(catalog="no-such-catalog"), "seed.catalog"),
        (lambda d: d.update(faults=["no-such-fault"]), "faults"),
    ],
)
def test_a_bad_node_file_stops_the_node_with_one_line(tmp_path: Path, change, place: str) -> None:
    document, _ = node_document(":memory:")
    change(document)
    result = _run_node_file(tmp_path, document)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"node.yaml: {place}" in lines[0]
    for app in document["apps"]:
        assert app["secret"] not in result.stderr or len(app["secret"]) < 32


def test_an_unknown_fault_names_the_valid_ones(tmp_path: Path) -> None:
    document, _ = node_document(":memory:")
    result = _run_node_file(tmp_path, document, "no-such-fault")
    assert result.returncode == 2
    assert "skip-masking" in result.stderr


def test_a_missing_environment_variable_is_named(tmp_path: Path) -> None:
    document, _ = node_document(":memory:")
    document["apps"][0]["secret"] = "${ATS_TEST_UNSET_SECRET_VARIABLE}"
    result = _run_node_file(tmp_path, document)
    assert result.returncode == 2
    assert "apps[0].secret: ${ATS_TEST_UNSET_SECRET_VARIABLE} is not set" in result.stderr


TARGET = "/api/v1/catalog/resources?size=1"


def _headers(node: Node, method: str = "GET", target: str = TARGET, body: bytes = b"", **kw):
    return node.signed(method, target, body, **kw)


@pytest.mark.parametrize(
    "damage",
    [
        {"X-App-Id": None},
        {"X-Timestamp": None},
        {"X-Nonce": None},
        {"X-Signature": None},
        {"X-App-Id": "bad app id"},
        {"X-Timestamp": "17000000000"},
        {"X-Timestamp": "abcdefghijklm"},
        {"X-Nonce": "short"},
        {"X-Nonce": "nonce-with-dash-0123"},
        {"X-Signature": "not-hex"},
        {"X-Signature-Method": "HMAC-MD5"},
    ],
)
def test_missing_or_malformed_signature_headers_are_401(node: Node, damage: dict) -> None:
    headers = _headers(node)
    for name, value in damage.items():
        if value is None:
            del headers[name]
        else:
            headers[name] = value
    assert_error(node.http.get(TARGET, headers=headers), 401, "UNAUTHENTICATED")


def test_changes_after_signing_are_401(node: Node) -> None:
    code = ROLES["unconditional"]
    target = f"/api/v1/share/{code}/query"
    body = b'{"size":1}'
    headers = _headers(node, "POST", target, body)
    cases = [
        ("PUT", target, body, headers),
        ("POST", f"/api/v1/share/{ROLES['conditional']}/query", body, headers),
        ("POST", target + "?page=1", body, headers),
        ("POST", target, b'{"size":2}', headers),
        ("POST", target, body, {**headers, "X-Timestamp": str(int(headers["X-Timestamp"]) + 1)}),
        ("POST", target, body, {**headers, "X-Nonce": headers["X-Nonce"][::-1]}),
    ]
    for method, sent_target, sent_body, sent_headers in cases:
        response = node.http.request(method, sent_target, content=sent_body, headers=sent_headers)
        assert response.status_code in (401, 405), (method, sent_target)
    query_change = _headers(node, "GET", "/api/v1/catalog/resources?size=1")
    changed = node.http.get("/api/v1/catalog/resources?size=2", headers=query_change)
    assert_error(changed, 401, "UNAUTHENTICATED")
    removed = node.http.get("/api/v1/catalog/resources", headers=_headers(node))
    assert_error(removed, 401, "UNAUTHENTICATED")


def test_an_unknown_app_reads_like_a_wrong_signature(node: Node) -> None:
    wrong = _headers(node)
    wrong["X-Signature"] = "0" * 64
    unknown = signing.sign_headers(
        method="GET", target=TARGET, body=b"", app_id="nobody-here", secret="x" * 40
    )
    a = node.http.get(TARGET, headers=wrong)
    b = node.http.get(TARGET, headers=unknown)
    assert (a.status_code, a.json()["code"], a.json()["message"]) == (
        b.status_code,
        b.json()["code"],
        b.json()["message"],
    )
    assert a.status_code == 401


@pytest.mark.parametrize(("offset_s", "status"), [(-301, 401), (301, 401), (-269, 200), (269, 200)])
def test_the_clock_window_is_300_seconds(node: Node, offset_s: int, status: int) -> None:
    stamp = int(time.time() * 1000) + offset_s * 1000
    response = node.http.get(TARGET, headers=_headers(node, timestamp=stamp))
    assert response.status_code == status


def test_a_nonce_is_used_once_even_with_a_new_signature(node: Node) -> None:
    nonce = signing.new_nonce()
    first = node.http.get(TARGET, headers=_headers(node, nonce=nonce))
    assert first.status_code == 200
    again = node.http.get(TARGET, headers=_headers(node, nonce=nonce))
    assert_error(again, 401, "UNAUTHENTICATED")
    other_app = node.http.get(TARGET, headers=_headers(node, app="consumer_b", nonce=nonce))
    assert other_app.status_code == 200


def test_a_nonce_is_used_even_when_the_answer_is_an_error(node: Node) -> None:
    nonce = signing.new_nonce()
    target = "/api/v1/catalog/resources?size=0"
    assert (
        node.http.get(target, headers=_headers(node, target=target, nonce=nonce)).status_code == 400
    )
    assert node.http.get(TARGET, headers=_headers(node, nonce=nonce)).status_code == 401


@pytest.mark.parametrize("method", ["HMAC-SM3", "HMAC-SHA256"])
def test_both_signature_methods_are_accepted(node: Node, method: str) -> None:
    response = node.http.get(TARGET, headers=_headers(node, signature_method=method))
    assert response.status_code == 200


def test_sm3_is_the_default_and_hex_case_is_ignored(node: Node) -> None:
    headers = _headers(node)
    del headers["X-Signature-Method"]
    headers["X-Signature"] = headers["X-Signature"].upper()
    assert node.http.get(TARGET, headers=headers).status_code == 200


def test_an_encoded_slash_and_raw_query_are_signed_as_sent(node: Node) -> None:
    code = ROLES["unconditional"].replace("/", "%2f")
    target = f"/api/v1/catalog/resources/{code}?x=%41+b&a="
    response = node.http.get(target, headers=_headers(node, target=target))
    assert response.status_code == 200


ROLE_TABLE = [
    ("GET", "/api/v1/node", {"consumer", "admin", "parent"}),
    ("GET", "/api/v1/catalog/resources", {"consumer", "admin", "parent"}),
    ("POST", f"/api/v1/share/{ROLES['unconditional']}/query", {"consumer", "parent"}),
    ("GET", "/api/v1/subscriptions", {"consumer", "admin"}),
    ("POST", "/api/v1/subscriptions/unknown-id/decision", {"admin"}),
    ("DELETE", "/api/v1/subscriptions/unknown-id", {"admin"}),
    ("POST", "/api/v1/cascade/sync", {"admin"}),
    ("GET", "/api/v1/audit/events", {"admin"}),
    ("GET", "/api/v1/stats", {"admin"}),
]


@pytest.mark.parametrize(("method", "target", "allowed"), ROLE_TABLE)
@pytest.mark.parametrize("app", ["consumer", "admin", "parent"])
def test_every_endpoint_enforces_the_role_table(
    node: Node, method: str, target: str, allowed: set[str], app: str
) -> None:
    headers = {"X-Origin-Node": "100000", "X-Origin-App": "remote-app"} if app == "parent" else {}
    response = node.call(method, target, app=app, json_body={}, headers=headers)
    if app in allowed:
        assert response.status_code != 403 or response.json()["code"] != "FORBIDDEN"
    else:
        assert_error(response, 403, "FORBIDDEN")


def test_admin_cannot_create_subscriptions(node: Node) -> None:
    body = {"resource_code": ROLES["conditional"], "purpose": "为了测试角色检查的目的"}
    assert_error(
        node.call("POST", "/api/v1/subscriptions", app="admin", json_body=body), 403, "FORBIDDEN"
    )
    assert_error(
        node.call("POST", "/api/v1/subscriptions", app="parent", json_body=body), 403, "FORBIDDEN"
    )


def test_the_role_check_precedes_body_validation(node: Node) -> None:
    response = node.call("POST", "/api/v1/subscriptions", app="admin", body=b"{not json")
    assert_error(response, 403, "FORBIDDEN")
