"""The load stage's parts without a node: profiles, caps, safety, statistics and judgements."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from loadnode import ROLES, assess, context, short_profile, write_files
from support.nodes import free_port

from conformance.checks import RunState
from conformance.cli import build_parser
from conformance.cli import main as cli_main
from conformance.load import (
    LoadProfileError,
    LoadRunError,
    RemoteWorkers,
    load_load_profile,
    load_refusal,
    make_phase,
    run_plan,
)
from conformance.load.plan import CEILINGS, LoadPlan
from conformance.load.runner import PhaseRecords, master_command, worker_command
from conformance.load.slo import judge_latency, judge_saturation, judge_server_errors, saturation
from conformance.load.stats import percentile, phase_stats
from conformance.options import RunOptions
from conformance.profile import get_clause
from conformance.run_plan import PlanError, build_plan
from conformance.target import load_target

PROFILE = load_load_profile()


def _phase(rate: float = 50, window: float = 4):
    return make_phase(
        "share-query",
        PROFILE.scenarios["share-query"],
        prefix="",
        resources=ROLES,
        rate_per_s=rate,
        warmup_s=1,
        window_s=window,
        workers=1,
        generator=PROFILE.generator,
        caps=PROFILE.caps,
    )


def _records(rate: float, window: float, latency_ms: float, status: int = 200, code=None):
    count = int(rate * window)
    return PhaseRecords(
        "share-query",
        count,
        tuple((k / rate, latency_ms, 0.1, 0.0, status, code) for k in range(count)),
    )


def test_the_default_load_profile_is_valid() -> None:
    assert set(PROFILE.scenarios) == {"share-query", "catalog-page"}
    assert PROFILE.caps.max_rate_per_s == 2000
    assert PROFILE.stepped["smoke"].factors[0] == 1


def test_a_bad_load_profile_names_file_and_place(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    text = (Path(PROFILE.source)).read_text("utf-8").replace("max_workers: 32", "max_workers: 0")
    bad.write_text(text, "utf-8")
    with pytest.raises(LoadProfileError, match=r"bad\.yaml: caps\.max_workers: 0 is less than"):
        load_load_profile(str(bad))


def test_a_plan_over_the_rate_cap_is_refused() -> None:
    plan = LoadPlan("http://127.0.0.1:1", "load", "HMAC-SM3", 5.0, 1, (_phase(rate=5000),))
    with pytest.raises(LoadProfileError, match="exceeds the cap of 2000 req/s"):
        plan.check_caps(PROFILE.caps)


def test_the_share_query_target_is_the_unconditional_resource() -> None:
    phase = _phase()
    assert phase.target == f"/api/v1/share/{ROLES['unconditional']}/query"
    assert phase.body == "{}"
    assert phase.max_in_flight == 250  # 50 req/s × 5 s client timeout: an open model


def test_no_secret_is_on_a_locust_command_line(tmp_path: Path) -> None:
    _, target_file = write_files(tmp_path)
    target = load_target(target_file)
    plan = LoadPlan("http://127.0.0.1:1", "load", "HMAC-SM3", 5.0, 2, (_phase(),))
    commands = master_command(plan, tmp_path / "out.json", bind_host="127.0.0.1", bind_port=1,
                              run_time_s=10) + worker_command("127.0.0.1", 1)  # fmt: skip
    assert not any(s in " ".join(commands) for s in target.secrets())
    assert "--master-bind-host" in commands
    assert commands[commands.index("--master-bind-host") + 1] == "127.0.0.1"


def test_load_to_a_remote_node_needs_the_operators_statement(tmp_path: Path) -> None:
    _, target_file = write_files(tmp_path)
    target = load_target(target_file)
    remote = replace(target, node=replace(target.node, base_url="https://node.example.gov.cn"))
    assert load_refusal(target) is None
    reason = load_refusal(remote)
    assert reason is not None
    assert "operator_owns_target: true" in reason
    assert load_refusal(replace(remote, operator_owns_target=True)) is None
    run = RunState()
    verdict, why = assess(context(remote, "ATS-PERF-01", run, short_profile()))
    assert verdict == "ERROR"
    assert "not a loopback address" in why


def test_the_target_file_states_the_operator_owns_the_node(tmp_path: Path) -> None:
    _, target_file = write_files(tmp_path)
    text = target_file.read_text("utf-8") + "load:\n  operator_owns_target: true\n"
    target_file.write_text(text, "utf-8")
    assert load_target(target_file).operator_owns_target is True


def test_load_off_skips_every_perf_clause(tmp_path: Path) -> None:
    _, target_file = write_files(tmp_path)
    target = load_target(target_file)
    for clause_id in ("ATS-PERF-01", "ATS-PERF-02", "ATS-PERF-03", "ATS-PERF-04"):
        ctx = context(target, clause_id, RunState(), short_profile(), mode="off")
        assert assess(ctx) == ("SKIP", "load stage off (--load off)")


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.95) == 95
    assert percentile(values, 0.99) == 99
    assert percentile(values, 0.50) == 50
    assert percentile([], 0.5) is None


def test_a_steady_fast_phase_passes_perf_01() -> None:
    stats = phase_stats(_phase(), _records(50, 4, 12.0))
    assert stats.rate_per_s == 50
    assert stats.p95_ms == 12.0
    assert len(stats.timeline) == 4
    assert stats.timeline[0]["rate"] == 50
    params = get_clause("ATS-PERF-01").params
    assert judge_latency(stats, params, max_generator_lag_ms=100).verdict == "PASS"


def test_a_slow_phase_fails_perf_01_on_p95() -> None:
    stats = phase_stats(_phase(), _records(50, 4, 700.0))
    judgement = judge_latency(stats, get_clause("ATS-PERF-01").params, max_generator_lag_ms=100)
    assert judgement.verdict == "FAIL"
    assert "p95 700 ms > 500 ms" in judgement.reason


def test_5xx_answers_fail_perf_03_and_are_counted_by_code() -> None:
    stats = phase_stats(_phase(), _records(50, 4, 5.0, 503, "UNAVAILABLE"))
    assert stats.failures_by_status == {"503": 200}
    assert stats.failures_by_code == {"UNAVAILABLE": 200}
    judgement = judge_server_errors([stats], 0)
    assert judgement.verdict == "FAIL"
    assert "200× 503" in judgement.reason


def test_a_lagging_generator_makes_the_measurement_inconclusive() -> None:
    lagging = PhaseRecords(
        "share-query", 200, tuple((k / 50, 300.0, 250.0, 0.0, 200, None) for k in range(200))
    )
    stats = phase_stats(_phase(), lagging)
    judgement = judge_latency(stats, get_clause("ATS-PERF-01").params, max_generator_lag_ms=100)
    assert judgement.verdict == "ERROR"
    assert "load generator" in judgement.reason


def test_the_saturation_point_is_the_last_step_held() -> None:
    params = get_clause("ATS-PERF-04").params
    steps = [
        phase_stats(_phase(rate), _records(rate, 4, latency))
        for rate, latency in ((50, 10.0), (100, 20.0), (150, 900.0))
    ]
    found = saturation(steps, params)
    assert found.rate_per_s == 100
    assert not found.capped
    assert judge_saturation(found, params, max_generator_lag_ms=100).verdict == "PASS"
    below = saturation(steps[:1] + steps[2:], params)
    judgement = judge_saturation(below, params, max_generator_lag_ms=100)
    assert judgement.verdict == "FAIL"
    assert "below 100 req/s" in judgement.reason


def test_a_profile_cannot_raise_its_caps_above_the_codes_ceilings(tmp_path: Path) -> None:
    bold = tmp_path / "bold.yaml"
    text = (
        Path(PROFILE.source)
        .read_text("utf-8")
        .replace("max_rate_per_s: 2000", "max_rate_per_s: 1000000")
    )
    bold.write_text(text, "utf-8")
    with pytest.raises(LoadProfileError, match=r"caps\.max_rate_per_s: 1e\+06 exceeds the code"):
        load_load_profile(str(bold))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rate_per_s": CEILINGS.max_rate_per_s + 1}, "exceeds the cap of 10000 req/s"),
        ({"window_s": CEILINGS.max_phase_s + 1}, "exceeds the cap of 3600 s"),
        ({"max_in_flight": CEILINGS.max_in_flight_per_worker + 1}, "in flight exceed the cap"),
    ],
)
def test_raised_caps_in_code_still_meet_the_ceilings(change: dict, message: str) -> None:
    # ATS §12 safety: caps built in code (a benchmark's override) cannot lift the ceilings.
    limitless = replace(PROFILE.caps, max_rate_per_s=1e9, max_phase_s=1e9, max_stage_s=1e9,
                        max_in_flight_per_worker=10**9)  # fmt: skip
    plan = LoadPlan(
        "http://127.0.0.1:1", "load", "HMAC-SM3", 5.0, 1, (replace(_phase(), **change),)
    )
    with pytest.raises(LoadProfileError, match=message):
        plan.check_caps(limitless)


def test_more_workers_than_the_ceiling_are_refused() -> None:
    plan = LoadPlan("http://127.0.0.1:1", "load", "HMAC-SM3", 5.0, CEILINGS.max_workers + 1,
                    (_phase(),))  # fmt: skip
    with pytest.raises(LoadProfileError, match="workers exceed the cap of 64"):
        plan.check_caps(replace(PROFILE.caps, max_workers=10**6))


@pytest.mark.parametrize(
    ("host", "target", "message"),
    [
        ("https://node.example.gov.cn", "/api/v1/health", "not a loopback address"),
        ("http://127.0.0.1:1/gateway", "/api/v1/health", r"not an http\(s\) origin"),
        ("ftp://127.0.0.1:1", "/api/v1/health", r"not an http\(s\) origin"),
        ("http://127.0.0.1:1", "//node.example.gov.cn/api/v1/health", "is not a path on"),
        ("http://127.0.0.1:1", "https://node.example.gov.cn/api/v1/x", "is not a path on"),
    ],
)
def test_the_runner_refuses_a_plan_off_the_targets_origin(host, target, message) -> None:
    # Checked by run_plan itself before any process starts, whatever built the plan.
    plan = LoadPlan(host, "load", "HMAC-SM3", 5.0, 1, (replace(_phase(), target=target),))
    with pytest.raises(LoadRunError, match=message):
        run_plan(plan, "not-a-secret")


def test_a_remote_host_is_allowed_only_with_the_operators_statement() -> None:
    plan = LoadPlan("https://node.example.gov.cn", "load", "HMAC-SM3", 5.0, 1, (_phase(),))
    with pytest.raises(LoadProfileError, match="operator_owns_target"):
        plan.check_safety()
    replace(plan, operator_owns_target=True).check_safety()


def test_a_plan_survives_its_json_form() -> None:
    plan = LoadPlan("http://127.0.0.1:1", "load", "HMAC-SM3", 5.0, 2, (_phase(),), None, True)
    assert LoadPlan.from_json(plan.to_json()) == plan


@pytest.mark.timeout(60)
def test_a_worker_refuses_a_plan_over_the_ceiling_whoever_sent_it(tmp_path: Path) -> None:
    # A bare locust master (as an operator may start one) hands a plan over the code's rate
    # ceiling to a worker: the worker sends nothing and reports why. Its host is a closed
    # loopback port, so nothing could be reached even if it did send.
    port = free_port()
    phase = replace(_phase(), rate_per_s=CEILINGS.max_rate_per_s * 2, window_s=1)
    plan = LoadPlan(f"http://127.0.0.1:{port}", "load", "HMAC-SM3", 1.0, 1, (phase,))
    out = tmp_path / "results.json"
    master_port = free_port()
    master = master_command(plan, out, bind_host="127.0.0.1", bind_port=master_port,
                            run_time_s=30, worker_wait_s=20)  # fmt: skip
    env = {**os.environ, "ATS_LOAD_SECRET": "not-a-secret"}
    processes = [
        subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for command in (master, worker_command("127.0.0.1", master_port))
    ]
    try:
        processes[0].wait(timeout=45)
    finally:
        for process in processes:
            process.kill()
            process.wait(timeout=10)
    document = json.loads(out.read_text("utf-8"))
    (report,) = document["workers"]
    assert "refused the plan" in report["error"]
    assert "exceeds the cap of 10000 req/s" in report["error"]
    assert report["phases"] == []


def test_remote_workers_are_read_from_m_at_host_port() -> None:
    assert RemoteWorkers.parse("2@0.0.0.0:5557") == RemoteWorkers(2, "0.0.0.0", 5557)
    assert RemoteWorkers.parse("3@[::]:5557") == RemoteWorkers(3, "::", 5557)
    assert RemoteWorkers.parse(RemoteWorkers(4, "10.0.0.5", 1).spec()).count == 4
    for bad in ("2", "0@127.0.0.1:5557", "2@127.0.0.1", "2@:5557", "2@h:70000"):
        with pytest.raises(ValueError, match="is not"):
            RemoteWorkers.parse(bad)


def test_a_bad_remote_spec_is_a_plan_error(tmp_path: Path) -> None:
    _, target_file = write_files(tmp_path)
    options = RunOptions(target=str(target_file), only=("PERF",), load="smoke")
    plan = build_plan(replace(options, load_remote="2@127.0.0.1:5557"))
    assert plan.load_remote == RemoteWorkers(2, "127.0.0.1", 5557)
    with pytest.raises(PlanError, match="--ats-load-remote: 'nowhere' is not HOST:PORT"):
        build_plan(replace(options, load_remote="2@nowhere"))


def test_conformance_load_hands_the_remote_workers_to_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = build_parser().parse_args(
        ["load", "--target", "t.yaml", "--remote-workers", "2", "--master-bind", "0.0.0.0:5557"]
    )
    assert (args.remote_workers, args.master_bind) == (2, "0.0.0.0:5557")
    runs: list[RunOptions] = []
    monkeypatch.setattr("conformance.runner.run", lambda options: runs.append(options) or 0)
    args.handler(args)
    assert [o.load_remote for o in runs] == ["2@0.0.0.0:5557"]


def test_remote_workers_need_the_master_address(capsys: pytest.CaptureFixture[str]) -> None:
    status = cli_main(["load", "--target", "t.yaml", "--remote-workers", "2"])
    assert status == 2
    assert "--remote-workers and --master-bind go together" in capsys.readouterr().err


def test_a_load_worker_needs_the_load_apps_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ATS_LOAD_SECRET", raising=False)
    assert cli_main(["load-worker", "--master", "127.0.0.1:5557"]) == 2
    assert "give --target FILE or set ATS_LOAD_SECRET" in capsys.readouterr().err
