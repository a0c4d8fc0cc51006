"""The reference data is reproducible, valid per GB 11643 / GB 32100 / GB/T 2260 and ATS §4."""

from __future__ import annotations

import base64
import binascii
import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import FormatChecker

from conformance import codes, schemas
from conformance.data import data_dir

FIXTURES = data_dir("fixtures")
GENERATOR = FIXTURES / "generate.py"
VOCABULARY = yaml.safe_load((data_dir("profiles") / "vocabulary.yaml").read_text("utf-8"))
CHINA = timezone(timedelta(hours=8))
LEVELS = ("national", "department", "provincial", "municipal")
SUBTREE = {
    "national": LEVELS,
    "department": ("department",),
    "provincial": ("provincial", "municipal"),
    "municipal": ("municipal",),
}
PARENT = {"national": None, "department": "100000", "provincial": "100000", "municipal": "330000"}
PERSON_SEMANTICS = ("NAME", "ID_NUMBER", "PHONE", "ADDRESS")
PHONE = re.compile(r"1(3[0-9]|5[0-35-9]|8[0-9])[0-9]{8}", re.ASCII)
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
FORMATS = FormatChecker()


def _load(relative: str) -> Any:
    return json.loads((FIXTURES / relative).read_text(encoding="utf-8"))


CITIZENS: list[dict[str, Any]] = _load("people/citizens.json")
LEGAL_PERSONS: list[dict[str, Any]] = _load("people/legal_persons.json")
LICENCES: list[dict[str, Any]] = _load("licences.json")
INDEX: dict[str, str] = _load("catalogs/index.json")
CATALOGS: dict[str, dict[str, Any]] = {
    level: _load(f"catalogs/{node_id}.json") for level, node_id in INDEX.items()
}


def _entries() -> Iterator[tuple[str, dict[str, Any]]]:
    for level, catalog in CATALOGS.items():
        for entry in catalog["entries"]:
            yield level, entry


ENTRIES = list(_entries())
ENTRY_IDS = [f"{level}:{entry['resource_code']}" for level, entry in ENTRIES]


def _queryable(entry: Mapping[str, Any]) -> bool:
    return entry["share"]["type"] != "NOT_SHARED" and entry["share"]["method"] == "API"


