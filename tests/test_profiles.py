"""ATS-1.0 is encoded completely and correctly as data, and broken profiles say what is wrong."""

from __future__ import annotations

import json
import os
import re
import unicodedata
from dataclasses import replace
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from conformance.cli import main
from conformance.data import data_dir
from conformance.profile import (
    Clause,
    ProfileError,
    chapters,
    clause_ids,
    get_clause,
    load_clauses,
    load_profile,
    load_vocabulary,
    profile_names,
)

# The contract: every clause id of ATS-1.0, in the standard's order, none invented, none missing.
ATS_1_0_CLAUSE_IDS = (
    *(f"ATS-API-{n:02}" for n in range(1, 10)),
    *(f"ATS-NODE-{n:02}" for n in range(1, 6)),
    *(f"ATS-AUTH-{n:02}" for n in range(1, 9)),
    *(f"ATS-CAT-{n:02}" for n in range(1, 7)),
    *(f"ATS-SHR-{n:02}" for n in range(1, 8)),
    *(f"ATS-SUB-{n:02}" for n in range(1, 6)),
    *(f"ATS-PRIV-{n:02}" for n in range(1, 5)),
    *(f"ATS-CAS-{n:02}" for n in range(1, 12)),
    *(f"ATS-AUD-{n:02}" for n in range(1, 6)),
    *(f"ATS-STAT-{n:02}" for n in range(1, 3)),
    *(f"ATS-SEC-{n:02}" for n in range(1, 7)),
    *(f"ATS-PERF-{n:02}" for n in range(1, 5)),
)
SHOULD_CLAUSES = {"ATS-AUTH-07", "ATS-NODE-05", "ATS-CAT-05", "ATS-CAS-11", "ATS-PERF-04"}
# In ATS-1.0 only national and provincial nodes have children: these clauses need children.
PARENT_ONLY = {"ATS-CAS-02", "ATS-CAS-03", "ATS-CAS-04", "ATS-CAS-10", "ATS-CAS-11"}
LEVELS = ("department", "provincial", "municipal")

# Thresholds the standard states exactly; the data carries them unchanged.
STANDARD_PARAMS = [
    ("ATS-API-06", "max_body_bytes", 1048576),
    ("ATS-API-08", "default_page", 1),
    ("ATS-API-08", "default_size", 20),
    ("ATS-API-08", "min_size", 1),
    ("ATS-API-08", "max_size", 100),
    ("ATS-NODE-05", "max_skew_s", 5),
    ("ATS-AUTH-04", "reject_beyond_s", 300),
    ("ATS-AUTH-04", "accept_within_s", 270),
    ("ATS-AUTH-05", "replay_window_s", 600),
    ("ATS-CAS-01", "push_within_s", 10),
    ("ATS-CAS-06", "default_hop_limit", 7),
    ("ATS-CAS-06", "max_hop_limit", 8),
    ("ATS-CAS-08", "cascade_timeout_s", 10),
    ("ATS-CAS-08", "answer_within_s", 12),
    ("ATS-CAS-10", "within_s", 60),
    ("ATS-CAS-11", "within_s", 5),
    ("ATS-AUD-01", "recorded_within_s", 5),
    ("ATS-SEC-02", "hsts_min_max_age", 31536000),
    ("ATS-SEC-03", "burst_factor", 2),
    ("ATS-SEC-03", "steady_factor", 0.5),
    ("ATS-PERF-01", "p95_ms", 500),
    ("ATS-PERF-01", "p99_ms", 1500),
    ("ATS-PERF-01", "max_failure_ratio", 0.001),
    ("ATS-PERF-02", "rate_per_s", 20),
    ("ATS-PERF-02", "p95_ms", 800),
    ("ATS-PERF-02", "max_failure_ratio", 0.001),
    ("ATS-PERF-04", "min_factor", 2),
]
LEVEL_RATES = {"department": 50, "provincial": 50, "municipal": 20}


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


# --- the clause catalogue -----------------------------------------------------------------


