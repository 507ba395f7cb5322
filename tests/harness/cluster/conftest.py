"""One lab of real hosts (network namespaces with sshd) shared by the cluster tests of a
module, always torn down; skipped with the reason where this machine cannot make one."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from harness.cluster.lab import Lab, unsupported_reason

ROOT = Path(__file__).resolve().parents[3]


def harness(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`harness ARGS` as a user runs it, from the checkout root."""
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
    )


def _lab(tmp_path_factory: pytest.TempPathFactory, hosts: int) -> Iterator[Path]:
    reason = unsupported_reason()
    if reason:
        pytest.skip(f"no lab hosts on this machine: {reason}")
    directory = tmp_path_factory.mktemp("lab")
    try:
        result = harness("lab", "up", "--hosts", str(hosts), "--dir", str(directory))
        assert result.returncode == 0, result.stderr
        yield directory / "inventory.yaml"
    finally:
        Lab(directory).down()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A 2-host lab: yields its inventory path."""
    yield from _lab(tmp_path_factory, 2)


@pytest.fixture(scope="module")
def lab4(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A 4-host lab (h1, h2 servers; h3, h4 clients and load): yields its inventory path."""
    yield from _lab(tmp_path_factory, 4)


@pytest.fixture(scope="module")
def wan_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A 4-host lab: h1 server, h2 and h3 client+load, h4 lake; yields its inventory path."""
    reason = unsupported_reason()
    if reason:
        pytest.skip(f"no lab hosts on this machine: {reason}")
    directory = tmp_path_factory.mktemp("wanlab")
    roles = "server,client+load,client+load,lake"
    try:
        result = harness("lab", "up", "--roles", roles, "--dir", str(directory))
        assert result.returncode == 0, result.stderr
        yield directory / "inventory.yaml"
    finally:
        Lab(directory).down()


def with_links(inventory: Path, links: list[dict[str, object]], name: str) -> Path:
    """A copy of ``inventory`` (beside it: same key and known_hosts) with these ``links``."""
    data = yaml.safe_load(inventory.read_text())
    data["links"] = links
    path = inventory.with_name(f"{name}.yaml")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
