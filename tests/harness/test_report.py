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
        ("sdk-aio-download", "sdk-aio"),
    ]
    for row in rows:
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
    assert [c[0] for c in cells] == ["nothing failed", "nothing failed", "impossible speed"]
    assert [c[5] for c in cells] == ["PASS", "PASS", "FAIL"]
    df = read_results(run_dir)
    upload = df[(df.step == "sdk-upload") & ~df.warmup]["throughput_mib_s"]
    observed = float(rows[2].xpath("./td[@data-value]")[0].get("data-value"))
    assert observed == pytest.approx(float(upload.median()))
    assert "over 3 repeat(s)" in cells[2][6]


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
    assert len(steps) == 2 and len(crits) == 3
    assert suite.get("tests") == "5" and suite.get("failures") == "1"
    failed = [c for c in crits if c.find("failure") is not None]
    assert len(failed) == 1 and failed[0].get("name").startswith("impossible speed")


def test_compare_puts_runs_side_by_side_with_ratios(run_dir: Path, tmp_path: Path) -> None:
    twin = tmp_path / (run_dir.name + "-twin")
    shutil.copytree(run_dir, twin)
    path = compare_runs([run_dir, twin], tmp_path / "cmp")
    doc = lxml.html.parse(str(path)).getroot()
    table = doc.get_element_by_id("comparison")
    ratios = [
        float(td.get("data-value"))
        for td in table.xpath(".//td[@data-metric='throughput_mib_s:ratio']")
    ]
    assert ratios == [pytest.approx(1.0), pytest.approx(1.0)]
    values = [
        float(td.get("data-value"))
        for td in table.xpath(f".//td[@data-label='{twin.name}'][@data-metric='throughput_mib_s']")
    ]
    summary = load_run(run_dir).results
    measured = summary[~summary.warmup]
    expected = [
        float(measured[measured.step == s]["throughput_mib_s"].median())
        for s in ("sdk-upload", "sdk-aio-download")
    ]
    assert values == pytest.approx(expected)
    assert set(png_images(doc)) == {"throughput-chart"}
