"""Fixtures of the harness tests: target files pointing at purpose-built loopback servers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

SECRETS = {
    "consumer": "c" * 40,
    "consumer_b": "d" * 40,
    "admin": "e" * 40,
    "load": "f" * 40,
}


def target_document(base_url: str, **overrides: Any) -> dict[str, Any]:
    """A complete target document for a node at ``base_url`` with short timeouts."""
    document: dict[str, Any] = {
        "node": {
            "base_url": base_url,
            "level": "provincial",
            "node_id": "330000",
            "parent_id": "100000",
        },
        "apps": {
            name: {"app_id": f"app-{name.replace('_', '-')}", "secret": secret}
            for name, secret in SECRETS.items()
        },
        "resources": {
            "unconditional": "102001/330002",
            "conditional": "105001/330003",
            "not_shared": "303001/330004",
            "population": "101001/330001",
        },
        "lab": True,
        "timeouts": {"connect_s": 1, "read_s": 1},
    }
    document.update(overrides)
    return document


@pytest.fixture
def write_target(tmp_path: Path) -> Callable[..., Path]:
    """Writes a target file for a node at the given base URL and answers its path."""

    def write(base_url: str, **overrides: Any) -> Path:
        path = tmp_path / "target.yaml"
        path.write_text(yaml.safe_dump(target_document(base_url, **overrides)), "utf-8")
        return path

    return write
