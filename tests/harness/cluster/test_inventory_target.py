"""`--target inventory`: the façade starts on the lab's server host over SSH, the SDK's calls
reach it at the host's namespace address, it stops at the end and its log comes home."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from harness.cluster.lab import SUBNET
from tests.harness.cluster.conftest import harness

pytestmark = pytest.mark.cluster

SCENARIO = """\
name: cluster-sdk
datasets:
  - name: few
    seed: 3
    files:
      - {count: 5, size: 4KiB, prefix: f}
steps:
  - {driver: sdk, operation: upload, dataset: few, prefix: up, concurrency: 2}
  - {driver: sdk, operation: list, prefix: up}
  - {driver: sdk, operation: download, dataset: few, prefix: up, concurrency: 2}
"""


def test_sdk_steps_run_against_the_facade_on_a_server_host(lab: Path, tmp_path: Path) -> None:
    scenario = tmp_path / "cluster-sdk.yaml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "reports"
    result = harness(
        "run", str(scenario), "--target", "inventory", "--inventory", str(lab),
        "--out", str(out), "--no-contract", "--cache-dir", str(tmp_path / "cache"),
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (run_dir,) = out.iterdir()
    facts = json.loads((run_dir / "run.json").read_text())["targets"]["inventory"]
    assert facts["endpoint"] == f"http://{SUBNET}.11:10000/devstoreaccount1"
    assert [h["name"] for h in facts["hosts"]] == ["h1", "h2"]
    assert facts["hosts"][0]["address"] == f"{SUBNET}.11" and facts["hosts"][0]["cpu_count"]
    log = (run_dir / "targets" / "inventory" / "servers" / "h1.log").read_text()
    assert f"listening on http://{SUBNET}.11:10000" in log
    # the blobs are files on h1's own data root, and its façade has stopped
    data = Path(lab.parent / "hosts" / "h1" / "work" / "data" / run_dir.name)
    blobs = [p for p in (data / "devstoreaccount1").rglob("*") if p.is_file()]
    assert len([p for p in blobs if "/up/" in str(p)]) == 5, blobs
    # every host sampled over SSH, on the controller's clock, h1's NIC carrying the blobs
    samples = pd.read_parquet(run_dir / "targets" / "inventory" / "host_samples.parquet")
    assert set(samples["host"]) == {"h1", "h2"}
    h1 = samples[samples["host"] == "h1"].sort_values("t")
    assert len(h1) >= 2 and h1["net_tx_bytes"].iloc[-1] - h1["net_tx_bytes"].iloc[0] > 5 * 4096
    assert facts["host_samples"] and facts["notes"] == []
    alive = subprocess.run(["pgrep", "-f", "--", f"--data-root {data}"], capture_output=True)
    assert alive.returncode == 1, "the façade on h1 still runs"


def test_run_refuses_an_inventory_target_without_its_file(tmp_path: Path) -> None:
    result = harness("run", "smoke", "--target", "inventory", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "--target inventory and --inventory FILE go together" in result.stderr
