"""The benchmark deck (python-pptx): native, editable PowerPoint charts and tables from the
same tables as `harness charts`; every chart slide carries its source, date, configuration
and "lab result, not independently verified"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pptx import Presentation
from pptx.chart.data import CategoryChartData
from pptx.dml.color import RGBColor
from pptx.enum.chart import XL_CHART_TYPE, XL_LEGEND_POSITION
from pptx.util import Emu, Inches, Pt

from harness import validity
from harness.report import RunData, load_run, summarize
from harness.report.charts import (
    DISCLAIMER,
    fairness,
    footer,
    invalid_notes,
    kpi_charts,
    sweep_tables,
)

WIDE = (Inches(13.333), Inches(7.5))
TABLE_BESIDE_ROWS = 8  # rows of a chart's numbers that fit beside it
TABLE_SLIDE_ROWS = 18  # rows of numbers on a slide of their own
LABELLED_BARS = 16  # bars up to which each carries its value
RED = RGBColor(0xB0, 0x00, 0x20)


def _text(slide: Any, text: str, left: float, top: float, width: float, height: float,
          size: int = 14, color: RGBColor | None = None) -> None:  # fmt: skip
    box = slide.shapes.add_textbox(Inches(left), Inches(top), Inches(width), Inches(height))
    frame = box.text_frame
    frame.word_wrap = True
    for i, line in enumerate(text.split("\n")):
        para = frame.paragraphs[0] if i == 0 else frame.add_paragraph()
        para.text = line
        para.font.size = Pt(size)
        if color is not None:
            para.font.color.rgb = color


def _slide(prs: Any, title: str) -> Any:
    slide = prs.slides.add_slide(prs.slide_layouts[5])  # title only
    shape = slide.shapes.title
    # The layouts are laid out for 4:3; the slides are 16:9, so place the title ourselves.
    shape.left, shape.top, shape.width, shape.height = (
        Inches(0.4),
        Inches(0.3),
        Inches(12.5),
        Inches(0.9),
    )
    shape.text = title
    shape.text_frame.paragraphs[0].font.size = Pt(28)
    return slide


def _footer(slide: Any, runs: list[RunData], unfair: list[str]) -> None:
    _text(slide, footer(runs), 0.4, 6.95, 12.5, 0.4, size=9, color=RGBColor(0x55, 0x55, 0x55))
    if unfair:
        _text(slide, "NOT COMPARABLE: " + "; ".join(unfair), 0.4, 1.25, 12.5, 0.5, 11, RED)


def _table(slide: Any, header: list[str], rows: list[list[str]], left: float, top: float,
           width: float, size: int = 10) -> None:  # fmt: skip
    shape = slide.shapes.add_table(
        len(rows) + 1, len(header), Inches(left), Inches(top), Inches(width),
        Inches(0.22 * (len(rows) + 1)),
    )  # fmt: skip
    for row in shape.table.rows:
        row.height = Inches(0.22)
    for c, name in enumerate(header):
        shape.table.cell(0, c).text = name
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row):
            shape.table.cell(r, c).text = value
    for cell in (shape.table.cell(r, c) for r in range(len(rows) + 1) for c in range(len(header))):
        for para in cell.text_frame.paragraphs:
            para.font.size = Pt(size)


def _ratio(value: float) -> str:
    return "–" if value != value else f"{value:.2f}×"


def _num(value: float) -> str:
    return "–" if value != value else f"{value:,.4g}"


def build_deck(
    runs: list[RunData], labels: list[str] | None = None, gates: list[Path] | None = None
) -> tuple[Any, list[str]]:
    """The presentation and the fairness problems it marks; ``gates`` are `harness
    conformance` output directories, scored in the compatibility matrix."""
    gates = [
        *(gates or []),
        *(r.run_dir for r in runs if (r.run_dir / "conformance.json").is_file()),
    ]
    prs = Presentation()
    prs.slide_width, prs.slide_height = (Emu(int(v)) for v in WIDE)
    unfair = fairness(runs)
    title = prs.slides.add_slide(prs.slide_layouts[0])
    title.shapes.title.text = "Blob façade benchmark"
    for shape, top in ((title.shapes.title, 2.0), (title.placeholders[1], 3.6)):
        shape.left, shape.top, shape.width = Inches(0.9), Inches(top), Inches(11.5)
    title.placeholders[1].text = (
        f"{', '.join(sorted({r.scenario for r in runs}))} · "
        f"{', '.join(sorted({str(r.info.get('started_at', ''))[:10] for r in runs}))}\n"
        f"{DISCLAIMER}"
    )

    tested = _slide(prs, "What was tested")
    rows = []
    for i, run in enumerate(runs):
        env = validity.environment(run)
        tools = "; ".join(
            f"{k}: " + ", ".join(f"{pkg} {ver}" for pkg, ver in v.items())
            for k, v in env.tools.items()
        )
        builds = ", ".join(f"{t} {b}" for t, b in env.facade.items())
        rows.append([labels[i] if labels else run.name, builds, env.hardware, tools])
    _table(tested, ["run", "targets (build)", "hardware", "clients"], rows, 0.4, 1.5, 12.5)

    for chart in kpi_charts(runs, labels):
        slide = _slide(prs, f"{chart.title} ({chart.unit})")
        data = CategoryChartData()
        data.categories = list(chart.table.index)
        for series in chart.table.columns:
            data.add_series(series, [None if v != v else v for v in chart.table[series]])
        header = ["step", *chart.table.columns]
        header += [f"{c} / {chart.table.columns[0]}" for c in chart.table.columns[1:]]
        # A table that fits beside the chart stays there; a bigger one (it ran off the slide,
        # its cells wrapped letter by letter) gets slides of its own and the chart the width.
        beside = len(chart.table.index) <= TABLE_BESIDE_ROWS and len(header) <= 5
        frame = slide.shapes.add_chart(
            XL_CHART_TYPE.COLUMN_CLUSTERED, Inches(0.4), Inches(1.7),
            Inches(8.2 if beside else 12.5), Inches(5.1), data,
        )  # fmt: skip
        graphic = frame.chart
        graphic.has_legend = True
        graphic.legend.position = XL_LEGEND_POSITION.BOTTOM
        graphic.legend.include_in_layout = False
        graphic.has_title = False  # the slide title says it; one series would repeat its name
        graphic.legend.font.size = Pt(11)
        graphic.value_axis.minimum_scale = 0  # bars from zero: no exaggerated differences
        graphic.category_axis.tick_labels.font.size = Pt(9)
        graphic.value_axis.tick_labels.font.size = Pt(9)
        graphic.value_axis.has_title = True
        graphic.value_axis.axis_title.text_frame.text = chart.unit
        ratios = chart.ratios()
        # labels on every bar pile up once bars are narrow: the table carries the numbers then
        labelled = chart.table.size <= LABELLED_BARS
        for s, plot_series in enumerate(graphic.plots[0].series if labelled else []):
            for p, value in enumerate(chart.table.iloc[:, s]):
                if value != value:
                    continue
                ratio = ratios.iloc[p, s]
                label = plot_series.points[p].data_label
                label.has_text_frame = True
                label.text_frame.text = _num(value) + (
                    f" ({ratio:.2f}×)" if s and ratio == ratio else ""
                )
                label.text_frame.paragraphs[0].font.size = Pt(9)
        body = [
            [str(idx), *(_num(v) for v in chart.table.loc[idx])]
            + [_ratio(ratios.loc[idx, c]) for c in chart.table.columns[1:]]
            for idx in chart.table.index
        ]
        invalid = invalid_notes(runs, chart)
        if beside:
            _table(slide, header, body, 8.8, 1.7, 4.2, size=7)
            if invalid:  # validity before verdicts: say which bars do not count
                top = min(1.8 + 0.36 * (len(body) + 1), 5.6)  # below the table (rows wrap)
                _text(slide, "\n".join(invalid), 8.8, top, 4.2, 6.8 - top, size=8, color=RED)
            _footer(slide, runs, unfair)
            continue
        _footer(slide, runs, unfair)
        pages = range(0, len(body), TABLE_SLIDE_ROWS)
        for n, first in enumerate(pages, 1):
            more = f", {n} of {len(pages)}" if len(pages) > 1 else ""
            numbers = _slide(prs, f"{chart.title} ({chart.unit}): the numbers{more}")
            rows = body[first : first + TABLE_SLIDE_ROWS]
            _table(numbers, header, rows, 0.4, 1.8, 12.5, size=9)
            if invalid and n == len(pages):
                top = min(1.9 + 0.22 * (len(rows) + 1), 6.2)
                _text(numbers, "\n".join(invalid), 0.4, top, 12.5, 6.9 - top, size=9, color=RED)
            _footer(numbers, runs, unfair)

    sweeps = sweep_tables(runs, labels)
    if sweeps:
        slide = _slide(prs, "Load sweep: throughput and p99 against concurrency")
        users = sorted({int(u) for t in sweeps.values() for u in t["users"]})
        for k, (kpi, left) in enumerate((("ops_s", 0.4), ("p99_ms", 6.8))):
            data = CategoryChartData()
            data.categories = [str(u) for u in users]
            for name, table in sweeps.items():
                by_users = dict(zip(table["users"].astype(int), table[kpi], strict=True))
                data.add_series(name, [by_users.get(u) for u in users])
            frame = slide.shapes.add_chart(
                XL_CHART_TYPE.LINE_MARKERS,
                Inches(left),
                Inches(1.7),
                Inches(6.1),
                Inches(5.0),
                data,
            )
            frame.chart.value_axis.minimum_scale = 0
            frame.chart.has_title = True
            frame.chart.chart_title.text_frame.text = ("ops/s", "p99 ms")[k]
        _footer(slide, runs, unfair)

    matrix = _slide(prs, "Compatibility matrix")
    cells: dict[str, dict[str, str]] = {}
    for run in runs:
        summary = summarize(run.results)
        for _, row in summary.iterrows():
            mark = "✓" if row["ok"] and not row["failed"] else "✗"
            key = f"{row['driver']} @{row['target']}"
            cells.setdefault(key, {})[str(row["operation"])] = mark
    for gate in gates:
        for t in json.loads((gate / "conformance.json").read_text()):
            s = t["summary"]
            cells.setdefault(f"conformance @{t['target']}", {})["conformance score"] = (
                f"{s['pass']}/{s['pass'] + s['fail']} checks"
            )
    ops = list(dict.fromkeys(op for row in cells.values() for op in row))
    _table(
        matrix,
        ["client @target", *ops],
        [[k, *(v.get(op, "–") for op in ops)] for k, v in cells.items()],
        0.4, 1.5, 12.5,
    )  # fmt: skip
    _footer(matrix, runs, unfair)

    method = _slide(prs, "Methodology")
    repeats = sorted(
        {
            int(s.get("repeats", 1))
            for r in runs
            for s in r.info.get("scenario", {}).get("steps", [])
        }
    )
    broken = [o for r in runs for o in validity.run_rules(r) if not o.ok]
    lines = [
        f"Each number is the median of {', '.join(map(str, repeats))} measured repeat(s); "
        "warm-up executions are excluded.",
        "Every upload and download is verified against the dataset manifest (MD5 and SHA-256).",
        "Validity rules (MLPerf Storage style): " + "; ".join(validity.RULES.values()) + ".",
        f"Rules broken in these runs: {len(broken)}"
        + (
            " — " + "; ".join(f"{o.reason}: {o.scope}" for o in broken[:5])
            if broken
            else " (all held)"
        ),
        "Ratios compare each series with the first (the anchor); fair comparisons only: runs "
        "whose scenario, dataset or hardware differ are marked NOT COMPARABLE.",
        "Clients are the real tools (AzCopy, azure-storage-blob, boostedblob, rclone, Locust); "
        "per-row clocks are recorded in results.parquet.",
    ]
    _text(method, "\n".join(f"• {line}" for line in lines), 0.5, 1.9, 12.3, 4.9, size=13)
    _footer(method, runs, unfair)
    return prs, unfair


def write_deck(run_dirs: list[Path], out: Path, labels: list[str] | None = None) -> dict[str, Any]:
    measured = [i for i, d in enumerate(run_dirs) if (Path(d) / "results.parquet").is_file()]
    runs = [load_run(run_dirs[i]) for i in measured]
    gates = [Path(d) for i, d in enumerate(run_dirs) if i not in measured]
    prs, unfair = build_deck(runs, [labels[i] for i in measured] if labels else None, gates)
    out.parent.mkdir(parents=True, exist_ok=True)
    prs.save(str(out))
    return {"slides": len(prs.slides), "unfair": unfair}
