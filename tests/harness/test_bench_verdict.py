"""`harness bench server` exits 1 when a goal it prints is missed, and its client-bound
footnote appears only when a row carries the mark."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from harness.bench import cli as bench_cli
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
