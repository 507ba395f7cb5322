"""The shipped lab nightly end to end: provisioned against the fake ARM, the VMs mapped onto
`harness lab up`'s hosts, the façade deployed there, the SDK gate from the client host, a load
sweep with its worker there and the whole conformance gate run with `--target inventory`, two
nights into one DuckDB history, then deprovisioned."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from harness.cli import main
from harness.cluster.lab import SUBNET, Lab, unsupported_reason
from harness.conformance.suite import load_checks
from harness.history.store import HistoryStore
from harness.provision.fake_arm import FakeArmServer
from tests.harness.cluster.conftest import harness

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[3]
SUITES = ROOT / "scenarios" / "suites"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A 2-host lab (a server, a client): yields its directory."""
    reason = unsupported_reason()
    if reason:
        pytest.skip(f"no lab hosts on this machine: {reason}")
    directory = tmp_path_factory.mktemp("lab")
    try:
        result = harness("lab", "up", "--hosts", "2", "--dir", str(directory))
        assert result.returncode == 0, result.stderr
        yield directory
    finally:
        Lab(directory).down()


@pytest.fixture
def arm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeArmServer]:
    monkeypatch.setenv("LAB_CA_DIR", str(tmp_path / "ca"))
    with FakeArmServer(tmp_path / "ca") as server:
        monkeypatch.setenv("HARNESS_ARM_URL", server.url)
        monkeypatch.setenv("HARNESS_ARM_TOKEN", "test-token")
        monkeypatch.setenv("HARNESS_ARM_POLL_S", "0")
        yield server


def _shipped_suite(tmp_path: Path, lab: Path) -> Path:
    """nightly-lab.yaml and its spec as shipped, with this lab's paths in place of `.lab/`."""
    spec = yaml.safe_load((SUITES / "lab.provision.yaml").read_text())
    spec["ssh"]["public_key_file"] = str(lab / "lab_key.pub")
    spec["ssh"]["private_key_file"] = str(lab / "lab_key")
    (tmp_path / "lab.provision.yaml").write_text(yaml.safe_dump(spec))
    suite = yaml.safe_load((SUITES / "nightly-lab.yaml").read_text())
    suite["scenarios"] = [str(SUITES / name) for name in suite["scenarios"]]
    suite["lab_inventory"] = str(lab / "inventory.yaml")
    (tmp_path / "nightly-lab.yaml").write_text(yaml.safe_dump(suite))
    return tmp_path / "nightly-lab.yaml"


@pytest.mark.timeout(420)
def test_two_lab_nights_provision_run_on_the_lab_hosts_and_make_a_trend_page(
    lab: Path, arm: FakeArmServer, tmp_path: Path
) -> None:
    suite = _shipped_suite(tmp_path, lab)
    history, out = tmp_path / "h.duckdb", tmp_path / "nights"
    for _ in range(2):
        result = CliRunner().invoke(
            main,
            ["nightly", str(suite), "--history", str(history), "--out", str(out),
             "--cache-dir", str(tmp_path / "cache"), "--ca-bundle", str(arm.ca_bundle)],
        )  # fmt: skip
        assert result.exit_code == 0, result.output[-4000:]
        assert "nightly nightly-lab: exit 0" in result.output
        assert arm.arm.resources == {}  # deprovisioned
    first, last = sorted(out.iterdir())

    record = json.loads((last / "night.json").read_text())
    assert [(m["provisioned"], m["lab"]) for m in record["lab_mapping"]] == [
        ("srv-0", "h1"),
        ("cli-0", "h2"),
    ]
    assert [s["name"] for s in record["stages"]] == ["provision", "deprovision"]
    assert (last / "provisioned.yaml").is_file()
    # the runs reached the façade deployed to the lab's server host
    for run in record["runs"]:
        info = json.loads((Path(run["run_dir"]) / "run.json").read_text())
        facts = info["targets"]["inventory"]
        assert facts["endpoint"] == f"http://{SUBNET}.11:10000/devstoreaccount1"
        assert facts["hosts"][0]["vm_size"] == "Standard_L16as_v5"
        # the SDK gate's upload and download ran on the client host, the sweep's worker too
        steps = Path(run["run_dir"]) / "steps"
        for name in ("sdk-upload", "sdk-download"):
            assert (steps / name / "inventory" / "r0" / "hosts" / "h2" / "result.json").is_file()
        assert list((steps / "sweep").rglob("h2-worker-*.log"))

    root = ET.parse(last / "junit.xml").getroot()
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert list(suites) == [
        "night-lab@inventory",
        "conformance@inventory",
        "provisioning",
        "regressions",
    ]
    gate = [c.get("name") for c in suites["night-lab@inventory"].iter("testcase")]
    assert "sdk downloads verified (sdk-download/sdk/inventory)" in gate
    assert "sweep without errors (sweep/locust/inventory)" in gate
    # the whole gate on the lab's façade, with the reference's capabilities: throttling and
    # file-tree names are checked there; only the bearer groups skip (no lab token service)
    conformance = suites["conformance@inventory"].findall("testcase")
    assert len(conformance) == len(load_checks())
    assert all(c.find("failure") is None for c in conformance)
    skipped = {c.get("classname") for c in conformance if c.find("skipped") is not None}
    assert skipped <= {"conformance.Auth Bearer", "conformance.Auth User Delegation SAS"}, skipped
    ran = {c.get("name") for c in conformance if c.find("skipped") is None}
    assert {"throttle.server-busy", "names.file-tree-conflict"} <= ran
    assert root.get("failures") == "0"

    with HistoryStore(str(history)) as store:
        runs, rows = store.runs(), store.frame()
    assert runs.groupby("scenario")["night"].nunique().to_dict() == {"night-lab": 2}
    assert sorted(set(rows["level"])) == [-1, 0, 1]  # the sweep's two levels are series too
    # the hardware key is the provisioned VM sizes on the lab's two hosts
    assert set(rows["hardware"]) == {"1× Standard_D32as_v5, 1× Standard_L16as_v5 (2 hosts)"}
    page = (last / "history" / "history.html").read_text()
    assert "2 night(s)" in page and page.count("<img") >= 1
    summary = (last / "night.html").read_text()
    assert 'id="lab-mapping"' in summary and "srv-0 → h1" in summary
    assert 'href="conformance/conformance.html"' in summary
    assert (first / "junit.xml").is_file()