def test_clause_ids_are_exactly_those_of_ats_1_0() -> None:
    assert len(ATS_1_0_CLAUSE_IDS) == 72
    assert clause_ids() == ATS_1_0_CLAUSE_IDS


def test_should_clauses_are_exactly_those_the_standard_marks() -> None:
    levels = {clause.id: clause.level for clause in load_clauses()}
    assert {cid for cid, level in levels.items() if level == "SHOULD"} == SHOULD_CLAUSES
    assert {cid for cid, level in levels.items() if level != "SHOULD"} == (
        set(ATS_1_0_CLAUSE_IDS) - SHOULD_CLAUSES
    )
    assert set(levels.values()) == {"MUST", "SHOULD"}


def test_clauses_needing_children_apply_to_provincial_nodes_only() -> None:
    for clause in load_clauses():
        expected = ("provincial",) if clause.id in PARENT_ONLY else LEVELS
        assert clause.applies_to == expected, clause.id


def test_chapter_of_a_clause_is_the_one_its_id_names() -> None:
    assert tuple(chapters()) == (
        "API", "NODE", "AUTH", "CAT", "SHR", "SUB", "PRIV", "CAS", "AUD", "STAT", "SEC", "PERF"
    )  # fmt: skip
    for clause in load_clauses():
        assert clause.id.split("-")[1] == clause.chapter


@pytest.mark.parametrize(("clause_id", "name", "value"), STANDARD_PARAMS)
def test_standard_thresholds_are_carried_exactly(clause_id: str, name: str, value: float) -> None:
    assert get_clause(clause_id).params[name] == value


def test_check_names_are_unique_snake_case_properties() -> None:
    names = [clause.check for clause in load_clauses()]
    assert len(set(names)) == len(names)
    for name in names:
        assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)+", name), name
        assert not re.match(r"(test|check|validate|verify)_", name), name


def test_titles_and_summaries_are_bilingual_and_state_what_holds() -> None:
    # Wording rule: English texts state the requirement as a fact; the level field alone says
    # how binding it is, so no text says "should", "must" or "test that".
    banned = re.compile(r"\b(should|must|test that|tests that|check that|verify that)\b", re.I)
    for clause in load_clauses():
        for text in (clause.title, clause.summary):
            assert text.zh.strip(), clause.id
            assert text.en.strip(), clause.id
            assert re.search(r"[\u4e00-\u9fff]", text.zh), f"{clause.id}: zh is not Chinese"
            assert not re.search(r"[\u4e00-\u9fff]", text.en), f"{clause.id}: en has Chinese"
            assert not banned.search(text.en), f"{clause.id}: {text.en}"
            assert not re.search("应该|应当|测试是否|检查是否", text.zh), clause.id
        assert clause.summary.en.endswith("."), clause.id
        assert clause.summary.zh.endswith("。"), clause.id
        assert not clause.title.en.endswith("."), clause.id
    titles = [clause.title.en for clause in load_clauses()]
    assert len(set(titles)) == len(titles)


def test_clauses_are_frozen_and_hashable() -> None:
    clause = get_clause("ATS-AUTH-05")
    with pytest.raises(AttributeError):
        clause.level = "MAY"  # type: ignore[misc]
    with pytest.raises(TypeError):
        clause.params["replay_window_s"] = 1  # type: ignore[index]
    assert {clause: 1}[get_clause("ATS-AUTH-05")] == 1


def test_unknown_clause_id_suggests_the_nearest() -> None:
    with pytest.raises(ProfileError, match="did you mean ATS-AUTH-05"):
        get_clause("ATS-AUTH-5")


# --- the profiles -------------------------------------------------------------------------


def test_packaged_profiles_are_one_per_certifiable_level() -> None:
    assert profile_names() == LEVELS


