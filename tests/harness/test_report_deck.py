"""The deck of a bench with many steps and targets: every table stays on its slide, and bars
too many to label leave their numbers to the table."""

from __future__ import annotations

import json
from pathlib import Path

from pptx import Presentation

from harness.report.deck import LABELLED_BARS, TABLE_SLIDE_ROWS, write_deck
from harness.results import StepResult
from harness.runner import results_frame, write_results


def _bench_run(base: Path, steps: int, targets: list[str]) -> Path:
    rows = [
        StepResult(
            "bench",
            f"put-{i}",
            "rest-bench",
            "put-block",
            target,
            duration_s=1.0,
            bytes=(i + 1) * 2**20,
            objects=4,
            p99_ms=10.0 + i,
        )
        for i in range(steps)
        for target in targets
    ]
    run_dir = base / "20261201T000000Z-bench"
    run_dir.mkdir(parents=True)
    write_results(run_dir, results_frame(rows))
    info = {"scenario": {"name": "bench", "description": "d"}, "started_at": "2026-12-01",
            "targets": {t: {"kind": t, "version": "1"} for t in targets},
            "host": {"hostname": "box", "cpus_logical": 2}, "tool_versions": {}, "git": {},
            "datasets": {}, "passed": True, "notes": []}  # fmt: skip
    (run_dir / "run.json").write_text(json.dumps(info))
    return run_dir


def test_a_big_comparison_puts_its_numbers_on_slides_of_their_own(tmp_path: Path) -> None:
    steps, targets = 22, ["reference", "azurite", "nginx"]
    out = tmp_path / "deck.pptx"
    write_deck([_bench_run(tmp_path, steps, targets)], out)
    prs = Presentation(str(out))
    for slide in prs.slides:
        for shape in slide.shapes:
            # nothing runs off the slide (the table beside the chart used to)
            assert shape.left + shape.width <= prs.slide_width, shape.name
            assert shape.top + shape.height <= prs.slide_height, shape.name
    titles = [s.shapes.title.text for s in prs.slides if s.shapes.title is not None]
    assert "Throughput (MiB/s): the numbers, 1 of 2" in titles
    assert "Throughput (MiB/s): the numbers, 2 of 2" in titles
    numbers = [s for s in prs.slides if s.shapes.title.text.startswith("Throughput (MiB/s): the")]
    tables = [sh.table for s in numbers for sh in s.shapes if sh.has_table]
    assert [len(t.rows) - 1 for t in tables] == [TABLE_SLIDE_ROWS, steps - TABLE_SLIDE_ROWS]
    assert tables[0].cell(0, 4).text == "azurite / reference"
    chart_slide = next(s for s in prs.slides if s.shapes.title.text == "Throughput (MiB/s)")
    [chart] = [sh.chart for sh in chart_slide.shapes if sh.has_chart]
    assert steps * len(targets) > LABELLED_BARS
    # 66 bars: no per-bar labels piled on each other; the numbers slides carry them
    assert all(
        not point.data_label.has_text_frame
        for series in chart.plots[0].series
        for point in series.points
    )


def test_a_small_comparison_keeps_its_table_beside_the_labelled_chart(tmp_path: Path) -> None:
    out = tmp_path / "deck.pptx"
    write_deck([_bench_run(tmp_path, 3, ["reference", "azurite"])], out)
    prs = Presentation(str(out))
    titles = [s.shapes.title.text for s in prs.slides]
    assert not any("the numbers" in t for t in titles)
    slide = next(s for s in prs.slides if s.shapes.title.text == "Throughput (MiB/s)")
    [chart] = [sh.chart for sh in slide.shapes if sh.has_chart]
    [table] = [sh.table for sh in slide.shapes if sh.has_table]
    assert len(table.rows) == 4
    labels = [p.data_label.text_frame.text for s in chart.plots[0].series for p in s.points]
    assert labels[:3] == ["1", "2", "3"] and labels[3].endswith("(1.00×)")
