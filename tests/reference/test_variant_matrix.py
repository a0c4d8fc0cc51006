"""Every conformant variant passes: the fault matrix the other way round (issue 15).

A variant (``conformance/reference/variants.py``) is a behaviour ATS allows; with it switched on
the reference node must still PASS every clause (lab SKIPs aside). ``judge_variant`` runs
``conformance run`` against the embedded node with one variant on and answers what is wrong;
CI runs each variant on the chapters it touches, ``--run-slow`` the whole suite per variant.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from conformance.profile import load_profile
from conformance.reference.launcher import start_node
from conformance.reference.variants import VARIANTS, VariantSet
from conformance.runner import embedded_files

ROOT = Path(__file__).resolve().parents[2]
# Chapters of a whole run: PERF is the load stage's, judged by its own tests.
ALL_CHAPTERS = ("API", "NODE", "AUTH", "CAT", "SHR", "SUB", "PRIV", "CAS", "AUD", "STAT", "SEC")
# Verdicts that are no finding against the node: a lab run skips transport security (ATS §11),
# and clauses outside --only are not selected.
_ACCEPTED_SKIPS = ("not_applicable", "not_selected")
# A clause a variant puts beyond what a run can assess, with what would assess it (the reason
# must say so): never a FAIL or ERROR.
NOT_ASSESSED_UNDER = {"high-rate-limit": frozenset({"ATS-SEC-03"})}


def judge_variant(folder: Path, variant: str, chapters: Sequence[str] = ALL_CHAPTERS) -> list[str]:
    """What is wrong with the suite under ``variant``: each clause of ``chapters`` that is not
    PASS (nor a lab or not-applicable SKIP) against the reference node with the variant on.
    Empty when every choice passes."""
    VariantSet.of([variant])
    node_file, target_file = embedded_files(folder)
    node = yaml.safe_load(node_file.read_text("utf-8"))
    node["variants"] = [variant]
    node_file.write_text(yaml.safe_dump(node, allow_unicode=True), "utf-8")
    reports = folder / "reports"
    running = start_node(node_file)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "conformance.cli", "run", "--target", str(target_file),
             "--lab", "--load", "off", "--report-dir", str(reports), "-q", "--only", *chapters],
            capture_output=True, text=True, timeout=900, cwd=folder,
        )  # fmt: skip
    finally:
        running.stop()
    report = reports / "report.json"
    if not report.is_file():
        return [f"no report under {variant}: {done.stderr[-2000:] or done.stdout[-2000:]}"]
    problems = []
    for clause in json.loads(report.read_text("utf-8"))["clauses"]:
        verdict, cause = clause["verdict"], clause.get("skip_cause")
        if clause["chapter"] not in chapters or verdict == "PASS":
            continue
        if verdict == "SKIP" and cause in _ACCEPTED_SKIPS:
            continue
        if cause == "not_assessed" and clause["id"] in NOT_ASSESSED_UNDER.get(variant, ()):
            continue
        problems.append(
            f"{clause['id']} is {verdict} ({cause}) under {variant}: {clause['reason']}"
        )
    return problems


def test_every_variant_names_its_sentence_and_chapters() -> None:
    chapters = {c.chapter for c in load_profile("provincial").clauses}
    for name, variant in VARIANTS.items():
        assert variant.allowed_by, name
        assert variant.description, name
        assert variant.touches, name
        assert set(variant.touches) <= chapters, name


def test_the_reference_docs_list_every_variant() -> None:
    text = (ROOT / "docs" / "reference-node.md").read_text("utf-8")
    for name in VARIANTS:
        assert f"`{name}`" in text, name


def test_an_unknown_variant_stops_the_node_file(tmp_path: Path) -> None:
    node_file, _ = embedded_files(tmp_path)
    node = yaml.safe_load(node_file.read_text("utf-8"))
    node["variants"] = ["no-such-variant"]
    node_file.write_text(yaml.safe_dump(node, allow_unicode=True), "utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "conformance.reference", "--config", str(node_file)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "variants: unknown variant no-such-variant" in done.stderr


@pytest.mark.timeout(900)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_passes_the_chapters_it_touches(tmp_path: Path, variant: str) -> None:
    assert judge_variant(tmp_path, variant, VARIANTS[variant].touches) == []


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_passes_the_whole_suite(tmp_path: Path, variant: str) -> None:
    assert judge_variant(tmp_path, variant) == []
