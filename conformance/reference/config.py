"""The node file of a reference node: YAML in, frozen dataclasses out, or one ConfigError line.

Every string may be written ``${ENV_NAME}``; the variable is read from the environment. A problem
is reported as ``FILE: PLACE: PROBLEM`` so an operator can fix it without reading code.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from conformance import codes
from conformance.data import data_dir
from conformance.reference.faults import FaultSet, UnknownFaultError

_SCHEMA_PATH = Path(__file__).with_name("node_config.schema.json")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(Exception):
    """The node file cannot be used; the message is one line: file, place, problem."""


@dataclass(frozen=True)
class AppConfig:
    """An app registered at this node: id, secret, role, optional own rate and bound neighbour."""

    app_id: str
    secret: str = field(repr=False)
    role: str
    rate_limit: int | None = None
    bound_node: str | None = None


@dataclass(frozen=True)
class ParentConfig:
    """The parent of this node and this node's own credential there."""

    node_id: str
    url: str
    app_id: str
    secret: str = field(repr=False)


@dataclass(frozen=True)
class ChildConfig:
    """A child of this node and this node's own credential there."""

    node_id: str
    name: str
    level: str
    url: str
    app_id: str
    secret: str = field(repr=False)


@dataclass(frozen=True)
class TlsConfig:
    """The certificate and key files of an HTTPS node, and its optional plain-HTTP address.

    ``http_listen`` (``host:port``) answers every request with a 308 redirect to HTTPS and no
    data (ATS-SEC-06).
    """

    cert: str
    key: str
    http_listen: str | None = None


@dataclass(frozen=True)
class NodeConfig:
    """A node's whole configuration, validated."""

    node_id: str
    name: str
    level: str
    host: str
    port: int
    database: str
    rate_limit_per_app: int
    cascade_timeout_s: float
    systems_integrated: int
    parent: ParentConfig | None
    children: tuple[ChildConfig, ...]
    apps: Mapping[str, AppConfig]
    seed_catalog: Path | None
    faults: tuple[str, ...]
    tls: TlsConfig | None
    source: str

    @property
    def parent_id(self) -> str | None:
        """The parent's node id; None for the national node."""
        return self.parent.node_id if self.parent else None


def _place(path: Any) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in path]
    return "".join(parts).lstrip(".") or "(top level)"


def _expand(value: Any, where: tuple[Any, ...], source: str) -> Any:
    if isinstance(value, str):

        def lookup(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise ConfigError(
                    f"{source}: {_place(where)}: ${{{name}}} is not set in the environment"
                )
            return os.environ[name]

        return _ENV.sub(lookup, value)
    if isinstance(value, list):
        return [_expand(v, (*where, i), source) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _expand(v, (*where, k), source) for k, v in value.items()}
    return value


def _seed_path(name: str, base: Path, source: str) -> Path:
    candidate = data_dir("fixtures") / "catalogs" / f"{name}.json"
    if "/" not in name and not name.endswith(".json") and candidate.is_file():
        return candidate
    path = Path(name) if Path(name).is_absolute() else base / name
    if not path.is_file():
        raise ConfigError(
            f"{source}: seed.catalog: {name!r} is neither a packaged catalog "
            f"(fixtures/catalogs/<name>.json) nor a readable file"
        )
    return path


def _split_listen(listen: str, source: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{source}: node.listen: expected HOST:PORT, got {listen!r}")
    return host, int(port)


def build_config(
    raw: Any, source: str, base: Path, extra_faults: tuple[str, ...] = ()
) -> NodeConfig:
    """The node configuration of a parsed node file (``base`` resolves relative paths)."""
    schema = json.loads(_SCHEMA_PATH.read_text(encoding="utf-8"))
    raw = _expand(raw, (), source)
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(raw), key=lambda e: list(e.path)
    )
    if errors:
        first = errors[0]
        message = first.message
        if first.absolute_path and first.absolute_path[-1] == "secret":
            # A secret never reaches an error text, not even a malformed one.
            message = "must be 32 to 128 characters from [A-Za-z0-9_-]"
        raise ConfigError(f"{source}: {_place(first.absolute_path)}: {message}")
    node = raw["node"]
    parent_raw = node.get("parent")
    parent = ParentConfig(**parent_raw) if parent_raw else None
    if (node["level"] == "national") != (parent is None):
        raise ConfigError(
            f"{source}: node.parent: a national node has no parent and every other node has one"
        )
    problem = codes.node_id_problem(
        node["node_id"], node["level"], parent.node_id if parent else None
    )
    if problem:
        raise ConfigError(f"{source}: node.node_id: {problem}")
    children = tuple(ChildConfig(**c) for c in node.get("children") or ())
    apps: dict[str, AppConfig] = {}
    for index, app in enumerate(raw["apps"]):
        if app["app_id"] in apps:
            raise ConfigError(
                f"{source}: apps[{index}].app_id: {app['app_id']!r} is registered twice"
            )
        if (app["role"] == "node") != ("bound_node" in app):
            raise ConfigError(f"{source}: apps[{index}].bound_node: required exactly for role node")
        apps[app["app_id"]] = AppConfig(**app)
    host, port = _split_listen(node["listen"], source)
    database = node.get("database", ":memory:")
    if database != ":memory:" and not Path(database).is_absolute():
        database = str(base / database)
    seed = (raw.get("seed") or {}).get("catalog")
    faults = tuple(dict.fromkeys([*(raw.get("faults") or ()), *extra_faults]))
    try:
        FaultSet.of(faults)
    except UnknownFaultError as exc:
        raise ConfigError(f"{source}: faults: {exc}") from None
    tls_raw = raw.get("tls")
    return NodeConfig(
        node_id=node["node_id"],
        name=node["name"],
        level=node["level"],
        host=host,
        port=port,
        database=database,
        rate_limit_per_app=node.get("rate_limit_per_app", 50),
        cascade_timeout_s=float(node.get("cascade_timeout_s", 10)),
        systems_integrated=node.get("systems_integrated", 0),
        parent=parent,
        children=children,
        apps=apps,
        seed_catalog=_seed_path(seed, base, source) if seed else None,
        faults=faults,
        tls=TlsConfig(**tls_raw) if tls_raw else None,
        source=source,
    )


def load_config(path: str | os.PathLike[str], extra_faults: tuple[str, ...] = ()) -> NodeConfig:
    """The configuration of the node file at ``path``, with ``extra_faults`` switched on too."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{source}: cannot be read: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(top level)"
        raise ConfigError(f"{source}: {where}: not valid YAML") from None
    return build_config(raw, source, Path(path).resolve().parent, extra_faults)
