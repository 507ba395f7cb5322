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
    args += ["--no-content-md5", "--proxied-size", "2MiB", "--locust-seconds", "6"]
    sc = _captured(monkeypatch, tmp_path, args)
    steps = {s.name: s for s in sc.steps}
    assert sc.name == "bench-server" and sc.interleave and not sc.keep_data
    for name in ("put-block", "get-blob"):
        assert steps[name].options["size"] == 4 << 20
        assert steps[name].options["block_size"] == 1 << 20
        assert steps[name].options["procs"] == 3
    for name in ("disk-write", "disk-read"):  # fio writes and reads what the façade does
        assert steps[name].options["size"] == 4 << 20
        assert steps[name].options["block_size"] == 1 << 20
    assert steps["put-block-burst"].options["count"] == 7
    assert steps["put-small"].options["count"] == steps["get-small"].options["count"] == 9
    assert steps["put-small-proxied"].options["count"] == 9
    assert steps["put-block-proxied"].options["size"] == 2 << 20
    assert steps["locust-floor"].options["level_duration_s"] == 6
    uploads = ("put-block", "put-block-burst", "put-small", "put-small-proxied")
    assert all(steps[n].options["content_md5"] is False for n in uploads)
    # Locust's ceiling runs once; every other workload takes the repeats
    once = {"locust-floor"}
    assert all(s.repeats == (1 if s.name in once else 2) for s in sc.steps)
    assert steps["put-small"].warmup == 1
    assert sc.target.workers == sc.targets["floor"].workers == 1
    assert sc.target.options == {"args": ["--loop=asyncio"], "profile": True}


def test_listing_flags_become_overrides_of_the_shipped_scenario(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    args = ["listing", "--sizes", "1k,100k,1M", "--layouts", "nested", "--connections", "10k"]
    args += ["--put-count", "50", "--upload", "10GiB", "--workers", "4"]
    sc = _captured(monkeypatch, tmp_path, args)
    steps = {s.name: s for s in sc.steps}
    assert steps["listing"].options["sizes"] == [1000, 100_000, 1_000_000]
    assert steps["listing"].options["layouts"] == ["nested"]
    assert steps["listing"].options["put_count"] == 50
    assert steps["connections"].options["levels"] == [10_000]
    assert steps["upload"].options["size"] == 10 << 30
    assert sc.target.workers == 4


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


def test_goals_table_at_80_columns_wraps_instead_of_cutting() -> None:
    from rich.console import Console

    verdicts = [
        Verdict(
            "Get Blob throughput vs nginx",
            "ratio(throughput_mib_s, reference/nginx) >= 0.7",
            "get-blob",
            "rest-bench",
            "reference",
            0.61,
            False,
            "",
            sides={"reference": 319.5, "nginx": 524.8},
        )
    ]
    console = Console(width=80, record=True)
    bench_cli.render(verdicts, console)
    text = console.export_text()
    assert "…" not in text
    assert all(len(line) <= 80 for line in text.splitlines())
    words = " ".join(text.replace("│", " ").split())
    for value in ("throughput", "nginx", "319.5", "524.8", "0.61×", "≥ 0.7×"):
        assert value in words
