"""Run directories -> long KPI rows -> DuckDB history; add, list, export, import via the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.history.records import COLUMNS, STEP_LEVEL, run_rows
from harness.history.store import HistoryStore
from tests.harness.history.conftest import MakeRun


def test_run_rows_are_medians_of_measured_repeats_with_comparable_dimensions(
    make_run: MakeRun,
) -> None:
    run = make_run(0, [100.0, 120.0, 110.0], build="1.4.2", warmup_mib_s=5.0)
    rows = run_rows(run)
    assert list(rows.columns) == list(COLUMNS)
    up = rows[(rows["step"] == "sdk-upload") & (rows["kpi"] == "throughput_mib_s")].iloc[0]
    # The warm-up (5 MiB/s) is not among the repeats; the value is their median.
    assert up["value"] == pytest.approx(110.0)
    assert json.loads(up["raw_values"]) == pytest.approx([100.0, 120.0, 110.0])
    assert up["repeats"] == 3 and up["level"] == STEP_LEVEL
    assert up["night"] == "2026-11-01T01:00:00Z" and up["run_id"] == run.name
    assert up["facade_build"] == "1.4.2" and up["harness_revision"] == "aaaa1111"
    assert json.loads(up["tool_versions"]) == {"azure-storage-blob": "12.31.1", "python": "3.11.2"}
    assert up["hardware"] == "AMD EPYC 9V74, 2 cpus, 23 GiB"  # no host name: VMs differ by it
    listing = set(rows[rows["step"] == "sdk-list"]["kpi"])
    assert "ops_s" in listing and "throughput_mib_s" not in listing  # list moves no bodies


def test_duckdb_add_replaces_a_run_and_reads_back(make_run: MakeRun, tmp_path: Path) -> None:
    db = tmp_path / "h.duckdb"
    first, second = make_run(0, [100.0] * 5), make_run(1, [90.0] * 5)
    with HistoryStore(db) as store:
        n = store.add(run_rows(first))
        assert store.add(run_rows(first)) == n  # adding a run again replaces its rows
        store.add(run_rows(second))
        frame = store.frame()
        assert len(frame) == 2 * n
        assert list(frame["night"].unique()) == ["2026-11-01T01:00:00Z", "2026-11-02T01:00:00Z"]
        assert len(store.frame(since="2026-11-02")) == n
        assert list(store.runs()["run_id"]) == [first.name, second.name]
    with HistoryStore(db) as again:  # a file: it persists
        pd.testing.assert_frame_equal(again.frame(), frame)


def test_cli_add_list_export_import_round_trip(make_run: MakeRun, tmp_path: Path) -> None:
    cli = CliRunner()
    db, copy = str(tmp_path / "h.duckdb"), str(tmp_path / "copy.duckdb")
    runs = [str(make_run(i, [100.0 + i] * 5, build=f"0.{i}")) for i in range(3)]
    added = cli.invoke(main, ["history", "add", *runs, "--history", db])
    assert added.exit_code == 0, added.output
    assert f"{Path(runs[0]).name}: " in added.output and " KPI rows " in added.output
    listed = cli.invoke(main, ["history", "list", "--history", db])
    assert listed.exit_code == 0 and "3 run(s) in" in listed.output
    assert "2026-11-03T01:00:00Z" in listed.output and "0.2" in listed.output
    csv = tmp_path / "h.csv"
    exported = cli.invoke(main, ["history", "export", "--history", db, "--out", str(csv)])
    assert exported.exit_code == 0
    assert csv.read_text().splitlines()[0] == ",".join(COLUMNS)
    imported = cli.invoke(main, ["history", "import", str(csv), "--history", copy])
    assert imported.exit_code == 0 and "of 3 run(s) imported" in imported.output
    with HistoryStore(db) as a, HistoryStore(copy) as b:
        pd.testing.assert_frame_equal(a.frame(), b.frame())


def test_import_of_older_results_fills_defaults_and_refuses_bad_columns(tmp_path: Path) -> None:
    cli = CliRunner()
    db = str(tmp_path / "h.duckdb")
    old = tmp_path / "old.csv"
    old.write_text(
        "night,scenario,step,target,kpi,value\n"
        "2025-01-05,azcopy-gate,up,reference,throughput_mib_s,410.5\n"
        "2025-01-06,azcopy-gate,up,reference,throughput_mib_s,415\n"
    )
    result = cli.invoke(main, ["history", "import", str(old), "--history", db])
    assert result.exit_code == 0, result.output
    with HistoryStore(db) as store:
        frame = store.frame()
    assert list(frame["night"]) == ["2025-01-05T00:00:00Z", "2025-01-06T00:00:00Z"]
    assert list(frame["raw_values"]) == ["[410.5]", "[415.0]"]
    assert set(frame["level"]) == {STEP_LEVEL} and set(frame["facade_build"]) == {"unknown"}
    bad = tmp_path / "bad.csv"
    bad.write_text("night,scenario,kpi,value,colour\n2025-01-05,x,ops_s,1,red\n")
    refused = cli.invoke(main, ["history", "import", str(bad), "--history", db])
    assert refused.exit_code == 2
    assert "missing column 'step'" in refused.output and "unknown column 'colour'" in refused.output


def test_add_refuses_a_directory_that_is_not_a_run(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["history", "add", str(tmp_path), "--history", str(tmp_path / "h.duckdb")]
    )
    assert result.exit_code == 2 and "not a run directory (no run.json)" in result.output


def test_a_load_sweep_is_kept_per_level_and_operation(tmp_path: Path) -> None:
    from harness.results import StepResult
    from harness.runner import results_frame, write_results

    def level(i: int, op: str, ops: int, warmup: bool) -> dict:
        return StepResult(
            scenario="sweep", step="load", driver="locust", operation=op, target="reference",
            warmup=warmup, objects=ops, duration_s=10.0, p99_ms=5.0 * (i + 1),
            concurrency=16 * 4**i, extra={"level": i},
        ).to_row()  # fmt: skip

    results = []
    for repeat, warmup in ((0, True), (0, False), (1, False)):
        summary = StepResult(
            scenario="sweep", step="load", driver="locust", operation="load", target="reference",
            repeat=repeat, warmup=warmup, objects=1, duration_s=1.0,
        )  # fmt: skip
        ops = 10 if warmup else 1000 + repeat
        summary.extra["levels"] = [level(i, "put_block", ops * (i + 1), warmup) for i in range(2)]
        results.append(summary)
    run_dir = tmp_path / "20261101T010000Z-sweep"
    run_dir.mkdir()
    write_results(run_dir, results_frame(results))
    (run_dir / "run.json").write_text(json.dumps({"started_at": "2026-11-01T01:00:00+00:00"}))
    rows = run_rows(run_dir)
    # The summary row of the step is left out: its levels are the series.
    assert set(rows["level"]) == {0, 1} and set(rows["operation"]) == {"put_block"}
    ops = rows[rows["kpi"] == "ops_s"].set_index("level")
    assert ops.loc[0, "value"] == pytest.approx(100.05) and ops.loc[1, "repeats"] == 2
    assert json.loads(ops.loc[1, "raw_values"]) == pytest.approx([200.0, 200.2])  # no warm-up
    assert rows["facade_build"].eq("unknown").all()  # run.json without target facts
