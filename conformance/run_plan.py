"""The plan of a run: its options validated once into target, profile and clauses.

``conformance run`` builds the plan before pytest starts (a bad input is one line, exit 2) and
hands it to the plugin; plain pytest builds it from the plugin's options. Either way it is built
once per run, here.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from conformance.authority.keys import AuthorityKeyError, load_verifying_key
from conformance.authority.waivers import WaiverFileError, WaiverSet, load_waivers
from conformance.checks import RegisteredCheck, registry
from conformance.load.runner import RemoteWorkers
from conformance.options import RunOptions
from conformance.outcomes import SkipCause
from conformance.profile import Clause, Profile, get_clause, load_clauses, load_profile
from conformance.target import Target, load_target

_NOT_IMPLEMENTED = "check not implemented"


class PlanError(Exception):
    """The run's options do not make a plan (an unknown --only name)."""


@dataclass(frozen=True)
class PlannedClause:
    """A clause of the run and how it will be assessed."""

    clause: Clause
    check: RegisteredCheck | None
    skip: str | None = None
    skip_cause: SkipCause | None = None

    @property
    def runs(self) -> bool:
        """The clause becomes a test item (deselected clauses do not)."""
        return self.skip_cause is not SkipCause.NOT_SELECTED


@dataclass(frozen=True)
class Plan:
    """The frozen configuration of one run: target, profile, clauses, options."""

    target: Target
    profile: Profile
    clauses: tuple[PlannedClause, ...]
    selection: tuple[str, ...]
    load_mode: str
    lab: bool
    report_dir: Path
    progress: bool = False  # one terminal line per clause (`conformance run`, unless quiet)
    quiet: bool = False  # no preflight or progress lines, only the summary
    load_workers: int | None = None
    load_remote: RemoteWorkers | None = None
    thorough: bool = False  # the long probes (ATS-AUTH-05's late replay)
    waivers: WaiverSet | None = None  # the authority's signed waivers (accepted FAILs)

    @property
    def partial(self) -> bool:
        """A run that leaves clauses out by choice, or measures load in smoke mode only."""
        return bool(self.selection) or self.load_mode != "full"

    def scope(self) -> tuple[str, ...]:
        """How the run was narrowed, as the report states it."""
        notes = [f"--only {' '.join(self.selection)}"] if self.selection else []
        if self.load_mode != "full":
            notes.append(f"--load {self.load_mode}")
        return tuple(notes)


def _selection_matches(clause: Clause, only: Sequence[str]) -> bool:
    return not only or clause.id in only or clause.chapter in only


def build_plan(options: RunOptions, target_path: str | Path | None = None) -> Plan:
    """The plan of a run; raises ``TargetError``, ``ProfileError`` or ``PlanError`` (one line).

    ``target_path`` is the target file of a run whose options name none (the embedded topology).
    """
    path = options.target or target_path
    if path is None:
        raise PlanError("no target file: give --target FILE")
    load_mode = options.load_mode
    target = load_target(path)
    if options.lab and not target.lab:
        target = _with_lab(target)
    chosen = load_profile(options.profile or target.node.level)
    every = load_clauses()
    known = [c.id for c in every] + sorted({c.chapter for c in every})
    # "AUTH-05" is accepted for "ATS-AUTH-05".
    # Several names in one value, comma-separated, as under plain pytest (`--only AUTH,CAT`).
    names = [n.strip().upper() for o in options.only for n in o.split(",") if n.strip()]
    wanted = tuple(
        dict.fromkeys(n if n in known or f"ATS-{n}" not in known else f"ATS-{n}" for n in names)
    )
    for name in wanted:
        if name not in known:
            hint = difflib.get_close_matches(name, known, n=1)
            did = f"; did you mean {hint[0]}?" if hint else ""
            raise PlanError(f"--only {name}: no such chapter or clause in ATS-1.0{did}")
    checks = registry()
    in_profile = {c.id: c for c in chosen.clauses}
    for clause_id in chosen.not_applicable:
        in_profile.setdefault(clause_id, get_clause(clause_id))
    planned: list[PlannedClause] = []
    for clause in (c for c in every if c.id in in_profile):
        clause = in_profile[clause.id]
        registered = checks.get(clause.id)
        if not _selection_matches(clause, wanted):
            reason = f"not selected (--only {' '.join(wanted)})"
            planned.append(PlannedClause(clause, registered, reason, SkipCause.NOT_SELECTED))
        elif clause.chapter == "PERF" and load_mode == "off":
            reason = "load stage off (--load off)"
            planned.append(PlannedClause(clause, registered, reason, SkipCause.NOT_SELECTED))
        elif clause.id in chosen.not_applicable:
            reason = chosen.not_applicable[clause.id]
            planned.append(PlannedClause(clause, registered, reason, SkipCause.NOT_APPLICABLE))
        elif registered is None:
            planned.append(PlannedClause(clause, None, _NOT_IMPLEMENTED, SkipCause.NOT_IMPLEMENTED))
        else:
            planned.append(PlannedClause(clause, registered))
    if options.workers is not None and options.workers < 1:
        raise PlanError(
            f"--ats-load-workers: must be a whole number of at least 1, got {options.workers}"
        )
    try:
        remote = RemoteWorkers.parse(options.load_remote) if options.load_remote else None
    except ValueError as exc:
        raise PlanError(f"--ats-load-remote: {exc}") from None
    return Plan(
        target=target,
        profile=chosen,
        clauses=tuple(planned),
        selection=wanted,
        load_mode=load_mode,
        lab=target.lab,
        report_dir=Path(options.report_dir),
        progress=options.progress and not options.quiet,
        quiet=options.quiet,
        load_workers=options.workers,
        load_remote=remote,
        thorough=options.thorough,
        waivers=_waivers(options),
    )


def _waivers(options: RunOptions) -> WaiverSet | None:
    """The run's waivers file read against the authority's public key; both or neither."""
    if options.waivers is None and options.authority_pubkey is None:
        return None
    if options.waivers is None or options.authority_pubkey is None:
        raise PlanError("--waivers and --authority-pubkey go together")
    try:
        return load_waivers(
            Path(options.waivers), load_verifying_key(Path(options.authority_pubkey))
        )
    except (AuthorityKeyError, WaiverFileError) as exc:
        raise PlanError(str(exc)) from None


def _with_lab(target: Target) -> Target:
    return replace(target, lab=True)
