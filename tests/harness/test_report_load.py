"""Load sweeps in the results table, the criteria, the HTML report, the terminal and comparisons."""

from __future__ import annotations

import base64
import io
import shutil
from pathlib import Path

import lxml.html
import pytest
from PIL import Image
from rich.console import Console

from harness import criteria, scenario
from harness.report import load_run, render_run, summarize, sweep
from harness.report.compare import compare_runs
from harness.report.terminal import print_run
from harness.results import StepResult
from harness.runner import Runner, read_results, results_frame

SWEEP = """\
name: tiny-sweep
steps:
  - name: sweep
    driver: locust
    operation: load
    timeout: 120
    options:
      mix: {put_block: 2, get_range: 1}
      levels: [2, 6]
      level_duration_s: 4
      ramp_s: 1
      object_size: 64KiB
      block_size: 8KiB
      seed_objects: 2
      workers: 1
criteria:
  - {name: no errors, step: sweep, expect: failed == 0}
  - {name: p99 bound, step: sweep, expect: p99_ms < 100000}
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("sweep")
    (base / "s.yaml").write_text(SWEEP)
    runner = Runner(scenario.load(base / "s.yaml"), out=base / "reports", sample_interval=0.5)
    outcome = runner.run()
    render_run(outcome.run_dir)
    return outcome.run_dir


def _pngs(doc: lxml.html.HtmlElement) -> dict[str, Image.Image]:
    images = {}
    for img in doc.iter("img"):
        raw = base64.b64decode(img.get("src").split(",", 1)[1])
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"
        images[img.get("id")] = Image.open(io.BytesIO(raw))
    return images


# ---------------------------------------------------------------- results table


@pytest.mark.locust
def test_level_rows_are_rows_of_the_one_results_table(run_dir: Path) -> None:
    df = read_results(run_dir)
    steps = df[df.row_kind == "step"]
    levels = df[df.row_kind == "level"]
    assert len(steps) == 1 and steps.iloc[0].ok, steps.iloc[0].error
    assert "levels" not in steps.iloc[0].extra  # the rows moved out of the summary's extra
    assert steps["level"].isna().all()
    # two levels x two operations, each naming its Blob operation, level and users
    assert sorted(zip(levels.level, levels.operation, levels.concurrency, strict=True)) == [
        (0, "get_range", 2),
        (0, "put_block", 2),
        (1, "get_range", 6),
        (1, "put_block", 6),
    ]
    assert (levels.level == [e["level"] for e in levels.extra]).all()
    assert levels.ok.all() and (levels.objects > 0).all()
    # the step row is the sum of its levels' steady windows
    assert steps.iloc[0].objects == levels.objects.sum()
    assert steps.iloc[0].bytes == levels.bytes.sum()
    put = levels[levels.operation == "put_block"]
    assert (put.bytes == put.objects * 8 * 1024).all()
    assert list(summarize(df)["step"]) == ["sweep"]  # summaries never count level rows
    assert set(df.clock) == {"steady-window"}  # every row names the clock of its KPIs


@pytest.mark.locust
def test_criteria_judge_each_operation_over_its_levels(run_dir: Path) -> None:
    outcome_verdicts = load_run(run_dir).verdicts
    by = {(v["criterion"], v["operation"]): v for v in outcome_verdicts}
    assert set(by) == {
        (name, op) for name in ("no errors", "p99 bound") for op in ("put_block", "get_range")
    }
    assert all(v["passed"] for v in outcome_verdicts), [v["evidence"] for v in outcome_verdicts]
    levels = read_results(run_dir).query("row_kind == 'level'")
    put = levels[levels.operation == "put_block"]
    assert by[("p99 bound", "put_block")]["observed"] == pytest.approx(put.p99_ms.max())
    assert "per level (users: value) 2: " in by[("p99 bound", "put_block")]["evidence"]


# ---------------------------------------------------------------- criteria and client-bound rows


def _level(op: str, level: int, users: int, p99: float, failed: int, bound: bool) -> StepResult:
    row = StepResult("s", "sweep", "locust", op, "reference", concurrency=users, objects=100)
    row.duration_s, row.p99_ms, row.failed = 10.0, p99, failed
    row.errors_by_status = {"503": failed} if failed else {}
    row.extra = {"level": level, "client_bound": bound, "generator_cpu_pct": 97.0 if bound else 40}
    return row


def _sweep_results(rows: list[StepResult]) -> StepResult:
    summary = StepResult("s", "sweep", "locust", "load", "reference", objects=300)
    summary.extra["levels"] = [r.to_row() for r in rows]
    return summary


class Crit:
    def __init__(self, expect: str) -> None:
        self.expect, self.step, self.driver, self.target, self.label = (
            expect,
            "sweep",
            None,
            None,
            expect,
        )


def test_client_bound_levels_are_skipped_by_rate_and_latency_criteria() -> None:
    rows = [
        _level("put_block", 0, 16, 20.0, 0, False),
        _level("put_block", 1, 64, 45.0, 0, False),
        _level("put_block", 2, 256, 900.0, 2, True),  # the generator was saturated here
    ]
    table = results_frame([_sweep_results(rows)])
    [p99] = criteria.evaluate([Crit("p99_ms < 50")], table)
    assert p99.passed and p99.operation == "put_block" and p99.observed == 45.0
    assert "skipped client-bound level(s): 256 users (generator CPU 97%)" in p99.evidence
    # errors the server returned count whatever the generator's load
    [failed] = criteria.evaluate([Crit("failed == 0")], table)
    assert not failed.passed and failed.observed == 2 and "256 users" in failed.evidence
    assert "skipped" not in failed.evidence


def test_a_sweep_that_was_client_bound_everywhere_cannot_pass_a_latency_criterion() -> None:
    table = results_frame([_sweep_results([_level("put_block", 0, 1024, 5.0, 0, True)])])
    [verdict] = criteria.evaluate([Crit("p99_ms < 50")], table)
    assert not verdict.passed and verdict.observed is None
    assert verdict.evidence.startswith("every level was client-bound")


# ---------------------------------------------------------------- HTML, terminal, comparison


@pytest.mark.locust
def test_html_sweep_table_equals_the_level_rows(run_dir: Path) -> None:
    levels = read_results(run_dir).query("row_kind == 'level'")
    doc = lxml.html.parse(str(run_dir / "report.html")).getroot()
    rows = doc.get_element_by_id("sweep").xpath("./tbody/tr")
    assert len(rows) == len(levels) == 4
    for tr in rows:
        mine = levels[
            (levels.operation == tr.get("data-operation"))
            & (levels.level == int(tr.get("data-level")))
        ].iloc[0]
        cells = {td.get("data-col"): td.get("data-value") for td in tr.xpath("./td[@data-col]")}
        assert int(cells["users"]) == mine.concurrency
        for col in ("ops_s", "throughput_mib_s", "p50_ms", "p99_ms", "p999_ms", "max_ms"):
            assert float(cells[col]) == pytest.approx(float(mine[col])), col
        assert float(cells["generator_cpu_pct"]) == pytest.approx(mine.extra["generator_cpu_pct"])
        bound = mine.extra["client_bound"]
        assert tr.get("data-client-bound") == str(bound).lower()
        assert ("client-bound" in tr.text_content()) == bound
    steady = doc.get_element_by_id("steady-state").text_content()
    assert "first 1 s (ramp-up) excluded" in steady
    assert f"{levels.duration_s.median():g} s measured per level" in steady
    images = _pngs(doc)
    assert {"sweep-throughput-chart", "sweep-latency-chart"} <= set(images)
    for name in ("sweep-throughput-chart", "sweep-latency-chart"):
        image = images[name]
        assert image.width > 500 and len(image.convert("RGB").getcolors(1 << 16) or []) > 10


@pytest.mark.locust
def test_terminal_summary_shows_the_sweep(run_dir: Path) -> None:
    console = Console(record=True, width=200)
    print_run(load_run(run_dir), console)
    text = console.export_text()
    assert "load sweep" in text and "gen CPU %" in text
    table = sweep(read_results(run_dir))
    for r in table.to_dict("records"):
        assert f"{r['ops_s']:,.1f}" in text
    assert "steady state only" in text
    narrow = Console(record=True, width=80)
    print_run(load_run(run_dir), narrow)
    text = narrow.export_text()
    lines = [line for line in text.splitlines() if line[:1] in "┏┃┡│└"]
    assert max(len(line) for line in lines) <= 80 and "…" not in text
    for r in table.to_dict("records"):
        assert f"{r['ops_s']:,.1f}" in text


@pytest.mark.locust
def test_report_a_b_puts_sweeps_side_by_side(run_dir: Path, tmp_path: Path) -> None:
    twin = tmp_path / (run_dir.name + "-twin")
    shutil.copytree(run_dir, twin)
    console = Console(record=True, width=200)
    path = compare_runs([run_dir, twin], tmp_path / "cmp", console)
    doc = lxml.html.parse(str(path)).getroot()
    table = doc.get_element_by_id("sweep-comparison")
    rows = table.xpath("./tbody/tr")
    assert sorted((r.get("data-operation"), int(r.get("data-users"))) for r in rows) == [
        ("get_range", 2),
        ("get_range", 6),
        ("put_block", 2),
        ("put_block", 6),
    ]
    ratios = [
        float(td.get("data-value")) for td in table.xpath(".//td[@data-metric='ops_s:ratio']")
    ]
    assert ratios == [pytest.approx(1.0)] * 4
    assert {"sweep-throughput-chart", "sweep-latency-chart"} <= set(_pngs(doc))
    assert "load sweeps side by side" in console.export_text()
