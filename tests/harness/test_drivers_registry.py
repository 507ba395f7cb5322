"""The driver registry, tool discovery, and drivers reporting failures instead of raising."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.drivers import REGISTRY
from harness.drivers.base import OPERATIONS, StepContext
from harness.targets.base import Endpoint
from harness.tools import ToolMissing, azcopy_path, rclone_path, tool_versions

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
    versions = tool_versions()
    assert versions["azcopy"][0].isdigit() and versions["rclone"][0].isdigit()
    assert versions["boostedblob"] != "not installed"


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
    result = REGISTRY[name]().run(ctx)
    assert not result.ok and result.error
    assert result.driver == name and result.operation == "list"
    if name in ("sdk", "sdk-aio", "boostedblob"):
        assert result.errors_by_status.get("403", 0) >= 1
        assert "AuthenticationFailed" in result.errors_by_code
