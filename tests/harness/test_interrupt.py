"""Every stop leaves a report: SIGTERM mid-step (what a CI timeout sends) stops every process the
harness started, then writes the partial results, report.html, junit.xml and run.json marked
interrupted, and exits 143."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import lxml.html
import psutil
import pytest

from harness.runner import read_results

ROOT = Path(__file__).resolve().parents[2]

# AzCopy is a child process (with its own children) and never finishes a job in under ~2 s.
SCENARIO = """\
name: sigterm-check
datasets:
  - name: d
    seed: 11
    files:
      - {count: 64, size: 256KiB}
steps:
  - {name: up, driver: azcopy, operation: upload, dataset: d, prefix: t, concurrency: 4}
  - {name: ls, driver: sdk, operation: list, prefix: t}
criteria:
  - expect: max(failed) == 0
"""


def _wait_for_client(proc: subprocess.Popen, name: str, timeout_s: float = 120.0) -> None:
    """Poll (bounded in count and time) until a process called ``name`` runs under ``proc``."""
    deadline = time.monotonic() + timeout_s
    for _ in range(int(timeout_s * 10)):
        if proc.poll() is not None or time.monotonic() > deadline:
            break
        try:
            children = psutil.Process(proc.pid).children(recursive=True)
            if any(name in (c.name() or "") for c in children):
                return
        except psutil.Error:
            pass
        time.sleep(0.1)
    raise AssertionError(f"no {name} process appeared under the harness")


@pytest.mark.azcopy
def test_sigterm_mid_step_stops_every_child_and_writes_the_report(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(SCENARIO)
    out = tmp_path / "reports"
    argv = [sys.executable, "-m", "harness.cli", "run", str(tmp_path / "s.yaml"), "--out", str(out)]
    proc = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        _wait_for_client(proc, "azcopy")
        tree = psutil.Process(proc.pid).children(recursive=True)
        assert any("azcopy" in p.name() for p in tree)
        assert any("reference_server" in " ".join(p.cmdline()) for p in tree)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, output
    survivors = [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert survivors == [], [(p.pid, p.cmdline()) for p in survivors]

    (run_dir,) = out.iterdir()
    for name in ("results.parquet", "run.json", "report.html", "junit.xml"):
        assert (run_dir / name).is_file(), name
    info = json.loads((run_dir / "run.json").read_text())
    assert info["interrupted"] is True and info["interrupted_by"] == "SIGTERM"
    assert info["exit_code"] == 143 and info["executions_run"] == 1
    assert info["notes"] == ["interrupted by SIGTERM: results are partial"]
    up = read_results(run_dir).iloc[0]
    assert up.step == "up" and not up.ok
    assert up.error == "interrupted by SIGTERM mid-step; its client was stopped"
    assert info["first_failure"] == f"up [azcopy] @reference repeat 1: {up.error}"
    assert [v["errored"] for v in info["verdicts"]] == [True]
    junit = (run_dir / "junit.xml").read_text()
    assert 'name="run_status" value="interrupted (SIGTERM)"' in junit
    page = lxml.html.parse(str(run_dir / "report.html")).getroot()
    assert "interrupted by SIGTERM" in page.get_element_by_id("first-failure").text_content()
    assert page.get_element_by_id("interrupted").text_content() == "interrupted (SIGTERM)"
    assert f"report: {run_dir / 'report.html'}" in output
