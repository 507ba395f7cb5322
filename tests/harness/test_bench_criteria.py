"""Benchmarks as scenarios: ratio criteria, interleaved repeats, the rest-bench driver and the
nginx target, judged on real numbers from tiny runs through the one runner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness import criteria, scenario
from harness.runner import Runner, plan, read_results, step_rows


def _row(step: str, target: str, kpi: float, repeat: int = 0, **kw: Any) -> dict[str, Any]:
    return {
        "step": step,
        "driver": "rest-bench",
        "target": target,
        "repeat": repeat,
        "warmup": False,
        "ok": True,
        "error": None,
        "ops_s": kpi,
        "duration_s": kpi,
        "extra": {},
        **kw,
    }


class _Crit:
    def __init__(self, expect: str, step: str | None = None) -> None:
        self.expect, self.step, self.driver, self.target = expect, step, None, None

    @property
    def label(self) -> str:
        return self.expect


def test_ratio_parses_targets_steps_and_aggregates() -> None:
    e = criteria.parse("ratio(throughput_mib_s, reference/azurite) >= 3")
    assert (e.kpi, e.aggregate, e.numerator, e.denominator, e.op, e.value) == (
        "throughput_mib_s", "median", "reference", "azurite", ">=", 3.0,
    )  # fmt: skip
    e = criteria.parse("ratio(max(ops_s), reference/nginx) > 0.7")
    assert (e.aggregate, e.denominator, e.is_ratio) == ("max", "nginx", True)
    e = criteria.parse("ratio(duration_s, relay-down + relay-up / s2s) > 1")
    assert (e.numerator, e.denominator) == ("relay-down+relay-up", "s2s")
    assert not criteria.parse("max(failed) == 0").is_ratio
    with pytest.raises(ValueError, match="two different sides"):
        criteria.parse("ratio(ops_s, reference/reference) > 1")
    with pytest.raises(ValueError, match="unknown KPI 'speed'"):
        criteria.parse("ratio(speed, reference/azurite) > 1")
    with pytest.raises(ValueError, match="TARGET/TARGET"):
        criteria.parse("ratio(ops_s, reference) > 1")


def test_ratio_of_targets_is_the_medians_divided() -> None:
    rows = [
        _row("put", "reference", 300.0, 0),
        _row("put", "reference", 900.0, 1),
        _row("put", "reference", 600.0, 2),
        _row("put", "azurite", 100.0, 0),
        _row("put", "azurite", 250.0, 1, extra={"client_bound": True}),
        _row("put", "azurite", 200.0, 2),
    ]
    frame = pd.DataFrame(rows)
    (ok,) = criteria.evaluate([_Crit("ratio(ops_s, reference/azurite) >= 3")], frame)
    assert ok.passed and ok.observed == pytest.approx(3.0)  # 600 / 200
    assert (ok.step, ok.target) == ("put", "reference/azurite")
    assert ok.sides == {"reference": 600.0, "azurite": 200.0}
    assert ok.client_bound and "client-bound: azurite" in ok.evidence
    (low,) = criteria.evaluate([_Crit("ratio(min(ops_s), reference/azurite) >= 3")], frame)
    assert low.observed == pytest.approx(300.0 / 100.0) and low.passed  # min/min: 3.0 holds
    (high,) = criteria.evaluate([_Crit("ratio(ops_s, reference/azurite) >= 3.5")], frame)
    assert high.status == "FAIL" and high.observed == pytest.approx(3.0)


def test_ratio_errors_on_a_failed_execution_and_fails_without_its_anchor() -> None:
    frame = pd.DataFrame(
        [_row("put", "reference", 600.0), _row("put", "azurite", 0.0, ok=False, error="boom")]
    )
    (v,) = criteria.evaluate([_Crit("ratio(ops_s, reference/azurite) >= 3")], frame)
    assert v.status == "ERROR" and "boom" in v.evidence and v.target == "reference/azurite"
    only_ours = pd.DataFrame([_row("put", "reference", 600.0)])
    (v,) = criteria.evaluate([_Crit("ratio(ops_s, reference/azurite) >= 3")], only_ours)
    assert v.status == "FAIL" and v.observed is None and "azurite: ops_s not measured" in v.evidence
    (v,) = criteria.evaluate([_Crit("ratio(ops_s, reference/nginx) >= 1")], frame.iloc[0:0])
    assert v.status == "FAIL" and "no measured results" in v.evidence


def test_an_unscoped_ratio_judges_the_steps_that_ran_on_both_targets() -> None:
    frame = pd.DataFrame(
        [
            _row("seed", "reference", 50.0),
            _row("get", "reference", 300.0),
            _row("get", "nginx", 600.0),
        ]
    )
    (v,) = criteria.evaluate([_Crit("ratio(ops_s, reference/nginx) >= 0.7")], frame)
    assert (v.step, v.status, v.observed) == ("get", "FAIL", pytest.approx(0.5))
    # scoped to a step that ran on one of them only: that is a failure, named
    (v,) = criteria.evaluate([_Crit("ratio(ops_s, reference/nginx) >= 0.7", "seed")], frame)
    assert v.status == "FAIL" and "nginx: ops_s not measured" in v.evidence


def test_ratio_of_steps_adds_a_sides_steps_up_across_targets() -> None:
    frame = pd.DataFrame(
        [
            _row("s2s", "edge", 2.0),
            _row("down", "lake", 3.0),
            _row("up", "edge", 5.0),
        ]
    )
    (v,) = criteria.evaluate([_Crit("ratio(duration_s, down+up/s2s) > 1")], frame)
    assert v.passed and v.observed == pytest.approx(4.0)  # (3 + 5) / 2
    assert v.sides == {"down+up": 8.0, "s2s": 2.0}
    assert (v.step, v.target) == ("down+up/s2s", "edge/lake")


def _scenario(tmp_path: Path, body: str) -> scenario.Scenario:
    path = tmp_path / "bench-tiny.yaml"
    path.write_text(body)
    return scenario.load(path)


TINY = """\
name: bench-tiny
targets:
  other: {kind: reference}
