"""The SEC and AUD checks against real reference nodes: clean nodes pass, and the cases only a
purpose-built node shows fail (a foreign CA, a misnamed certificate, a wrong rate limiter). That
each fault of chapters 9 and 11 fails exactly its clauses is the fault matrix's part
(tests/test_fault_matrix.py, bench "security").
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from ratestub import bad_limiter
from secenv import SEC_AUD, Env, Pki, start_env
from support.nodes import free_port

from conformance.checks.security import LAB_SKIP, _densest, _holds_data
from conformance.client import NodeClient
from conformance.profile import get_clause

# The order of a run: the plugin runs the clauses marked run_last (ATS-AUD-03) after the others.
RUN_ORDER = sorted(SEC_AUD, key=lambda c: bool(get_clause(c).params.get("run_last")))


def _assess_in_a_run(env: Env, clause_id: str) -> tuple[str, str, list[dict[str, object]]]:
    # ATS-AUD-03 re-reads the events the run read before it: xdist may give this worker's node
    # none of the other clauses, so the audit check it follows in a run goes first.
    if clause_id == "ATS-AUD-03" and not env.run.audit_events:
        assert env.assess("ATS-AUD-01")[0] == "PASS"
    return env.assess(clause_id)


def _secrets_absent(env: Env, evidence: list[dict[str, object]], reason: str) -> None:
    text = json.dumps(evidence, ensure_ascii=False) + reason
    for secret in env.target.secrets():
        assert secret not in text


@pytest.mark.timeout(120)
@pytest.mark.parametrize("clause_id", SEC_AUD)
def test_clean_https_node_passes(https_env: Env, clause_id: str) -> None:
    verdict, reason, evidence = _assess_in_a_run(https_env, clause_id)
    assert (verdict, reason) == ("PASS", reason)
    _secrets_absent(https_env, evidence, reason)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("clause_id", SEC_AUD)
def test_lab_run_skips_transport_security_only(lab_env: Env, clause_id: str) -> None:
    verdict, reason, evidence = _assess_in_a_run(lab_env, clause_id)
    if clause_id in ("ATS-SEC-01", "ATS-SEC-06"):
        assert (verdict, reason) == ("SKIP", LAB_SKIP)
    else:
        assert verdict == "PASS", reason
    if clause_id == "ATS-SEC-02":
        assert {"note": LAB_SKIP} in evidence


@pytest.fixture
def plain_env(tmp_path: Path) -> Iterator[Env]:
    env = start_env(tmp_path, None, lab=False)
    yield env
    env.stop()


@pytest.mark.timeout(60)
def test_plain_http_without_lab_fails_sec01(plain_env: Env) -> None:
    # ATS §11: a plain-HTTP target fails SEC-01 unless a lab run is declared.
    verdict, reason, _ = plain_env.assess("ATS-SEC-01")
    assert verdict == "FAIL"
    assert "the target is not HTTPS" in reason
    assert "--lab or `lab: true`" in reason


@pytest.mark.timeout(60)
def test_plain_http_without_lab_judges_sec02_without_its_hsts_part(plain_env: Env) -> None:
    # "Over HTTPS responses carry HSTS": the part is not applicable to a plain-HTTP target; the
    # headers every response carries are still judged (issue 15, item 4).
    verdict, reason, evidence = plain_env.assess("ATS-SEC-02")
    assert verdict == "PASS", reason
    assert any("HSTS part concerns HTTPS answers" in str(e.get("note")) for e in evidence)


@pytest.mark.timeout(60)
def test_plain_http_without_lab_skips_sec06(plain_env: Env) -> None:
    # ATS-SEC-06 concerns "a node certified over HTTPS": not applicable, never FAIL, on a
    # plain-HTTP target, even one that never answers; SEC-01 carries the finding.
    port = free_port()
    node = dataclasses.replace(plain_env.target.node, base_url=f"http://127.0.0.1:{port}")
    dead = dataclasses.replace(plain_env.target, node=node)
    for env in (plain_env, Env(plain_env.node, dead, plain_env.neighbours, NodeClient(dead))):
        try:
            verdict, reason, evidence = env.assess("ATS-SEC-06")
        finally:
            if env is not plain_env:
                env.client.close()
        assert verdict == "SKIP"
        assert "certified over HTTPS" in reason
        assert evidence == []


@pytest.mark.parametrize(
    ("body", "data"),
    [
        (
            {
                "code": "NOT_FOUND",
                "message": "no",
                "request_id": "r-1234567",
                "node_id": "330000",
                "level": "provincial",
                "resource_code": "101001/330001",
                "summary": "x",
            },
            False,
        ),
        ({"code": "FORBIDDEN", "message": "no", "request_id": "r-1234567", "items": []}, False),
        ({"items": [{"resource_code": "101001/330001"}]}, True),
        ({"node_id": "330000", "level": "provincial", "name": "n"}, True),
        ({"error": "forbidden"}, False),
    ],
)
def test_an_error_body_with_extra_members_is_not_data(body: dict[str, object], data: bool) -> None:
    # ATS-API-03 bodies hold "at least" code, message and request_id: extra members are allowed.
    assert _holds_data(body) is data


@pytest.fixture
def foreign_ca_env(tmp_path: Path, pki: Pki) -> Iterator[Env]:
    env = start_env(tmp_path, pki, ca_bundle=pki.other_ca)
    yield env
    env.stop()


@pytest.mark.timeout(60)
def test_certificate_of_another_ca_fails(foreign_ca_env: Env) -> None:
    verdict, reason, _ = foreign_ca_env.assess("ATS-SEC-01")
    assert verdict == "FAIL"
    assert "certificate not valid" in reason


@pytest.fixture
def limited_env(request: pytest.FixtureRequest, tmp_path: Path, pki: Pki) -> Iterator[Env]:
    limit, faults = request.param
    env = start_env(tmp_path, pki, faults, rate_limit=limit)
    yield env
    env.stop()


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("limited_env", "expected"),
    [((200, ()), "PASS"), ((200, ("no-rate-limit",)), "FAIL")],
    ids=["200", "200, no-rate-limit"],
    indirect=["limited_env"],
)
def test_a_rate_limit_is_assessed_both_ways(limited_env: Env, expected: str) -> None:
    # ATS-SEC-03: the burst of 2 × 200 is pipelined, so it leaves the tester within one second;
    # the verdict is judged by when the node answered (issue 15). 200, not more: a node sharing
    # two cores with the whole test suite still answers 400 requests within a second, so the
    # clause is assessed both ways rather than "not assessed".
    verdict, reason, evidence = limited_env.assess("ATS-SEC-03")
    assert verdict == expected, reason
    burst = next(str(e["note"]) for e in evidence if str(e.get("note", "")).startswith("burst:"))
    sent_in = float(burst.split(" sent in ")[1].split(" s")[0])
    assert sent_in < 1.0, burst


@pytest.mark.timeout(60)
@pytest.mark.parametrize("limited_env", [(1001, ())], ids=["1001"], indirect=True)
def test_rate_limit_above_the_burst_cap_is_not_assessed(limited_env: Env) -> None:
    # A limit the tester cannot burst is no defect of the node: not assessed, with what would
    # assess it (issue 15), never ERROR.
    verdict, reason, evidence = limited_env.assess("ATS-SEC-03")
    assert (verdict, limited_env.skip_causes["ATS-SEC-03"]) == ("SKIP", "not_assessed")
    assert "exceeds what the tester bursts (2000 within 1 s" in reason
    assert "assess it with a load generator that sends 2002 signed requests" in reason
    assert len(evidence) == 1  # the node descriptor only: no burst was sent


@pytest.mark.parametrize(
    ("moments", "window", "densest"),
    [
        ([0.0, 0.1, 0.2, 1.5, 1.6], 1.0, 3),
        ([0.0, 0.5, 1.0, 1.4, 1.9, 2.0], 1.0, 4),
        ([0.0, 2.0, 4.0], 1.0, 1),
        ([], 1.0, 0),
    ],
)
def test_a_burst_is_judged_by_when_the_node_answered(
    moments: list[float], window: float, densest: int
) -> None:
    # ATS-SEC-03 counts authenticated requests in a sliding window: the most answers within
    # any window, not the moment the pipelined requests left the tester.
    assert _densest(moments, window) == densest


def test_append_only_clause_runs_last() -> None:
    # ATS-AUD-03 re-reads "events read earlier": the plugin runs it after every other clause.
    assert get_clause("ATS-AUD-03").params["run_last"] is True


@pytest.mark.timeout(180)
def test_append_only_rereads_the_events_read_earlier_in_the_run(plain_env: Env) -> None:
    verdict, reason, _ = plain_env.assess("ATS-AUD-03")
    assert (verdict, "the audit trail is empty" in reason) == ("ERROR", True), reason
    for clause_id in ("ATS-AUD-01", "ATS-AUD-02", "ATS-SEC-05"):
        assert plain_env.assess(clause_id)[0] == "PASS"
    earlier = len(plain_env.run.audit_events)
    assert earlier > 0
    verdict, reason, evidence = plain_env.assess("ATS-AUD-03")
    assert verdict == "PASS", reason
    assert any(f"{earlier} events read by earlier checks" in str(e.get("note")) for e in evidence)


@pytest.mark.timeout(60)
def test_routed_query_without_a_parent_is_not_assessed(plain_env: Env) -> None:
    # ATS-AUD-04 applies to every node; without a parent neighbour this run cannot assess it.
    alone = dataclasses.replace(plain_env.target, neighbours=None)
    env = Env(plain_env.node, alone, None, NodeClient(alone))
    try:
        verdict, reason, _ = env.assess("ATS-AUD-04")
    finally:
        env.client.close()
    assert (verdict, env.skip_causes) == ("SKIP", {"ATS-AUD-04": "not_assessed"})
    assert "names no parent neighbour (neighbours.parent" in reason


@pytest.fixture
def misnamed_env(tmp_path: Path, pki: Pki) -> Iterator[Env]:
    served = dataclasses.replace(pki, cert=pki.misnamed_cert, key=pki.misnamed_key)
    env = start_env(tmp_path, served)
    yield env
    env.stop()


@pytest.mark.timeout(60)
def test_certificate_for_another_host_name_fails(misnamed_env: Env) -> None:
    # ATS-SEC-01: chained to the target's CA bundle, but not valid for 127.0.0.1.
    verdict, reason, _ = misnamed_env.assess("ATS-SEC-01")
    assert verdict == "FAIL"
    assert "certificate not valid" in reason
    assert "IP address mismatch" in reason


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("mode", "expected"),
    [("strict", "a steady 10 requests per second"), ("stuck", "after Retry-After")],
    ids=["too-strict", "never-resumes"],
)
def test_wrong_rate_limiter_fails(tmp_path: Path, mode: str, expected: str) -> None:
    # ATS-SEC-03: half the limit never draws 429; after Retry-After the app is served again.
    with bad_limiter(tmp_path, mode) as target:
        env = Env(None, target, None, NodeClient(target))  # type: ignore[arg-type]
        try:
            verdict, reason, _ = env.assess("ATS-SEC-03")
        finally:
            env.client.close()
    assert verdict == "FAIL", reason
    assert expected in reason