@pytest.mark.parametrize("name", LEVELS)
def test_profile_runs_every_applying_clause_and_skips_the_rest_with_a_reason(name: str) -> None:
    profile = load_profile(name)
    assert profile.name == name
    assert profile.node_level == name
    assert profile.source == f"profiles/{name}.yaml"
    running = {clause.id for clause in profile.clauses}
    assert running.isdisjoint(profile.not_applicable)
    assert running | set(profile.not_applicable) == set(ATS_1_0_CLAUSE_IDS)
    expected_skips = set() if name == "provincial" else PARENT_ONLY
    assert set(profile.not_applicable) == expected_skips
    for reason in profile.not_applicable.values():
        assert "/" in reason
        assert re.search(r"[\u4e00-\u9fff]", reason)
        assert "no children" in reason
    assert [clause.id for clause, _ in profile.plan()] == list(ATS_1_0_CLAUSE_IDS)
    assert tuple(c.id for c in profile.clauses) == tuple(
        cid for cid in ATS_1_0_CLAUSE_IDS if cid in running
    )


@pytest.mark.parametrize("name", LEVELS)
def test_profile_sets_the_level_target_rate(name: str) -> None:
    profile = load_profile(name)
    rate = LEVEL_RATES[name]
    assert profile.clause("ATS-PERF-01").params["rate_per_s"] == rate
    assert profile.clause("ATS-PERF-04").params["target_rate_per_s"] == rate
    # tuning one parameter keeps the others
    assert profile.clause("ATS-PERF-01").params["p95_ms"] == 500


def test_not_applicable_clause_cannot_be_fetched_from_the_profile() -> None:
    with pytest.raises(ProfileError, match="not applicable in this profile"):
        load_profile("municipal").clause("ATS-CAS-04")


def test_packaged_profiles_are_cached() -> None:
    assert load_profile("provincial") is load_profile("provincial")


def test_unknown_profile_name_lists_the_valid_names() -> None:
    with pytest.raises(ProfileError) as caught:
        load_profile("provincal")
    message = str(caught.value)
    assert "did you mean provincial?" in message
    assert "department, provincial, municipal" in message


def test_missing_profile_file_is_named() -> None:
    with pytest.raises(ProfileError, match=r"nowhere\.yaml: cannot read the file"):
        load_profile("nowhere.yaml")


