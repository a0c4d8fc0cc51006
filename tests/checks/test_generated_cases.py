"""The generated cases of ATS-SHR-02 and ATS-SHR-03 are reproducible: the seed the evidence
records, set as the clause's ``seed`` in a profile, generates the same queries, each with a
projection and a filter together."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from data_node import data_node

from conformance.checks import CheckContext, RunState, registry
from conformance.client import EvidenceLog
from conformance.profile import Clause, ProfileError, load_profile


def _profile(folder: Path, **params: object) -> Path:
    path = folder / "seeded.yaml"
    overrides = {cid: {"params": params} for cid in ("ATS-SHR-02", "ATS-SHR-03")}
    document = {"name": "seeded", "node_level": "provincial", "overrides": overrides}
    path.write_text(yaml.safe_dump(document), "utf-8")
    return path


def test_a_profile_sets_the_seed_and_the_number_of_cases(tmp_path: Path) -> None:
    clause = load_profile(_profile(tmp_path, seed=1234, max_examples=6)).clause("ATS-SHR-02")
    assert clause.params["seed"] == 1234
    assert clause.params["max_examples"] == 6
    assert load_profile("provincial").clause("ATS-SHR-03").params["seed"] is None


def test_a_seed_that_is_not_a_number_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="seed"):
        load_profile(_profile(tmp_path, seed="random"))


def _generated(node: object, clause: Clause) -> tuple[str, list[dict[str, Any]]]:
    """The verdict and the generated query bodies of one run of the clause's check."""
    target = node.client.target  # type: ignore[attr-defined]
    evidence = EvidenceLog(target.secrets())
    ctx = CheckContext(
        clause=clause,
        target=target,
        client=node.client.for_clause(evidence),  # type: ignore[attr-defined]
        run=RunState(),
        evidence=evidence,
    )
    registry()[clause.id].function(ctx)
    bodies = [
        json.loads(e["request_body"])
        for e in evidence.entries
        if e.get("target", "").endswith("/query") and e.get("request_body", "").startswith("{")
    ]
    notes = " ".join(e["note"] for e in evidence.entries if "note" in e)
    # A generated case carries both members; the fixed probes carry one.
    return notes, [
        {"fields": b["fields"], "filter": b["filter"]}
        for b in bodies
        if "fields" in b and "filter" in b
    ]


@pytest.mark.parametrize("clause_id", ["ATS-SHR-02", "ATS-SHR-03"])
def test_the_recorded_seed_reproduces_the_cases(tmp_path: Path, clause_id: str) -> None:
    drawn = load_profile(_profile(tmp_path, max_examples=8)).clause(clause_id)
    with data_node(tmp_path) as node:
        notes, first = _generated(node, drawn)
        seed = int(re.search(r"a seed drawn for this run (\d+)", notes).group(1))  # type: ignore[union-attr]
        again = load_profile(_profile(tmp_path, seed=seed, max_examples=8)).clause(clause_id)
        notes_again, second = _generated(node, again)
        other = load_profile(_profile(tmp_path, seed=seed + 1, max_examples=8)).clause(clause_id)
        _, third = _generated(node, other)
    assert f"the profile's seed {seed}" in notes_again
    assert second == first
    assert third != first
    # Projection and filter are generated together, within max_examples cases.
    assert any(b["fields"] and b["filter"] for b in first), first
    assert len({json.dumps(b, sort_keys=True) for b in first}) <= 8
