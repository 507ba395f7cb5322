"""`harness pilot`: the PDF and HTML carry every criterion, threshold, observed value, verdict
and evidence hash of the run; `harness pilot verify` notices an edited evidence file."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from pypdf import PdfReader

from harness.cli import main
from harness.report import load_run
from harness.validity import judge, run_rules

pytestmark = [pytest.mark.sdk]


def _measured(run_dir: Path, step: str) -> pd.DataFrame:
    rows = pd.read_parquet(run_dir / "results.parquet")
    return rows[(rows["step"] == step) & ~rows["warmup"].astype(bool)]


@pytest.fixture(scope="module")
def document(
    pilot_run: Path,
    pilot_file: Path,
    conformance_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, str]:
    pdf = tmp_path_factory.mktemp("doc") / "pilot.pdf"
    args = ["pilot", str(pilot_run), str(conformance_dir), "--pilot", str(pilot_file)]
    args += ["--out", str(pdf)]
    result = CliRunner().invoke(main, args)
    # One criterion fails and one is INVALID by design: the overall verdict is not PASS.
    assert result.exit_code == 1, result.output
    assert "overall: FAIL (4 PASS, 1 FAIL, 1 INVALID)" in result.output
    # the contract recorded during the run and the conformance gate are criteria too
    assert "PASS     no contract drift for azure-storage-blob 12." in result.output
    assert "PASS     conformance of reference: 100% of the contract" in result.output
    text = "\n".join(page.extract_text() for page in PdfReader(pdf).pages)
    return pdf, text


def test_every_criterion_threshold_observed_and_verdict(
    pilot_run: Path, conformance_dir: Path, document: tuple[Path, str]
) -> None:
    pdf, text = document
    flat = " ".join(text.split())
    upload, download = _measured(pilot_run, "sdk-upload"), _measured(pilot_run, "sdk-download")
    assert len(upload) == 2 and len(download) == 2  # warm-up excluded, the scenario's repeats
    objects = int(upload["objects"].min())
    mib_s = float(download["throughput_mib_s"].median())
    (gate,) = [t["summary"] for t in json.loads((conformance_dir / "conformance.json").read_text())]
    for expected in (
        "no failed transfers",
        "max(failed) == 0 failures",
        "upload moves 1,000 objects per repeat",
        "min(objects) >= 1000 objects",
        f"{objects} objects",
        "download throughput",
        "throughput_mib_s > 1 MiB/s",
        f"{mib_s:,.4g} MiB/s",
        "Overall verdict: FAIL",
        "Contoso AI",
        "Edge façade pilot (example)",
        "reference: 0.1.0",  # the façade build as the target reported it
        "Sign-off",
        "drift lines == 0",
        f"{gate['pass']} of {gate['pass']} passed, 0 skipped",
    ):
        assert expected in flat, expected
    # a long name wraps at its hyphens in the narrow column
    assert "nocontractdriftforazure-storage-blob12." in "".join(text.split())
    # each criterion's row carries its verdict; the INVALID one names its rule
    table = flat[flat.index("Criteria criterion") : flat.index("Validity rules and outcome")]
    names = ["no failed transfers", "no failed transfers", "upload moves", "download throughput"]
    verdicts = ["PASS", "PASS", "FAIL", "INVALID"]
    for name, verdict in zip(names, verdicts, strict=True):
        start = table.index(name)
        table = table[start + len(name) :]
        following = [table.find(n) for n in names if table.find(n) > 0]
        row = table[: min(following)] if following else table
        assert verdict in row, (name, row)
    assert "cache-bound (cache)" in row  # the INVALID row names its rule
    html = pdf.with_suffix(".html").read_text()
    assert "cache-bound (cache): dataset" in html and "INVALID" in html
    for value in download["throughput_mib_s"]:  # the repeats behind the observed value
        assert f"{value:,.4g}" in flat


def test_every_evidence_hash_is_printed_and_attached(
    pilot_run: Path, conformance_dir: Path, document: tuple[Path, str]
) -> None:
    pdf, text = document
    squeezed = "".join(text.split())
    info = json.loads((pilot_run / "run.json").read_text())
    files = [pilot_run / n for n in ("results.parquet", "samples.parquet", "run.json", "junit.xml")]
    files.append(Path(info["source"]["scenario"]))
    attached = json.loads(PdfReader(pdf).attachments["evidence.json"][0])["runs"]
    for path in files:
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        assert sha in squeezed, path
        assert sha in attached[pilot_run.name].values()
    for name in ("conformance.json", "conformance.junit.xml"):
        sha = hashlib.sha256((conformance_dir / name).read_bytes()).hexdigest()
        assert sha in squeezed and attached[conformance_dir.name][name] == sha


def test_verify_passes_then_fails_on_an_edited_evidence_file(
    pilot_run: Path, document: tuple[Path, str], tmp_path: Path
) -> None:
    pdf, _ = document
    cli = CliRunner()
    ok = cli.invoke(main, ["pilot", "verify", str(pdf), str(pilot_run)])
    assert ok.exit_code == 0, ok.output
    assert "all 5 evidence file(s) match the document" in ok.output
    copy = tmp_path / pilot_run.name
    shutil.copytree(pilot_run, copy, ignore=shutil.ignore_patterns("targets", "steps"))
    junit = copy / "junit.xml"
    junit.write_text(junit.read_text().replace('failures="0"', 'failures="1"', 1))
    bad = cli.invoke(main, ["pilot", "verify", str(pdf), str(copy)])
    assert bad.exit_code == 1, bad.output
    assert f"CHANGED  {pilot_run.name}/junit.xml" in bad.output
    assert f"OK       {pilot_run.name}/results.parquet" in bad.output
    (copy / "samples.parquet").unlink()
    gone = cli.invoke(main, ["pilot", "verify", str(pdf), str(copy)])
    assert gone.exit_code == 1 and f"MISSING  {pilot_run.name}/samples.parquet" in gone.output
    other = cli.invoke(main, ["pilot", "verify", str(pdf), str(tmp_path)])
    assert other.exit_code == 2 and "not one of the document's runs" in other.output


def test_validity_rules_name_what_broke(pilot_run: Path, tmp_path: Path) -> None:
    run = load_run(pilot_run)
    upload = {
        "criterion": "up",
        "expression": "min(objects) >= 1",
        "step": "sdk-upload",
        "driver": "sdk",
        "target": "reference",
        "observed": 13.0,
        "passed": True,
    }
    assert judge(upload, run).status == "PASS"
    rate = {**upload, "expression": "throughput_mib_s > 0"}
    spread = max(_measured(pilot_run, "sdk-upload")["throughput_mib_s"]) / min(
        _measured(pilot_run, "sdk-upload")["throughput_mib_s"]
    )
    # the stability bound is per KPI: below the observed spread the rule breaks, above it holds
    tight = judge(rate, run, {"throughput_mib_s": spread * 0.99})
    assert tight.status == "INVALID" and [o.rule for o in tight.broken] == ["stable"]
    assert judge(rate, run, {"throughput_mib_s": spread * 1.01}).status == "PASS"
    # a download rate on a dataset that fits in the page cache is cache-bound
    down = {**rate, "step": "sdk-download"}
    assert "cache" in [o.rule for o in judge(down, run, {"default": 100}).broken]
    # an upload whose objects were not all verified, and a client-bound row, are INVALID
    copy = tmp_path / pilot_run.name
    shutil.copytree(pilot_run, copy, ignore=shutil.ignore_patterns("targets", "steps"))
    rows = pd.read_parquet(copy / "results.parquet")
    last = rows.index[rows["step"] == "sdk-upload"][-1]
    rows.loc[last, "verified_objects"] = 12
    rows.at[last, "extra"] = json.dumps(
        {**json.loads(rows.at[last, "extra"]), "client_bound": True}
    )
    rows.to_parquet(copy / "results.parquet")
    edited = load_run(copy)
    broken = {o.rule for o in judge(rate, edited, {"default": 100}).broken}
    assert broken == {"verified", "client-saturated"}
    outcomes = run_rules(edited)
    assert any(o.rule == "verified" and not o.ok and "25 of 26" in o.detail for o in outcomes)
    # the environment is part of validity: a run whose scenario file is gone is INVALID
    info = json.loads((copy / "run.json").read_text())
    info["source"]["scenario"] = str(tmp_path / "gone.yaml")
    (copy / "run.json").write_text(json.dumps(info))
    env = judge(upload, load_run(copy))
    assert env.status == "INVALID" and "scenario file" in env.reason


def test_a_malformed_pilot_file_is_refused_with_its_line(pilot_run: Path, tmp_path: Path) -> None:
    bad = tmp_path / "pilot.yaml"
    bad.write_text("customer: X\ncriteria:\n  - {expect: p99_ms < fast}\n")
    result = CliRunner().invoke(main, ["pilot", str(pilot_run), "--pilot", str(bad)])
    assert result.exit_code == 2
    assert "pilot.yaml:3: criteria[0].expect: cannot parse" in result.output


def test_a_criterion_no_run_measured_is_invalid_not_dropped(
    pilot_run: Path, tmp_path: Path
) -> None:
    spec = tmp_path / "pilot.yaml"
    spec.write_text(
        "customer: X\ncriteria:\n"
        "  - {name: put from URL works, step: hydrate-copy, expect: max(failed) == 0}\n"
        "  - {name: no failed transfers, expect: max(failed) == 0}\n"
    )
    pdf = tmp_path / "p.pdf"
    result = CliRunner().invoke(
        main, ["pilot", str(pilot_run), "--pilot", str(spec), "--out", str(pdf)]
    )
    assert result.exit_code == 1, result.output
    assert "INVALID  put from URL works: max(failed) == 0 failures, observed –" in result.output
    assert "no run of the pilot measured it" in result.output
    # two PASS (one per step) and the recorded contract: nothing failed, one is not judged
    assert "overall: INVALID (3 PASS, 0 FAIL, 1 INVALID)" in result.output
    # an execution that failed (the criterion's ERROR) is INVALID too, naming the rule
    errored = {
        "criterion": "c",
        "expression": "max(failed) == 0",
        "step": "sdk-upload",
        "driver": "sdk",
        "target": "reference",
        "observed": None,
        "passed": False,
        "errored": True,
        "evidence": "not judged: 1 of 2 execution(s) failed (repeat 2): boom",
    }
    judged = judge(errored, load_run(pilot_run))
    assert judged.status == "INVALID" and "boom" in judged.reason
