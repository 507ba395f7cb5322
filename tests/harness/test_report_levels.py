"""Level rows as their readers see them: Locust levels that completed nothing, and the scale
points of `harness bench listing` (listing and connections), which have no steady window."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import lxml.html
import pytest
from PIL import Image
from rich.console import Console

from harness.report import load_run, render_run
from harness.report.terminal import print_run
from harness.results import StepResult
from harness.runner import results_frame, write_results


def _write_run(base: Path, steps: list[StepResult]) -> Path:
    run_dir = base / "run"
    run_dir.mkdir(parents=True)
    write_results(run_dir, results_frame(steps))
    info = {"scenario": {"name": "sc", "description": "d"}, "targets": {"reference": {}},
            "host": {}, "tool_versions": {}, "git": {}, "datasets": {}, "passed": True,
            "notes": []}  # fmt: skip
    (run_dir / "run.json").write_text(json.dumps(info))
    return run_dir


def _locust_level(level: int, users: int, completed: int) -> StepResult:
    row = StepResult("sc", "sweep", "locust", "put_block", "reference", concurrency=users)
    row.duration_s, row.clock, row.objects = 4.0, "steady-window", completed
    if completed:
        row.p50_ms, row.p90_ms, row.p99_ms, row.p999_ms, row.max_ms = 5.0, 9.0, 15.0, 20.0, 25.0
    row.extra = {"level": level, "client_bound": False, "generator_cpu_pct": 40.0}
    return row


def _step(step: str, driver: str, operation: str, levels: list[StepResult]) -> StepResult:
    summary = StepResult("sc", step, driver, operation, "reference", duration_s=8.0)
    summary.objects = sum(r.objects for r in levels)
    summary.extra["levels"] = [r.to_row() for r in levels]
    return summary


def _chart(doc: lxml.html.HtmlElement, chart_id: str) -> Image.Image:
    raw = base64.b64decode(doc.get_element_by_id(chart_id).get("src").split(",", 1)[1])
    return Image.open(io.BytesIO(raw))


@pytest.mark.parametrize("completed", [(0, 0), (120, 0)], ids=["no-level-completed", "one-idle"])
def test_a_level_that_completed_no_request_is_drawn_and_printed_as_such(
    tmp_path: Path, completed: tuple[int, int]
) -> None:
    levels = [_locust_level(0, 2, completed[0]), _locust_level(1, 6, completed[1])]
    run_dir = _write_run(tmp_path, [_step("sweep", "locust", "load", levels)])
    render_run(run_dir)  # a log axis of nothing used to raise here
    doc = lxml.html.parse(str(run_dir / "report.html")).getroot()
    rows = {
        int(tr.get("data-level")): tr for tr in doc.get_element_by_id("sweep").xpath("./tbody/tr")
    }
    assert "no requests" in rows[1].text_content()
    assert rows[1].xpath("./td[@data-col='p99_ms']")[0].text_content() == "–"
    assert ("no requests" in rows[0].text_content()) == (completed[0] == 0)
    chart = _chart(doc, "sweep-latency-chart")
    assert chart.width > 400
    # the red cross of the idle level (#d62728) is on the chart
    assert any(c[:3] == (0xD6, 0x27, 0x28) for _, c in chart.convert("RGB").getcolors(1 << 20))
    console = Console(record=True, width=200)
    print_run(load_run(run_dir), console)
    text = console.export_text()
    assert "load sweep (steady windows)" in text
    cells = {c[3].strip(): c[-2] for c in (ln.split("│") for ln in text.splitlines()) if len(c) > 4}
    assert "no requests" in cells["6"]


def _listing_level(level: int, op: str, blobs: int, layout: str, users: int) -> StepResult:
    row = StepResult("sc", "listing", "rest-bench", op, "reference", concurrency=users)
    row.duration_s, row.objects, row.p50_ms, row.p99_ms = 0.05, 10, 30.0, 40.0
    row.extra = {"level": level, "blobs": blobs, "layout": layout, "client_bound": False}
    return row


def _connections_level(level: int, connections: int) -> StepResult:
    row = StepResult("sc", "connections", "rest-bench", "connections", "reference")
    row.concurrency, row.duration_s, row.objects = connections, 0.04, connections
    row.p50_ms, row.p99_ms = 20.0, 30.0
    row.extra = {"level": level, "connections": connections, "client_bound": False}
    return row


def test_listing_and_connection_levels_are_labelled_scale_points_not_steady_windows(
    tmp_path: Path,
) -> None:
    listing = [
        _listing_level(i, op, blobs, layout, users)
        for i, (blobs, layout) in enumerate([(1000, "flat"), (10000, "flat"), (1000, "nested")])
        for op, users in (("list-first-page", 1), ("put-blob-full", 16))
    ]
    steps = [
        _step("listing", "rest-bench", "listing", listing),
        _step("connections", "rest-bench", "connections", [_connections_level(0, 100)]),
    ]
    run_dir = _write_run(tmp_path, steps)
    console = Console(record=True, width=200)
    print_run(load_run(run_dir), console)
    text = console.export_text()
    assert "steady windows" not in text and "load sweep" not in text
    assert "steady window;" not in text  # the Locust note, once given to every level row
    assert "scale points (each timed once, no steady window)" in text
    assert "listing @reference: each point timed once, wall clock (no warm-up, no steady" in text
    assert "flat 1,000 blobs, flat 10,000 blobs, nested 1,000 blobs" in text
    assert "connections @reference: each point timed once" in text
    assert "100 connections" in text
    render_run(run_dir)
    doc = lxml.html.parse(str(run_dir / "report.html")).getroot()
    section = doc.get_element_by_id("load-sweep")
    assert section.xpath("./h2")[0].text_content() == "Scale points"
    note = doc.get_element_by_id("steady-state").text_content()
    assert "KPIs come from their steady window" not in note and "steady window;" not in note
    points = [td.text_content() for td in section.xpath(".//td[@data-col='point']")]
    assert points.count("flat 10,000 blobs") == 2 and "100 connections" in points
    # each curve is drawn against what grew (blobs, connections), not against users
    assert _chart(doc, "sweep-throughput-chart").width > 500
    # no column of dashes where no Locust generator ran, no 0.0 bars for steps moving no bytes
    assert not section.xpath(".//td[@data-col='generator_cpu_pct']")
    assert not doc.xpath("//img[@id='throughput-chart']")
