"""One lab of real hosts (network namespaces with sshd) shared by the cluster tests of a
module, always torn down; skipped with the reason where this machine cannot make one."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

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


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A 2-host lab: yields its inventory path."""
    reason = unsupported_reason()
    if reason:
        pytest.skip(f"no lab hosts on this machine: {reason}")
    directory = tmp_path_factory.mktemp("lab")
    try:
        result = harness("lab", "up", "--hosts", "2", "--dir", str(directory))
        assert result.returncode == 0, result.stderr
        yield directory / "inventory.yaml"
    finally:
        Lab(directory).down()
