"""`harness nightly SUITE.yaml`: two real nights of the shipped local suite on the embedded
façade, a night on provisioned hosts (fake ARM) whose gate fails, and the regression verdicts
of a night against a synthetic history."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from harness.cli import main
from harness.history.records import run_rows
from harness.history.store import HistoryStore
from harness.nightly.night import Night, RunRecord, _finish, _record_history
from harness.nightly.suite import NightlySuite
from harness.provision.fake_arm import FakeArmServer, quota_failure
from harness.results import MIB, StepResult
from harness.runner import results_frame, write_results

ROOT = Path(__file__).resolve().parents[3]
SUITE = ROOT / "scenarios" / "suites" / "nightly-local.yaml"


def nightly(*args: str) -> Result:
    return CliRunner().invoke(main, ["nightly", *args, "--sample-interval", "0.5"])


@pytest.mark.timeout(170)
def test_two_nights_of_the_local_suite_make_a_history_and_a_trend_page(tmp_path: Path) -> None:
    history, out = tmp_path / "h.duckdb", tmp_path / "nights"
    for _ in range(2):
        result = nightly(str(SUITE), "--history", str(history), "--out", str(out))
        assert result.exit_code == 0, result.output
        assert "nightly nightly-local: exit 0" in result.output
    nights = sorted(out.iterdir())
    assert len(nights) == 2
    with HistoryStore(str(history)) as store:
        runs = store.runs()
    assert sorted(runs["scenario"]) == ["night-load", "night-load", "night-sdk", "night-sdk"]
    # each run is a point of its series (nights have one-second resolution: two scenarios of one
    # night may share a second, two nights of one scenario never do)
    per_scenario = runs.groupby("scenario")["night"].nunique().to_dict()
    assert per_scenario == {"night-load": 2, "night-sdk": 2}

    last = nights[-1]
    page = (last / "history" / "history.html").read_text()
    assert page.count("<img") >= 1  # two nights: the varying series are charted
    root = ET.parse(last / "junit.xml").getroot()
    names = [s.get("name") for s in root.findall("testsuite")]
    assert names == ["night-sdk@reference", "night-load@reference", "regressions"]
    assert root.get("failures") == "0"
    regressions = root.findall("testsuite")[-1]
    # One testcase per KPI verdict; with 1 repeat a night none can be judged: skipped, saying why.
    cases = regressions.findall("testcase")
    assert cases and all(c.find("skipped") is not None for c in cases)
    assert "1 repeat(s) tonight (< 5)" in cases[0].find("skipped").get("message")
    summary = (last / "night.html").read_text()
    assert 'id="verdict"><span class="pass">PASS' in summary
    assert 'href="history/history.html"' in summary

    record = json.loads((last / "night.json").read_text())
    assert record["exit_code"] == 0
    assert record["harness_revision"]["revision"]
    assert record["controller"]["cpus_logical"] >= 1
    sdk = record["runs"][0]
    assert sdk["facade_build"].startswith("reference: ")
    assert "azure-storage-blob" in sdk["tool_versions"]["sdk"]
    run_info = json.loads((Path(sdk["run_dir"]) / "run.json").read_text())
    assert run_info["night"]["suite"] == "nightly-local"


FAILING = """\
name: night-bad
repeats: 1
warmup: 0
datasets:
  - name: d
    files:
      - {count: 2, size: 4KiB}
steps:
  - {driver: sdk, operation: upload, dataset: d, prefix: c}
  - {driver: sdk, operation: list, prefix: c}
criteria:
  - {name: lists three, step: sdk-list, expect: objects == 3}
