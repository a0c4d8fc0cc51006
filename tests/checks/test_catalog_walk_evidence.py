"""A catalog walk keeps bounded evidence (ATS-CAT-01 walks every page): the first pages, and a
count of the others, however many pages the catalog has."""

from __future__ import annotations

from pathlib import Path

from data_node import data_node

from conformance.checks import CheckContext
from conformance.checks._catalog_walk import RECORDED_PAGES, CatalogWalk
from conformance.client import EvidenceLog
from conformance.profile import load_profile


def test_only_the_first_pages_of_a_walk_are_recorded(tmp_path: Path) -> None:
    with data_node(tmp_path) as node:
        target = node.client.target
        evidence = EvidenceLog(target.secrets())
        ctx = CheckContext(
            clause=load_profile("provincial").clause("ATS-CAT-01"),
            target=target,
            client=node.client.for_clause(evidence),
            run=node.run,
            evidence=evidence,
        )
        # Pages of 1 entry: many more pages than are recorded.
        walk = CatalogWalk(ctx, size=1, strict=True)
        entries = sum(1 for _ in walk)
    pages = walk.requests
    assert pages > 5 * RECORDED_PAGES, pages
    assert entries == walk.total
    exchanges = [e for e in evidence.entries if "method" in e]
    assert len(exchanges) == RECORDED_PAGES
    notes = [e["note"] for e in evidence.entries if "note" in e]
    assert notes == [
        f"{walk.label}: {pages} pages walked; the first {RECORDED_PAGES} are recorded, "
        f"{pages - RECORDED_PAGES} more only counted"
    ]
