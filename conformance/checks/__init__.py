"""The checks registry: one check function per ATS clause, registered once by ``@check``.

A check returns normally when the node satisfies its clause (PASS) and otherwise raises one of
the outcomes: ``Finding`` (FAIL), ``Inconclusive`` or ``NodeUnreachable`` (ERROR),
``NotApplicable`` (SKIP, with its reason), ``NotAssessed`` (SKIP: the clause applies but this run
cannot assess it, so the run cannot certify).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from conformance.client import EvidenceLog, NodeClient, NodeUnreachable
from conformance.outcomes import Finding, Inconclusive, NotApplicable, NotAssessed, Outcome

if TYPE_CHECKING:
    from conformance.load.runner import RemoteWorkers
    from conformance.neighbours import NeighbourSet
    from conformance.profile import Clause, Profile
    from conformance.target import Target

__all__ = [
    "CheckContext",
    "CheckFunction",
    "Finding",
    "Inconclusive",
    "NodeUnreachable",
    "NotApplicable",
    "NotAssessed",
    "Outcome",
    "RegisteredCheck",
    "RegistryError",
    "RunState",
    "check",
    "registry",
    "unregister",
]

# The chapter modules every run needs; any other conformance.checks.* module is loaded too.
_CHAPTER_MODULES = ("api", "node", "auth")


class RegistryError(Exception):
    """A clause or a check name registered twice."""


@dataclass
class RunState:
    """What the checks of one run share: request ids sent, subscriptions made, notes.

    ``values`` holds anything else a check leaves for a later one (``remember`` / ``recall``);
    ``load`` receives the load stage's figures for the report.
    """

    request_ids: list[str] = field(default_factory=list)
    subscriptions: list[str] = field(default_factory=list)
    audit_events: list[dict[str, Any]] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    load: dict[str, Any] = field(default_factory=dict)

    def remember(self, key: str, value: Any) -> None:
        """Keeps ``value`` under ``key`` for later checks of the run."""
        self.values[key] = value

    def recall(self, key: str, default: Any = None) -> Any:
        """The value kept under ``key``, else ``default``."""
        return self.values.get(key, default)

    def cached(self, key: str, compute: Callable[[], Any]) -> Any:
        """The value under ``key``, computed once per run."""
        if key not in self.values:
            self.values[key] = compute()
        return self.values[key]


@dataclass
class CheckContext:
    """Everything a check sees: its clause and parameters, the target, the client, the run."""

    clause: Clause
    target: Target
    client: NodeClient
    run: RunState
    evidence: EvidenceLog
    profile: Profile | None = None
    neighbours: NeighbourSet | None = None
    load_mode: str = "off"
    load_workers: int | None = None
    # Load workers on other hosts (distributed mode, docs/load.md), besides the local ones.
    load_remote: RemoteWorkers | None = None
    # --thorough: the long probes a default run leaves out (ATS-AUTH-05 replays after 590 s).
    thorough: bool = False

    @property
    def params(self) -> Mapping[str, Any]:
        """The clause's parameters from the profile."""
        return self.clause.params

    @property
    def lab(self) -> bool:
        """A lab run (ATS §11): plain HTTP declared by the tester, never certified."""
        return self.target.lab

    def note(self, text: str) -> None:
        """Adds a line to the clause's evidence."""
        self.evidence.note(text)

    def fail(self, reason: str) -> NoReturn:
        """The node violates the clause."""
        raise Finding(reason)

    def error(self, reason: str) -> NoReturn:
        """The check cannot decide."""
        raise Inconclusive(reason)

    def skip(self, reason: str) -> NoReturn:
        """The clause does not apply."""
        raise NotApplicable(reason)

    def not_assessed(self, reason: str) -> NoReturn:
        """The clause applies, but this run lacks what assessing it needs."""
        raise NotAssessed(reason)


CheckFunction = Callable[[CheckContext], None]


@dataclass(frozen=True)
class RegisteredCheck:
    """A check function and the clause it verifies."""

    clause_id: str
    name: str
    function: CheckFunction
    module: str

    @property
    def doc(self) -> str:
        """The first line of the check's docstring: the property it verifies."""
        return (
            (self.function.__doc__ or "").strip().splitlines()[0] if self.function.__doc__ else ""
        )


_checks: dict[str, RegisteredCheck] = {}


def check(clause_id: str) -> Callable[[CheckFunction], CheckFunction]:
    """Registers the decorated function as the check of ``clause_id``."""

    def register(function: CheckFunction) -> CheckFunction:
        name = f"{function.__module__}.{function.__qualname__}"
        if clause_id in _checks:
            raise RegistryError(f"{clause_id} already has a check: {_checks[clause_id].name}")
        if any(c.name == name for c in _checks.values()):
            raise RegistryError(f"{name} is already registered for another clause")
        _checks[clause_id] = RegisteredCheck(clause_id, name, function, function.__module__)
        return function

    return register


def unregister(clause_id: str) -> None:
    """Removes the check of ``clause_id`` (for the project's own tests)."""
    _checks.pop(clause_id, None)


def registry() -> Mapping[str, RegisteredCheck]:
    """Every registered check by clause id, after importing every check module."""
    modules = set(_CHAPTER_MODULES)
    modules |= {m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")}
    for name in sorted(modules):
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            # A chapter module not written yet leaves its clauses "check not implemented".
            if exc.name != f"{__name__}.{name}":
                raise
    return dict(_checks)