"""


@pytest.fixture
def arm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeArmServer]:
    monkeypatch.setenv("LAB_CA_DIR", str(tmp_path / "ca"))
    with FakeArmServer(tmp_path / "ca") as server:
        monkeypatch.setenv("HARNESS_ARM_URL", server.url)
        monkeypatch.setenv("HARNESS_ARM_TOKEN", "test-token")
        monkeypatch.setenv("HARNESS_ARM_POLL_S", "0")
        yield server


def _provisioned_suite(tmp_path: Path) -> Path:
    key = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    spec = {
        "name": "nt",
        "subscription": "00000000-0000-0000-0000-0000000000bb",
        "location": "eastus",
        "resource_group": "lab-nt",
        "controller_cidr": "198.51.100.7/32",
        "ssh": {"public_key_file": f"{key}.pub", "private_key_file": str(key), "wait_s": 0},
        "vms": [{"name": "srv", "role": "server", "size": "Standard_L16as_v5"}],
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    (tmp_path / "bad.yaml").write_text(FAILING)
    suite = {"name": "nt", "scenarios": ["bad.yaml"], "provision": "spec.yaml", "contract": False}
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    return tmp_path / "suite.yaml"


@pytest.mark.timeout(120)
def test_a_failed_gate_fails_the_night_and_the_hosts_are_still_deleted(
    arm: FakeArmServer, tmp_path: Path
) -> None:
    suite = _provisioned_suite(tmp_path)
    args = [str(suite), "--history", str(tmp_path / "h.duckdb"), "--out", str(tmp_path / "n")]
    result = nightly(*args, "--ca-bundle", str(arm.ca_bundle))
    assert result.exit_code == 1, result.output
    (night,) = (tmp_path / "n").iterdir()
    inventory = yaml.safe_load((night / "inventory.yaml").read_text())
    assert [h["facts"]["vm_size"] for h in inventory["hosts"]] == ["Standard_L16as_v5"]
    assert arm.arm.resources == {}  # deprovisioned after the failed gate
    root = ET.parse(night / "junit.xml").getroot()
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert [c.get("name") for c in suites["provisioning"].findall("testcase")] == [
        "provision",
        "deprovision",
    ]
    assert suites["provisioning"].get("failures") == "0"
    failed = [c.get("name") for c in suites["night-bad@reference"].iter("testcase")
              if c.find("failure") is not None]  # fmt: skip
    assert failed == ["lists three (sdk-list/sdk/reference)"]
    record = json.loads((night / "night.json").read_text())
    assert record["hosts"][0]["name"] == "srv-0"


def test_a_quota_refusal_runs_nothing_and_still_deprovisions(
    arm: FakeArmServer, tmp_path: Path
) -> None:
    suite = _provisioned_suite(tmp_path)
    arm.arm.failures.append(quota_failure("srv-0"))
    args = [str(suite), "--history", str(tmp_path / "h.duckdb"), "--out", str(tmp_path / "n")]
    result = nightly(*args, "--ca-bundle", str(arm.ca_bundle))
    assert result.exit_code == 3, result.output
    assert "provision failed: VM srv-0: Azure answered 409 OperationNotAllowed" in result.output
    (night,) = (tmp_path / "n").iterdir()
    assert not (night / "runs").exists()
    assert arm.arm.resources == {}
    assert [c.short() for c in arm.arm.calls if c.method == "DELETE"] == [
        "DELETE resourcegroups/lab-nt"
    ]
    case = ET.parse(night / "junit.xml").getroot().find("testsuite[@name='provisioning']/testcase")
    assert case.get("name") == "provision" and case.find("failure") is not None
    assert "No scenario ran: provisioning failed" in (night / "night.html").read_text()


def _run(out: Path, day: int, mib_s: list[float]) -> Path:
    """A synthetic run directory of scenario `nightly` (SDK upload, 5 repeats)."""
    started = datetime(2026, 11, 1, 1, 0, tzinfo=UTC) + timedelta(days=day)
    run_dir = out / f"{started:%Y%m%dT%H%M%SZ}-nightly"
    run_dir.mkdir(parents=True)
    results = [
        StepResult(
            scenario="nightly", step="sdk-upload", driver="sdk", operation="upload",
            target="reference", repeat=i, bytes=64 * MIB, objects=8, duration_s=64 / v,
        )
        for i, v in enumerate(mib_s)
    ]  # fmt: skip
    write_results(run_dir, results_frame(results))
    info = {
        "started_at": started.isoformat(),
        "passed": True,
        "tool_versions": {"sdk": {"azure-storage-blob": "12.31.1"}},
        "host": {"cpu_model": "EPYC", "cpus_logical": 2, "memory_gib": 8},
        "git": {"revision": "abc", "dirty": False},
        "targets": {"reference": {"kind": "reference", "version": "0.1.0"}},
        "interrupted": False,
    }
    (run_dir / "run.json").write_text(json.dumps(info))
    return run_dir


@pytest.mark.parametrize(("tonight", "code"), [(300.0, 1), (400.0, 0)])
def test_tonight_worse_than_the_last_nights_fails_the_night(
    tmp_path: Path, tonight: float, code: int
) -> None:
    history = str(tmp_path / "h.duckdb")
    with HistoryStore(history) as store:
        for day in range(6):
            store.add(run_rows(_run(tmp_path / "runs", day, [400 + d for d in range(-4, 6, 2)])))
    last = _run(tmp_path / "runs", 6, [tonight + d for d in range(-4, 6, 2)])
    suite = NightlySuite(name="n", scenarios=["x"])
    night_dir = tmp_path / "night"
    night_dir.mkdir()
    night = Night(suite, night_dir, history, started_at="2026-11-07T01:00:00+00:00")
    night.runs = [RunRecord("nightly", "reference", str(last), 0, True, False, "0.1.0", {})]
    _record_history(night, lambda _: None)
    _finish(night, tmp_path / "suite.yaml")
    assert night.exit_code == code
    cases = (
        ET.parse(night_dir / "junit.xml")
        .getroot()
        .findall("testsuite[@name='regressions']/testcase")
    )
    throughput = [c for c in cases if c.get("name").endswith("throughput_mib_s")]
    assert len(throughput) == 1
    failure = throughput[0].find("failure")
    if code:
        assert failure is not None and "WORSE vs last nights" in failure.get("message")
        assert 'class="fail">REGRESSION' in (night_dir / "night.html").read_text()
    else:
        assert failure is None and throughput[0].find("skipped") is None


def test_a_bad_suite_or_scenario_is_exit_2_before_anything_runs(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: b\nscenarios: [smoke]\ntargets: [moon]\n")
    result = nightly(str(bad), "--out", str(tmp_path / "n"))
    assert result.exit_code == 2
    assert (
        "bad.yaml:3: targets: " in result.output and "unknown target(s) ['moon']" in result.output
    )
    bad.write_text("name: b\nscenarios: [smoke, no-such-scenario]\n")
    result = nightly(str(bad), "--out", str(tmp_path / "n"))
    assert result.exit_code == 2 and "no-such-scenario: no such scenario file" in result.output
    assert not (tmp_path / "n").exists()


TINY_SDK = """\
name: night-tiny
repeats: 1
warmup: 0
datasets:
  - name: d
    files:
      - {count: 2, size: 4KiB}
