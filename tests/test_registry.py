"""The registry of checks and the profiles describe the same clauses, and each can fail."""

from __future__ import annotations

import pytest

from conformance.checks import CheckContext, RegistryError, check, registry, unregister
from conformance.profile import clause_ids, get_clause
from conformance.reference.faults import FAULTS


def test_every_clause_has_exactly_one_check_and_every_check_a_clause() -> None:
    registered = registry()
    assert sorted(registered) == sorted(clause_ids())


@pytest.mark.parametrize("clause_id", clause_ids())
def test_a_check_is_named_as_its_clause_says(clause_id: str) -> None:
    # STYLE §1: the function is named after the property, and the profile names the function.
    assert registry()[clause_id].function.__name__ == get_clause(clause_id).check


@pytest.mark.parametrize("clause_id", clause_ids())
def test_every_clause_is_broken_by_a_fault_of_the_reference_node(clause_id: str) -> None:
    # A check that passes against everything is a defect: a fault proves each one can fail.
    assert any(clause_id in fault.clauses for fault in FAULTS.values())


def test_every_fault_names_only_clauses_of_the_standard() -> None:
    known = set(clause_ids())
    assert {name: f.clauses for name, f in FAULTS.items() if not set(f.clauses) <= known} == {}
    assert FAULTS
    assert all(f.clauses for f in FAULTS.values())


def test_a_clause_cannot_have_two_checks() -> None:
    def replayed_nonce_rejected_again(ctx: CheckContext) -> None:
        """A second check for a clause that has one."""

    registry()
    with pytest.raises(RegistryError, match="ATS-AUTH-05 already has a check"):
        check("ATS-AUTH-05")(replayed_nonce_rejected_again)


def test_a_function_cannot_serve_two_clauses() -> None:
    def one_property(ctx: CheckContext) -> None:
        """A check registered twice."""

    check("ATS-TEST-01")(one_property)
    try:
        with pytest.raises(RegistryError, match="already registered"):
            check("ATS-TEST-02")(one_property)
    finally:
        unregister("ATS-TEST-01")
