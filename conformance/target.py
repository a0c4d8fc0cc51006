"""The target file: which node is certified, with which credentials and neighbours.

A target file is YAML; any string in it may be written ``${ENV_NAME}`` (wholly or inside a
longer string) and is read from the environment, so secrets stay out of the file. Every problem
is reported as one line naming the file, the place inside it and what is wrong — never the value
of a secret.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from conformance import envvars

NODE_LEVELS = ("department", "provincial", "municipal")
APP_NAMES = ("consumer", "consumer_b", "admin", "load")
REQUIRED_APPS = ("consumer", "consumer_b", "admin")
RESOURCE_ROLES = ("unconditional", "conditional", "not_shared", "population")
# The certification request (optional): who asks for the certificate, for what, who tests it.
REQUEST_FIELDS = (
    "node_name", "operator", "vendor", "product", "version", "contact", "tester", "reviewer",
)  # fmt: skip

# ATS §0: app ids and secrets.
_APP_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_SECRET = re.compile(r"^[A-Za-z0-9_-]{32,128}$")
_LISTEN = re.compile(r"^(?P<host>[^:\s]+):(?P<port>[0-9]{1,5})$")


class TargetError(Exception):
    """The target file cannot be used: one line naming file, place and problem."""


@dataclass(frozen=True)
class AppCredential:
    """An app registered at a node: its id and secret (never shown by ``repr``)."""

    app_id: str
    secret: str = field(repr=False)


@dataclass(frozen=True)
class NodeSpec:
    """The candidate node as the certification request declares it."""

    base_url: str
    level: str
    node_id: str
    parent_id: str | None
    ca_bundle: str | None = None
    http_url: str | None = None

    @property
    def is_https(self) -> bool:
        """A node reached over HTTPS is one whose base URL has the https scheme."""
        return self.base_url.lower().startswith("https://")


@dataclass(frozen=True)
class NeighbourSpec:
    """One neighbour of the candidate (its parent or a child), emulated by the suite.

    ``at_candidate`` is the neighbour's credential registered at the candidate (``as_parent`` /
    ``as_child`` in the file); ``candidate`` is the candidate's credential at the neighbour.
    """

    role: str
    listen: str
    node_id: str
    at_candidate: AppCredential
    candidate: AppCredential
    # A real neighbour's base URL when it is not plain HTTP at ``listen`` (live mode over HTTPS).
    base_url: str | None = None
    # An emulated neighbour served over HTTPS: its certificate and key files (``tls``), for a
    # candidate wired to ``https://listen``.
    cert: str | None = None
    key: str | None = None

    @property
    def host(self) -> str:
        """The host part of ``listen``."""
        return self.listen.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        """The port part of ``listen``."""
        return int(self.listen.rsplit(":", 1)[1])

    @property
    def url(self) -> str:
        """The URL the candidate is configured to call: ``url`` in the file, else plain HTTP
        at ``listen``."""
        return self.base_url or f"{'https' if self.cert else 'http'}://{self.listen}"


@dataclass(frozen=True)
class Neighbours:
    """The candidate's parent and child; ``live`` when they are real nodes, not emulated.

    ``emulated_child`` (live mode only) is a further child the candidate is wired to, at an
    address where the suite emulates it: the one neighbour a live run can make refuse, hang or
    stop, and whose received requests it sees (ATS-CAS-08, -09, ATS-STAT-02).
    """

    parent: NeighbourSpec | None
    child: NeighbourSpec | None
    live: bool = False
    emulated_child: NeighbourSpec | None = None

    def specs(self) -> list[NeighbourSpec]:
        """Every neighbour the file names."""
        return [s for s in (self.parent, self.child, self.emulated_child) if s is not None]

    def emulated(self) -> Neighbours:
        """The neighbours the suite emulates: all of them, or in live mode the emulated child."""
        if not self.live:
            return self
        return Neighbours(parent=None, child=self.emulated_child)


@dataclass(frozen=True)
class Timeouts:
    """Transport bounds of every exchange with the candidate, in seconds."""

    connect_s: float = 3.0
    read_s: float = 10.0


@dataclass(frozen=True)
class Target:
    """A certification request: the node, the tester's apps, resources and neighbours."""

    node: NodeSpec
    apps: Mapping[str, AppCredential]
    resources: Mapping[str, str]
    neighbours: Neighbours | None
    lab: bool
    source: str
    timeouts: Timeouts = Timeouts()
    # ATS §12: load beyond loopback only when the target file says the operator owns the node.
    operator_owns_target: bool = False
    # The certification request block (REQUEST_FIELDS); reports and the certificate show it.
    request: Mapping[str, str] = field(default_factory=dict)

    def credential(self, name: str) -> AppCredential:
        """The credential called ``name``: an app of the file, ``as_parent`` or ``as_child``."""
        if name in self.apps:
            return self.apps[name]
        neighbour = {
            "as_parent": self.neighbours.parent if self.neighbours else None,
            "as_child": self.neighbours.child if self.neighbours else None,
        }.get(name)
        if neighbour is not None:
            return neighbour.at_candidate
        known = [*self.apps, *(n for n in ("as_parent", "as_child") if self._has(n))]
        raise KeyError(f"no app {name!r} in the target file (known: {', '.join(known)})")

    def _has(self, name: str) -> bool:
        if self.neighbours is None:
            return False
        return (
            self.neighbours.parent if name == "as_parent" else self.neighbours.child
        ) is not None

    def secrets(self) -> tuple[str, ...]:
        """Every secret of the file, for scrubbing them from anything the suite writes."""
        creds = list(self.apps.values())
        if self.neighbours is not None:
            for spec in self.neighbours.specs():
                creds += [spec.at_candidate, spec.candidate]
        return tuple(sorted({c.secret for c in creds}, key=len, reverse=True))

    def public(self) -> dict[str, Any]:
        """The target without secrets, as reports show it."""
        return {
            "base_url": self.node.base_url,
            "level": self.node.level,
            "node_id": self.node.node_id,
            "parent_id": self.node.parent_id,
            "lab": self.lab,
            "apps": {name: cred.app_id for name, cred in self.apps.items()},
            "resources": dict(self.resources),
            **({"request": dict(self.request)} if self.request else {}),
        }


