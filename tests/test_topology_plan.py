"""The plan format, the node files and target file it gives, the readiness protocol and the stop
(``conformance.topology``)."""

from __future__ import annotations

import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.neighbours import start_neighbours
from conformance.target import load_target
from conformance.topology import (
    LaunchError,
    Plan,
    Spawned,
    await_ready,
    free_ports,
    load_plan,
    new_secret,
    node_files,
    parse_plan,
    plan_ports,
    start_node,
    stop_processes,
    target_document,
    write_file,
)


def _plan_document() -> dict[str, Any]:
    return yaml.safe_load(Path(load_plan("embedded").source).read_text("utf-8"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("candidate"), "plan.yaml: candidate: missing"),
        (lambda d: d.update(candidate="999999"), "candidate: 999999 is not a node of the plan"),
        (
            lambda d: d.update(candidate="100000"),
            "candidate: 100000 is an emulated slot; the candidate must run",
        ),
        (lambda d: d["nodes"][1].update(parent="440000"), "nodes[1].parent: 440000 is not a node"),
        (lambda d: d["nodes"][2].update(node_id="330000"), "nodes[1].node_id: 330000 appears"),
        (lambda d: d["nodes"][0].update(level="planet"), "nodes[0].level: 'planet' is not one"),
        (lambda d: d["nodes"][1].pop("name"), "nodes[1].name: missing"),
        (lambda d: d["nodes"][1].update(port_offset="1"), "nodes[1].port_offset: not a int"),
        (lambda d: d.update(rate_limit_per_app=True), "rate_limit_per_app: not a int: True"),
        (lambda d: d["apps"].update(admin={"app_id": "admin"}), "apps.admin: needs app_id and"),
        (lambda d: d.update(nodes={}), "nodes: not a list"),
    ],
)
def test_a_bad_plan_is_one_line_naming_the_place(change: Any, message: str) -> None:
    document = _plan_document()
    change(document)
    with pytest.raises(LaunchError) as raised:
        parse_plan(document, "plan.yaml")
    text = str(raised.value)
    assert "\n" not in text
    assert text.startswith("plan.yaml: ")
    assert message in text


def test_an_unreadable_plan_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("nodes: [\n", encoding="utf-8")
    with pytest.raises(LaunchError, match=r"broken\.yaml: unreadable plan: ") as raised:
        load_plan(path)
    assert "\n" not in str(raised.value)


def test_the_packaged_plans_load_and_mark_their_emulated_slots() -> None:
    embedded, served = load_plan("embedded"), load_plan("topology")
    assert embedded.candidate == served.candidate == "330000"
    assert [n.node_id for n in embedded.started] == ["330000"]
    assert {n.node_id for n in embedded.nodes if n.emulated} == {"100000", "330100"}
    assert [n.node_id for n in served.nodes if n.emulated] == ["330200"]
    assert len(served.started) == 4


def test_an_emulated_slot_has_no_node_file_and_its_wiring_is_one_sided() -> None:
    plan = load_plan("embedded")
    ports = plan_ports(plan)
    files = node_files(plan, "127.0.0.1", ports)
    assert list(files) == ["330000"]
    node = files["330000"]["node"]
    assert node["parent"]["url"] == f"http://127.0.0.1:{ports['100000']}"
    assert [c["url"] for c in node["children"]] == [f"http://127.0.0.1:{ports['330100']}"]
    bound = {a["bound_node"] for a in files["330000"]["apps"] if a["role"] == "node"}
    assert bound == {"100000", "330100"}


def test_a_real_pair_is_wired_both_ways_with_one_secret_each_way() -> None:
    plan = load_plan("topology")
    files = node_files(plan, "127.0.0.1", plan_ports(plan, base_port=20000))
    up = files["330100"]["node"]["parent"]
    at_parent = next(a for a in files["330000"]["apps"] if a["app_id"] == "node-330100")
    assert up["secret"] == at_parent["secret"]
    down = next(c for c in files["330000"]["node"]["children"] if c["node_id"] == "330100")
    at_child = next(a for a in files["330100"]["apps"] if a["app_id"] == "node-330000")
    assert down["secret"] == at_child["secret"]
    assert files["330000"]["node"]["listen"] == "127.0.0.1:20001"


