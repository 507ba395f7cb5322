"""The driver registry, tool discovery, and drivers reporting failures instead of raising."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.drivers import REGISTRY, client_versions
from harness.drivers.base import OPERATIONS, StepContext
from harness.paths import ROOT
from harness.runner import run_step
from harness.targets.base import Endpoint
from harness.tools import ToolMissing, azcopy_path, rclone_path

WRONG_KEY = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="


# versions() of every client: each installed tool is needed
@pytest.mark.azcopy
@pytest.mark.rclone
@pytest.mark.boostedblob
@pytest.mark.sdk
def test_registry_names_every_client() -> None:
    assert {"azcopy", "sdk", "sdk-aio", "boostedblob", "rclone"} <= set(REGISTRY)
    for name, cls in REGISTRY.items():
        driver = cls()
        assert driver.name == name
        assert set(driver.operations) <= set(OPERATIONS)
    for name in ("azcopy", "sdk", "sdk-aio", "boostedblob", "rclone"):
        versions = REGISTRY[name]().versions()
        assert versions and all(v[0].isdigit() for v in versions.values()), versions


@pytest.mark.azcopy
@pytest.mark.rclone
@pytest.mark.boostedblob
def test_tools_are_found_with_versions() -> None:
    assert azcopy_path().is_file() and rclone_path().is_file()
    versions = client_versions()
    assert versions["azcopy"][0].isdigit() and versions["rclone"][0].isdigit()
    assert versions["boostedblob"] != "not installed"


# Validating runs in a fresh interpreter: the test session itself has loaded every SDK.
_VALIDATE_ALL = """
import json, sys
from harness import scenario
names = [p.stem for p in sorted(scenario.SCENARIO_DIR.glob("*.yaml"))]
drivers = {step.driver for name in names for step in scenario.load(name).steps}
libraries = ("azure.storage.blob", "azure.core", "boostedblob", "locust")
loaded = [m for m in libraries if m in sys.modules]
print(json.dumps({"drivers": sorted(drivers), "loaded": loaded}))
"""


def test_validating_scenarios_loads_no_client_library() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _VALIDATE_ALL],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    seen = json.loads(out.stdout)
    # every client is named by some shipped scenario, and none of their libraries was imported
    assert {"azcopy", "sdk", "sdk-aio", "boostedblob", "rclone", "locust"} <= set(seen["drivers"])
    assert seen["loaded"] == []


def test_unknown_driver_is_refused_without_importing_drivers(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom harness import scenario\n"
        "try:\n    scenario.load(sys.argv[1])\nexcept scenario.ScenarioError as e:\n"
        "    print(e)\n"
        "print(sorted(m for m in sys.modules if m.startswith('harness.drivers.')))\n"
    )
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nsteps:\n  - {driver: robocopy, operation: upload}\n")
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "unknown driver 'robocopy'; valid: azcopy, boostedblob, locust, rclone" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "['harness.drivers.base']"


def test_missing_tool_names_the_setup_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LAB_AZCOPY", str(tmp_path / "nowhere"))
    with pytest.raises(ToolMissing, match=r"bash harness/bootstrap\.sh"):
        azcopy_path()


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("sdk", marks=pytest.mark.sdk),
        pytest.param("sdk-aio", marks=pytest.mark.sdk),
        pytest.param("azcopy", marks=pytest.mark.azcopy),
        pytest.param("rclone", marks=pytest.mark.rclone),
        pytest.param("boostedblob", marks=pytest.mark.boostedblob),
    ],
)
@pytest.mark.slow
def test_rejected_credentials_fail_the_step_without_raising(
    name: str, shared_server: object, tmp_path: Path
) -> None:
    endpoint = Endpoint(
        "reference",
        shared_server.account,
        shared_server.account_url,
        key=WRONG_KEY,  # type: ignore[attr-defined]
    )
    ctx = StepContext(
        scenario="t",
        step="list",
        operation="list",
        endpoint=endpoint,
        container="nope-ct",
        workdir=tmp_path,
        timeout_s=120,
        options={"extra_args": ["--retries", "1", "--low-level-retries", "1"]}
        if name == "rclone"
        else {},
    )
    result = run_step(REGISTRY[name](), ctx)
    assert not result.ok and result.error
    assert result.driver == name and result.operation == "list"
    if name in ("sdk", "sdk-aio", "boostedblob"):
        assert result.errors_by_status.get("403", 0) >= 1
        assert "AuthenticationFailed" in result.errors_by_code
