"""A client generated from the bundled description reads the reference node's answers (issue 20).

openapi-python-client, a widely used generator, builds a client from
``profiles/openapi.bundled.yaml`` into a temporary folder, as a vendor would; the client signs
with ``conformance.signing.SigningAuth`` and walks a subscription through create → decide →
revoke. Every answer is parsed into the generated models and written back out: what comes out
is what the node sent (timestamps compared as instants, ATS-API-09).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from refnode import ROLES, ThreadNode, start_thread_node

from conformance.data import data_dir
from conformance.signing import SigningAuth

BUNDLED = data_dir("profiles") / "openapi.bundled.yaml"
PACKAGE = "ats_generated_client"
PURPOSE = "用于跨部门业务协同办理的数据核验"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The generated package, importable for the module's tests."""
    folder = tmp_path_factory.mktemp("generated")
    generator = Path(sys.executable).with_name("openapi-python-client")
    subprocess.run(
        [
            *(str(generator), "generate", "--path", str(BUNDLED)),
            *("--meta", "none", "--output-path", str(folder / PACKAGE)),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(folder))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadNode]:
    running = start_thread_node(tmp_path_factory.mktemp("node"))
    yield running
    running.stop()


def _client(generated: ModuleType, node: ThreadNode, app: str) -> Any:
    credential = node.apps[app]
    auth = SigningAuth(credential.app_id, credential.secret)
    return generated.Client(base_url=f"{node.url}/api/v1", httpx_args={"auth": auth})


def _instant(text: str) -> datetime | None:
    if "T" not in text and "t" not in text:
        return None
    try:
        return datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        return None


def _same(written: Any, sent: Any) -> bool:
    """Equal JSON values, a timestamp equal to another spelling of its instant."""
    if isinstance(written, dict) and isinstance(sent, dict):
        return written.keys() == sent.keys() and all(_same(written[k], sent[k]) for k in sent)
    if isinstance(written, list) and isinstance(sent, list):
        return len(written) == len(sent) and all(map(_same, written, sent))
    if isinstance(written, str) and isinstance(sent, str) and written != sent:
        return _instant(written) is not None and _instant(written) == _instant(sent)
    return bool(written == sent and type(written) is type(sent))


def _round_trip(response: Any, status: int) -> Any:
    """The parsed model of an answer, checked to write back out as the node sent it."""
    assert response.status_code == status, response.content
    sent = json.loads(response.content)
    written = response.parsed.to_dict()
    assert _same(written, sent), (written, sent)
    return response.parsed


def test_every_operation_of_the_bundle_is_generated(generated: ModuleType) -> None:
    description = importlib.import_module(f"{PACKAGE}.api")
    folder = Path(description.__file__).parent
    modules = {p.stem for p in folder.glob("*/*.py") if p.stem != "__init__"}
    assert len(modules) == 15, sorted(modules)


@pytest.mark.timeout(60)
def test_the_node_answers_read_through_the_generated_models(
    generated: ModuleType, node: ThreadNode
) -> None:
    api = "ats_generated_client.api"
    health = importlib.import_module(f"{api}.node.get_health")
    describe = importlib.import_module(f"{api}.node.get_node")
    catalog = importlib.import_module(f"{api}.catalog.list_catalog_resources")
    entry = importlib.import_module(f"{api}.catalog.get_catalog_resource")
    share = importlib.import_module(f"{api}.share.query_share")
    stats = importlib.import_module(f"{api}.stats.get_stats")
    audit = importlib.import_module(f"{api}.audit.list_audit_events")
    models = importlib.import_module(f"{PACKAGE}.models")
    consumer = _client(generated, node, "consumer")
    admin = _client(generated, node, "admin")

    _round_trip(health.sync_detailed(client=consumer), 200)
    _round_trip(describe.sync_detailed(client=consumer), 200)
    page = _round_trip(catalog.sync_detailed(client=consumer, size=100), 200)
    assert page.total == len(page.items) > 0
    classification, sequence = ROLES["unconditional"].split("/")
    found = _round_trip(entry.sync_detailed(classification, sequence, client=consumer), 200)
    assert found.resource_code == ROLES["unconditional"]
    missing = _round_trip(entry.sync_detailed("399999", "999999", client=consumer), 404)
    assert isinstance(missing, models.ErrorBody)
    body = models.ShareQueryRequest.from_dict({"page": 1, "size": 5})
    answer = _round_trip(
        share.sync_detailed(classification, sequence, client=consumer, body=body), 200
    )
    assert answer.resource_code == ROLES["unconditional"]
    _round_trip(stats.sync_detailed(client=admin), 200)
    _round_trip(audit.sync_detailed(client=admin, size=10), 200)


@pytest.mark.timeout(60)
def test_a_subscription_walks_create_decide_revoke_through_the_generated_client(
    generated: ModuleType, node: ThreadNode
) -> None:
    api = "ats_generated_client.api.subscriptions"
    create = importlib.import_module(f"{api}.create_subscription")
    decide = importlib.import_module(f"{api}.decide_subscription")
    read = importlib.import_module(f"{api}.get_subscription")
    revoke = importlib.import_module(f"{api}.revoke_subscription")
    listing = importlib.import_module(f"{api}.list_subscriptions")
    models = importlib.import_module(f"{PACKAGE}.models")
    consumer = _client(generated, node, "consumer")
    admin = _client(generated, node, "admin")

    request = models.SubscriptionRequest.from_dict(
        {"resource_code": ROLES["conditional"], "purpose": PURPOSE}
    )
    created = _round_trip(create.sync_detailed(client=consumer, body=request), 201)
    assert str(created.status) == "PENDING"
    subscription_id = str(created.subscription_id)
    decision = models.DecisionRequest.from_dict({"decision": "APPROVE", "reason": PURPOSE})
    decided = _round_trip(decide.sync_detailed(subscription_id, client=admin, body=decision), 200)
    assert str(decided.status) == "APPROVED"
    revoked = _round_trip(revoke.sync_detailed(subscription_id, client=admin), 200)
    assert str(revoked.status) == "REVOKED"
    again = _round_trip(read.sync_detailed(subscription_id, client=consumer), 200)
    assert str(again.status) == "REVOKED"
    own = _round_trip(
        listing.sync_detailed(client=consumer, resource_code=ROLES["conditional"]), 200
    )
    assert subscription_id in {str(s["subscription_id"]) for s in own.to_dict()["items"]}
    refused = _round_trip(listing.sync_detailed(client=consumer, resource_code="abc"), 400)
    assert str(refused.code) == "INVALID_REQUEST"
