"""`harness contract check-latest` with "newest" pinned to the lab's installed clients (no
network): the replay matches the locked contracts (exit 0), a locked contract edited in a copy
is drift (exit 1), and an install that cannot happen is exit 2 with the reason."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from harness.cli import main
from harness.contract.record import CONTRACTS_DIR

SDK_ONLY = """\
name: latest-sdk
datasets:
  - name: few
    seed: 5
    files:
      - {count: 3, size: 4KiB}
steps:
  - {driver: sdk, operation: upload, dataset: few, prefix: up}
  - {driver: sdk, operation: list, prefix: up}
"""


def check_latest(tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(
        main,
        ["contract", "check-latest", "--newest", "installed", "--out", str(tmp_path / "out"),
         "--cache-dir", str(tmp_path / "cache"), *args],
    )  # fmt: skip


@pytest.mark.timeout(240)
def test_the_installed_clients_replay_the_smoke_scenario_without_drift(tmp_path: Path) -> None:
    result = check_latest(tmp_path, "--scenario", "smoke")
    assert result.exit_code == 0, result.output
    for slug in ("azcopy-10.32.2", "azure-storage-blob-12.31.1", "boostedblob-1.1.0",
                 "rclone-1.75.2"):  # fmt: skip
        tool, version = slug.rsplit("-", 1)
        assert f"{tool} {version}: no drift against {slug}" in result.output
    assert "check-latest: no drift" in result.output
    # "newest" is what the lab has: nothing to install, no scratch environment
    assert not (tmp_path / "cache" / "check-latest").exists()
    record = json.loads((tmp_path / "out" / "check-latest.json").read_text())
    assert record["drifted"] is False and record["scenarios"] == ["smoke"]
    cases = ET.parse(tmp_path / "out" / "check-latest.junit.xml").getroot().iter("testcase")
    assert sorted(c.get("name") for c in cases if c.find("failure") is None) == [
        "azcopy 10.32.2", "azure-storage-blob 12.31.1", "boostedblob 1.1.0", "rclone 1.75.2"
    ]  # fmt: skip


@pytest.mark.timeout(180)
def test_a_locked_contract_that_differs_is_drift_and_exit_1(tmp_path: Path) -> None:
    contracts = tmp_path / "contracts"
    shutil.copytree(CONTRACTS_DIR, contracts)
    path = contracts / "azure-storage-blob-12.31.1.yaml"
    locked = yaml.safe_load(path.read_text())
    put_blob = next(op for op in locked["operations"] if op["operation"] == "Put Blob")
    put_blob["headers"].remove("x-ms-blob-type")  # as if the release before never sent it
    path.write_text(yaml.safe_dump(locked, sort_keys=False))
    scenario = tmp_path / "latest-sdk.yaml"
    scenario.write_text(SDK_ONLY)
    result = check_latest(tmp_path, "--scenario", str(scenario), "--dir", str(contracts))
    assert result.exit_code == 1, result.output
    assert "drift azure-storage-blob 12.31.1 new-header: Put Blob x-ms-blob-type" in result.output
    assert "check-latest: drift in azure-storage-blob" in result.output
    root = ET.parse(tmp_path / "out" / "check-latest.junit.xml").getroot()
    [failure] = root.iter("failure")
    assert failure.get("type") == "ContractDrift" and "x-ms-blob-type" in failure.get("message")


def test_an_install_that_fails_is_exit_2_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A version the lab does not have must be installed; the index is a closed loopback port.
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    result = check_latest(tmp_path, "--pin", "azure-storage-blob=12.0.0", "--scenario", "smoke")
    assert result.exit_code == 2, result.output
    assert "check-latest: install failed: pip install azure-storage-blob==12.0.0: exit 1" in (
        result.output
    )
    assert not (tmp_path / "out").exists()