def _local_day(timestamp: str) -> date:
    return datetime.fromisoformat(timestamp).astimezone(CHINA).date()


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fixtures")
    subprocess.run(
        [sys.executable, str(GENERATOR), "--out", str(out)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out


def test_regenerating_rewrites_the_committed_files_byte_for_byte(regenerated: Path) -> None:
    written = sorted(p.relative_to(regenerated) for p in regenerated.rglob("*") if p.is_file())
    expected = {
        Path("people/citizens.json"),
        Path("people/legal_persons.json"),
        Path("licences.json"),
        Path("catalogs/index.json"),
        *(Path(f"catalogs/{node_id}.json") for node_id in INDEX.values()),
    }
    assert set(written) == expected
    differing = [
        str(relative)
        for relative in written
        if (regenerated / relative).read_bytes() != (FIXTURES / relative).read_bytes()
    ]
    assert not differing, f"run fixtures/generate.py and commit: {differing}"


def test_catalog_folder_holds_only_generated_files() -> None:
    names = {p.name for p in (FIXTURES / "catalogs").iterdir()}
    assert names == {"index.json", *(f"{node_id}.json" for node_id in INDEX.values())}


# --- people -----------------------------------------------------------------------------------


def test_citizen_id_numbers_pass_gb_11643_and_agree_with_the_record() -> None:
    assert len(CITIZENS) >= 300
    for citizen in CITIZENS:
        id_number = citizen["id_number"]
        assert codes.id_number_problem(id_number) is None, citizen
        assert id_number[:6] == citizen["division_code"]
        assert id_number[6:14] == citizen["birth_date"].replace("-", "")
        # GB 11643: the 17th digit is odd for men, even for women.
        assert citizen["gender"] == ("M" if int(id_number[16]) % 2 else "F")
        assert date(1940, 1, 1) <= date.fromisoformat(citizen["birth_date"]) <= date(2008, 12, 31)
    assert len({c["id_number"] for c in CITIZENS}) == len(CITIZENS)


def test_citizens_live_in_real_divisions_mostly_in_zhejiang() -> None:
    divisions = Counter(c["division_code"] for c in CITIZENS)
    for code in divisions:
        assert codes.division_problem(code) is None
        assert code in codes.DIVISION_NAMES, code
    zhejiang = sum(n for code, n in divisions.items() if code.startswith("33"))
    assert zhejiang > len(CITIZENS) * 0.7
    assert len({code[:2] for code in divisions}) >= 5
    assert sum(n for code, n in divisions.items() if code.startswith("3301")) >= 100


def test_citizen_names_phones_and_addresses_are_well_formed() -> None:
    for citizen in CITIZENS:
        assert 2 <= len(citizen["name"]) <= 4
        assert PHONE.fullmatch(citizen["phone"]), citizen["phone"]
        assert len(citizen["address"]) >= 10
        assert codes.DIVISION_NAMES[citizen["division_code"]] in citizen["address"]
    assert len({c["phone"] for c in CITIZENS}) == len(CITIZENS)


def test_legal_persons_carry_valid_market_regulation_credit_codes() -> None:
    assert len(LEGAL_PERSONS) >= 120
    types: Counter[str] = Counter()
    for entity in LEGAL_PERSONS:
        uscc = entity["uscc"]
        assert codes.uscc_problem(uscc) is None, entity
        assert codes.org_code_problem(uscc[8:17]) is None
        # GB 32100: registration authority 9 (market regulation), types 1, 2, 3.
        assert uscc[0] == "9"
        assert uscc[1] in "123"
        assert uscc[2:8] == entity["division_code"]
        assert entity["division_code"].startswith("33")
        date.fromisoformat(entity["established_on"])
        assert isinstance(entity["registered_capital"], int | float)
        assert entity["name"]
        assert entity["legal_representative"]
        types[uscc[1]] += 1
    assert set(types) == {"1", "2", "3"}
    assert len({e["uscc"] for e in LEGAL_PERSONS}) == len(LEGAL_PERSONS)
    assert len({e["name"] for e in LEGAL_PERSONS}) == len(LEGAL_PERSONS)


def test_licences_belong_to_known_holders_and_run_forward() -> None:
    assert len(LICENCES) >= 200
    holders = {e["uscc"]: e for e in LEGAL_PERSONS}
    for licence in LICENCES:
        holder = holders[licence["holder_uscc"]]
        assert licence["holder_name"] == holder["name"]
        assert licence["division_code"] == holder["division_code"]
        issued = date.fromisoformat(licence["issued_on"])
        assert date.fromisoformat(holder["established_on"]) <= issued
        assert issued < date.fromisoformat(licence["valid_until"])
        assert licence["issuing_authority"]
    assert len({lic["licence_number"] for lic in LICENCES}) == len(LICENCES)
    assert len({lic["licence_type"] for lic in LICENCES}) >= 5


# --- catalogs: nodes --------------------------------------------------------------------------


def test_index_names_one_well_formed_node_per_level() -> None:
    assert tuple(INDEX) == LEVELS
    assert INDEX["national"] == "100000"
    assert INDEX["provincial"] == "330000"
    assert INDEX["municipal"] == "330100"
    for level, node_id in INDEX.items():
        assert codes.node_id_problem(node_id, level, PARENT[level]) is None
        assert CATALOGS[level]["node_id"] == node_id
    department = INDEX["department"]
    # GB 32100: a State Council organ, registered by 机构编制 (1) as 机关 (1), division 100000.
    assert department[:8] == "11100000"


def test_catalog_files_have_exactly_the_agreed_members() -> None:
    for catalog in CATALOGS.values():
        assert set(catalog) == {"node_id", "roles", "entries", "records"}
        assert set(catalog["roles"]) == {"unconditional", "conditional", "not_shared", "population"}
        assert 10 <= len(catalog["entries"]) <= 30


# --- catalogs: entries ------------------------------------------------------------------------


@pytest.mark.parametrize(("level", "entry"), ENTRIES, ids=ENTRY_IDS)
def test_entry_validates_against_the_catalog_entry_schema(
    level: str, entry: dict[str, Any]
) -> None:
    assert schemas.validation_errors("catalog-entry", entry) == []


@pytest.mark.parametrize(("level", "entry"), ENTRIES, ids=ENTRY_IDS)
def test_entry_satisfies_the_cross_field_rules_of_ats_4(level: str, entry: dict[str, Any]) -> None:
    code = entry["resource_code"]
    classification = entry["classification"]
    # ATS-CAT-02: code structure agrees with the classification type; path depth with its length.
    assert codes.resource_code_problem(code, classification["type"]) is None
    depth = {6: 3, 9: 4}[len(code.split("/")[0])]
    assert len(classification["path"]) == depth
    assert all(isinstance(name, str) and name for name in classification["path"])
    provider = entry["provider"]["code"]
    assert codes.uscc_problem(provider) is None or codes.division_problem(provider) is None
    assert entry["name"]
    assert len(entry["name"]) <= 100
    assert entry["summary"]
    assert entry["node_id"] == INDEX[level]
    assert DATE.fullmatch(entry["published_at"])
    assert FORMATS.conforms(entry["updated_at"], "date-time")
    assert entry["updated_at"].endswith(("Z", "+08:00"))
    assert _local_day(entry["updated_at"]) >= date.fromisoformat(entry["published_at"])
    assert date.fromisoformat(entry["published_at"]) <= date(2025, 6, 30)
    share = entry["share"]
    assert isinstance(share["condition"], str)
    if share["type"] != "UNCONDITIONAL":
        assert share["condition"]
    if share["type"] == "NOT_SHARED":
        assert entry["open"]["open"] is False


@pytest.mark.parametrize(("level", "entry"), ENTRIES, ids=ENTRY_IDS)
def test_entry_items_are_declared_consistently(level: str, entry: dict[str, Any]) -> None:
    items = entry["items"]
    names = [item["name"] for item in items]
    assert len(names) == len(set(names))
    if entry["format"]["kind"] in ("DATABASE", "SELF_DESCRIBING"):
        assert items
    about_persons = any(item.get("semantic") == "ID_NUMBER" for item in items)
    for item in items:
        if item["data_type"] == "C":
            assert isinstance(item["length"], int)
            assert item["length"] > 0
        assert ("mask" in item) == bool(item.get("sensitive", False))
        # ATS-PRIV-01: in a resource about natural persons, personal items are masked.
        if about_persons and item.get("semantic") in PERSON_SEMANTICS:
            assert item.get("sensitive") is True, item
            assert item["mask"] == item["semantic"]


def test_resource_codes_are_unique_across_all_catalogs() -> None:
    all_codes = [entry["resource_code"] for _, entry in ENTRIES]
    duplicates = [code for code, n in Counter(all_codes).items() if n > 1]
    assert not duplicates


def test_each_node_numbers_its_entries_in_its_own_sequence_block() -> None:
    for level, entry in ENTRIES:
        sequence = entry["resource_code"].split("/")[1]
        block = {"national": "10", "department": "00", "provincial": "33", "municipal": "33"}
        assert sequence.startswith(block[level])
    provincial = {e["resource_code"].split("/")[1][:4] for e in CATALOGS["provincial"]["entries"]}
    municipal = {e["resource_code"].split("/")[1][:4] for e in CATALOGS["municipal"]["entries"]}
    assert provincial == {"3300"}
    assert municipal == {"3301"}


def test_related_codes_resolve_in_the_holding_nodes_subtree() -> None:
    # ATS-CAT-05: GET …/{code} at the node finds any entry of its subtree catalog.
    for level, entry in ENTRIES:
        subtree = {e["resource_code"] for lv in SUBTREE[level] for e in CATALOGS[lv]["entries"]}
        assert set(entry["related_codes"]) <= subtree, entry["resource_code"]
        assert entry["resource_code"] not in entry["related_codes"]
    assert any(entry["related_codes"] for _, entry in ENTRIES)


def _vocabulary(name: str) -> set[str]:
    return set(VOCABULARY[name])


def test_catalogs_cover_every_enumeration_of_ats_4() -> None:
    entries = [entry for _, entry in ENTRIES]
    items = [item for entry in entries for item in entry["items"]]
    seen = {
        "share_types": {e["share"]["type"] for e in entries},
        "share_methods": {e["share"]["method"] for e in entries},
        "format_kinds": {e["format"]["kind"] for e in entries},
        "update_cycles": {e["update_cycle"] for e in entries},
        "classification_types": {e["classification"]["type"] for e in entries},
        "data_types": {item["data_type"] for item in items},
        "semantics": {item["semantic"] for item in items if "semantic" in item},
        "masks": {item["mask"] for item in items if "mask" in item},
    }
    for name, values in seen.items():
        assert values == _vocabulary(name), name
    lengths = {len(e["resource_code"].split("/")[0]) for e in entries}
    assert lengths == {6, 9}
    assert {e["open"]["open"] for e in entries} == {True, False}
    assert any(e["updated_at"].endswith("Z") for e in entries)
    assert any(e["updated_at"].endswith("+08:00") for e in entries)
    # ATS §4 compares dates in +08:00: an update at 02:30 local time on the day of publication,
    # written in UTC, carries the previous date and is valid.
    assert any(e["updated_at"][:10] < e["published_at"] for e in entries)


@pytest.mark.parametrize("level", LEVELS)
def test_every_node_holds_every_share_type_format_kind_and_update_cycle(level: str) -> None:
    # Issue 3: a catalog for each node covering every share type, format kind and update cycle,
    # so that whichever node is certified, its catalog exercises all of ATS §4's enumerations.
    entries = CATALOGS[level]["entries"]
    seen = {
        "share_types": {e["share"]["type"] for e in entries},
        "format_kinds": {e["format"]["kind"] for e in entries},
        "update_cycles": {e["update_cycle"] for e in entries},
    }
    for name, values in seen.items():
        assert _vocabulary(name) - values == set(), f"{INDEX[level]} lacks {name}"


# --- catalogs: records ------------------------------------------------------------------------


def _value_problem(value: Any, item: Mapping[str, Any]) -> str | None:
    if value is None:
        return None
    shape = VOCABULARY["data_types"][item["data_type"]]["json"]
    if shape == "string":
        if not isinstance(value, str):
            return "not a string"
        if "length" in item and len(value) > item["length"]:
            return f"{len(value)} characters, over length {item['length']}"
    elif shape == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "not a number"
    elif shape == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            return "not an integer"
    elif shape == "boolean":
        if not isinstance(value, bool):
            return "not a boolean"
    elif shape == "date":
        if not (isinstance(value, str) and DATE.fullmatch(value)):
            return "not a date"
        date.fromisoformat(value)
    elif shape == "date-time":
        if not (isinstance(value, str) and FORMATS.conforms(value, "date-time")):
            return "not an RFC 3339 timestamp"
    elif shape == "base64":
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, TypeError):
            return "not base64"
    else:
        return f"unknown shape {shape}"
    semantic = item.get("semantic")
    if semantic == "ID_NUMBER":
        return codes.id_number_problem(value)
    if semantic == "USCC":
        return codes.uscc_problem(value)
    if semantic == "DIVISION_CODE":
        return codes.division_problem(value)
    return None


@pytest.mark.parametrize(("level", "entry"), ENTRIES, ids=ENTRY_IDS)
def test_records_hold_exactly_the_declared_items_with_values_of_their_type(
    level: str, entry: dict[str, Any]
) -> None:
    records = CATALOGS[level]["records"]
    code = entry["resource_code"]
    if not _queryable(entry):
        assert code not in records
        return
    # ATS-CAT-06: a shared DATABASE / SELF_DESCRIBING resource over API can be queried.
    assert code in records
    if entry["format"]["kind"] in ("DATABASE", "SELF_DESCRIBING"):
        assert records[code]
    items = {item["name"]: item for item in entry["items"]}
    for record in records[code]:
        assert list(record) == list(items)
        for name, value in record.items():
            problem = _value_problem(value, items[name])
            assert problem is None, f"{code} {name}={value!r}: {problem}"


def test_records_name_only_entries_of_their_own_node() -> None:
    for catalog in CATALOGS.values():
        own = {entry["resource_code"] for entry in catalog["entries"]}
        assert set(catalog["records"]) <= own


def _entry(level: str, code: str) -> dict[str, Any]:
    (entry,) = [e for e in CATALOGS[level]["entries"] if e["resource_code"] == code]
    return entry


@pytest.mark.parametrize("level", LEVELS)
def test_roles_point_at_entries_of_the_right_share_type(level: str) -> None:
    catalog = CATALOGS[level]
    roles = catalog["roles"]
    unconditional = _entry(level, roles["unconditional"])
    assert unconditional["share"]["type"] == "UNCONDITIONAL"
    assert unconditional["share"]["method"] == "API"
    assert catalog["records"][roles["unconditional"]]
    conditional = _entry(level, roles["conditional"])
    assert conditional["share"]["type"] == "CONDITIONAL"
    assert conditional["share"]["method"] == "API"
    assert conditional["share"]["condition"]
    assert catalog["records"][roles["conditional"]]
    not_shared = _entry(level, roles["not_shared"])
    assert not_shared["share"]["type"] == "NOT_SHARED"
    assert not_shared["share"]["condition"]


@pytest.mark.parametrize("level", LEVELS)
def test_population_role_is_a_masked_queryable_base_resource_about_persons(level: str) -> None:
    catalog = CATALOGS[level]
    code = catalog["roles"]["population"]
    entry = _entry(level, code)
    assert entry["share"]["type"] == "UNCONDITIONAL"
    assert entry["share"]["method"] == "API"
    assert entry["format"]["kind"] == "DATABASE"
    assert entry["classification"]["type"] == "BASE"
    by_semantic = {item.get("semantic"): item for item in entry["items"]}
    for semantic in PERSON_SEMANTICS:
        assert by_semantic[semantic]["sensitive"] is True
        assert by_semantic[semantic]["mask"] == semantic
    assert {"gender", "birth_date", "division_code"} <= {item["name"] for item in entry["items"]}
    records = catalog["records"][code]
    assert len(records) >= 50
    # ATS-SHR-03 needs filters with multi-record answers.
    pairs = Counter((r["gender"], r["division_code"]) for r in records)
    assert sum(1 for n in pairs.values() if n >= 2) >= 3


def test_municipal_records_are_about_hangzhou() -> None:
    catalog = CATALOGS["municipal"]
    for code in (catalog["roles"]["population"], catalog["roles"]["unconditional"]):
        divisions = {record["division_code"] for record in catalog["records"][code]}
        assert divisions
        assert all(division.startswith("3301") for division in divisions)