repeats: 2
interleave: true
keep_data: false
steps:
  - {name: put-small, driver: rest-bench, operation: load, target: [reference, other],
     prefix: small, concurrency: 4, options: {workload: put-small, count: 20, object_size: 2KiB}}
  - {name: get-small, driver: rest-bench, operation: load, target: [reference, other],
     prefix: small, concurrency: 4, options: {workload: get-small, count: 20}}
criteria:
  - {name: within reach, step: put-small, expect: "ratio(ops_s, reference/other) >= 0.001"}
  - {name: out of reach, step: get-small, expect: "ratio(ops_s, reference/other) >= 1000"}
  - {name: steps, expect: "ratio(duration_s, put-small/get-small) > 0"}
"""


def test_unknown_ratio_side_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(scenario.ScenarioError) as err:
        _scenario(tmp_path, TINY.replace("reference/other) >= 1000", "reference/azure) >= 1"))
    (problem,) = err.value.problems
    assert "bench-tiny.yaml:" in problem and "criteria[1].expect" in problem
    assert "not unknown azure" in problem


def test_interleave_alternates_targets_within_a_step(tmp_path: Path) -> None:
    sc = _scenario(tmp_path, TINY)
    labels = [(e.step.name, e.target, e.repeat) for e in plan(sc, "reference")]
    assert labels[:4] == [
        ("put-small", "reference", 0),
        ("put-small", "other", 0),
        ("put-small", "reference", 1),
        ("put-small", "other", 1),
    ]
    sc.interleave = False
    assert [e.target for e in plan(sc, "reference")][:4] == [
        "reference", "reference", "other", "other",
    ]  # fmt: skip


@pytest.mark.slow
def test_a_tiny_benchmark_through_the_runner_judges_ratios_on_its_numbers(
    tmp_path: Path,
) -> None:
    sc = _scenario(tmp_path, TINY)
    outcome = Runner(sc, out=tmp_path / "reports", cache_dir=tmp_path / "cache").run()
    rows = step_rows(read_results(outcome.run_dir))
    # Ran interleaved, every request answered, every blob written was read back whole.
    assert list(zip(rows["step"], rows["target"], rows["repeat"], strict=True))[:4] == [
        ("put-small", "reference", 0),
        ("put-small", "other", 0),
        ("put-small", "reference", 1),
        ("put-small", "other", 1),
    ]
    assert rows["ok"].all() and (rows["objects"] == 20).all()
    assert list(rows["operation"].unique()) == ["put-small", "get-small"]  # the workloads
    assert (rows[rows["step"] == "get-small"]["bytes"] == 20 * 2048).all()
    verdicts = {v.criterion: v for v in outcome.verdicts}

    def median(step: str, target: str, kpi: str = "ops_s") -> float:
        sel = rows[(rows["step"] == step) & (rows["target"] == target)]
        return float(sel[kpi].median())

    reach, out = verdicts["within reach"], verdicts["out of reach"]
    assert reach.passed and reach.observed == pytest.approx(
        median("put-small", "reference") / median("put-small", "other")
    )
    assert out.status == "FAIL" and out.observed == pytest.approx(
        median("get-small", "reference") / median("get-small", "other")
    )
    steps = verdicts["steps"]  # a step's repeats on every target it ran on, unless scoped
    put, get = (
        float(rows[rows["step"] == s]["duration_s"].median()) for s in ("put-small", "get-small")
    )
    assert steps.passed and steps.observed == pytest.approx(put / get)
    # A failed goal fails the run like any criterion; run.json carries the verdicts.
    assert outcome.exit_code == 1
    run = json.loads((outcome.run_dir / "run.json").read_text())
    assert [v["passed"] for v in run["verdicts"]] == [True, False, True]
    assert run["tool_versions"]["rest-bench"]["aiohttp"]
    # keep_data: false removed both data roots; the logs stayed.
    for target in ("reference", "other"):
        assert not (outcome.run_dir / "targets" / target / "data").exists()
        assert (outcome.run_dir / "targets" / target / "server.log").exists()


@pytest.mark.nginx
@pytest.mark.slow
def test_nginx_serves_the_file_the_facade_committed(tmp_path: Path) -> None:
    sc = _scenario(
        tmp_path,
        """\