def test_the_target_file_of_the_embedded_plan_names_both_emulated_neighbours(
    tmp_path: Path,
) -> None:
    plan = load_plan("embedded")
    files = node_files(plan, "127.0.0.1", plan_ports(plan))
    path = write_file(tmp_path / "target.yaml", target_document(plan, files))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    target = load_target(path)
    assert target.lab
    assert target.node.node_id == "330000"
    assert target.node.base_url == f"http://{files['330000']['node']['listen']}"
    assert set(target.apps) == {"consumer", "consumer_b", "admin", "load"}
    assert target.resources["population"] == "101001/330001"
    assert target.neighbours is not None
    assert not target.neighbours.live
    assert target.neighbours.parent is not None
    assert target.neighbours.child is not None
    assert target.neighbours.parent.node_id == "100000"
    assert target.neighbours.child.node_id == "330100"
    # The emulated parent signs with the app the node registered for it.
    at_node = next(a for a in files["330000"]["apps"] if a["app_id"] == "node-100000")
    assert target.neighbours.parent.at_candidate.secret == at_node["secret"]


def test_the_target_file_of_a_live_plan_names_the_emulated_slot_apart(tmp_path: Path) -> None:
    plan = load_plan("topology")
    files = node_files(plan, "127.0.0.1", plan_ports(plan))
    target = load_target(write_file(tmp_path / "target.yaml", target_document(plan, files)))
    assert target.neighbours is not None
    assert target.neighbours.live
    assert target.neighbours.child is not None
    assert target.neighbours.child.node_id == "330100"
    emulated = target.neighbours.emulated_child
    assert emulated is not None
    assert emulated.node_id == "330200"


def test_omitted_neighbours_leave_a_target_file_without_neighbours(tmp_path: Path) -> None:
    plan = load_plan("embedded")
    files = node_files(plan, "127.0.0.1", plan_ports(plan))
    document = target_document(plan, files, omit=("100000", "330100"))
    assert "neighbours" not in document
    assert load_target(write_file(tmp_path / "target.yaml", document)).neighbours is None


def test_free_ports_are_distinct_and_secrets_fit_ats_0() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5
    secret = new_secret()
    assert 32 <= len(secret) <= 128
    assert set(secret) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
    assert new_secret() != secret


def _spawned(tmp_path: Path, code: str) -> Spawned:
    config = tmp_path / "node.yaml"
    config.write_text("", encoding="utf-8")
    log = config.with_suffix(".log")
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-c", code], stdout=sink, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    return Spawned(config, log, process)


def test_a_silent_node_is_a_timeout_naming_its_file_and_is_stopped(tmp_path: Path) -> None:
    spawned = _spawned(tmp_path, "import time; time.sleep(60)")
    started = time.monotonic()
    with pytest.raises(LaunchError) as raised:
        await_ready(spawned, timeout_s=0.5)
    assert str(raised.value) == f"{spawned.config_path}: the node was not ready within 0.5 s"
    assert time.monotonic() - started < 10
    assert spawned.process.poll() is not None


def test_a_node_that_ends_at_start_is_named_with_its_last_line(tmp_path: Path) -> None:
    code = "import sys; print('starting'); print('node.yaml: node.level: bad'); sys.exit(2)"
    spawned = _spawned(tmp_path, code)
    with pytest.raises(LaunchError) as raised:
        await_ready(spawned, timeout_s=20)
    assert str(raised.value) == (
        f"{spawned.config_path}: the node did not start: node.yaml: node.level: bad"
    )


def test_the_ready_line_gives_the_node_and_its_url(tmp_path: Path) -> None:
    spawned = _spawned(tmp_path, "print('ready 330000 http://127.0.0.1:9', flush=True)")
    node = await_ready(spawned, timeout_s=20)
    assert (node.node_id, node.url) == ("330000", "http://127.0.0.1:9")
    node.stop()


def test_stop_kills_a_process_that_ignores_sigterm(tmp_path: Path, monkeypatch: Any) -> None:
    import conformance.topology as topology

    monkeypatch.setattr(topology, "STOP_GRACE_S", 0.5)
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('up', flush=True); time.sleep(60)"
    )
    spawned = _spawned(tmp_path, code)
    deadline = time.monotonic() + 20
    while "up" not in spawned.log_path.read_text("utf-8") and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    stop_processes([spawned.process])
    assert spawned.process.returncode == -9
    assert time.monotonic() - started < 5


def test_the_embedded_plan_runs_a_node_the_target_file_certifies(tmp_path: Path) -> None:
    plan: Plan = load_plan("embedded")
    files = node_files(plan, "127.0.0.1", plan_ports(plan))
    node_file = write_file(tmp_path / "330000.yaml", files["330000"])
    target = load_target(write_file(tmp_path / "target.yaml", target_document(plan, files)))
    assert target.neighbours is not None
    neighbours = start_neighbours(target.neighbours)
    try:
        node = start_node(node_file)
        try:
            assert node.node_id == "330000"
            assert node.url == target.node.base_url
        finally:
            node.stop()
        assert node.process.returncode is not None
    finally:
        neighbours.stop()
