"""A step that overruns its timeout is stopped and reported failed; the run goes on."""

from __future__ import annotations

import threading
from pathlib import Path

import psutil
import pytest

from harness import scenario
from harness.runner import Runner, RunOutcome, read_results
from harness.tools import azcopy_path

# 400 uploads cannot finish in 0.1 s; the list step after it counts what got there.
SDK_OVERRUN = """\
name: overrun-sdk
datasets:
  - name: many
    seed: 4
    files:
      - {count: 400, size: 1KiB}
steps:
  - {name: up, driver: sdk-aio, operation: upload, dataset: many, prefix: t, concurrency: 1,
     timeout: 0.1}
  - {name: ls, driver: sdk, operation: list, prefix: t}
"""

# An AzCopy job never ends in under ~2 s (it polls its status every 2 s).
AZCOPY_OVERRUN = """\
name: overrun-azcopy
datasets:
  - name: few
    seed: 4
    files:
      - {count: 5, size: 4KiB}
steps:
  - {name: up, driver: azcopy, operation: upload, dataset: few, prefix: t, timeout: 0.5}
  - {name: ls, driver: sdk, operation: list, prefix: t}
"""


def _run(tmp_path: Path, text: str) -> RunOutcome:
    (tmp_path / "s.yaml").write_text(text)
    runner = Runner(
        scenario.load(tmp_path / "s.yaml"), out=tmp_path / "reports", cache_dir=tmp_path / "cache"
    )
    return runner.run()


def _step(run_dir: Path, name: str):
    df = read_results(run_dir)
    return df[(df.step == name) & (df.row_kind == "step")].iloc[0]


@pytest.mark.sdk
def test_an_in_process_client_is_stopped_at_its_timeout(tmp_path: Path) -> None:
    outcome = _run(tmp_path, SDK_OVERRUN)
    up = _step(outcome.run_dir, "up")
    assert not up.ok
    assert up.error.startswith("timed out: the step overran its timeout of 0.1 s and was stopped")
    assert up.extra["timed_out"] is True and up.extra["timeout_s"] == 0.1
    assert "left to finish in the background" not in up.error  # it did stop
    assert not [t for t in threading.enumerate() if t.name == "step-up"]
    listed = _step(outcome.run_dir, "ls")  # the run went on with the next step
    assert listed.ok and 0 <= listed.objects < 400
    assert outcome.exit_code == 1


@pytest.mark.azcopy
def test_a_client_process_is_killed_at_its_timeout(tmp_path: Path) -> None:
    outcome = _run(tmp_path, AZCOPY_OVERRUN)
    up = _step(outcome.run_dir, "up")
    assert not up.ok and up.error.startswith("timed out: the step overran its timeout of 0.5 s")
    azcopy = str(azcopy_path())
    survivors = []
    for proc in psutil.process_iter(["exe", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["exe"] == azcopy and str(tmp_path) in " ".join(cmdline):
            survivors.append(proc.pid)
    assert survivors == []
    assert _step(outcome.run_dir, "ls").ok
    assert outcome.exit_code == 1
