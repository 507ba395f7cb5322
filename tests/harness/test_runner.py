"""End to end: a tiny scenario with the real SDK driver against the real reference façade."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import psutil
import pytest

from harness import scenario
from harness.datasets import generate_dataset
from harness.runner import Runner, plan, read_results

pytestmark = [pytest.mark.sdk]

TINY = """\
name: tiny-e2e
description: SDK round trip on the reference façade
datasets:
  - name: few
    seed: 5
    files:
      - {count: 6, size_min: 1KiB, size_max: 32KiB, dir_depth: 1, prefix: small}
      - {count: 1, size: 9MiB, prefix: large}
steps:
  - {driver: sdk, operation: upload, dataset: few, prefix: e2e, concurrency: 4}
  - {driver: sdk, operation: list, prefix: e2e}
  - {driver: sdk-aio, operation: download, dataset: few, prefix: e2e, repeats: 2, warmup: 1}
  - {name: download-missing, driver: sdk, operation: download, dataset: few, prefix: nothing-here}
  - {driver: sdk, operation: remove, prefix: e2e}
criteria:
  - {step: sdk-list, expect: objects == 7}
  - {step: sdk-aio-download, expect: min(verified_objects) == 7}
  - {step: sdk-upload, expect: failed == 0}
"""


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("e2e")
    (base / "tiny.yaml").write_text(TINY)
    sc = scenario.load(base / "tiny.yaml")
    runner = Runner(sc, out=base / "reports", cache_dir=base / "cache", sample_interval=0.2)
    result = runner.run()
    result.runner = runner  # type: ignore[attr-defined]
    return result


def test_plan_orders_warmups_before_repeats(tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(TINY)
    executions = plan(scenario.load(tmp_path / "tiny.yaml"), "reference")
    labels = [(e.step.name, e.warmup, e.repeat) for e in executions]
    assert labels[2:5] == [
        ("sdk-aio-download", True, 0),
        ("sdk-aio-download", False, 0),
        ("sdk-aio-download", False, 1),
    ]
    assert len(executions) == 7


def test_run_directory_has_every_artifact(outcome) -> None:
    run_dir = outcome.run_dir
    assert run_dir.parent.name == "reports" and run_dir.name.endswith("-tiny-e2e")
    for name in ("results.parquet", "samples.parquet", "run.json", "targets/reference/server.log"):
        assert (run_dir / name).is_file(), name


def test_results_measure_real_transfers(outcome) -> None:
    df = read_results(outcome.run_dir)
    dataset = generate_dataset(outcome.runner.scenario.dataset("few"), outcome.runner.cache_dir, 5)
    assert len(df) == 7 and df["warmup"].sum() == 1
    up = df[df.step == "sdk-upload"].iloc[0]
    assert up.ok and up.objects == 7 and up.bytes == dataset.total_bytes and up.duration_s > 0
    assert up.throughput_mib_s == pytest.approx(up.bytes / 2**20 / up.duration_s)
    assert up.p50_ms is not None and up.client_rss_mib_max > 0
    listed = df[df.step == "sdk-list"].iloc[0]
    assert listed.objects == 7
    downloads = df[df.step == "sdk-aio-download"]
    assert (downloads.verified_objects == 7).all()
    assert (downloads.verified_bytes == dataset.total_bytes).all()
    assert isinstance(up.errors_by_status, dict) and isinstance(up.extra, dict)


def test_a_failed_step_fails_the_run_with_its_reason(outcome) -> None:
    df = read_results(outcome.run_dir)
    missing = df[df.step == "download-missing"].iloc[0]
    assert not missing.ok and missing.error
    assert outcome.exit_code == 1
    assert all(v.passed for v in outcome.verdicts), [v.evidence for v in outcome.verdicts]


def test_run_json_records_scenario_versions_host_git_and_target(outcome) -> None:
    info = json.loads((outcome.run_dir / "run.json").read_text())
    assert info["scenario"]["name"] == "tiny-e2e"
    assert info["scenario"]["steps"][2]["warmup"] == 1  # the resolved scenario
    assert info["tool_versions"]["sdk"]["azure-storage-blob"]
    assert info["host"]["cpus_logical"] >= 1 and info["host"]["python"]
    assert "revision" in info["git"]
    assert info["targets"]["reference"]["port"] > 0
    assert info["executions_run"] == info["executions_planned"] == 7
    assert len(info["verdicts"]) == 3


def test_samples_cover_client_and_server_and_targets_are_stopped(outcome) -> None:
    samples = pd.read_parquet(outcome.run_dir / "samples.parquet")
    assert set(samples["role"]) == {"client", "server"}
    assert (samples["rss_mib"] > 0).all()
    assert set(samples[samples.role == "server"]["target"]) == {"reference"}
    server = outcome.runner.targets["reference"]
    assert server.server is None or not server.server_pids()
    port = json.loads((outcome.run_dir / "run.json").read_text())["targets"]["reference"]["port"]
    assert all(
        c.laddr.port != port
        for c in psutil.net_connections("tcp")
        if c.status == psutil.CONN_LISTEN
    )
