"""One tiny real run of scenarios/pilot-example.yaml per test session (SDK on the reference
façade) and one small conformance gate, which the pilot document, deck and chart tests read."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main

ROOT = Path(__file__).resolve().parents[3]
PILOT_FILE = ROOT / "fixtures" / "pilot-example.yaml"


@pytest.fixture(scope="session")
def pilot_file() -> Path:
    return PILOT_FILE


@pytest.fixture(scope="session")
def pilot_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    # Recorded through the contract proxy, as a pilot run is: its drift becomes a criterion.
    args = ["run", "pilot-example", "--out", str(out)]
    args += ["--cache-dir", str(tmp_path_factory.mktemp("cache"))]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    (run_dir,) = [d for d in out.iterdir() if d.is_dir()]
    return run_dir


@pytest.fixture(scope="session")
def conformance_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`harness conformance` output (one operation group, to stay fast) on the reference."""
    out = tmp_path_factory.mktemp("gate") / "conformance-blob"
    result = CliRunner().invoke(main, ["conformance", "--only", "blob", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out
