"""`hosts:` steps that cannot succeed fail, naming the host: a client host without the step's
tool, a client host whose sshd dies mid-step (and stays down for the next step)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.cluster.lab import PREFIX, SUBNET
from harness.runner import host_rows, read_results, step_rows
from tests.harness.cluster.conftest import ROOT, harness

pytestmark = pytest.mark.cluster

SCENARIO = """\
name: {name}
datasets:
  - name: few
    seed: 5
    files:
      - {{count: 6, size: 2KiB}}
steps:
  - {{driver: {driver}, operation: upload, dataset: few, prefix: up, hosts: clients}}
  - {{driver: {driver}, operation: download, dataset: few, prefix: up, hosts: clients}}
"""
H4 = f"h4 (root@{SUBNET}.14:22)"


def scenario(tmp_path: Path, name: str, driver: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(SCENARIO.format(name=name, driver=driver))
    return path


def run_args(path: Path, lab: Path, tmp_path: Path) -> list[str]:
    return [
        "run", str(path), "--target", "inventory", "--inventory", str(lab),
        "--out", str(tmp_path / "reports"), "--cache-dir", str(tmp_path / "cache"),
    ]  # fmt: skip


def test_a_client_host_without_the_tool_fails_the_step_naming_host_and_tool(
    lab4: Path, tmp_path: Path
) -> None:
    work = lab4.parent / "hosts" / "h4" / "work"
    work.mkdir(parents=True, exist_ok=True)
    env = work / "host.env"
    env.write_text(f"LAB_AZCOPY={work}/bin/azcopy\n")  # h4's AzCopy would be there: it is not
    try:
        path = scenario(tmp_path, "no-azcopy", "azcopy")
        result = harness(*run_args(path, lab4, tmp_path), timeout=600)
    finally:
        env.unlink()
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-2000:]
    (run_dir,) = (tmp_path / "reports").iterdir()
    results = read_results(run_dir)
    up = step_rows(results).iloc[0]
    assert not up["ok"]
    missing = f"{H4}: azcopy is missing on this host (AzCopy not found ({work}/bin/azcopy))"
    assert missing in up["error"]
    hosts = host_rows(results)
    h3 = hosts[(hosts["step"] == up["step"]) & (hosts["host"] == "h3")].iloc[0]
    assert h3["ok"] and h3["objects"] == 3  # the host that has the tool did its share


def _kill_sshd(namespace: str) -> list[int]:
    """SIGKILL every sshd process (listener and sessions) of one lab namespace."""
    out = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True)
    killed = []
    for pid in map(int, out.stdout.split()):
        try:
            if Path(f"/proc/{pid}/comm").read_text().startswith("sshd"):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        except (OSError, ProcessLookupError):
            continue
    return killed


def test_a_client_host_down_mid_suite_fails_its_steps_never_passes(
    lab4: Path, tmp_path: Path
) -> None:
    # last in this module: h4 stays down
    path = scenario(tmp_path, "host-down", "sdk")
    runs = lab4.parent / "hosts" / "h4" / "work" / "runs"
    killed: list[int] = []

    def kill_when_h4_starts() -> None:
        for _ in range(2400):  # at most ~120 s: h4's step has begun once its log exists
            if list(runs.glob("*/sdk-upload/r0/remote.log")):
                killed.extend(_kill_sshd(f"{PREFIX}-h4"))
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_when_h4_starts, daemon=True)
    watcher.start()
    result = subprocess.run(
        [sys.executable, "-m", "harness.cli", *run_args(path, lab4, tmp_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )  # fmt: skip
    watcher.join(5)
    assert killed, "h4's step never started"
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-2000:]
    assert "verdict: PASS" not in result.stdout
    (run_dir,) = (tmp_path / "reports").iterdir()
    results = read_results(run_dir)
    up, down = (r for _, r in step_rows(results).iterrows())
    assert not up["ok"] and f"{H4}: the SSH connection was lost mid-step" in up["error"]
    assert not down["ok"] and f"{H4}: cannot connect: Connection refused" in down["error"]
    hosts = host_rows(results)
    assert hosts[hosts["host"] == "h3"]["ok"].all()  # the other host's work stands
    assert list(hosts[hosts["host"] == "h3"]["verified_objects"]) == [3, 3]
