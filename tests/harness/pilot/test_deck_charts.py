"""`harness deck` and `harness charts`: native charts whose numbers are results.parquet's
medians, a source footer on every chart slide, NOT COMPARABLE across different scenarios, and
every slide rendered by LibreOffice."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from pptx import Presentation

from harness.cli import main

pytestmark = [pytest.mark.sdk]
DISCLAIMER = "lab result, not independently verified"


def _medians(run_dir: Path, kpi: str) -> dict[str, float]:
    rows = pd.read_parquet(run_dir / "results.parquet")
    rows = rows[~rows["warmup"].astype(bool)]
    return {
        f"{step} ({op})": float(g[kpi].median())
        for (step, op), g in rows.groupby(["step", "operation"], sort=False)
    }


def _texts(slide) -> str:
    parts = [s.text_frame.text for s in slide.shapes if s.has_text_frame]
    for shape in slide.shapes:
        if shape.has_table:
            parts += [c.text for row in shape.table.rows for c in row.cells]
    return "\n".join(parts)


@pytest.fixture(scope="module")
def other_run(pilot_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same run presented as another scenario's: a comparison that is not fair."""
    copy = tmp_path_factory.mktemp("other") / f"{pilot_run.name}-b"
    shutil.copytree(pilot_run, copy, ignore=shutil.ignore_patterns("targets", "steps"))
    info = json.loads((copy / "run.json").read_text())
    info["scenario"]["name"] = "another-scenario"
    (copy / "run.json").write_text(json.dumps(info))
    return copy


@pytest.fixture(scope="module")
def deck(pilot_run: Path, conformance_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deck") / "deck.pptx"
    args = ["deck", str(pilot_run), str(conformance_dir), "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "deck: " in result.output and "warning" not in result.output
    return out


def test_deck_charts_hold_the_medians_of_the_results(
    pilot_run: Path, conformance_dir: Path, deck: Path
) -> None:
    slides = list(Presentation(str(deck)).slides)
    titles = [s.shapes.title.text for s in slides]
    assert titles[1:] == [
        "What was tested",
        "Throughput (MiB/s)",
        "Operations per second (ops/s)",
        "p99 latency (ms)",
        "Compatibility matrix",
        "Methodology",
    ]
    for title, kpi in (("Throughput (MiB/s)", "throughput_mib_s"), ("p99 latency (ms)", "p99_ms")):
        slide = slides[titles.index(title)]
        (chart,) = [s.chart for s in slide.shapes if s.has_chart]  # native, editable
        plot = chart.plots[0]
        expected = _medians(pilot_run, kpi)
        assert list(plot.categories) == list(expected)
        assert list(plot.series[0].values) == pytest.approx(list(expected.values()))
        labels = [p.data_label.text_frame.text for p in plot.series[0].points]
        assert labels == [f"{v:,.4g}" for v in expected.values()]
        table = _texts(slide)
        assert all(f"{v:,.4g}" in table for v in expected.values())
        # the download's dataset fits in the page cache: its bars are marked INVALID
        assert "cache-bound" in table and "): sdk-download @reference" in table
    text = _texts(slides[titles.index("What was tested")])
    assert "reference 0.1.0" in text and "azure-storage-blob 12." in text
    matrix = _texts(slides[titles.index("Compatibility matrix")])
    assert "sdk @reference" in matrix and "✓" in matrix and "✗" not in matrix
    (gate,) = [t["summary"] for t in json.loads((conformance_dir / "conformance.json").read_text())]
    assert "conformance @reference" in matrix and f"{gate['pass']}/{gate['pass']} checks" in matrix
    for slide in slides[2:]:
        footer = _texts(slide)
        assert f"Source: run {pilot_run.name}" in footer and DISCLAIMER in footer
        assert "NOT COMPARABLE:" not in footer


def test_deck_marks_runs_of_different_scenarios(
    pilot_run: Path, other_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "deck.pptx"
    args = ["deck", str(pilot_run), str(other_run), "--out", str(out)]
    args += ["--label", f"A={pilot_run}", "--label", f"B={other_run.name}"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "not comparable: scenario differs" in result.output
    slides = list(Presentation(str(out)).slides)
    chart_slide = next(s for s in slides if s.shapes.title.text == "Throughput (MiB/s)")
    (chart,) = [s.chart for s in chart_slide.shapes if s.has_chart]
    assert [s.name for s in chart.plots[0].series] == ["A", "B"]
    # the same numbers on both sides: every ratio label reads 1.00×
    labels = [p.data_label.text_frame.text for p in chart.plots[0].series[1].points]
    assert labels and all(label.endswith("(1.00×)") for label in labels)
    assert "NOT COMPARABLE: scenario differs" in _texts(chart_slide)
    assert "another-scenario" in _texts(chart_slide)


def test_charts_write_png_svg_and_captions(pilot_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "charts"
    result = CliRunner().invoke(
        main, ["charts", str(pilot_run), "--out", str(out), "--label", f"façade={pilot_run.name}"]
    )
    assert result.exit_code == 0, result.output
    for kpi in ("throughput_mib_s", "ops_s", "p99_ms"):
        assert (out / f"{kpi}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        svg = (out / f"{kpi}.svg").read_text()
        assert "<svg" in svg and DISCLAIMER in svg
    captions = (out / "captions.md").read_text()
    assert captions.count("![") == 3 and f"Source: run {pilot_run.name}" in captions
    assert "cache-bound): sdk-download @reference" in captions


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice (soffice) not installed")
def test_libreoffice_renders_every_slide(deck: Path, tmp_path: Path) -> None:
    from PIL import Image
    from pypdf import PdfReader

    profile = tmp_path / "lo-profile"  # its own profile: no clash with another soffice
    subprocess.run(
        ["soffice", f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to",
         "pdf", "--outdir", str(tmp_path), str(deck)],
        check=True, capture_output=True, timeout=180,
    )  # fmt: skip
    pdf = tmp_path / "deck.pdf"
    slides = len(Presentation(str(deck)).slides)
    assert len(PdfReader(pdf).pages) == slides
    subprocess.run(
        ["pdftoppm", "-png", "-r", "30", str(pdf), str(tmp_path / "slide")], check=True, timeout=60
    )
    images = sorted(tmp_path.glob("slide-*.png"))
    assert len(images) == slides
    for path in images:
        lo, hi = Image.open(path).convert("L").getextrema()
        assert lo < 128 < hi, f"{path.name} rendered blank"