class _Reader:
    """Walks the parsed YAML, expanding ``${ENV}`` and naming the place of every problem."""

    def __init__(self, source: str, environ: Mapping[str, str]) -> None:
        self.source = source
        self.environ = environ

    def fail(self, place: str, problem: str) -> TargetError:
        return TargetError(f"{self.source}: {place}: {problem}")

    def mapping(self, value: Any, place: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(place, f"must be a mapping, got {_kind(value)}")
        for key in value:
            if key not in allowed:
                hint = difflib.get_close_matches(str(key), allowed, n=1)
                did_you_mean = f"; did you mean {hint[0]!r}?" if hint else ""
                where = f"{place}.{key}" if place else str(key)
                raise self.fail(
                    where, f"unknown member (valid: {', '.join(allowed)}){did_you_mean}"
                )
        return value

    def optional_string(self, value: Any, place: str) -> str | None:
        return None if value is None else self.string(value, place)

    def string(self, value: Any, place: str) -> str:
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value:
            raise self.fail(place, f"must be a non-empty string, got {_kind(value)}")
        return self.expand(value, place)

    def expand(self, text: str, place: str) -> str:
        try:
            return envvars.expand(text, self.environ)
        except envvars.UnsetVariable as exc:
            raise self.fail(place, str(exc)) from None

    def flag(self, value: Any, place: str) -> bool:
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self.fail(place, f"must be true or false, got {_kind(value)}")
        return value

    def credential(self, value: Any, place: str) -> AppCredential:
        data = self.mapping(value, place, ("app_id", "secret"))
        for key in ("app_id", "secret"):
            if key not in data:
                raise self.fail(f"{place}.{key}", "is missing")
        app_id = self.string(data["app_id"], f"{place}.app_id")
        secret = self.string(data["secret"], f"{place}.secret")
        if not _APP_ID.match(app_id):
            raise self.fail(f"{place}.app_id", f"must match {_APP_ID.pattern}, got {app_id!r}")
        if not _SECRET.match(secret):
            # The value itself is never shown: it is a secret, even when malformed.
            raise self.fail(
                f"{place}.secret", "must be 32–128 characters of [A-Za-z0-9_-] (ATS §0)"
            )
        return AppCredential(app_id, secret)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return type(value).__name__


def _optional_url(reader: _Reader, value: Any, place: str) -> str | None:
    return None if value is None else _url(reader, value, place)


def _url(reader: _Reader, value: Any, place: str) -> str:
    text = reader.string(value, place)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise reader.fail(place, f"must be an http:// or https:// URL, got {text!r}")
    return text.rstrip("/")


def _node(reader: _Reader, value: Any, folder: Path) -> NodeSpec:
    fields = ("base_url", "level", "node_id", "parent_id", "ca_bundle", "http_url")
    data = reader.mapping(value, "node", fields)
    for key in ("base_url", "level", "node_id"):
        if key not in data:
            raise reader.fail(f"node.{key}", "is missing")
    level = reader.string(data["level"], "node.level")
    if level not in NODE_LEVELS:
        raise reader.fail("node.level", f"must be one of {', '.join(NODE_LEVELS)}, got {level!r}")
    ca_bundle = reader.optional_string(data.get("ca_bundle"), "node.ca_bundle")
    if ca_bundle is not None:
        bundle = folder / ca_bundle
        if not bundle.is_file():
            raise reader.fail("node.ca_bundle", f"no such file: {ca_bundle}")
        ca_bundle = str(bundle)
    base_url = _url(reader, data["base_url"], "node.base_url")
    node_id = reader.string(data["node_id"], "node.node_id")
    return NodeSpec(
        base_url=base_url,
        level=level,
        node_id=node_id,
        parent_id=reader.optional_string(data.get("parent_id"), "node.parent_id"),
        ca_bundle=ca_bundle,
        http_url=_optional_url(reader, data.get("http_url"), "node.http_url"),
    )


def _neighbour(
    reader: _Reader, value: Any, role: str, member: str = "", folder: Path = Path()
) -> NeighbourSpec:
    place = f"neighbours.{member or role}"
    own = "as_parent" if role == "parent" else "as_child"
    data = reader.mapping(value, place, ("listen", "node_id", own, "candidate", "url", "tls"))
    for key in ("listen", "node_id", own, "candidate"):
        if key not in data:
            raise reader.fail(f"{place}.{key}", "is missing")
    listen = reader.string(data["listen"], f"{place}.listen")
    match = _LISTEN.match(listen)
    if match is None or not 0 < int(match["port"]) < 65536:
        raise reader.fail(f"{place}.listen", f"must be HOST:PORT, got {listen!r}")
    node_id = reader.string(data["node_id"], f"{place}.node_id")
    files: dict[str, str] = {}
    if data.get("tls") is not None:
        tls = reader.mapping(data["tls"], f"{place}.tls", ("cert", "key"))
        for key in ("cert", "key"):
            name = reader.string(tls.get(key), f"{place}.tls.{key}")
            if not (folder / name).is_file():
                raise reader.fail(f"{place}.tls.{key}", f"no such file: {name}")
            files[key] = str(folder / name)
    return NeighbourSpec(
        role=role,
        listen=listen,
        node_id=node_id,
        at_candidate=reader.credential(data[own], f"{place}.{own}"),
        candidate=reader.credential(data["candidate"], f"{place}.candidate"),
        base_url=_optional_url(reader, data.get("url"), f"{place}.url"),
        cert=files.get("cert"),
        key=files.get("key"),
    )


def _neighbours(reader: _Reader, value: Any, folder: Path) -> Neighbours:
    data = reader.mapping(value, "neighbours", ("parent", "child", "live", "emulated_child"))
    live = reader.flag(data.get("live"), "neighbours.live")
    spare = None
    if data.get("emulated_child"):
        if not live:
            raise reader.fail(
                "neighbours.emulated_child",
                "is for live mode only (live: true); without it neighbours.child is emulated",
            )
        spare = _neighbour(reader, data["emulated_child"], "child", "emulated_child", folder)
    neighbours = Neighbours(
        parent=(
            _neighbour(reader, data["parent"], "parent", folder=folder)
            if data.get("parent")
            else None
        ),
        child=(
            _neighbour(reader, data["child"], "child", folder=folder) if data.get("child") else None
        ),
        live=live,
        emulated_child=spare,
    )
    real = neighbours.child
    if spare is not None and real is not None and spare.node_id == real.node_id:
        raise reader.fail(
            "neighbours.emulated_child.node_id",
            f"is {spare.node_id!r}, the real child's id; expected another child's",
        )
    return neighbours


def _iter_apps(reader: _Reader, value: Any) -> Iterator[tuple[str, AppCredential]]:
    data = reader.mapping(value, "apps", APP_NAMES)
    for name in REQUIRED_APPS:
        if name not in data:
            raise reader.fail(f"apps.{name}", "is missing")
    for name, cred in data.items():
        yield name, reader.credential(cred, f"apps.{name}")


def _timeouts(reader: _Reader, value: Any) -> Timeouts:
    if value is None:
        return Timeouts()
    data = reader.mapping(value, "timeouts", ("connect_s", "read_s"))
    bounds: dict[str, float] = {}
    for key, raw in data.items():
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 < raw <= 120:
            raise reader.fail(f"timeouts.{key}", f"must be a number in (0, 120], got {raw!r}")
        bounds[key] = float(raw)
    return Timeouts(**bounds)


def load_target(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Target:
    """The target file at ``path``, validated, with ``${ENV}`` expanded from ``environ``."""
    source = str(path)
    env = os.environ if environ is None else environ
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise TargetError(f"{source}: cannot read the target file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise TargetError(f"{source}: cannot read the target file: not UTF-8") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "document"
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise TargetError(f"{source}: {where}: {problem}") from None
    reader = _Reader(source, env)
    top = reader.mapping(
        document,
        "",
        ("node", "apps", "resources", "neighbours", "lab", "timeouts", "load", "request"),
    )
    for key in ("node", "apps"):
        if key not in top:
            raise reader.fail(key, "is missing")
    node = _node(reader, top["node"], Path(path).resolve().parent)
    apps = dict(_iter_apps(reader, top["apps"]))
    if "resources" not in top:
        raise reader.fail("resources", "is missing")
    resources_raw = reader.mapping(top["resources"], "resources", RESOURCE_ROLES)
    for role in RESOURCE_ROLES:
        if role not in resources_raw:
            raise reader.fail(f"resources.{role}", "is missing")
    resources: dict[str, str] = {}
    for role, code in resources_raw.items():
        resources[role] = reader.string(code, f"resources.{role}")
    neighbours = None
    if top.get("neighbours") is not None:
        neighbours = _neighbours(reader, top["neighbours"], Path(path).resolve().parent)
    return Target(
        node=node,
        apps=apps,
        resources=resources,
        neighbours=neighbours,
        lab=reader.flag(top.get("lab"), "lab"),
        source=source,
        timeouts=_timeouts(reader, top.get("timeouts")),
        operator_owns_target=_operator_owns_target(reader, top.get("load")),
        request=_request(reader, top.get("request")),
    )


def _request(reader: _Reader, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    data = reader.mapping(value, "request", REQUEST_FIELDS)
    return {
        key: reader.string(data[key], f"request.{key}")
        for key in REQUEST_FIELDS
        if data.get(key) is not None
    }


def _operator_owns_target(reader: _Reader, value: Any) -> bool:
    if value is None:
        return False
    data = reader.mapping(value, "load", ("operator_owns_target",))
    return reader.flag(data.get("operator_owns_target"), "load.operator_owns_target")
