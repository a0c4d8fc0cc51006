"""The target file: validation in one line, ${ENV} secrets, secrets never shown."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from conformance.cli import main
from conformance.data import data_dir
from conformance.target import TargetError, load_target

EXAMPLE_ENV = {
    name: f"{name.lower().replace('_', '-')}-0123456789abcdef0123456789"
    for name in (
        "ATS_CONSUMER_SECRET",
        "ATS_CONSUMER_B_SECRET",
        "ATS_ADMIN_SECRET",
        "ATS_LOAD_SECRET",
        "ATS_AS_PARENT_SECRET",
        "ATS_CANDIDATE_AT_PARENT_SECRET",
        "ATS_AS_CHILD_SECRET",
        "ATS_CANDIDATE_AT_CHILD_SECRET",
    )
}
EXAMPLE = data_dir("fixtures") / "target.example.yaml"


def test_example_target_file_loads_with_secrets_from_the_environment() -> None:
    target = load_target(EXAMPLE, EXAMPLE_ENV)
    assert target.node.level == "provincial"
    assert target.apps["admin"].secret == EXAMPLE_ENV["ATS_ADMIN_SECRET"]
    assert target.neighbours is not None
    assert target.neighbours.child is not None
    assert target.neighbours.child.at_candidate.app_id == "node-330100"
    assert target.credential("as_parent").secret == EXAMPLE_ENV["ATS_AS_PARENT_SECRET"]
    assert set(target.secrets()) == set(EXAMPLE_ENV.values())


def test_secrets_never_appear_in_repr_or_public_view() -> None:
    target = load_target(EXAMPLE, EXAMPLE_ENV)
    shown = repr(target) + str(target.public())
    assert not [s for s in EXAMPLE_ENV.values() if s in shown]


def test_a_missing_environment_variable_is_named() -> None:
    env = {k: v for k, v in EXAMPLE_ENV.items() if k != "ATS_ADMIN_SECRET"}
    with pytest.raises(
        TargetError, match=r"apps\.admin\.secret: \$\{ATS_ADMIN_SECRET\} is not set"
    ):
        load_target(EXAMPLE, env)


def _child(node_id: str, port: int) -> dict[str, object]:
    cred = {"app_id": f"node-{node_id}", "secret": "s" * 40}
    return {"listen": f"127.0.0.1:{port}", "node_id": node_id, "as_child": cred, "candidate": cred}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["node"].pop("base_url"), r"node\.base_url: is missing"),
        (lambda d: d["node"].update(level="county"), r"node\.level: must be one of"),
        (lambda d: d["node"].update(base_url="ftp://x"), r"node\.base_url: must be an http"),
        (
            lambda d: d.update(apps={**d["apps"], "admn": d["apps"]["admin"]}),
            "did you mean 'admin'",
        ),
        (lambda d: d["apps"].pop("consumer_b"), r"apps\.consumer_b: is missing"),
        (lambda d: d["resources"].pop("population"), r"resources\.population: is missing"),
        (lambda d: d.update(timeouts={"read_s": -1}), r"timeouts\.read_s: must be a number"),
        (
            lambda d: d.update(neighbours={"emulated_child": _child("330200", 9)}),
            r"neighbours\.emulated_child: is for live mode only",
        ),
        (
            lambda d: d.update(
                neighbours={
                    "live": True,
                    "child": _child("330100", 9),
                    "emulated_child": _child("330100", 10),
                }
            ),
            r"neighbours\.emulated_child\.node_id: is '330100', the real child's id",
        ),
        (
            lambda d: d.update(neighbours={"live": True, "emulated_child": {"node_id": "330200"}}),
            r"neighbours\.emulated_child\.listen: is missing",
        ),
    ],
    ids=[
        "a missing base URL is named",
        "an unknown level lists the valid ones",
        "a non-HTTP base URL is refused",
        "a misspelt app name gets a suggestion",
        "a missing required app is named",
        "a missing resource role is named",
        "a negative timeout is refused",
        "an emulated child outside live mode is refused",
        "an emulated child with the real child's id is refused",
        "an emulated child's missing member is named",
    ],
)
def test_a_broken_target_file_is_one_line_naming_the_place(
    write_target: Callable[..., Path], change: Callable[[dict], object], message: str
) -> None:
    path = write_target("http://127.0.0.1:9")
    document = yaml.safe_load(path.read_text())
    change(document)
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(TargetError, match=message) as info:
        load_target(path)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(str(path))


def test_a_malformed_secret_is_refused_without_showing_it(
    write_target: Callable[..., Path],
) -> None:
    path = write_target("http://127.0.0.1:9")
    document = yaml.safe_load(path.read_text())
    document["apps"]["admin"]["secret"] = "short secret!"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(TargetError, match=r"apps\.admin\.secret: must be 32") as info:
        load_target(path)
    assert "short secret" not in str(info.value)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ([], "cannot read the target file"),
        (["--profile", "no-such-profile"], "no-such-profile"),
        (["--only", "ATS-AUTH-99"], "--only ATS-AUTH-99"),
    ],
    ids=["an unreadable target file", "an unknown profile", "an unknown clause in --only"],
)
def test_run_exits_2_with_one_line(
    tmp_path: Path,
    write_target: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    fragment: str,
) -> None:
    target = tmp_path / "missing.yaml" if not extra else write_target("http://127.0.0.1:9")
    status = main(["run", "--target", str(target), "--report-dir", str(tmp_path / "r"), *extra])
    err = capsys.readouterr().err
    assert status == 2
    assert len(err.strip().splitlines()) == 1, err
    assert fragment in err


def test_run_with_a_missing_secret_variable_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in EXAMPLE_ENV:
        monkeypatch.delenv(name, raising=False)
    status = main(["run", "--target", str(EXAMPLE), "--report-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.strip().count("\n") == 0
    assert "ATS_CONSUMER_SECRET} is not set in the environment" in err


def test_an_emulated_child_is_emulated_in_live_mode_and_its_secrets_scrubbed(
    write_target: Callable[..., Path],
) -> None:
    path = write_target("http://127.0.0.1:9")
    document = yaml.safe_load(path.read_text())
    spare = _child("330200", 10)
    spare["candidate"] = {"app_id": "node-330000", "secret": "c" * 48}
    document["neighbours"] = {"live": True, "child": _child("330100", 9), "emulated_child": spare}
    path.write_text(yaml.safe_dump(document))
    neighbours = load_target(path).neighbours
    assert neighbours is not None
    assert neighbours.emulated_child is not None
    # Live mode: the real child is not emulated, the emulated child is, in the child's role.
    emulated = neighbours.emulated()
    assert (emulated.parent, emulated.child) == (None, neighbours.emulated_child)
    assert emulated.child.role == "child"
    assert emulated.child.listen == "127.0.0.1:10"
    assert {"s" * 40, "c" * 48} <= set(load_target(path).secrets())


def test_the_certification_request_block_is_optional_and_checked(
    tmp_path: Path,
) -> None:
    example = load_target(EXAMPLE, environ=EXAMPLE_ENV)
    assert example.request["operator"] == "浙江省大数据发展管理局"
    assert example.public()["request"]["version"] == "2.4.0"
    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    document["request"] = {"operator": "某局", "sponsor": "x"}
    path = tmp_path / "target.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    with pytest.raises(TargetError, match=r"request\.sponsor: unknown member"):
        load_target(path, environ=EXAMPLE_ENV)
    del document["request"]
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    assert "request" not in load_target(path, environ=EXAMPLE_ENV).public()