def _write(tmp_path: Path, text: str, name: str = "site.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


MUNICIPAL_NOT_APPLICABLE = "\n".join(
    f"  {cid}: 地市节点没有下级节点 / a municipal node has no children"
    for cid in sorted(PARENT_ONLY)
)


def _override(clause_id: str, params: str) -> str:
    """A provincial profile text overriding parameters of one clause."""
    head = "name: site\nnode_level: provincial\noverrides:\n"
    return f"{head}  {clause_id}:\n    params: {{{params}}}\n"


def test_deployment_tunes_thresholds_in_its_own_profile(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "name: city-lab\nnode_level: municipal\n"
        "overrides:\n  ATS-PERF-01:\n    params: {rate_per_s: 10, p95_ms: 300}\n"
        "  ATS-AUTH-05:\n    params: {replay_window_s: 900}\n"
        f"not_applicable:\n{MUNICIPAL_NOT_APPLICABLE}\n",
    )
    profile = load_profile(str(path))
    assert profile.name == "city-lab"
    assert profile.clause("ATS-PERF-01").params["rate_per_s"] == 10
    assert profile.clause("ATS-PERF-01").params["p95_ms"] == 300
    assert profile.clause("ATS-PERF-01").params["p99_ms"] == 1500
    assert profile.clause("ATS-AUTH-05").params["replay_window_s"] == 900
    # the standard's own values are untouched
    assert get_clause("ATS-AUTH-05").params["replay_window_s"] == 600
    assert load_profile(path) == profile


def test_profile_may_select_a_subset_and_skip_the_rest_with_reasons(tmp_path: Path) -> None:
    skipped = [cid for cid in ATS_1_0_CLAUSE_IDS if not cid.startswith("ATS-AUTH-")]
    reasons = "\n".join(f"  {cid}: 本次只测签名 / signatures only in this lab" for cid in skipped)
    auth = ", ".join(cid for cid in ATS_1_0_CLAUSE_IDS if cid.startswith("ATS-AUTH-"))
    path = _write(
        tmp_path,
        f"name: auth-only\nnode_level: provincial\nclauses: [{auth}]\nnot_applicable:\n{reasons}\n",
    )
    profile = load_profile(path)
    assert [c.check for c in profile.clauses][:2] == [
        "missing_or_malformed_signature_rejected",
        "tampered_request_rejected",
    ]
    assert len(profile.clauses) == 8
    assert len(profile.plan()) == 72


def test_edited_profile_file_is_read_again(tmp_path: Path) -> None:
    template = _override("ATS-NODE-05", "{max_skew_s: {}}")
    path = _write(tmp_path, template.format(5))
    assert load_profile(path).clause("ATS-NODE-05").params["max_skew_s"] == 5
    stamp = path.stat().st_mtime_ns
    path.write_text(template.format(2), encoding="utf-8")
    os.utime(path, ns=(stamp + 1_000_000, stamp + 1_000_000))
    assert load_profile(path).clause("ATS-NODE-05").params["max_skew_s"] == 2


BROKEN_PROFILES = [
    pytest.param(
        "name: site\n",
        "node_level",
        "missing; required fields: name, node_level",
        id="a missing field is named",
    ),
    pytest.param(
        _override("ATS-PERF-01", "rate_per_s: fast"),
        "overrides.ATS-PERF-01.params.rate_per_s",
        "must be a number, got 'fast'",
        id="a wrong type is named",
    ),
    pytest.param(
        "name: site\nnode_level: provincial\nnot_applicable:\n  ATS-AUTH-5: lab\n",
        "not_applicable.ATS-AUTH-5",
        "unknown clause id 'ATS-AUTH-5'; did you mean ATS-AUTH-05?",
        id="an unknown clause id suggests the nearest",
    ),
    pytest.param(
        _override("ATS-PREF-01", "p95_ms: 100"),
        "overrides.ATS-PREF-01",
        "did you mean ATS-PERF-01?",
        id="an unknown clause id in overrides suggests the nearest",
    ),
    pytest.param(
        _override("ATS-PERF-01", "p95_ms: -5"),
        "overrides.ATS-PERF-01.params.p95_ms",
        "must be a positive number, got -5",
        id="a negative threshold is refused",
    ),
    pytest.param(
        _override("ATS-PERF-01", "max_failure_ratio: 2"),
        "overrides.ATS-PERF-01.params.max_failure_ratio",
        "must be at most 1, got 2",
        id="a ratio above one is refused",
    ),
    pytest.param(
        "name: site\nnode_level: county\n",
        "node_level",
        "unknown value 'county'; valid: department, provincial, municipal",
        id="an unknown level lists the levels",
    ),
    pytest.param(
        "name: site\nnode_level: provincial\noverrides: {ATS-PERF-01: {params: {p95_ms: 1}\n",
        "line 4, column 1",
        "invalid YAML",
        id="bad YAML syntax gives line and column",
    ),
    pytest.param(
        "",
        "",
        "the file is empty",
        id="an empty file is refused",
    ),
    pytest.param(
        "- name: site\n",
        "(top level)",
        "must be a mapping, got a list",
        id="a list at the top level is refused",
    ),
    pytest.param(
        "name: site\nnode_level: provincial\nthresholds: {}\n",
        "thresholds",
        "unknown field 'thresholds'; valid: name, node_level, clauses, overrides, not_applicable",
        id="an unknown field lists the valid fields",
    ),
    pytest.param(
        _override("ATS-AUTH-05", "replay_window: 900"),
        "overrides.ATS-AUTH-05.params.replay_window",
        "unknown parameter 'replay_window'; did you mean replay_window_s?",
        id="an unknown parameter suggests the nearest",
    ),
    pytest.param(
        _override("ATS-API-04", "unserved_methods: TRACE"),
        "overrides.ATS-API-04.params.unserved_methods",
        "must be a list like the default, got 'TRACE'",
        id="a parameter keeps the kind of its default",
    ),
    pytest.param(
        _override("ATS-CAS-07", "within_s: 3"),
        "overrides.ATS-CAS-07.params.within_s",
        "ATS-CAS-07 takes no parameters",
        id="a clause without parameters takes none",
    ),
    pytest.param(
        "name: site\nnode_level: municipal\n",
        "not_applicable",
        "ATS-CAS-02 does not apply to municipal nodes; list it here with a reason",
        id="a clause not applying to the level needs a reason",
    ),
    pytest.param(
        "name: site\nnode_level: municipal\nclauses: [ATS-CAS-04]\n"
        f"not_applicable:\n{MUNICIPAL_NOT_APPLICABLE}\n",
        "clauses[0]",
        "ATS-CAS-04 is also listed under not_applicable",
        id="a clause cannot both run and be skipped",
    ),
    pytest.param(
        "name: site\nnode_level: municipal\nclauses: [ATS-CAS-04]\n",
        "clauses[0]",
        "ATS-CAS-04 does not apply to municipal nodes (only to provincial)",
        id="a clause not applying to the level cannot be selected",
    ),
    pytest.param(
        "name: site\nnode_level: provincial\nclauses: [ATS-API-01]\n",
        "clauses",
        "ATS-API-02 is neither selected nor listed under not_applicable with a reason",
        id="an unselected clause is not silently dropped",
    ),
    pytest.param(
        "name: site\nnode_level: provincial\nnot_applicable:\n  ATS-SEC-01: '  '\n",
        "not_applicable.ATS-SEC-01",
        "must not be empty",
        id="a blank reason is refused",
    ),
    pytest.param(
        f"name: site\nnode_level: municipal\nnot_applicable:\n{MUNICIPAL_NOT_APPLICABLE}\n"
        "overrides:\n  ATS-CAS-10:\n    params: {within_s: 30}\n",
        "overrides.ATS-CAS-10",
        "the clause does not run in this profile",
        id="a skipped clause takes no overrides",
    ),
]


@pytest.mark.parametrize(("text", "place", "problem"), BROKEN_PROFILES)
def test_broken_profile_names_file_place_and_problem(
    tmp_path: Path, text: str, place: str, problem: str
) -> None:
    path = _write(tmp_path, text, name="broken.yaml")
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(os.path.relpath(path) + ": ")
    assert caught.value.place == place
    assert problem in message


# --- schema and vocabulary ----------------------------------------------------------------


def test_profile_schema_is_valid_draft_2020_12() -> None:
    path = data_dir("profiles") / "schemas" / "profile.schema.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_vocabulary_is_read_only_and_complete() -> None:
    vocabulary = load_vocabulary()
    with pytest.raises(TypeError):
        vocabulary["error_codes"] = {}  # type: ignore[index]
    codes = vocabulary["error_codes"]
    assert {code: spec["status"] for code, spec in codes.items()} == {
        "INVALID_REQUEST": 400, "UNAUTHENTICATED": 401, "FORBIDDEN": 403,
        "SUBSCRIPTION_REQUIRED": 403, "NOT_FOUND": 404, "METHOD_NOT_ALLOWED": 405,
        "CONFLICT": 409, "PAYLOAD_TOO_LARGE": 413, "RATE_LIMITED": 429, "INTERNAL_ERROR": 500,
        "UPSTREAM_UNAVAILABLE": 502, "UNAVAILABLE": 503, "UPSTREAM_TIMEOUT": 504,
        "LOOP_DETECTED": 508,
    }  # fmt: skip
    assert tuple(vocabulary["data_types"]) == tuple("CNYDTLMGBIF")
    assert len(vocabulary["format_kinds"]) == 8
    assert len(vocabulary["update_cycles"]) == 8
    assert set(vocabulary["masks"]) <= set(vocabulary["semantics"])
    assert set(vocabulary["audit_actions"]) == {
        "QUERY", "SUBSCRIBE", "DECIDE", "REVOKE", "CATALOG_PUSH", "SYNC", "AUTH_FAILURE"
    }  # fmt: skip


def test_role_table_names_known_roles_and_only_health_is_open() -> None:
    vocabulary = load_vocabulary()
    roles = set(vocabulary["roles"])
    open_endpoints = []
    for endpoint in vocabulary["endpoints"]:
        assert set(endpoint["roles"]) <= roles
        if not endpoint["authenticated"]:
            open_endpoints.append((endpoint["method"], endpoint["path"]))
    assert open_endpoints == [("GET", "/api/v1/health")]
    table = {(e["method"], e["path"]): set(e["roles"]) for e in vocabulary["endpoints"]}
    assert table[("POST", "/api/v1/share/{resource_code}/query")] == {"consumer", "node"}
    assert table[("POST", "/api/v1/cascade/catalog")] == {"node"}
    assert table[("GET", "/api/v1/audit/events")] == {"provider-admin"}


def test_clause_parameters_match_the_vocabulary() -> None:
    vocabulary = load_vocabulary()
    assert set(get_clause("ATS-CAT-06").params["format_kinds"]) <= set(vocabulary["format_kinds"])
    assert set(get_clause("ATS-CAT-06").params["share_types"]) <= set(vocabulary["share_types"])
    personal = set(get_clause("ATS-PRIV-01").params["personal_semantics"])
    assert personal == set(vocabulary["masks"])


# --- the command line ---------------------------------------------------------------------


def test_profiles_list_shows_every_clause_aligned(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "ATS-1.0: 72 clauses in 12 chapters (67 MUST, 5 SHOULD)"
    rows = {line.split()[0]: line for line in lines[1:-1]}
    assert tuple(rows) == ATS_1_0_CLAUSE_IDS
    columns = set()
    for clause in load_clauses():
        row = rows[clause.id]
        assert clause.title.zh in row
        assert row.endswith(clause.title.en)
        columns.add(_width(row[: row.rindex(clause.title.en)]))
    # the English titles start at one terminal column, however wide the Chinese ones are
    assert len(columns) == 1


def test_profiles_list_of_a_profile_marks_skips(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "list", "--profile", "municipal"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[-1] == (
        "profile municipal (municipal, profiles/municipal.yaml): "
        "72 clauses, 67 run (63 MUST, 4 SHOULD), 5 not applicable"
    )
    skips = [line for line in lines if re.match(r"ATS-\S+ .* SKIP ", line)]
    assert sorted(line.split()[0] for line in skips) == sorted(PARENT_ONLY)
    assert "a municipal node has no children in ATS-1.0" in out


def test_profiles_show_prints_every_field(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "show", "ATS-AUTH-05"]) == 0
    out = capsys.readouterr().out
    clause: Clause = get_clause("ATS-AUTH-05")
    assert out.startswith("ATS-AUTH-05  MUST  AUTH 请求签名 / request signatures")
    flat = " ".join(out.split())
    for text in (clause.title.zh, clause.title.en, clause.summary.zh, clause.summary.en):
        assert " ".join(text.split()).replace(" ", "") in flat.replace(" ", "")
    assert "replayed_nonce_rejected" in out
    assert "replay_window_s: 600" in out
    assert "department, provincial, municipal" in out


def test_profiles_show_tells_tuned_and_skipped_profiles(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "show", "ATS-PERF-01"]) == 0
    assert "municipal: run (rate_per_s: 20)" in capsys.readouterr().out
    assert main(["profiles", "show", "ATS-CAS-04"]) == 0
    assert "municipal: SKIP" in capsys.readouterr().out


def test_profiles_show_unknown_clause_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "show", "ATS-AUTH-5"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert "did you mean ATS-AUTH-05?" in captured.err


def test_profiles_list_unknown_profile_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "list", "--profile", "county"]) == 2
    assert "valid: department, provincial, municipal" in capsys.readouterr().err


def test_the_profile_digest_follows_the_plan_not_the_file() -> None:
    provincial = load_profile("provincial")
    assert provincial.digest() == load_profile("provincial").digest()
    assert provincial.digest() != load_profile("municipal").digest()
    tuned = replace(
        provincial,
        clauses=tuple(
            replace(c, params={**c.params, "rate_per_s": 51}) if c.id == "ATS-PERF-01" else c
            for c in provincial.clauses
        ),
    )
    assert tuned.digest() != provincial.digest()
