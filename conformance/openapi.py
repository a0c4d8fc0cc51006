"""The bundled OpenAPI description: profiles/openapi.yaml with every schema file inlined.

The description is written as split sources — ``profiles/openapi.yaml`` refers to the message
schemas in ``profiles/schemas/`` by relative path, as the suite validates with them. Code
generators and API fuzzers want one self-contained file, so the bundle moves every reachable
schema file, and every ``$defs`` entry of one, into ``components/schemas`` and rewrites each
``$ref`` to point there. ``conformance profiles bundle-openapi`` writes it to
``profiles/openapi.bundled.yaml``; a test keeps that file equal to what the sources give.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from conformance.data import data_dir

__all__ = ["BUNDLED_NAME", "SOURCE_NAME", "BundleError", "bundle", "bundled_text"]

SOURCE_NAME = "openapi.yaml"
BUNDLED_NAME = "openapi.bundled.yaml"
_SCHEMA_DIR = "schemas"
_SUFFIX = ".schema.json"
_DEFS_POINTER = re.compile(r"#/\$defs/([A-Za-z0-9_]+)")
_HEADER = (
    "# The ATS-1.0 node interface in one file, for code generators and API fuzzers.\n"
    "# Built from profiles/openapi.yaml and profiles/schemas/ by\n"
    "#   conformance profiles bundle-openapi\n"
    "# Do not edit: change the sources and run the command again (a test compares them).\n"
)


class BundleError(ValueError):
    """The split sources hold a reference the bundle cannot rewrite."""


def _pascal(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_.]", name) if part)


def _stem(file_name: str) -> str:
    if not file_name.endswith(_SUFFIX):
        raise BundleError(f"{file_name}: a schema file's name ends with {_SUFFIX}")
    return file_name[: -len(_SUFFIX)]


def _component(file_name: str, definition: str | None) -> str:
    """The component name of a schema file or of one of its ``$defs`` entries.

    The shared value shapes of common.schema.json keep their own names (Timestamp,
    ResourceCode …); any other file's definitions are prefixed with the file's name.
    """
    stem = _stem(file_name)
    if definition is None:
        return _pascal(stem)
    if stem == "common":
        return _pascal(definition)
    return _pascal(stem) + _pascal(definition)


class _Bundler:
    """Collects the reachable schema files of one description into its components."""

    def __init__(self, schema_dir: Path) -> None:
        self.schema_dir = schema_dir
        self.components: dict[str, Any] = {}
        self._loaded: set[str] = set()

    def _include(self, file_name: str) -> None:
        if file_name in self._loaded:
            return
        self._loaded.add(file_name)
        path = self.schema_dir / file_name
        if not path.is_file():
            raise BundleError(f"$ref to {_SCHEMA_DIR}/{file_name}: no such schema file")
        schema = json.loads(path.read_text("utf-8"))
        definitions = schema.pop("$defs", {})
        # The bundle has one base URI: an $id would make every rewritten $ref relative to it.
        for keyword in ("$id", "$schema"):
            schema.pop(keyword, None)
        rewrite = self._rewriter(file_name)
        self.components[_component(file_name, None)] = rewrite(schema)
        for name, definition in definitions.items():
            self.components[_component(file_name, name)] = rewrite(definition)

    def _target(self, ref: str, current: str | None) -> str:
        """The in-document pointer of ``ref``, read from ``current`` (None: the description)."""
        location, hash_, pointer = ref.partition("#")
        if not location:
            if current is None:
                return ref
            file_name = current
        else:
            prefix = f"./{_SCHEMA_DIR}/" if current is None else "./"
            bare = location[len(prefix) :] if location.startswith(prefix) else location
            if "/" in bare or ":" in bare:
                raise BundleError(f"$ref {ref!r}: only sibling schema files can be bundled")
            file_name = bare
            self._include(file_name)
        if not hash_ or not pointer:
            return f"#/components/schemas/{_component(file_name, None)}"
        match = _DEFS_POINTER.fullmatch(f"#{pointer}")
        if match is None:
            raise BundleError(f"$ref {ref!r}: only whole files and $defs entries can be bundled")
        definition = match.group(1)
        if file_name != current:
            self._include(file_name)
        return f"#/components/schemas/{_component(file_name, definition)}"

    def _rewriter(self, current: str | None) -> Callable[[Any], Any]:
        def rewrite(node: Any) -> Any:
            if isinstance(node, dict):
                return {
                    key: self._target(value, current)
                    if key == "$ref" and isinstance(value, str)
                    else rewrite(value)
                    for key, value in node.items()
                }
            if isinstance(node, list):
                return [rewrite(item) for item in node]
            return node

        return rewrite

    def description(self, source: dict[str, Any]) -> dict[str, Any]:
        bundled = self._rewriter(None)(source)
        components = bundled.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        schemas.update(sorted(self.components.items()))
        return bundled


def bundle(profiles: Path | None = None) -> dict[str, Any]:
    """The bundled description of ``profiles/openapi.yaml`` (packaged profiles by default)."""
    folder = profiles if profiles is not None else data_dir("profiles")
    source = yaml.safe_load((folder / SOURCE_NAME).read_text("utf-8"))
    return _Bundler(folder / _SCHEMA_DIR).description(source)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks, as the sources write them."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def bundled_text(profiles: Path | None = None) -> str:
    """The text of ``profiles/openapi.bundled.yaml``: a header comment, then the YAML."""
    body = yaml.dump(
        bundle(profiles), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100
    )
    return _HEADER + body
