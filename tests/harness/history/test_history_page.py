"""`harness history report`: the HTML page with the verdicts, one chart per KPI series that
varies, the change points and the new series."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from harness.cli import main
from harness.history.records import run_rows
from harness.history.store import HistoryStore
from tests.harness.history.conftest import SDK, MakeRun


def test_history_page_shows_changes_new_series_and_trend_charts(
    make_run: MakeRun, tmp_path: Path
) -> None:
    rng = np.random.default_rng(8)
    newer = {**SDK, "azure-storage-blob": "12.32.0"}
    db = tmp_path / "h.duckdb"
    with HistoryStore(db) as store:
        for i in range(16):
            level = 100.0 if i < 6 else 80.0
            run = make_run(
                i, list(level * (1 + rng.normal(0, 0.02, 5))), build="0.1" if i < 6 else "0.2",
                versions=SDK if i < 12 else newer,
            )  # fmt: skip
            store.add(run_rows(run))
    out = tmp_path / "page"
    result = CliRunner().invoke(
        main, ["history", "report", "--history", str(db), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"report: {out / 'history.html'}"
    html = (out / "history.html").read_text()
    assert '<div class="v" id="verdict"><span class="fail">REGRESSION</span>' in html
    changes = html.split('id="changes"')[1].split("</table>")[0]
    assert (
        "throughput_mib_s" in changes and "regression" in changes and "façade 0.1 → 0.2" in changes
    )
    assert "2026-11-07" in changes  # the first night of build 0.2
    assert "azure-storage-blob 12.31.1 → 12.32.0" in html.split('id="new-series"')[1]
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', html)
    labels = [label for label, _ in images]
    # Series with a change come first; zero failures every night are counted, not charted.
    assert labels[0].endswith("duration_s") and not any(x.endswith(" failed") for x in labels)
    assert "nightly / sdk-upload @reference [sdk upload] throughput_mib_s" in labels
    assert all(base64.b64decode(png)[:8] == b"\x89PNG\r\n\x1a\n" for _, png in images)
    assert "not charted" in html
