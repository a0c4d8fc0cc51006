"""Load profiles and load plans: what the load stage sends, how fast, for how long (ATS §12).

A load profile (``profiles/load/<name>.yaml``) holds the scenarios' requests, the stepped load
of ATS-PERF-04, the generator's sizing and the hard caps. A ``LoadPlan`` is one locust run: the
target's origin, the load app's id (never its secret) and the phases, sent one after the other.
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import yaml

from conformance.data import data_dir

DEFAULT_LOAD_PROFILE = "default"


class LoadProfileError(Exception):
    """A load profile or a plan cannot be used: one line naming file, place and problem."""


@dataclass(frozen=True)
class Scenario:
    """A scenario is one kind of request of the load stage and the clause that measures it."""

    name: str
    clause: str
    description: str
    method: str
    target: str
    body: Any = None

    def request_target(self, resources: Mapping[str, str], page_size: int = 100) -> str:
        """The request target below ``/``: placeholders filled from the target file."""
        return self.target.format(page_size=page_size, **resources)

    def body_text(self) -> str | None:
        """The JSON body sent, or None for a request without a body."""
        return None if self.body is None else json.dumps(self.body, separators=(",", ":"))


@dataclass(frozen=True)
class Steps:
    """The stepped load of one mode: step timings, rate factors, and the highest rate sent."""

    warmup_s: float
    window_s: float
    factors: tuple[float, ...]
    max_rate_per_s: float


@dataclass(frozen=True)
class Generator:
    """How the generator is sized: workers, in-flight allowance, lag bound, time margin."""

    workers: int
    in_flight_s: float
    max_generator_lag_ms: float
    margin_s: float


@dataclass(frozen=True)
class Caps:
    """Hard caps no profile, clause parameter or option may exceed."""

    max_rate_per_s: float
    max_in_flight_per_worker: int
    max_workers: int
    max_phase_s: float
    max_stage_s: float


# Ceilings of the code itself (ATS §12 safety): a load profile's caps may be lower, never higher,
# and every plan is checked against them again by the runner and by each locust worker, so that
# no profile, hand-made plan or option can raise them. Sized above one tester's reach: 10000 req/s
# is several cores of signed requests, 64 workers a large distributed run, 1 h the longest phase.
CEILINGS = Caps(
    max_rate_per_s=10000,
    max_in_flight_per_worker=10000,
    max_workers=64,
    max_phase_s=3600,
    max_stage_s=4 * 3600,
)


@dataclass(frozen=True)
class LoadProfile:
    """A load profile: scenarios by name, stepped load per mode, generator sizing and caps."""

    name: str
    scenarios: Mapping[str, Scenario]
    stepped_scenario: str
    stepped: Mapping[str, Steps]
    generator: Generator
    caps: Caps
    source: str


def load_load_profile(name_or_path: str = DEFAULT_LOAD_PROFILE) -> LoadProfile:
    """The load profile of that name (under ``profiles/load/``) or at that path, validated."""
    folder = data_dir("profiles") / "load"
    path = Path(name_or_path)
    if not path.suffix:
        path = folder / f"{name_or_path}.yaml"
    source = str(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        known = ", ".join(sorted(p.stem for p in folder.glob("*.yaml")))
        raise LoadProfileError(
            f"{source}: cannot read the load profile: {exc.strerror} (known: {known})"
        ) from None
    except yaml.YAMLError as exc:
        raise LoadProfileError(f"{source}: not valid YAML: {exc}") from None
    schema = json.loads((folder / "load-profile.schema.json").read_text(encoding="utf-8"))
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(document),
        key=lambda e: list(e.absolute_path),
    )
    if errors:
        first = errors[0]
        place = ".".join(str(p) for p in first.absolute_path) or "document"
        raise LoadProfileError(f"{source}: {place}: {first.message}")
    scenarios = {
        name: Scenario(name=name, body=spec.get("body"), **{k: spec[k] for k in _SCENARIO_KEYS})
        for name, spec in document["scenarios"].items()
    }
    stepped = document["stepped"]
    if stepped["scenario"] not in scenarios:
        raise LoadProfileError(
            f"{source}: stepped.scenario: {stepped['scenario']!r} is not a scenario "
            f"(valid: {', '.join(scenarios)})"
        )
    caps = Caps(**document["caps"])
    for key, ceiling in asdict(CEILINGS).items():
        if getattr(caps, key) > ceiling:
            raise LoadProfileError(
                f"{source}: caps.{key}: {getattr(caps, key):g} exceeds the code's ceiling "
                f"{ceiling:g}"
            )
    steps = {}
    for mode in ("smoke", "full"):
        spec = stepped[mode]
        steps[mode] = Steps(
            warmup_s=float(spec["warmup_s"]),
            window_s=float(spec["window_s"]),
            factors=tuple(float(f) for f in spec["factors"]),
            max_rate_per_s=float(spec["max_rate_per_s"]),
        )
        if steps[mode].max_rate_per_s > caps.max_rate_per_s:
            raise LoadProfileError(
                f"{source}: stepped.{mode}.max_rate_per_s: {spec['max_rate_per_s']} exceeds "
                f"caps.max_rate_per_s {caps.max_rate_per_s:g}"
            )
    generator = Generator(**document["generator"])
    if generator.workers > caps.max_workers:
        raise LoadProfileError(
            f"{source}: generator.workers: {generator.workers} exceeds caps.max_workers "
            f"{caps.max_workers}"
        )
    return LoadProfile(
        name=document["name"],
        scenarios=scenarios,
        stepped_scenario=stepped["scenario"],
        stepped=steps,
        generator=generator,
        caps=caps,
        source=source,
    )


_SCENARIO_KEYS = ("clause", "description", "method", "target")


@dataclass(frozen=True)
class Phase:
    """A phase is one scenario sent at one constant rate: warm-up, then the measured window."""

    name: str
    scenario: str
    method: str
    target: str
    body: str | None
    rate_per_s: float
    warmup_s: float
    window_s: float
    max_in_flight: int


@dataclass(frozen=True)
class LoadPlan:
    """A load plan is one locust run: where, as which app, and the phases in order.

    ``host`` is the origin (scheme and authority) of the target's base URL; every phase's
    ``target`` already carries the base URL's path. No secret is part of a plan.
    """

    host: str
    app_id: str
    signature_method: str
    client_timeout_s: float
    workers: int
    phases: tuple[Phase, ...]
    ca_bundle: str | None = None
    # The target file's ``load: {operator_owns_target: true}``: the only way to a non-loopback host.
    operator_owns_target: bool = False

    def to_json(self) -> str:
        """The plan as the locustfile reads it (``--ats-plan``)."""
        return json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> LoadPlan:
        """The plan from ``to_json``'s text (a locust worker re-checks what it was sent)."""
        document = json.loads(text)
        phases = tuple(Phase(**phase) for phase in document.pop("phases"))
        return cls(**document, phases=phases)

    @property
    def duration_s(self) -> float:
        """The longest the phases can take: warm-up, window and draining of each."""
        return sum(p.warmup_s + p.window_s + self.client_timeout_s + 1 for p in self.phases)

    def check_safety(self) -> None:
        """Raises ``LoadProfileError`` unless every request goes to the plan's own origin.

        The host is a bare http(s) origin; a host outside loopback needs the operator's
        statement; every phase's target is a path on that host, never another authority.
        """
        parts = urlsplit(self.host)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/"):
            raise LoadProfileError(f"the plan's host {self.host!r} is not an http(s) origin")
        if not (is_loopback_host(parts.hostname) or self.operator_owns_target):
            raise LoadProfileError(
                f"{self.host} is not a loopback address and the target file does not state "
                "`load: {operator_owns_target: true}`"
            )
        for phase in self.phases:
            if not phase.target.startswith("/") or phase.target.startswith("//"):
                raise LoadProfileError(
                    f"phase {phase.name}: target {phase.target!r} is not a path on {self.host}"
                )

    def check_caps(self, caps: Caps = CEILINGS) -> None:
        """Raises ``LoadProfileError`` when the plan exceeds a hard cap or the code's ceilings."""
        if caps != CEILINGS:
            self.check_caps(CEILINGS)
        if self.workers > caps.max_workers:
            raise LoadProfileError(
                f"{self.workers} workers exceed the cap of {caps.max_workers} (caps.max_workers)"
            )
        for phase in self.phases:
            if phase.rate_per_s > caps.max_rate_per_s:
                raise LoadProfileError(
                    f"phase {phase.name}: {phase.rate_per_s:g} req/s exceeds the cap of "
                    f"{caps.max_rate_per_s:g} req/s (caps.max_rate_per_s)"
                )
            if phase.max_in_flight > caps.max_in_flight_per_worker:
                raise LoadProfileError(
                    f"phase {phase.name}: {phase.max_in_flight} requests in flight exceed the cap "
                    f"of {caps.max_in_flight_per_worker} (caps.max_in_flight_per_worker)"
                )
            if phase.warmup_s + phase.window_s > caps.max_phase_s:
                raise LoadProfileError(
                    f"phase {phase.name}: {phase.warmup_s + phase.window_s:g} s exceeds the cap "
                    f"of {caps.max_phase_s:g} s (caps.max_phase_s)"
                )
        if self.duration_s > caps.max_stage_s:
            raise LoadProfileError(
                f"the stage would take up to {self.duration_s:g} s, over the cap of "
                f"{caps.max_stage_s:g} s (caps.max_stage_s)"
            )


def is_loopback_host(host: str) -> bool:
    """Whether the host name is ``localhost`` or a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_base_url(base_url: str) -> tuple[str, str]:
    """The origin and the path prefix (a gateway prefix, or empty) of a base URL."""
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/")


def make_phase(
    name: str,
    scenario: Scenario,
    *,
    prefix: str,
    resources: Mapping[str, str],
    rate_per_s: float,
    warmup_s: float,
    window_s: float,
    workers: int,
    generator: Generator,
    caps: Caps,
    page_size: int = 100,
) -> Phase:
    """One phase of a scenario; each worker may hold its rate times ``in_flight_s`` in flight."""
    per_worker = rate_per_s / workers
    in_flight = min(
        max(math.ceil(per_worker * generator.in_flight_s), 1), caps.max_in_flight_per_worker
    )
    return Phase(
        name=name,
        scenario=scenario.name,
        method=scenario.method,
        target=prefix + scenario.request_target(resources, page_size),
        body=scenario.body_text(),
        rate_per_s=float(rate_per_s),
        warmup_s=float(warmup_s),
        window_s=float(window_s),
        max_in_flight=in_flight,
    )
