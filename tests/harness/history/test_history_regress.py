"""`harness regress`: change points per comparable series, direction by the KPI's sense, the
builds at the change, new series on a new client version, tonight's A/B verdict, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from harness.cli import main
from harness.history.analysis import analyse
from harness.history.detect import ab_verdict
from harness.history.records import run_rows
from harness.history.store import HistoryStore
from tests.harness.history.conftest import SDK, MakeRun, write_run


def _noisy(rng: np.random.Generator, level: float, n: int = 5, noise: float = 0.03) -> list[float]:
    return list(level * (1 + rng.normal(0, noise, n)))


def _history(tmp_path: Path, runs: list[Path]) -> str:
    db = str(tmp_path / "h.duckdb")
    with HistoryStore(db) as store:
        for run in runs:
            store.add(run_rows(run))
    return db


def test_a_slower_build_is_a_regression_pinned_on_its_first_night(
    make_run: MakeRun, tmp_path: Path
) -> None:
    rng = np.random.default_rng(1)
    runs = [
        make_run(i, _noisy(rng, 100.0 if i < 8 else 85.0), build="0.1.0" if i < 8 else "0.2.0",
                 revision="aaaa1111" if i < 8 else "bbbb2222")
        for i in range(12)
    ]  # fmt: skip
    db = _history(tmp_path, runs)
    result = CliRunner().invoke(main, ["regress", "--history", db])
    assert result.exit_code == 1, result.output
    line = next(
        x for x in result.output.splitlines() if "sdk-upload" in x and "throughput_mib_s" in x
    )
    assert line.startswith("REGRESSION ")
    assert "first bad night 2026-11-09T01:00:00Z" in line and runs[8].name in line
    assert "façade 0.1.0 → 0.2.0" in line and "harness aaaa1111 → bbbb2222" in line
    change = line.split("throughput_mib_s: ", 1)[1]
    relative = float(change.split("%")[0])
    assert -18 < relative < -12  # a 15% drop, with its interval in brackets
    low, high = (float(v.strip(" +%")) for v in change.split("[")[1].split("]")[0].split(","))
    assert low < relative < high < 0
    # Duration up is worse too; the list step did not change.
    assert any(
        x.startswith("REGRESSION ") and "duration_s" in x for x in result.output.splitlines()
    )
    assert "sdk-list" not in result.output.split("series over")[0]
    as_json = CliRunner().invoke(main, ["regress", "--history", db, "--json"])
    assert as_json.exit_code == 1
    data = json.loads(as_json.output)
    kinds = {(c["kpi"], c["kind"]) for c in data["changes"] if "sdk-upload" in c["series"]}
    assert ("throughput_mib_s", "regression") in kinds and ("ops_s", "regression") in kinds
    # --since after the change: nothing new to report, and tonight is like the last nights.
    later = CliRunner().invoke(main, ["regress", "--history", db, "--since", "2026-11-11"])
    assert later.exit_code == 0, later.output
    assert "0 regression(s)" in later.output


def test_a_regression_a_later_build_undoes_is_recovered_and_exits_0(
    make_run: MakeRun, tmp_path: Path
) -> None:
    rng = np.random.default_rng(7)
    levels = [100.0] * 8 + [80.0] * 6 + [101.0] * 6
    builds = ["1.0"] * 8 + ["1.1"] * 6 + ["1.2"] * 6
    runs = [
        make_run(i, _noisy(rng, v), build=b)
        for i, (v, b) in enumerate(zip(levels, builds, strict=True))
    ]
    result = CliRunner().invoke(main, ["regress", "--history", _history(tmp_path, runs)])
    assert result.exit_code == 0, result.output
    line = next(
        x
        for x in result.output.splitlines()
        if x.endswith("2026-11-15T01:00:00Z") and "throughput_mib_s" in x
    )
    assert line.startswith("RECOVERED   ") and "façade 1.0 → 1.1" in line
    assert "back to its level from 2026-11-15T01:00:00Z" in line


def test_latency_down_is_an_improvement_and_exits_0(make_run: MakeRun, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    runs = [
        make_run(i, _noisy(rng, 100.0), p99_ms=40.0 if i < 6 else 25.0, build=f"b{i // 6}")
        for i in range(12)
    ]
    result = CliRunner().invoke(main, ["regress", "--history", _history(tmp_path, runs)])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if "p99_ms" in x)
    assert line.startswith("IMPROVEMENT ") and "-37.5%" in line and "façade b0 → b1" in line


def test_a_new_client_version_starts_a_new_series_instead_of_a_regression(
    make_run: MakeRun, tmp_path: Path
) -> None:
    rng = np.random.default_rng(3)
    newer = {**SDK, "azure-storage-blob": "12.32.0"}
    runs = [
        make_run(i, _noisy(rng, 100.0 if i < 8 else 70.0), versions=SDK if i < 8 else newer)
        for i in range(14)
    ]
    result = CliRunner().invoke(main, ["regress", "--history", _history(tmp_path, runs)])
    assert result.exit_code == 0, result.output
    assert "REGRESSION" not in result.output
    assert (
        "NEW SERIES  nightly / sdk-upload @reference [sdk upload] (10 KPIs): from "
        "2026-11-09T01:00:00Z, azure-storage-blob 12.31.1 → 12.32.0 (not compared with before)"
    ) in result.output


def test_a_single_bad_night_is_not_a_change_point(make_run: MakeRun, tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    runs = [make_run(i, _noisy(rng, 60.0 if i == 7 else 100.0)) for i in range(15)]
    result = CliRunner().invoke(main, ["regress", "--history", _history(tmp_path, runs)])
    assert result.exit_code == 0, result.output
    assert "0 regression(s), 0 recovered, 0 improvement(s), 0 worse tonight" in result.output


def test_tonight_worse_than_the_last_nights_needs_five_repeats(
    make_run: MakeRun, tmp_path: Path
) -> None:
    rng = np.random.default_rng(5)
    runs = [make_run(i, _noisy(rng, 100.0)) for i in range(10)]
    tonight = make_run(10, _noisy(rng, 80.0))
    result = CliRunner().invoke(
        main, ["regress", "--history", _history(tmp_path, [*runs, tonight])]
    )
    assert result.exit_code == 1, result.output
    line = next(x for x in result.output.splitlines() if "throughput_mib_s" in x)
    assert line.startswith("TONIGHT     nightly / sdk-upload") and "WORSE vs last nights" in line
    # Three repeats are not enough for the rank test: not judged, exit 0.
    few = write_run(tmp_path / "other", 10, _noisy(rng, 80.0, n=3))
    history = _history(tmp_path / "few", [*runs, few])
    quiet = CliRunner().invoke(main, ["regress", "--history", history, "--json"])
    assert quiet.exit_code == 0, quiet.output
    verdicts = {t["kpi"]: t for t in json.loads(quiet.output)["tonight"] if "upload" in t["series"]}
    assert verdicts["throughput_mib_s"]["verdict"] == "not judged"
    assert verdicts["throughput_mib_s"]["reason"] == "3 repeat(s) tonight (< 5)"


def test_ab_floor_grows_with_the_spread_between_nights() -> None:
    rng = np.random.default_rng(6)
    # Nights that differ by ~6% between them, each with tight repeats: an 8% lower night is
    # significant by the rank test but within what nights do, so not "worse".
    nights = [
        list(level * (1 + rng.normal(0, 0.005, 5))) for level in 100 * (1 + rng.normal(0, 0.06, 10))
    ]
    tonight = list(92 * (1 + rng.normal(0, 0.005, 5)))
    verdict = ab_verdict(tonight, nights, sense=1)
    assert verdict.verdict == "same" and verdict.floor > 0.1
    steady = [list(100 * (1 + rng.normal(0, 0.005, 5))) for _ in range(10)]
    assert ab_verdict(tonight, steady, sense=1).verdict == "worse"
    assert ab_verdict(tonight, steady, sense=-1).verdict == "better"  # e.g. latency down


def test_a_missing_history_is_bad_input_and_an_empty_one_reports_nothing(tmp_path: Path) -> None:
    missing = str(tmp_path / "typo.duckdb")
    result = CliRunner().invoke(main, ["regress", "--history", missing])
    assert result.exit_code == 2 and f"no history at {missing}" in result.output
    assert not Path(missing).exists()
    HistoryStore(tmp_path / "h.duckdb").close()
    empty = CliRunner().invoke(main, ["regress", "--history", str(tmp_path / "h.duckdb")])
    assert empty.exit_code == 0 and "0 series over 0 night(s)" in empty.output
    assert analyse(HistoryStore(tmp_path / "h.duckdb").frame()).series == []


def test_another_vm_size_starts_a_new_series_and_regress_says_so(
    make_run: MakeRun, tmp_path: Path
) -> None:
    rng = np.random.default_rng(6)
    runs = []
    for i in range(14):
        run = make_run(i, _noisy(rng, 100.0 if i < 8 else 160.0))
        info = json.loads((run / "run.json").read_text())
        size = "Standard_L16as_v5" if i < 8 else "Standard_L32as_v5"
        # an inventory target's hosts, their VM size from the inventory's (or Azure's) facts
        info["targets"]["reference"]["hosts"] = [
            {"name": "srv-0", "vm_size": size, "cpu_model": "AMD EPYC 9V74"},
            {"name": "cli-0", "vm_size": "Standard_D32as_v5", "cpu_model": "AMD EPYC 9V74"},
        ]
        (run / "run.json").write_text(json.dumps(info))
        runs.append(run)
    rows = run_rows(runs[0])
    assert set(rows["hardware"]) == {"1× Standard_D32as_v5, 1× Standard_L16as_v5 (2 hosts)"}
    result = CliRunner().invoke(main, ["regress", "--history", _history(tmp_path, runs)])
    assert result.exit_code == 0, result.output
    assert "IMPROVEMENT" not in result.output and "REGRESSION" not in result.output
    assert (
        "NEW SERIES  nightly / sdk-upload @reference [sdk upload] (10 KPIs): from "
        "2026-11-09T01:00:00Z, hardware 1× Standard_D32as_v5, 1× Standard_L16as_v5 (2 hosts) → "
        "1× Standard_D32as_v5, 1× Standard_L32as_v5 (2 hosts) (not compared with before)"
    ) in result.output


def test_a_provisioned_nights_hosts_name_the_hardware_of_its_url_target(
    make_run: MakeRun,
) -> None:
    run = make_run(0, [100.0])
    info = json.loads((run / "run.json").read_text())
    # as the night stamps it: the provisioned inventory's hosts with Azure's facts
    info["night"] = {"suite": "s", "hosts": [{"name": f"srv-{i}", "roles": ["server"],
                     "facts": {"vm_size": "Standard_L16as_v5"}} for i in range(3)]}  # fmt: skip
    (run / "run.json").write_text(json.dumps(info))
    assert set(run_rows(run)["hardware"]) == {"3× Standard_L16as_v5 (3 hosts)"}
    # without any VM size: this machine's CPU, cores and memory, as before
    plain = make_run(1, [100.0])
    assert set(run_rows(plain)["hardware"]) == {"AMD EPYC 9V74, 2 cpus, 23 GiB"}
