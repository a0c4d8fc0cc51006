"""The node file of a reference node: YAML in, frozen dataclasses out, or one ConfigError line.

Every string may be written ``${ENV_NAME}``; the variable is read from the environment. A problem
is reported as ``FILE: PLACE: PROBLEM`` so an operator can fix it without reading code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from conformance import codes, envvars
from conformance.data import data_dir
from conformance.masking import Masker
from conformance.reference.faults import FaultSet, UnknownFaultError
from conformance.reference.variants import UnknownVariantError, VariantSet

_HIGH_RATE_LIMIT = 1200

_SCHEMA_PATH = Path(__file__).with_name("node_config.schema.json")


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
    # Conformant choices other than the node's default (conformance/reference/variants.py).
    variants: tuple[str, ...] = ()

    @property
    def parent_id(self) -> str | None:
        """The parent's node id; None for the national node."""
        return self.parent.node_id if self.parent else None


def _place(path: Any) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in path]
    return "".join(parts).lstrip(".") or "(top level)"


def _expand(value: Any, where: tuple[Any, ...], source: str) -> Any:
    if isinstance(value, str):
        try:
            return envvars.expand(value, os.environ)
        except envvars.UnsetVariable as exc:
            raise ConfigError(f"{source}: {_place(where)}: {exc}") from None
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


def _split_listen(listen: str, source: str, place: str = "node.listen") -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{source}: {place}: expected HOST:PORT, got {listen!r}")
    return host, int(port)


