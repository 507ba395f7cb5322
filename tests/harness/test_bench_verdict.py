"""`harness bench server` exits 1 when a goal it prints is missed, and its client-bound
footnote appears only when a row carries the mark."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from harness.bench import cli as bench_cli
from harness.bench.run import BenchConfig, BenchRun


def _summary(label: str, ratio: float, goal: float, bound: bool = False) -> dict[str, Any]:
    return {
        "label": label,
        "step": label,
        "unit": "MiB/s",
        "reference": 100.0 * ratio,
        "baseline": "azurite",
        "baseline_value": 100.0,
        "ratio": ratio,
        "goal": goal,
        "met": ratio >= goal,
        "client_bound": bound,
    }


def _invoke(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, rows: list[dict[str, Any]]
) -> tuple[int, str]:
    run = BenchRun(tmp_path, BenchConfig(), [], rows, {}, [], [])
    monkeypatch.setattr(bench_cli, "run_bench", lambda cfg, report: run)
    result = CliRunner(env={"COLUMNS": "200"}).invoke(bench_cli.bench, ["server"])
    return result.exit_code, result.output


def test_a_missed_goal_exits_1_and_names_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    code, output = _invoke(
        monkeypatch,
        tmp_path,
        [_summary("Put Block throughput", 3.4, 3.0), _summary("Get Blob throughput", 1.5, 3.0)],
    )
    assert code == 1
    assert "1 of 2 goal(s) missed: Get Blob throughput 1.50× (goal ≥ 3.0×)" in output
    assert "client-bound" not in output  # no row is client-bound: no footnote


def test_all_goals_met_exits_0_and_a_bound_row_gets_its_footnote(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    code, output = _invoke(
        monkeypatch, tmp_path, [_summary("Put Block throughput", 3.4, 3.0, bound=True)]
    )
    assert code == 0, output
    assert "* client-bound: a benchmark client process was above 90% CPU" in output
    assert "missed" not in output
