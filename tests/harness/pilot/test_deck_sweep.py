"""A load sweep run (tiny, real Locust) gets its deck slide and its charts."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from pptx import Presentation

from harness import scenario
from harness.cli import main
from harness.report import load_run, sweep
from harness.runner import Runner

pytestmark = [pytest.mark.locust]

SWEEP = """\
name: pilot-sweep
steps:
  - name: sweep
    driver: locust
    operation: load
    timeout: 120
    options:
      mix: {put_block: 2, get_range: 1}
      levels: [2, 4]
      level_duration_s: 4
      ramp_s: 1
      object_size: 64KiB
      block_size: 8KiB
      seed_objects: 2
      workers: 1
"""


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("sweep")
    (base / "s.yaml").write_text(SWEEP)
    runner = Runner(scenario.load(base / "s.yaml"), out=base / "reports", sample_interval=0.5)
    return runner.run().run_dir


def test_sweep_slide_and_charts(sweep_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "deck.pptx"
    result = CliRunner().invoke(main, ["deck", str(sweep_run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    slides = list(Presentation(str(out)).slides)
    (slide,) = [s for s in slides if s.shapes.title.text.startswith("Load sweep")]
    ops_chart, p99_chart = [s.chart for s in slide.shapes if s.has_chart]
    table = sweep(load_run(sweep_run).results)
    for op, part in table.groupby("operation", sort=False):
        (series,) = [s for s in ops_chart.plots[0].series if s.name == f"reference / {op}"]
        assert list(ops_chart.plots[0].categories) == ["2", "4"]
        assert list(series.values) == pytest.approx(list(part["ops_s"]))
        (p99,) = [s for s in p99_chart.plots[0].series if s.name == f"reference / {op}"]
        assert list(p99.values) == pytest.approx(list(part["p99_ms"]))
    charts = tmp_path / "charts"
    assert CliRunner().invoke(main, ["charts", str(sweep_run), "--out", str(charts)]).exit_code == 0
    assert {p.name for p in charts.glob("sweep-*.png")} == {
        f"sweep-reference---{op.replace('_', '-')}.png" for op in table["operation"].unique()
    }
