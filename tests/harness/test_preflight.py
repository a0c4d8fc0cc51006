"""Preflight (issue 16): each tester-side mistake stops the run — INCOMPLETE, exit 2, one line
and a report — and is never a FAIL of the node; a server that answers but not as an ATS node
is judged, not stopped."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from harness_servers import closed_port, health_body, json_answer, serve, silent_port

from conformance.cli import main
from conformance.preflight import Status, run_preflight
from conformance.reference.pki import make_authority
from conformance.target import load_target


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(health_body()).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@contextmanager
def https_server(folder: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on 127.0.0.1 with a certificate of a private CA; answers its base URL
    and the CA's certificate."""
    authority = make_authority(folder / "ca")
    cert, key = authority.issue(folder, "node", ["127.0.0.1", "localhost"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", authority.cert_path
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _run_stopped(
    target: Path, reports: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[dict[str, Any], str]:
    status = main(
        ["run", "--target", str(target), "--report-dir", str(reports), "--load", "off", "-q"]
    )
    out = capsys.readouterr()
    assert status == 2, out
    document = json.loads((reports / "report.json").read_text(encoding="utf-8"))
    assert document["verdict"] == "INCOMPLETE"
    assert document["stopped"]["stage"] == "preflight"
    # Nothing of the node was judged: no FAIL, no ERROR, every clause not run.
    assert {c["verdict"] for c in document["clauses"]} == {"SKIP"}
    assert all((reports / name).is_file() for name in ("report.html", "summary.md"))
    assert "INCOMPLETE" in (reports / "summary.md").read_text(encoding="utf-8")
    return document, out.out + out.err


@pytest.mark.timeout(60)
def test_nothing_listening_stops_the_run(
    tmp_path: Path, write_target: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    document, out = _run_stopped(write_target(closed_port()), tmp_path / "r", capsys)
    assert document["stopped"]["at"] == "connect"
    assert "nothing answers" in document["stopped"]["reason"]
    assert "INCOMPLETE: stopped at preflight (connect)" in out


@pytest.mark.timeout(60)
def test_a_port_that_never_answers_stops_the_run(
    tmp_path: Path, write_target: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    with silent_port() as url:
        document, _ = _run_stopped(write_target(url), tmp_path / "r", capsys)
    assert "nothing answers" in document["stopped"]["reason"]


@pytest.mark.timeout(60)
def test_https_to_a_plain_http_server_asks_did_you_mean_http(
    tmp_path: Path, write_target: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    with serve(lambda _: json_answer(200, health_body())) as (url, _):
        secure = url.replace("http://", "https://")
        document, out = _run_stopped(write_target(secure, lab=False), tmp_path / "r", capsys)
    assert document["stopped"]["at"] == "scheme"
    assert f"did you mean {url}" in document["stopped"]["reason"]
    assert "did you mean http://" in out


@pytest.mark.timeout(60)
def test_a_wrong_ca_bundle_stops_the_run(
    tmp_path: Path, write_target: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    other = make_authority(tmp_path / "other", "another CA")
    with https_server(tmp_path) as (url, _):
        node = {
            "base_url": url,
            "level": "provincial",
            "node_id": "330000",
            "parent_id": "100000",
            "ca_bundle": str(other.cert_path),
        }
        document, _ = _run_stopped(write_target(url, node=node, lab=False), tmp_path / "r", capsys)
    assert document["stopped"]["at"] == "tls chain"
    assert "does not chain to" in document["stopped"]["reason"]


def test_the_right_ca_bundle_passes_every_tls_item(
    tmp_path: Path, write_target: Callable[..., Path]
) -> None:
    with https_server(tmp_path) as (url, ca):
        node = {"base_url": url, "level": "provincial", "node_id": "330000", "ca_bundle": str(ca)}
        result = run_preflight(load_target(write_target(url, node=node, lab=False)))
    items = {i.name: i for i in result.items}
    assert result.stop is None
    for name in ("scheme", "tls protocol", "tls chain", "tls host name", "tls expiry"):
        assert items[name].status is Status.OK, items[name]
    assert "days left" in items["tls expiry"].detail


@pytest.mark.timeout(60)
def test_a_base_url_ending_in_api_v1_stops_the_run(
    tmp_path: Path, write_target: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    with serve(lambda _: json_answer(200, health_body())) as (url, _):
        document, _ = _run_stopped(write_target(f"{url}/api/v1"), tmp_path / "r", capsys)
    assert document["stopped"]["at"] == "base_url"
    assert f"did you mean {url}?" in document["stopped"]["reason"]


def test_the_preflight_command_prints_one_line_per_item(
    write_target: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["preflight", "--target", str(write_target(closed_port()))]) == 2
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert lines[0].startswith("preflight resolve")
    assert lines[-1].startswith("preflight connect")
    assert " stop " in lines[-1]
    assert "would stop at preflight (connect)" in out.err
