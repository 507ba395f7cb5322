"""Run directories made from small synthetic results through the real results schema."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from harness.results import MIB, StepResult
from harness.runner import results_frame, write_results

HOST = {"hostname": "h1", "cpu_model": "AMD EPYC 9V74", "cpus_logical": 2, "memory_gib": 23.4}
SDK = {"azure-storage-blob": "12.31.1", "python": "3.11.2"}
START = datetime(2026, 11, 1, 1, 0, tzinfo=UTC)

MakeRun = Callable[..., Path]


def write_run(
    out: Path,
    night: int,
    throughputs: Sequence[float],
    build: str = "0.1.0",
    versions: dict[str, str] | None = None,
    host: dict | None = None,
    revision: str = "aaaa1111",
    p99_ms: float = 20.0,
    warmup_mib_s: float | None = 1.0,
) -> Path:
    """One run of scenario ``nightly``: a warm-up and one repeat per throughput (MiB/s) of an
    SDK upload of 64 MiB, and one SDK list repeat, on the reference target."""
    started = START + timedelta(days=night)
    run_dir = out / f"{started:%Y%m%dT%H%M%SZ}-nightly"
    run_dir.mkdir(parents=True)
    results = []
    speeds = ([warmup_mib_s] if warmup_mib_s else []) + list(throughputs)
    for i, mib_s in enumerate(speeds):
        warm = bool(warmup_mib_s) and i == 0
        results.append(
            StepResult(
                scenario="nightly", step="sdk-upload", driver="sdk", operation="upload",
                target="reference", repeat=i, warmup=warm, bytes=64 * MIB, objects=8,
                duration_s=64 / mib_s, p50_ms=5.0, p99_ms=p99_ms, max_ms=p99_ms * 2,
            )
        )  # fmt: skip
    results.append(
        StepResult(
            scenario="nightly", step="sdk-list", driver="sdk", operation="list",
            target="reference", objects=8, duration_s=0.1,
        )
    )  # fmt: skip
    write_results(run_dir, results_frame(results))
    info = {
        "started_at": started.isoformat(),
        "tool_versions": {"sdk": versions or SDK},
        "host": host or HOST,
        "git": {"revision": revision, "dirty": False},
        "targets": {"reference": {"kind": "reference", "version": build}},
        "interrupted": False,
    }
    (run_dir / "run.json").write_text(json.dumps(info))
    return run_dir


@pytest.fixture
def make_run(tmp_path: Path) -> MakeRun:
    def make(night: int, throughputs: Sequence[float], **kwargs: object) -> Path:
        return write_run(tmp_path / "reports", night, throughputs, **kwargs)

    return make
