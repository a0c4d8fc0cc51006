"""Switch sets: the fault switches or the variant switches that are on for one node."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SwitchSet:
    """A switch set is the switches of one registry that are on for one node."""

    names: frozenset[str] = frozenset()

    def on(self, name: str) -> bool:
        """The switch ``name`` is on."""
        return name in self.names


def known(
    names: Iterable[str], registry: Mapping[str, Any], kind: str, error: type[ValueError]
) -> frozenset[str]:
    """``names`` as a set, each a switch of ``registry``; an unknown one raises ``error`` naming
    it and the valid ``kind``s."""
    chosen = frozenset(names)
    unknown = sorted(chosen - registry.keys())
    if unknown:
        raise error(
            f"unknown {kind} {', '.join(unknown)}; valid {kind}s: {', '.join(sorted(registry))}"
        )
    return chosen
