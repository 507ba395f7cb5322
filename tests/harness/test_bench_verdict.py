"""`harness bench server` exits 1 when a goal it prints is missed, and its client-bound
footnote appears only when a row carries the mark."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

from harness import bench_cli
from harness.criteria import Verdict
from harness.runner import RunOutcome


def _goal(label: str, ratio: float, goal: float, bound: bool = False) -> Verdict:
    expression = f"ratio(throughput_mib_s, reference/azurite) >= {goal}"
    sides = {"reference": 100.0 * ratio, "azurite": 100.0}
    return Verdict(
        label, expression, label, "rest-bench", "reference/azurite", ratio, ratio >= goal, "",
        client_bound=bound, sides=sides,
    )  # fmt: skip


def _invoke(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, verdicts: list[Verdict]
) -> tuple[int, str]:
    code = 0 if all(v.passed for v in verdicts) else 1  # what the runner decides
    outcome = RunOutcome(tmp_path, pd.DataFrame(), verdicts, code)
    monkeypatch.setattr(bench_cli, "run_scenario", lambda scenario, out, source: outcome)
    result = CliRunner(env={"COLUMNS": "200"}).invoke(bench_cli.bench, ["server"])
    return result.exit_code, result.output


def test_a_missed_goal_exits_1_and_names_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    code, output = _invoke(
        monkeypatch,
        tmp_path,
        [_goal("Put Block throughput", 3.4, 3.0), _goal("Get Blob throughput", 1.5, 3.0)],
    )
    assert code == 1
    assert "1 of 2 goal(s) missed: Get Blob throughput 1.50× (goal ≥ 3.0×)" in output
    assert "client-bound" not in output  # no row is client-bound: no footnote


def test_all_goals_met_exits_0_and_a_bound_row_gets_its_footnote(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    code, output = _invoke(
        monkeypatch, tmp_path, [_goal("Put Block throughput", 3.4, 3.0, bound=True)]
    )
    assert code == 0, output
    assert "* client-bound: a benchmark client process was above 90% CPU" in output
    assert "missed" not in output


def _captured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str]) -> Any:
    seen: dict[str, Any] = {}

    def run(scenario: Any, out: Path | None, source: dict[str, Any]) -> RunOutcome:
        seen["scenario"], seen["out"] = scenario, out
        return RunOutcome(tmp_path, pd.DataFrame(), [], 0)

    monkeypatch.setattr(bench_cli, "run_scenario", run)
    result = CliRunner().invoke(bench_cli.bench, args)
    assert result.exit_code == 0, result.output
    return seen["scenario"]


def test_server_flags_become_overrides_of_the_shipped_scenario(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    args = ["server", "--size", "4MiB", "--block-size", "1MiB", "--client-procs", "3"]
    args += ["--burst", "7", "--small-ops", "9", "--repeats", "2", "--workers", "1"]
    args += ["--facade-arg=--loop=asyncio", "--profile", "--set", "steps.put-small.warmup=1"]
    sc = _captured(monkeypatch, tmp_path, args)
    steps = {s.name: s for s in sc.steps}
    assert sc.name == "bench-server" and sc.interleave and not sc.keep_data
    for name in ("put-block", "get-blob"):
        assert steps[name].options["size"] == 4 << 20
        assert steps[name].options["block_size"] == 1 << 20
        assert steps[name].options["procs"] == 3
    assert steps["put-block-burst"].options["count"] == 7
    assert steps["put-small"].options["count"] == steps["get-small"].options["count"] == 9
    assert all(s.repeats == 2 for s in sc.steps) and steps["put-small"].warmup == 1
    assert sc.target.workers == 1
    assert sc.target.options == {"args": ["--loop=asyncio"], "profile": True}


def test_s2s_flags_become_overrides_of_the_shipped_scenario(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    args = ["s2s", "--files", "2", "--file-size", "8MiB", "--small-files", "5"]
    args += ["--concurrency", "4", "--workers", "2", "--repeats", "1"]
    sc = _captured(monkeypatch, tmp_path, args)
    (dataset,) = sc.datasets
    assert [(g.count, g.size) for g in dataset.files] == [(2, 8 << 20), (5, 256 << 10)]
    steps = {s.name: s for s in sc.steps}
    assert [steps[s].concurrency for s in ("s2s", "relay-down", "relay-up")] == [4, 4, 4]
    assert sc.target.workers == sc.targets["lake"].workers == 2
    assert [c.expect for c in sc.criteria][-1] == "ratio(duration_s, relay-down+relay-up/s2s) > 1"
