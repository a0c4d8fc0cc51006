"""The target file matching one node file (`conformance serve --node FILE --target-out OUT`).

The reference node's apps fill the tester's slots by role (ATS §0): the first two `consumer`
apps are `consumer` and `consumer_b`, an app called `load` the load stage's, the first
`provider-admin` the admin. Its parent and first child become the neighbours the suite emulates,
each with the node app bound to it and the node's own credential there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from conformance.reference.config import AppConfig, NodeConfig


def target_of(config: NodeConfig) -> dict[str, Any]:
    """The target document certifying the node of ``config`` with emulated neighbours."""
    scheme = "https" if config.tls else "http"
    apps = list(config.apps.values())
    consumers = [a for a in apps if a.role == "consumer" and a.app_id != "load"]
    slots: dict[str, AppConfig | None] = {
        "consumer": consumers[0] if consumers else None,
        "consumer_b": consumers[1] if len(consumers) > 1 else None,
        "admin": next((a for a in apps if a.role == "provider-admin"), None),
        "load": config.apps.get("load"),
    }
    plain = config.tls.http_listen if config.tls else None
    node: dict[str, Any] = {
        "base_url": f"{scheme}://{config.host}:{config.port}",
        "level": config.level,
        "node_id": config.node_id,
        "parent_id": config.parent_id,
        # The CA that issued tls.cert is the operator's to name here (ATS-SEC-01).
        "ca_bundle": None,
        "http_url": f"http://{plain}" if plain else None,
    }
    document: dict[str, Any] = {
        "node": node,
        "apps": {
            name: {"app_id": app.app_id, "secret": app.secret}
            for name, app in slots.items()
            if app is not None
        },
        "resources": _roles(config),
        # ATS §11: plain HTTP is a lab run; over HTTPS a run can certify.
        "lab": config.tls is None,
    }
    neighbours: dict[str, Any] = {}
    if config.parent is not None:
        bound = _bound(apps, config.parent.node_id)
        if bound is not None:
            neighbours["parent"] = {
                "listen": urlsplit(config.parent.url).netloc,
                "node_id": config.parent.node_id,
                "as_parent": {"app_id": bound.app_id, "secret": bound.secret},
                "candidate": {"app_id": config.parent.app_id, "secret": config.parent.secret},
            }
    for child in config.children[:1]:
        bound = _bound(apps, child.node_id)
        if bound is not None:
            neighbours["child"] = {
                "listen": urlsplit(child.url).netloc,
                "node_id": child.node_id,
                "as_child": {"app_id": bound.app_id, "secret": bound.secret},
                "candidate": {"app_id": child.app_id, "secret": child.secret},
            }
    if neighbours:
        document["neighbours"] = neighbours
    return document


def write_target_of(config: NodeConfig, path: str | Path) -> Path:
    """Writes the target file of ``config`` at ``path`` (owner-only: it holds secrets)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.touch(mode=0o600, exist_ok=True)
    out.chmod(0o600)
    text = yaml.safe_dump(target_of(config), allow_unicode=True, sort_keys=False)
    out.write_text(text, encoding="utf-8")
    return out


def _bound(apps: list[AppConfig], node_id: str) -> AppConfig | None:
    return next((a for a in apps if a.role == "node" and a.bound_node == node_id), None)


def _roles(config: NodeConfig) -> dict[str, str]:
    if config.seed_catalog is None:
        return {}
    roles = json.loads(config.seed_catalog.read_text(encoding="utf-8")).get("roles", {})
    return {str(role): str(code) for role, code in sorted(roles.items())}
