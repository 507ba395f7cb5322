"""Distributed Locust on the lab: the master here, listening on the lab bridge, one worker on
each `load` host over SSH; their histograms come home and merge; a worker killed mid-run is
reported lost (which, when, how many expected) and fails the step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from harness.cluster.lab import BRIDGE_ADDRESS, PREFIX
from harness.drivers.base import StepContext
from harness.drivers.locust import LocustDriver
from harness.targets.base import DEV_ACCOUNT, DEV_KEY, Endpoint
from tests.harness.cluster.conftest import ROOT

SCENARIO = """\
name: cluster-locust
steps:
  - name: load
    driver: locust
    operation: load
    options:
      workers_on: load
      mix: {put_block: 1}
      users: 4
      level_duration_s: 10
      ramp_s: 2
      block_size: 4KiB
"""


def _run(scenario: Path, inventory: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "harness.cli", "run", str(scenario), "--target", "inventory",
        "--inventory", str(inventory), "--out", str(out), "--no-contract",
    ]  # fmt: skip


def _step(out: Path) -> tuple[pd.Series, dict]:
    (run_dir,) = out.iterdir()
    results = pd.read_parquet(run_dir / "results.parquet")
    row = results[results["row_kind"] == "step"].iloc[0]
    return row, json.loads((run_dir / "run.json").read_text())


def _worker_pids(namespace: str) -> list[int]:
    pids = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True)
    found = []
    for pid in pids.stdout.split():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"locust" in b" ".join(cmdline) and b"--worker" in cmdline:
            found.append(int(pid))
    return found


@pytest.mark.cluster
def test_workers_on_the_load_hosts_are_merged(wan_lab: Path, tmp_path: Path) -> None:
    scenario = tmp_path / "cluster-locust.yaml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "reports"
    result = subprocess.run(
        _run(scenario, wan_lab, out), capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    row, _ = _step(out)
    extra = json.loads(row["extra"])
    assert row["ok"] and row["objects"] > 0 and row["failed"] == 0
    assert extra["workers_expected"] == 2 and extra["workers_lost"] == []
    names = extra["worker_names"]
    assert [n.split()[0] for n in names] == ["h2", "h3"], names
    (run_dir,) = out.iterdir()
    step_dir = run_dir / "steps" / "load" / "inventory" / "r0"
    hist = sorted(p.name for p in (step_dir / "histograms").glob("*.jsonl"))
    # one histogram file per worker, from each host, merged into the row's counts
    assert [h.split("-")[0] for h in hist] == ["h2", "h3"], hist
    lines = [json.loads(x) for p in (step_dir / "histograms").glob("*.jsonl")
             for x in p.read_text().splitlines()]  # fmt: skip
    assert sum(b["ok"] for b in lines) >= row["objects"]
    # the master listened on the lab bridge, where the namespaces reach it
    assert extra["master_bind"] == BRIDGE_ADDRESS
    assert (step_dir / "h2-worker-0.log").exists() and (step_dir / "h3-worker-1.log").exists()
    assert _worker_pids(f"{PREFIX}-h2") == [] and _worker_pids(f"{PREFIX}-h3") == []


@pytest.mark.cluster
def test_a_worker_killed_mid_run_is_reported_lost(wan_lab: Path, tmp_path: Path) -> None:
    scenario = tmp_path / "cluster-locust.yaml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "reports"
    run = subprocess.Popen(
        _run(scenario, wan_lab, out),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env={**os.environ},
    )
    try:
        # the shape writes its timeline when the test starts, both workers connected
        started = False
        deadline = time.monotonic() + 180
        while not started and time.monotonic() < deadline and run.poll() is None:
            started = any(out.glob("*/steps/load/inventory/r0/histograms/timeline.json"))
            time.sleep(0.5)
        victim = _worker_pids(f"{PREFIX}-h3")
        assert started and victim, "the load did not start with a worker on h3"
        time.sleep(3)  # inside the level's steady window
        os.kill(victim[0], signal.SIGKILL)
        output, _ = run.communicate(timeout=300)
    finally:
        run.kill()
    assert run.returncode == 1, output[-3000:]
    row, info = _step(out)
    extra = json.loads(row["extra"])
    assert not row["ok"]
    assert row["error"].startswith("1 of 2 Locust worker(s) lost mid-run: h3 worker 1 (pid "), row[
        "error"
    ]
    assert "(exit 137)" in row["error"]  # SIGKILL, as the remote shell saw it
    (lost,) = extra["workers_lost"]
    assert lost["worker"] == f"h3 worker 1 (pid {victim[0]})" and lost["exit"] == 137
    assert 3 <= lost["at_s"] < 10  # within the 10 s level, after the kill
    assert extra["workers_expected"] == 2
    assert "lost mid-run" in info["first_failure"]
    report = (out / next(out.iterdir()).name / "report.html").read_text()
    assert "lost mid-run: h3 worker 1" in report


def test_workers_on_needs_the_inventory_target(tmp_path: Path) -> None:
    ctx = StepContext(
        scenario="s", step="load", operation="load", container="c", workdir=tmp_path,
        endpoint=Endpoint("url", DEV_ACCOUNT, "http://127.0.0.1:1/devstoreaccount1", key=DEV_KEY),
        options={"workers_on": "load", "mix": {"put_block": 1}},
    )  # fmt: skip
    with pytest.raises(ValueError, match="it needs the inventory target"):
        LocustDriver().prepare(ctx)
