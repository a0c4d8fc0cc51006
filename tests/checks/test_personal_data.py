"""Personal data stays out of the report (ATS §7): after the SHR and PRIV checks against the
reference node, no real value of a sensitive item of the population fixtures is in what
report.json would hold (reasons and evidence), and the evidence says the tester masked them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from data_node import data_clauses, data_node

from conformance import codes
from conformance.data import data_dir


def _real_values() -> set[str]:
    """The values of the population's sensitive items that a mask changes, except those the
    legal-person fixtures publish as non-sensitive (a legal representative's name)."""
    catalog = json.loads((data_dir("fixtures") / "catalogs" / "330000.json").read_text("utf-8"))
    population = next(
        e for e in catalog["entries"] if e["resource_code"] == catalog["roles"]["population"]
    )
    rules = {i["name"]: i["mask"] for i in population["items"] if i.get("sensitive") is True}
    people = data_dir("fixtures") / "people"
    citizens = json.loads((people / "citizens.json").read_text("utf-8"))
    public = (people / "legal_persons.json").read_text("utf-8")
    return {
        c[name]
        for c in citizens
        for name, rule in rules.items()
        if isinstance(c.get(name), str) and codes.mask(c[name], rule) != c[name]
    } - {v for c in citizens for v in c.values() if isinstance(v, str) and v in public}


# skip-masking: the consumer's answers are unmasked too, and still reach no report.
@pytest.mark.parametrize("faults", [(), ("skip-masking",)], ids=["clean", "skip-masking"])
def test_no_real_sensitive_value_reaches_the_report(
    tmp_path: Path, faults: tuple[str, ...]
) -> None:
    real = _real_values()
    assert len(real) > 500
    clauses = [c for c in data_clauses() if c.split("-")[1] in ("SHR", "PRIV")]
    with data_node(tmp_path, faults) as node:
        results = []
        for clause_id in clauses:
            verdict, reason, ctx = node.check(clause_id)
            results.append({"id": clause_id, "verdict": verdict, "reason": reason,
                            "evidence": ctx.evidence.entries})  # fmt: skip
    text = json.dumps(results, ensure_ascii=False)
    leaked = sorted(v for v in real if v in text)
    assert leaked == [], f"{len(leaked)} real values in the report, e.g. {leaked[:3]}"
    notes = [e["note"] for r in results for e in r["evidence"] if "note" in e]
    assert any("the tester masked" in n and "ATS §7" in n for n in notes), notes
    if not faults:
        assert {r["verdict"] for r in results} == {"PASS"}, results