steps:
  - {driver: sdk, operation: upload, dataset: d, prefix: t}
  - {driver: sdk, operation: list, prefix: t}
"""


@pytest.mark.timeout(240)
def test_check_latest_is_a_night_step_with_its_testcases_in_the_junit(tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(TINY_SDK)
    suite = {"name": "cl", "scenarios": ["tiny.yaml"], "targets": ["reference"],
             "contract": False, "check_latest": ["tiny.yaml"]}  # fmt: skip
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    args = [str(tmp_path / "suite.yaml"), "--history", str(tmp_path / "h.duckdb")]
    args += ["--out", str(tmp_path / "n"), "--cache-dir", str(tmp_path / "cache")]
    # "newest" pinned to the lab's own clients: no network, nothing to install
    result = nightly(*args, "--newest", "installed")
    assert result.exit_code == 0, result.output
    assert "check-latest (azure-storage-blob 12.31.1): no drift" in result.output
    (night,) = (tmp_path / "n").iterdir()
    suites = {s.get("name"): s for s in ET.parse(night / "junit.xml").getroot()}
    [case] = suites["contract check-latest"].findall("testcase")
    assert case.get("name") == "azure-storage-blob 12.31.1" and case.find("failure") is None
    record = json.loads((night / "night.json").read_text())
    assert [(c["name"], c["exit_code"]) for c in record["checks"]] == [("check-latest", 0)]
    assert "check-latest" in (night / "night.html").read_text()


def test_night_steps_are_validated_before_anything_runs(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: b\nscenarios: [smoke]\nconformance: {target: moon}\n")
    result = nightly(str(bad), "--out", str(tmp_path / "n"))
    assert result.exit_code == 2 and "unknown target 'moon'" in result.output
    bad.write_text("name: b\nscenarios: [smoke]\ntargets: [inventory]\n")
    result = nightly(str(bad), "--out", str(tmp_path / "n"))
    assert result.exit_code == 2
    assert "target inventory needs hosts: inventory, provision or lab_inventory" in result.output
    assert not (tmp_path / "n").exists()
