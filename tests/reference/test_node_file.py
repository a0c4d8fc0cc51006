"""A bad node file stops the node at start with one line, exit status 2 and no secret in it.

The configuration problems are proven on ``build_config`` in this process; the problems only
met while starting (the database, the TLS files, the listening socket) on a node process.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from refnode import node_document

from conformance.reference.config import ConfigError, build_config

Change = Callable[[dict[str, Any], Path], None]


def _secrets(document: dict[str, Any]) -> list[str]:
    node = document["node"]
    found = [app["secret"] for app in document["apps"]]
    found += [child["secret"] for child in node.get("children") or ()]
    if isinstance(node.get("parent"), dict):
        found.append(node["parent"]["secret"])
    return found


def _assert_one_clean_line(text: str, place: str, problem: str, document: dict[str, Any]) -> None:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert f"node.yaml: {place}: " in lines[0], lines[0]
    assert problem in lines[0], lines[0]
    assert "Traceback" not in text
    for secret in _secrets(document):
        assert secret not in text


def _seed_of_another_node(document: dict[str, Any], folder: Path) -> None:
    entry = {"resource_code": "101001/330100", "node_id": "330100"}
    (folder / "seed.json").write_text(json.dumps({"entries": [entry]}), encoding="utf-8")
    document["seed"]["catalog"] = "seed.json"


def _parent(**changes: Any) -> Change:
    return lambda d, _: d["node"]["parent"].update(changes)


CONFIG_CASES: dict[str, tuple[Change, str, str]] = {
    # The parent and tls members are objects or null: the problem inside is named, not the whole
    # object (with its secret) "is not valid under any of the given schemas".
    "a parent URL without http(s) is named": (
        _parent(url="ftp://127.0.0.1:1"),
        "node.parent.url",
        "does not match",
    ),
    "a parent without app_id is named": (
        lambda d, _: d["node"]["parent"].pop("app_id"),
        "node.parent",
        "'app_id' is a required property",
    ),
    "a parent written as a list hides its secret": (
        lambda d, _: d["node"].update(parent=[d["node"]["parent"]]),
        "node.parent",
        "is not of type 'object', 'null'",
    ),
    "a parent with a short secret hides it": (
        _parent(secret="short-secret"),
        "node.parent.secret",
        "must be 32 to 128 characters",
    ),
    "tls without key is named": (
        lambda d, _: d.update(tls={"cert": "cert.pem"}),
        "tls",
        "'key' is a required property",
    ),
    "a tls certificate that does not exist is named": (
        lambda d, _: d.update(tls={"cert": "no-such-cert.pem", "key": "no-such-key.pem"}),
        "tls.cert",
        "is not a readable file",
    ),
    "a malformed plain-HTTP address is named": (
        lambda d, f: (
            (f / "c.pem").touch(),
            d.update(tls={"cert": "c.pem", "key": "c.pem", "http_listen": "nowhere"}),
        ),
        "tls.http_listen",
        "expected HOST:PORT",
    ),
    "a database in a folder that does not exist is named": (
        lambda d, _: d["node"].update(database="no-such-folder/node.sqlite3"),
        "node.database",
        "does not exist",
    ),
    # ATS §0, §8: a provincial node's children are municipal nodes with its PP.
    "a child in another province is refused": (
        lambda d, _: d["node"]["children"][0].update(node_id="320100"),
        "node.children[0].node_id",
        "expected that of its parent '330000'",
    ),
    "a department under a provincial node is refused": (
        lambda d, _: d["node"]["children"][0].update(
            node_id="111000000000161840", level="department"
        ),
        "node.children[0].level",
        "children are municipal, got 'department'",
    ),
    "a child listed twice is refused": (
        lambda d, _: d["node"]["children"].append(dict(d["node"]["children"][0])),
        "node.children[1].node_id",
        "listed twice",
    ),
    "a municipal node's parent that is not provincial is refused": (
        lambda d, _: (
            d["node"].update(node_id="330100", level="municipal", children=[]),
            d["node"]["parent"].update(node_id="330200"),
        ),
        "node.parent.node_id",
        "expected the form PP0000",
    ),
    # ATS §0: a node app is bound to a neighbour.
    "a node app bound to a stranger is refused": (
        lambda d, _: d["apps"][5].update(bound_node="330200"),
        "apps[5].bound_node",
        "neither the parent nor a child",
    ),
    "a seed catalog of another node is refused": (
        _seed_of_another_node,
        "seed.catalog",
        "entries[0].node_id is '330100', expected this node's id '330000'",
    ),
}


@pytest.mark.parametrize(("change", "place", "problem"), CONFIG_CASES.values(), ids=CONFIG_CASES)
def test_a_bad_node_file_is_one_line_without_secrets(
    tmp_path: Path, change: Change, place: str, problem: str
) -> None:
    document, _ = node_document(":memory:")
    change(document, tmp_path)
    with pytest.raises(ConfigError) as raised:
        build_config(document, str(tmp_path / "node.yaml"), tmp_path)
    _assert_one_clean_line(str(raised.value), place, problem, document)


def test_the_fixture_node_file_is_accepted(tmp_path: Path) -> None:
    document, _ = node_document(":memory:")
    assert build_config(document, "node.yaml", tmp_path).node_id == "330000"


def _run(folder: Path, document: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    path = folder / "node.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "conformance.reference", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _database_is_a_folder(document: dict[str, Any], folder: Path) -> None:
    (folder / "db").mkdir()
    document["node"]["database"] = "db"


def _self_signed_garbage(document: dict[str, Any], folder: Path) -> None:
    (folder / "cert.pem").write_text("not a certificate\n", encoding="utf-8")
    document["tls"] = {"cert": "cert.pem", "key": "cert.pem"}


START_CASES: dict[str, tuple[Change, str, str]] = {
    "a database that cannot be opened is named": (
        _database_is_a_folder,
        "node.database",
        "unable to open database file",
    ),
    "a database in a folder that does not exist is named": (
        lambda d, _: d["node"].update(database="no-such-folder/node.sqlite3"),
        "node.database",
        "does not exist",
    ),
    "tls files that do not exist are named": (
        lambda d, _: d.update(tls={"cert": "no-such-cert.pem", "key": "no-such-key.pem"}),
        "tls.cert",
        "is not a readable file",
    ),
    "tls files that are no certificate are named": (
        _self_signed_garbage,
        "tls",
        "cannot be used",
    ),
    # 192.0.2.1 (TEST-NET-1) is no address of this machine: binding fails, nothing is sent.
    "an address that is not this machine's is named": (
        lambda d, _: d["node"].update(listen="192.0.2.1:8080"),
        "node.listen",
        "cannot listen on 192.0.2.1:8080",
    ),
}


@pytest.mark.parametrize(("change", "place", "problem"), START_CASES.values(), ids=START_CASES)
def test_a_node_that_cannot_start_says_why_in_one_line(
    tmp_path: Path, change: Change, place: str, problem: str
) -> None:
    document, _ = node_document(":memory:")
    change(document, tmp_path)
    result = _run(tmp_path, document)
    assert result.returncode == 2, result.stderr
    _assert_one_clean_line(result.stderr, place, problem, document)


def _listen_at(document: dict[str, Any], folder: Path, address: str) -> None:
    document["node"]["listen"] = address


def _plain_http_at(document: dict[str, Any], folder: Path, address: str) -> None:
    # The files need only be readable: the taken port is found before they are used.
    (folder / "cert.pem").write_text("not a certificate\n", encoding="utf-8")
    document["tls"] = {"cert": "cert.pem", "key": "cert.pem", "http_listen": address}


@pytest.mark.parametrize(
    ("place", "listen_at"),
    [("node.listen", _listen_at), ("tls.http_listen", _plain_http_at)],
    ids=["the node's address", "the plain-HTTP address of an HTTPS node"],
)
def test_a_port_in_use_is_one_line_and_exit_2(
    tmp_path: Path, place: str, listen_at: Callable[[dict[str, Any], Path, str], None]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        document, _ = node_document(":memory:")
        listen_at(document, tmp_path, f"127.0.0.1:{port}")
        result = _run(tmp_path, document)
    assert result.returncode == 2, result.stderr
    _assert_one_clean_line(result.stderr, place, f"cannot listen on 127.0.0.1:{port}", document)
