"""The history on a real PostgreSQL server (Debian's `postgresql`, which `bootstrap.sh test`
installs): a cluster of its own in a temp dir, on a free loopback port, run as a non-root user,
stopped at the end. The same rows and verdicts as on DuckDB."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.history.records import run_rows
from harness.history.store import HistoryStore
from harness.targets.base import free_port
from tests.harness.history.conftest import MakeRun


def _pg_bin() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4])
    )
    return Path(found[-1]).parent if found else None


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (bash harness/bootstrap.sh test installs it)")
    # initdb refuses root: run the server as the `postgres` user Debian's package creates.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    base = Path(tempfile.mkdtemp(prefix="lab-pg-"))
    data, port = base / "data", free_port()
    if as_user:
        shutil.chown(base, "postgres")

    def run(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, timeout=60)

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "lab", "--auth=trust", "-E", "UTF8")
        options = f"-p {port} -c listen_addresses=127.0.0.1 -k {base}"
        run(
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(base / "log"),
            "-w",
            "-t",
            "30",
            "start",
        )
        yield f"postgresql://lab@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


def test_postgres_history_holds_the_same_rows_as_duckdb(
    postgres_url: str, make_run: MakeRun, tmp_path: Path
) -> None:
    runs = [make_run(i, [100.0 + i, 101.0, 99.0, 100.5, 100.2]) for i in range(3)]
    with HistoryStore(postgres_url) as pg, HistoryStore(tmp_path / "h.duckdb") as duck:
        for run in runs:
            n = pg.add(run_rows(run))
            assert pg.add(run_rows(run)) == n  # replaced, not doubled
            duck.add(run_rows(run))
        pd.testing.assert_frame_equal(pg.frame(), duck.frame())
        pd.testing.assert_frame_equal(pg.frame(since="2026-11-02"), duck.frame(since="2026-11-02"))
        assert list(pg.runs()["run_id"]) == [r.name for r in runs]


def test_regress_on_postgres_finds_the_regression(postgres_url: str, make_run: MakeRun) -> None:
    rng = np.random.default_rng(9)
    levels = [100.0] * 6 + [80.0] * 4
    runs = [
        str(make_run(20 + i, list(level * (1 + rng.normal(0, 0.02, 5))), build=f"v{i // 6}"))
        for i, level in enumerate(levels)
    ]
    cli = CliRunner()
    added = cli.invoke(main, ["history", "add", *runs, "--history", postgres_url])
    assert added.exit_code == 0, added.output
    result = cli.invoke(main, ["regress", "--history", postgres_url, "--since", "2026-11-21"])
    assert result.exit_code == 1, result.output
    assert any(
        x.startswith("REGRESSION ") and "throughput_mib_s" in x and "façade v0 → v1" in x
        for x in result.output.splitlines()
    ), result.output


def test_an_unreachable_postgres_is_bad_input() -> None:
    url = f"postgresql://lab:s3cret@127.0.0.1:{free_port()}/postgres?connect_timeout=3"
    result = CliRunner().invoke(main, ["history", "list", "--history", url])
    assert result.exit_code == 2 and "cannot open history postgresql://lab:***@" in result.output
    assert "s3cret" not in result.output
