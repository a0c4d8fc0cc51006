"""The reference topology over HTTPS with a private CA certifies (issue 16): every chapter, CAS
and PERF included, judged through the target's CA bundle, with a full load stage whose windows
last seconds (fixtures/profiles/rehearsal-provincial.yaml). The real command is the same with
the packaged profile and about 20 minutes of load (docs/harness.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from conformance.cli import main
from conformance.data import data_dir
from conformance.reference.launcher import Topology, start_topology


@pytest.fixture(scope="module")
def https_topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    """The reference topology as `conformance serve --tls` starts it."""
    with start_topology(tmp_path_factory.mktemp("https-topology"), tls=True) as topology:
        yield topology


def test_the_served_target_file_is_https_with_the_private_ca(
    https_topology: Topology, tmp_path: Path
) -> None:
    document = yaml.safe_load(https_topology.write_target(tmp_path / "t.yaml").read_text("utf-8"))
    node = document["node"]
    assert node["base_url"].startswith("https://")
    assert Path(node["ca_bundle"]).read_text("ascii").startswith("-----BEGIN CERTIFICATE-----")
    assert node["http_url"].startswith("http://")
    assert document["lab"] is False
    assert document["neighbours"]["parent"]["url"].startswith("https://")
    # The suite serves the emulated child over HTTPS too, where the candidate calls it.
    spare = document["neighbours"]["emulated_child"]
    assert Path(spare["tls"]["cert"]).is_file()
    assert spare["url"].startswith("https://")


@pytest.mark.timeout(900)
def test_a_full_run_over_https_with_a_private_ca_is_certified(
    https_topology: Topology, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = https_topology.write_target(tmp_path / "target.yaml")
    reports = tmp_path / "reports"
    profile = data_dir("fixtures") / "profiles" / "rehearsal-provincial.yaml"
    status = main(["run", "--target", str(target), "--profile", str(profile),
                   "--report-dir", str(reports), "--load", "full"])  # fmt: skip
    out = capsys.readouterr().out
    document = json.loads((reports / "report.json").read_text(encoding="utf-8"))
    not_passed = [
        (c["id"], c["verdict"], c["reason"]) for c in document["clauses"] if c["verdict"] != "PASS"
    ]
    assert document["verdict"] == "CERTIFIED", not_passed
    assert status == 0
    assert document["load_mode"] == "full"
    assert document["to_certify"] == []
    chapters = {c["chapter"] for c in document["clauses"] if c["verdict"] == "PASS"}
    assert {"SEC", "CAS", "PERF"} <= chapters
    assert "expected to end around" in out
    tls = {i["item"]: i["status"] for i in document["preflight"]}
    assert tls["tls chain"] == "ok"
