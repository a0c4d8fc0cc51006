"""Preflight (issue 16): each tester-side mistake stops the run — INCOMPLETE, exit 2, one line
and a report — and is never a FAIL of the node; a server that answers but not as an ATS node
is judged, not stopped."""

from __future__ import annotations

import argparse
import copy
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness_servers import closed_port, health_body, json_answer, serve, silent_port

from conformance.cli import build_parser, main
from conformance.preflight import Status, run_preflight
from conformance.reference.pki import make_authority
from conformance.runner import embedded_target
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
    assert "a certification would need: a run that finishes" in out


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


# -- a real reference node: wrong secrets --------------------------------------------------


@pytest.fixture(scope="module")
def reference_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The embedded reference node 330000 and its target document, without neighbours (the
    runs below judge chapters that need none)."""
    workdir = tmp_path_factory.mktemp("reference")
    with embedded_target(workdir, quiet=True) as (target_file, _):
        document = yaml.safe_load(target_file.read_text(encoding="utf-8"))
        document.pop("neighbours")
        yield document


def _with_secrets(document: dict[str, Any], folder: Path, names: tuple[str, ...]) -> Path:
    changed = copy.deepcopy(document)
    for name in names:
        changed["apps"][name]["secret"] = "w" * 40  # well formed, not the node's
    path = folder / "target.yaml"
    path.write_text(yaml.safe_dump(changed), encoding="utf-8")
    return path


@pytest.mark.timeout(120)
def test_a_wrong_secret_for_one_app_is_error_naming_it_never_fail(
    tmp_path: Path, reference_target: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    target = _with_secrets(reference_target, tmp_path, ("consumer_b",))
    reports = tmp_path / "r"
    main(["run", "--target", str(target), "--report-dir", str(reports), "--only", "AUTH,SUB,NODE",
          "--load", "off", "-q"])  # fmt: skip
    capsys.readouterr()
    document = json.loads((reports / "report.json").read_text(encoding="utf-8"))
    refused = [i for i in document["preflight"] if i["item"] == "app consumer_b"]
    assert refused[0]["status"] == "refused"
    clauses = {c["id"]: c for c in document["clauses"]}
    assert not [c["id"] for c in clauses.values() if c["verdict"] == "FAIL"]
    errors = [c for c in clauses.values() if c["verdict"] == "ERROR"]
    assert errors
    assert all("consumer_b" in c["reason"] for c in errors), errors
    assert clauses["ATS-AUTH-06"]["verdict"] == "PASS"
    assert "w" * 40 not in (reports / "report.json").read_text(encoding="utf-8")


@pytest.mark.timeout(120)
def test_every_app_refused_stops_the_run_and_says_both_causes(
    tmp_path: Path, reference_target: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    target = _with_secrets(reference_target, tmp_path, tuple(reference_target["apps"]))
    document, _ = _run_stopped(target, tmp_path / "r", capsys)
    reason = document["stopped"]["reason"]
    assert document["stopped"]["at"] == "apps"
    assert "secrets" in reason
    assert "ATS §3" in reason
    assert "--only AUTH" in reason


@pytest.mark.timeout(120)
def test_only_auth_judges_the_node_whatever_the_secrets(
    tmp_path: Path, reference_target: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    # The way out the stopping line names: chapter AUTH alone is judged, not stopped.
    target = _with_secrets(reference_target, tmp_path, tuple(reference_target["apps"]))
    reports = tmp_path / "r"
    status = main(["run", "--target", str(target), "--report-dir", str(reports),
                   "--only", "AUTH-06", "--load", "off", "-q"])  # fmt: skip
    capsys.readouterr()
    document = json.loads((reports / "report.json").read_text(encoding="utf-8"))
    assert document["stopped"] is None
    assert status == 1
    assert [c["verdict"] for c in document["clauses"] if c["id"] == "ATS-AUTH-06"] == ["FAIL"]


# -- an interrupted run ----------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_an_interrupted_run_is_incomplete_and_says_where(tmp_path: Path) -> None:
    # Issue 16: SIGTERM in the middle of the embedded run gives INCOMPLETE, exit 2, and the
    # reports say where it stopped; the clauses it never reached are not run, not ERROR.
    reports = tmp_path / "r"
    command = [sys.executable, "-m", "conformance.cli", "run", "--load", "off",
               "--report-dir", str(reports)]  # fmt: skip
    log = tmp_path / "run.log"
    with log.open("wb") as sink:
        # Unbuffered: the progress lines reach the log as they are printed, so the signal lands in
        # the middle of the run, not after a buffer flushed at its end.
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120
        while "ATS-CAT-01" not in log.read_text("utf-8", "replace"):
            assert process.poll() is None, log.read_text("utf-8", "replace")
            assert time.monotonic() < deadline, "the run did not reach chapter CAT"
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    assert status == 2, log.read_text("utf-8", "replace")
    document = json.loads((reports / "report.json").read_text(encoding="utf-8"))
    assert document["verdict"] == "INCOMPLETE"
    assert document["stopped"]["stage"] == "interrupted"
    assert document["stopped"]["at"].startswith("ATS-")
    not_run = [c for c in document["clauses"] if c.get("skip_cause") == "not_run"]
    assert not_run
    errors = [c for c in document["clauses"] if c["verdict"] == "ERROR"]
    assert not [c for c in errors if c["reason"].startswith("not run")]
    summary = (reports / "summary.md").read_text(encoding="utf-8")
    assert f"interrupted before {document['stopped']['at']}" in summary


def test_run_help_shows_every_default(capsys: pytest.CaptureFixture[str]) -> None:
    # Issue 16: every option of `conformance run --help` states its default.
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    run = commands.choices["run"]
    shown = [a for a in run._actions if a.help and a.help != argparse.SUPPRESS]
    for action in shown:
        if "-h" not in action.option_strings:
            assert "default" in action.help, action.option_strings
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "about 20 minutes" in " ".join(capsys.readouterr().out.split())
