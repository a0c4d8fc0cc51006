"""The bundled OpenAPI description is current, self-contained, and says what ATS says (issue 20)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_spec_validator import validate as validate_openapi

from conformance import schemas
from conformance.cli import main
from conformance.data import data_dir
from conformance.openapi import BUNDLED_NAME, BundleError, bundle, bundled_text

PROFILES = data_dir("profiles")
BUNDLED = PROFILES / BUNDLED_NAME
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def _bundled() -> dict[str, Any]:
    return yaml.safe_load(BUNDLED.read_text("utf-8"))


def _refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        found: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            found = found[part]
        node = found
    return node


def test_the_shipped_bundle_is_what_the_sources_give() -> None:
    # Run `conformance profiles bundle-openapi` after changing profiles/openapi.yaml or a schema.
    assert BUNDLED.read_text("utf-8") == bundled_text()


def test_the_command_writes_the_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "openapi.yaml"
    assert main(["profiles", "bundle-openapi", "--output", str(output)]) == 0
    assert output.read_text("utf-8") == BUNDLED.read_text("utf-8")
    assert capsys.readouterr().out.strip() == str(output)


def test_the_bundle_is_a_valid_self_contained_3_1_description() -> None:
    spec = _bundled()
    validate_openapi(spec)
    assert all(ref.startswith("#/components/") for ref in _refs(spec))
    assert not any("$id" in schema for schema in spec["components"]["schemas"].values())


def test_a_reference_outside_the_schema_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "openapi.yaml").write_text(
        yaml.safe_dump({"openapi": "3.1.0", "paths": {}, "x": {"$ref": "../elsewhere.json"}}),
        "utf-8",
    )
    with pytest.raises(BundleError, match="only sibling schema files"):
        bundle(tmp_path)


def test_no_operation_has_a_blanket_default_response() -> None:
    for method, path, operation in _operations(_bundled()):
        statuses = set(operation["responses"])
        assert "default" not in statuses, (method, path)
        assert all(s.isdigit() and len(s) == 3 for s in statuses), (method, path, statuses)


def test_the_405_of_an_unserved_method_is_documented_with_allow() -> None:
    answer = _bundled()["components"]["responses"]["MethodNotAllowed"]
    assert "Allow" in answer["headers"]
    assert "every method the path serves" in answer["description"]


def test_every_request_body_has_examples_its_schema_accepts() -> None:
    spec = _bundled()
    source = yaml.safe_load((PROFILES / "openapi.yaml").read_text("utf-8"))
    bodies = 0
    for method, path, operation in _operations(source):
        if "requestBody" not in operation:
            continue
        bodies += 1
        content = operation["requestBody"]["content"]["application/json"]
        name = Path(content["schema"]["$ref"]).name.removesuffix(schemas.SUFFIX)
        assert content.get("examples"), (method, path)
        for example in content["examples"].values():
            assert schemas.is_valid(name, example["value"]), (method, path, example)
    assert bodies == 4
    assert spec["paths"]["/subscriptions"]["post"]["requestBody"]["content"]["application/json"][
        "examples"
    ]


def test_links_lead_from_create_to_decide_to_revoke() -> None:
    spec = _bundled()
    ids = {operation["operationId"] for _, _, operation in _operations(spec)}
    created = _resolve(spec, spec["paths"]["/subscriptions"]["post"]["responses"]["201"])
    decision = spec["paths"]["/subscriptions/{subscription_id}/decision"]["post"]
    decided = _resolve(spec, decision["responses"]["200"])
    assert {link["operationId"] for link in created["links"].values()} >= {
        "getSubscription",
        "decideSubscription",
        "revokeSubscription",
    }
    assert "revokeSubscription" in {link["operationId"] for link in decided["links"].values()}
    for answer in (created, decided):
        for link in answer["links"].values():
            assert link["operationId"] in ids
            assert link["parameters"] == {"subscription_id": "$response.body#/subscription_id"}


def test_routing_headers_promise_no_refusal_outside_forwarding() -> None:
    # ATS §8: X-Hop-Limit and X-Route are read when the query needs forwarding; X-Origin-* only
    # from node apps. A pattern would tell tools every other value is refused.
    parameters = _bundled()["components"]["parameters"]
    for name in ("HopLimit", "OriginNode", "OriginApp", "Route"):
        assert "pattern" not in parameters[name]["schema"], name
    assert "needs forwarding" in parameters["HopLimit"]["description"]
    assert "node app" in parameters["OriginNode"]["description"]


def test_a_subscription_request_names_a_well_formed_resource_code() -> None:
    assert not schemas.is_valid(
        "subscription-request", {"resource_code": "abc", "purpose": "x" * 10}
    )
    assert schemas.is_valid(
        "subscription-request", {"resource_code": "101001/330001", "purpose": "x" * 10}
    )
