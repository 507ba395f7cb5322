"""`cluster-smoke` on a 4-host lab: every client driver from both client hosts at once against
the façade on a server host, merged exactly, verified, with samples of every host."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from harness.runner import host_rows, read_results, step_rows
from tests.harness.cluster.conftest import harness

pytestmark = pytest.mark.cluster

DRIVERS = ("sdk", "azcopy", "boostedblob", "rclone")


def test_cluster_smoke_passes_from_two_client_hosts(lab4: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    result = harness(
        "run", "cluster-smoke", "--target", "inventory", "--inventory", str(lab4),
        "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    assert "verdict: PASS" in result.stdout
    (run_dir,) = out.iterdir()
    results = read_results(run_dir)
    steps, hosts = step_rows(results), host_rows(results)
    on_hosts = steps[~steps["step"].isin(["seed", "distributed-load"])]
    assert {f"{d}-{op}" for d in DRIVERS for op in ("upload", "download")} < set(on_hosts["step"])
    for _, step in on_hosts.iterrows():
        mine = hosts[hosts["step"] == step["step"]]
        assert sorted(mine["host"]) == ["h3", "h4"], step["step"]
        assert mine["ok"].all() and step["ok"] and step["host"] == "h3,h4"
        # merged exactly: totals are the hosts' sums, the span covers every host's run
        for column in ("bytes", "objects", "verified_objects", "failed"):
            assert step[column] == mine[column].sum(), (step["step"], column)
        ends = mine["started_at"] + mine["duration_s"]
        assert step["started_at"] == mine["started_at"].min()
        assert step["duration_s"] == pytest.approx(ends.max() - step["started_at"])
        assert step["extra"]["first_done_s"] <= step["extra"]["last_done_s"]
        expected = 28 if step["step"] == "everyone-reads" else 14  # two full reads vs shares
        assert step["verified_objects"] == expected, step["step"]
    # a split share: each host moved its own half, under its own prefix
    split = hosts[hosts["step"] == "azcopy-upload"]
    assert list(split["objects"]) == [7, 7]
    argv = {r["host"]: r["extra"]["argv"] for _, r in split.iterrows()}
    assert "/cluster-smoke/azcopy/h3/" in argv["h3"] and "/cluster-smoke/azcopy/h4/" in argv["h4"]
    # Locust: the master here, a worker on each load host, both workers' histograms merged
    (load,) = [r for _, r in steps.iterrows() if r["step"] == "distributed-load"]
    assert load["ok"] and load["objects"] > 0 and load["failed"] == 0
    assert load["extra"]["workers_expected"] == 2 and load["extra"]["workers_lost"] == []
    assert {name.split()[0] for name in load["extra"]["worker_names"]} == {"h3", "h4"}
    # the run's samples: the controller's own rows and every host's, over SSH
    samples = pd.read_parquet(run_dir / "samples.parquet")
    assert set(samples["host"]) == {"controller", "h1", "h2", "h3", "h4"}
    assert (samples[samples["host"] == "h3"]["step"] == "azcopy-upload").any()
    info = json.loads((run_dir / "run.json").read_text())
    assert info["passed"] and info["exit_code"] == 0
    page = (run_dir / "report.html").read_text()
    assert 'id="host-rows"' in page and 'id="hosts-chart"' in page
    assert 'data-step="rclone-download" data-host="h4"' in page