def _secret_values(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = {v for k, v in value.items() if k == "secret" and isinstance(v, str) and v}
        return found.union(*(_secret_values(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_secret_values(v) for v in value))
    return set()


def _masked(error: jsonschema.ValidationError, raw: Any) -> str:
    """The schema error's message, with no secret of the node file in it."""
    if error.absolute_path and error.absolute_path[-1] == "secret":
        # A secret never reaches an error text, not even a malformed one.
        return "must be 32 to 128 characters from [A-Za-z0-9_-]"
    # A message may quote a whole object ("{...} is not of type 'object'"): its secrets go.
    return Masker(_secret_values(raw)).text(error.message)


def _listing(ids: set[str]) -> str:
    return ", ".join(sorted(ids)) or "none"


def _check_children(
    node_id: str, level: str, children: tuple[ChildConfig, ...], source: str
) -> None:
    """Each child is of a level this node may have below it, and well formed for it (ATS §0, §8)."""
    allowed = {"national": ("department", "provincial"), "provincial": ("municipal",)}.get(level)
    seen: set[str] = set()
    for index, child in enumerate(children):
        place = f"{source}: node.children[{index}]"
        if allowed is None:
            # ATS §0: in 1.0 only national and provincial nodes have children.
            raise ConfigError(f"{place}: a {level} node has no children in ATS-1.0")
        if child.level not in allowed:
            raise ConfigError(
                f"{place}.level: a {level} node's children are {' or '.join(allowed)}, "
                f"got {child.level!r}"
            )
        if problem := codes.node_id_problem(child.node_id, child.level, node_id):
            raise ConfigError(f"{place}.node_id: {problem}")
        if child.node_id in seen:
            raise ConfigError(f"{place}.node_id: {child.node_id!r} is listed twice")
        seen.add(child.node_id)


def _database_path(name: str, base: Path, source: str) -> Path:
    path = Path(name) if Path(name).is_absolute() else base / name
    if not path.parent.is_dir():
        raise ConfigError(
            f"{source}: node.database: the folder of {name!r} does not exist ({path.parent})"
        )
    return path


def _check_seed(path: Path, node_id: str, source: str) -> None:
    """The seed catalog is a catalog of this node: every entry carries this node's id (ATS §4)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"{source}: seed.catalog: {path.name} is not a JSON catalog: {exc}"
        ) from None
    entries = data.get("entries", []) if isinstance(data, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f"{source}: seed.catalog: {path.name} has no list of entries")
    for index, entry in enumerate(entries):
        owner = entry.get("node_id", node_id)
        if owner != node_id:
            raise ConfigError(
                f"{source}: seed.catalog: {path.name} entries[{index}].node_id is {owner!r}, "
                f"expected this node's id {node_id!r}"
            )


def _tls(raw: Mapping[str, Any], base: Path, source: str) -> TlsConfig:
    """The TLS files, relative to the node file's folder, readable; the plain address valid."""
    files = {}
    for key in ("cert", "key"):
        path = Path(raw[key]) if Path(raw[key]).is_absolute() else base / raw[key]
        if not path.is_file():
            raise ConfigError(f"{source}: tls.{key}: {raw[key]!r} is not a readable file")
        files[key] = str(path)
    if raw.get("http_listen"):
        _split_listen(raw["http_listen"], source, "tls.http_listen")
    return TlsConfig(cert=files["cert"], key=files["key"], http_listen=raw.get("http_listen"))


def build_config(
    raw: Any,
    source: str,
    base: Path,
    extra_faults: tuple[str, ...] = (),
    extra_variants: tuple[str, ...] = (),
) -> NodeConfig:
    """The node configuration of a parsed node file (``base`` resolves relative paths)."""
    schema = json.loads(_SCHEMA_PATH.read_text(encoding="utf-8"))
    raw = _expand(raw, (), source)
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(raw), key=lambda e: list(e.path)
    )
    if errors:
        first = errors[0]
        raise ConfigError(f"{source}: {_place(first.absolute_path)}: {_masked(first, raw)}")
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
    # ATS §0: a municipal node's parent is its provincial node.
    if (
        parent is not None
        and node["level"] == "municipal"
        and (problem := codes.node_id_problem(parent.node_id, "provincial"))
    ):
        raise ConfigError(
            f"{source}: node.parent.node_id: a municipal node's parent is provincial: {problem}"
        )
    children = tuple(ChildConfig(**c) for c in node.get("children") or ())
    _check_children(node["node_id"], node["level"], children, source)
    neighbours = {c.node_id for c in children} | ({parent.node_id} if parent else set())
    apps: dict[str, AppConfig] = {}
    for index, app in enumerate(raw["apps"]):
        if app["app_id"] in apps:
            raise ConfigError(
                f"{source}: apps[{index}].app_id: {app['app_id']!r} is registered twice"
            )
        if (app["role"] == "node") != ("bound_node" in app):
            raise ConfigError(f"{source}: apps[{index}].bound_node: required exactly for role node")
        if app["role"] == "node" and app["bound_node"] not in neighbours:
            # ATS §0: a node app is bound to a neighbouring node, the parent or a child.
            raise ConfigError(
                f"{source}: apps[{index}].bound_node: {app['bound_node']!r} is neither the "
                f"parent nor a child of this node (neighbours: {_listing(neighbours)})"
            )
        apps[app["app_id"]] = AppConfig(**app)
    host, port = _split_listen(node["listen"], source)
    database = node.get("database", ":memory:")
    if database != ":memory:":
        database = str(_database_path(database, base, source))
    seed = (raw.get("seed") or {}).get("catalog")
    seed_path = _seed_path(seed, base, source) if seed else None
    if seed_path is not None:
        _check_seed(seed_path, node["node_id"], source)
    faults = tuple(dict.fromkeys([*(raw.get("faults") or ()), *extra_faults]))
    try:
        FaultSet.of(faults)
    except UnknownFaultError as exc:
        raise ConfigError(f"{source}: faults: {exc}") from None
    variants = tuple(dict.fromkeys([*(raw.get("variants") or ()), *extra_variants]))
    try:
        VariantSet.of(variants)
    except UnknownVariantError as exc:
        raise ConfigError(f"{source}: variants: {exc}") from None
    tls_raw = raw.get("tls")
    return NodeConfig(
        node_id=node["node_id"],
        name=node["name"],
        level=node["level"],
        host=host,
        port=port,
        database=database,
        # The high-rate-limit variant grants 1 200 requests/s (ATS-NODE-02 fixes no value).
        rate_limit_per_app=(
            _HIGH_RATE_LIMIT
            if "high-rate-limit" in variants
            else node.get("rate_limit_per_app", 50)
        ),
        cascade_timeout_s=float(node.get("cascade_timeout_s", 10)),
        systems_integrated=node.get("systems_integrated", 0),
        parent=parent,
        children=children,
        apps=apps,
        seed_catalog=seed_path,
        faults=faults,
        tls=_tls(tls_raw, base, source) if tls_raw else None,
        source=source,
        variants=variants,
    )


def load_config(
    path: str | os.PathLike[str],
    extra_faults: tuple[str, ...] = (),
    extra_variants: tuple[str, ...] = (),
) -> NodeConfig:
    """The configuration of the node file at ``path``, with ``extra_faults`` and
    ``extra_variants`` switched on too."""
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
    return build_config(raw, source, Path(path).resolve().parent, extra_faults, extra_variants)