name: bench-nginx
steps:
  - {name: put, driver: rest-bench, operation: load, concurrency: 2,
     options: {workload: put-block, size: 3MiB, block_size: 1MiB, blob: big}}
  - {name: get, driver: rest-bench, operation: load, target: [reference, nginx], concurrency: 2,
     options: {workload: get-blob, size: 3MiB, block_size: 1MiB, blob: big, procs: 2}}
criteria:
  - {name: read limit, expect: "ratio(throughput_mib_s, reference/nginx) > 0"}
""",
    )
    outcome = Runner(sc, out=tmp_path / "reports", cache_dir=tmp_path / "cache").run()
    rows = step_rows(read_results(outcome.run_dir)).set_index(["step", "target"])
    assert outcome.exit_code == 0, outcome.notes
    # nginx read the committed blob as a plain file: every ranged GET answered 206, whole.
    nginx = rows.loc[("get", "nginx")]
    assert nginx["ok"] and nginx["bytes"] == 3 * 2**20 and nginx["objects"] == 3
    assert nginx["extra"]["client_procs"] == 2
    run = json.loads((outcome.run_dir / "run.json").read_text())
    assert "nginx" not in run["preflight"]  # no Blob API to ask
    assert run["targets"]["nginx"]["serves"] == "reference"
    (verdict,) = outcome.verdicts
    assert verdict.passed and verdict.sides["nginx"] == pytest.approx(
        rows.loc[("get", "nginx")]["throughput_mib_s"]
    )
