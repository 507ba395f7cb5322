"""Reports are opened and read back: table numbers equal results.parquet, charts are PNGs."""

from __future__ import annotations

import base64
import io
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import lxml.html
import pytest
from PIL import Image

from harness import scenario
from harness.report import load_run, render_run
from harness.report.compare import compare_runs
from harness.runner import Runner, read_results

pytestmark = [pytest.mark.sdk]

SCENARIO = """\
name: report-check
datasets:
  - name: d
    seed: 9
    files:
      - {count: 5, size_min: 2KiB, size_max: 256KiB}
steps:
  - {driver: sdk, operation: upload, dataset: d, prefix: r, repeats: 3, warmup: 1}
  - {driver: sdk, operation: list, prefix: r}
  - {driver: sdk-aio, operation: download, dataset: d, prefix: r, repeats: 2}
criteria:
  - {name: nothing failed, expect: max(failed) == 0}
  - {name: impossible speed, step: sdk-upload, expect: throughput_mib_s > 1e12}
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("report")
    (base / "s.yaml").write_text(SCENARIO)
    runner = Runner(
        scenario.load(base / "s.yaml"),
        out=base / "reports",
        cache_dir=base / "cache",
        sample_interval=0.2,
    )
    outcome = runner.run()
    render_run(outcome.run_dir)
    return outcome.run_dir


def png_images(doc: lxml.html.HtmlElement) -> dict[str, Image.Image]:
    images = {}
    for img in doc.iter("img"):
        src = img.get("src")
        assert src.startswith("data:image/png;base64,")
        raw = base64.b64decode(src.split(",", 1)[1])
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"
        image = Image.open(io.BytesIO(raw))
        image.verify()
        images[img.get("id")] = Image.open(io.BytesIO(raw))
    return images


def test_summary_table_equals_the_medians_of_results_parquet(run_dir: Path) -> None:
    df = read_results(run_dir)
    measured = df[~df["warmup"]]
    doc = lxml.html.parse(str(run_dir / "report.html")).getroot()
    rows = doc.get_element_by_id("summary").xpath("./tbody/tr")
    assert [(r.get("data-step"), r.get("data-driver")) for r in rows] == [
        ("sdk-upload", "sdk"),
        ("sdk-list", "sdk"),
        ("sdk-aio-download", "sdk-aio"),
    ]
    # Listing moves no object bodies: no MiB/s, Gbit/s or MiB for it, but its objects/s.
    listing = {td.get("data-col"): td for td in rows[1].xpath("./td[@data-col]")}
    for col in ("throughput_mib_s", "throughput_gbit_s", "bytes"):
        assert listing[col].text_content() == "–", col
    listed = measured[measured.step == "sdk-list"]
    assert float(listing["ops_s"].get("data-value")) == pytest.approx(float(listed.ops_s.iloc[0]))
    assert int(listed.objects.iloc[0]) == 5
    for row in (rows[0], rows[2]):
        group = measured[measured.step == row.get("data-step")]
        cells = {td.get("data-col"): td.get("data-value") for td in row.xpath("./td[@data-col]")}
        assert int(cells["repeats"]) == len(group)
        for col in ("throughput_mib_s", "duration_s", "ops_s", "bytes", "objects"):
            assert float(cells[col]) == pytest.approx(float(group[col].median())), col
        shown = row.xpath("./td[@data-col='throughput_mib_s']")[0].text_content()
        assert shown == f"{group['throughput_mib_s'].median():,.1f}"
    assert doc.get_element_by_id("verdict").text == "FAIL"


def test_criteria_table_shows_verdicts_with_evidence(run_dir: Path) -> None:
    doc = lxml.html.parse(str(run_dir / "report.html")).getroot()
    rows = doc.get_element_by_id("criteria").xpath("./tbody/tr")
    cells = [[td.text_content().strip() for td in r.xpath("./td")] for r in rows]
    # A criterion that held on every step is one row naming the steps, not one row per step.
    assert [c[0] for c in cells] == ["nothing failed", "impossible speed"]
    assert [c[5] for c in cells] == ["PASS", "FAIL"]
    assert rows[0].get("data-count") == "3" and cells[0][1] == "all 3 steps"
    assert cells[0][4] == "0"
    assert cells[0][6].endswith("held on each of: sdk-upload, sdk-list, sdk-aio-download")
    df = read_results(run_dir)
    upload = df[(df.step == "sdk-upload") & ~df.warmup]["throughput_mib_s"]
    observed = float(rows[1].xpath("./td[@data-value]")[0].get("data-value"))
    assert observed == pytest.approx(float(upload.median()))
    assert "over 3 repeat(s)" in cells[1][6]


def test_charts_are_real_pngs(run_dir: Path) -> None:
    doc = lxml.html.parse(str(run_dir / "report.html")).getroot()
    images = png_images(doc)
    assert set(images) == {"throughput-chart", "resources-chart"}
    for image in images.values():
        assert image.format == "PNG" and image.width > 300 and image.height > 200
        # a chart, not a blank canvas: many distinct colours
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 16) or []) > 10


def test_junit_has_a_testcase_per_step_and_per_criterion(run_dir: Path) -> None:
    root = ET.parse(run_dir / "junit.xml").getroot()
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    steps = [c for c in cases if c.get("classname").endswith(".steps")]
    crits = [c for c in cases if c.get("classname").endswith(".criteria")]
    assert len(steps) == 3 and len(crits) == 4
    assert suite.get("tests") == "7" and suite.get("failures") == "1"
    listing = next(c for c in steps if c.get("name").startswith("sdk-list"))
    assert "objects/s" in listing.find("system-out").text
    assert "MiB/s" not in listing.find("system-out").text
    failed = [c for c in crits if c.find("failure") is not None]
    assert len(failed) == 1 and failed[0].get("name").startswith("impossible speed")


def test_compare_puts_runs_side_by_side_with_ratios(run_dir: Path, tmp_path: Path) -> None:
    twin = tmp_path / (run_dir.name + "-twin")
    shutil.copytree(run_dir, twin)
    path = compare_runs([run_dir, twin], tmp_path / "cmp")
    doc = lxml.html.parse(str(path)).getroot()
    table = doc.get_element_by_id("comparison")
    rows = table.xpath("./tbody/tr")
    # a step whose repeats spread more than 1.5x (small data is noisy) gets no ratio
    for i, row in enumerate(rows):
        ratio = row.xpath(".//td[@data-metric='throughput_mib_s:ratio']")[0].get("data-value")
        if row.xpath("./td[@data-unstable]"):
            assert ratio == "None"
        elif i == 1:
            assert float(ratio) != float(ratio)  # the listing has no throughput (NaN)
        else:
            assert float(ratio) == pytest.approx(1.0)
    values = [
        float(td.get("data-value"))
        for td in table.xpath(".//td[@data-label='reference #2'][@data-metric='throughput_mib_s']")
    ]
    summary = load_run(run_dir).results
    measured = summary[~summary.warmup]
    expected = [
        float(measured[measured.step == s]["throughput_mib_s"].median())
        for s in ("sdk-upload", "sdk-aio-download")
    ]
    assert [values[0], values[2]] == pytest.approx(expected)
    assert set(png_images(doc)) == {"throughput-chart"}


def test_grouped_verdicts_keep_each_failure_and_fold_the_passes() -> None:
    from harness.report import grouped_verdicts

    def verdict(step: str, observed: float, passed: bool, operation: str = "") -> dict:
        return {
            "criterion": "no errors",
            "expression": "failed == 0",
            "step": step,
            "driver": "sdk",
            "target": "reference",
            "operation": operation,
            "observed": observed,
            "passed": passed,
            "evidence": f"failed = {observed:g}",
        }

    rows = grouped_verdicts([verdict("a", 0, True), verdict("b", 2, False), verdict("c", 0, True)])
    assert [(r["step"], r["passed"], r["count"]) for r in rows] == [
        ("b", False, 1),
        ("the other 2 steps", True, 2),
    ]
    assert rows[0]["evidence"] == "failed = 2" and rows[1]["observed_text"] == "0"
    assert rows[1]["evidence"] == "failed == 0 held on each of: a, c"
    per_op = grouped_verdicts(
        [verdict("sweep", 0.5, True, "put_block"), verdict("sweep", 0.75, True, "get_range")]
    )
    assert [(r["step"], r["observed_text"]) for r in per_op] == [
        ("sweep (2 operations)", "0.500–0.750")
    ]
    assert per_op[0]["evidence"].endswith("sweep (put_block), sweep (get_range)")
