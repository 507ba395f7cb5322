"""Steps with `hosts:` without hosts: validation (file:line:field), shares of a dataset, the
exact merge of per-host results, host rows in the results table and host samples."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness import scenario
from harness.cluster.inventory import Inventory
from harness.cluster.remote import host_prefix, select_hosts, share_dataset
from harness.datasets import generate_dataset
from harness.report import per_host
from harness.report.html import host_samples_chart, resources_chart
from harness.results import StepResult, merge_host_results
from harness.runner import host_rows, results_frame, step_rows, with_host_samples
from harness.scenario import ScenarioError
from tests.harness.cluster.conftest import ROOT

SCENARIO = """\
name: on-hosts
datasets:
  - name: few
    files:
      - {count: 5, size: 1KiB}
steps:
  - driver: sdk
    operation: upload
    dataset: few
    hosts: {hosts}
"""


def inventory(clients: int = 2) -> Inventory:
    hosts = [{"name": "s1", "address": "192.0.2.1", "roles": ["server"]}]
    hosts += [
        {"name": f"c{i}", "address": f"192.0.2.{10 + i}", "roles": ["client", "load"]}
        for i in range(1, clients + 1)
    ]
    return Inventory.model_validate({"name": "two", "hosts": hosts})


def write(tmp_path: Path, hosts: str) -> Path:
    path = tmp_path / "on-hosts.yaml"
    path.write_text(SCENARIO.replace("{hosts}", hosts))
    return path


def load_problems(path: Path) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        scenario.load(path)
    return info.value.problems


def test_unknown_role_and_bad_count_name_file_line_and_field(tmp_path: Path) -> None:
    (problem,) = load_problems(write(tmp_path, "clint"))
    assert problem.startswith(f"{tmp_path / 'on-hosts.yaml'}:10: steps[0].hosts: ")
    assert "unknown role 'clint'; valid: clients, server, client, load, lake or a count" in problem
    (problem,) = load_problems(write(tmp_path, "0"))
    assert ":10: steps[0].hosts: a count of client hosts is 1 or more" in problem


def test_hosts_with_a_step_target_or_a_share_without_hosts_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "clients\n    target: reference")
    (problem,) = load_problems(path)
    assert ":10: steps[0].hosts: the client runs on the inventory's hosts" in problem
    # a named target of kind inventory (a lake on the same inventory's hosts) is accepted
    lake = "targets: {lake: {kind: inventory, options: {role: lake}}, edge: {kind: reference}}\n"
    path.write_text(lake + SCENARIO.replace("{hosts}", "clients\n    target: lake"))
    assert scenario.load(path).steps[0].target == ["lake"]
    path.write_text(lake + SCENARIO.replace("{hosts}", "clients\n    target: edge"))
    (problem,) = load_problems(path)
    assert "steps[0].hosts: the client runs on the inventory's hosts" in problem
    path.write_text(SCENARIO.replace("    hosts: {hosts}\n", "    options: {share: same}\n"))
    (problem,) = load_problems(path)
    assert "steps[0]: options.share: 'same' is one of split, same, for a step with hosts" in problem


def test_hosts_against_the_inventory_it_runs_on(tmp_path: Path) -> None:
    path = write(tmp_path, "3")
    sc = scenario.load(path)
    where = f"{path}:10: steps[0].hosts"
    assert scenario.hosts_problems(sc, path, "inventory", inventory(2)) == [
        f"{where}: 3 client hosts asked for, but inventory two has 2 (c1, c2)"
    ]
    assert scenario.hosts_problems(sc, path, "inventory", inventory(3)) == []
    assert scenario.hosts_problems(sc, path, "reference", None) == [
        f"{where}: runs the client on an inventory's hosts, so it needs --target inventory "
        "--inventory FILE (this run's target is reference)"
    ]
    lake = write(tmp_path, "lake")
    assert scenario.hosts_problems(scenario.load(lake), lake, "inventory", inventory()) == [
        f"{where}: inventory two has no host with role lake"
    ]


def test_select_hosts_by_role_name_or_count() -> None:
    inv = inventory(3)
    assert [h.name for h in select_hosts(inv, "clients")] == ["c1", "c2", "c3"]
    assert [h.name for h in select_hosts(inv, "server")] == ["s1"]
    assert [h.name for h in select_hosts(inv, 2)] == ["c1", "c2"]
    assert host_prefix("up/", "c2", "split") == "up/c2/"
    assert host_prefix("up/", "c2", "same") == "up/"


def test_run_refuses_hosts_steps_off_the_inventory_target_before_anything_runs(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "clients")
    run = [sys.executable, "-m", "harness.cli", "run", str(path), "--out", str(tmp_path / "r")]
    result = subprocess.run(run, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2
    assert f"{path}:10: steps[0].hosts: runs the client on an inventory's hosts" in result.stderr
    inv = tmp_path / "inv.yaml"
    inv.write_text("name: one\nhosts:\n  - {name: c1, address: 192.0.2.11, roles: [client]}\n")
    path = write(tmp_path, "2")
    run += ["--target", "inventory", "--inventory", str(inv)]
    run[4] = str(path)
    result = subprocess.run(run, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2
    assert "steps[0].hosts: 2 client hosts asked for, but inventory one has 1 (c1)" in result.stderr
    assert not (tmp_path / "r").exists()  # nothing ran


def test_shares_split_the_dataset_without_overlap(tmp_path: Path) -> None:
    spec = {"name": "d", "seed": 4, "files": [{"count": 7, "size": 3000, "dir_depth": 1}]}
    full = generate_dataset(spec, tmp_path)
    shares = [share_dataset(full, i, 3) for i in range(3)]
    names = [e.path for share in shares for e in share.files]
    assert sorted(names) == sorted(e.path for e in full.files) and len(set(names)) == 7
    for share in shares:
        on_disk = sorted(p.relative_to(share.root).as_posix() for p in share.root.rglob("*.bin"))
        assert on_disk == sorted(e.path for e in share.files)
        for entry in share.files:  # the same bytes as the dataset's own file
            assert (share.root / entry.path).read_bytes() == (full.root / entry.path).read_bytes()
    again = share_dataset(full, 1, 3)  # a second host-side run reuses the share
    assert again.root == shares[1].root and again.files == shares[1].files


def row(host: str, start: float, duration: float, **kw: object) -> StepResult:
    base = dict(scenario="s", step="up", driver="sdk", operation="upload", target="inventory")
    return StepResult(**base, host=host, started_at=start, duration_s=duration, **kw)  # type: ignore[arg-type]


def test_host_results_merge_exactly() -> None:
    base = StepResult(scenario="s", step="up", driver="sdk", operation="upload", target="inventory")
    rows = [
        row("c1", 100.0, 2.0, bytes=1000, objects=4, verified_objects=4, failed=0, retries=1,
            p50_ms=5.0, p99_ms=9.0, max_ms=12.0, concurrency=8, errors_by_status={"503": 2}),
        row("c2", 100.5, 3.5, bytes=3000, objects=6, verified_objects=6, failed=0, retries=2,
            p50_ms=50.0, p99_ms=90.0, max_ms=95.0, concurrency=8, errors_by_status={"503": 1}),
    ]  # fmt: skip
    merged = merge_host_results(base, rows)
    assert (merged.bytes, merged.objects, merged.verified_objects) == (4000, 10, 10)
    assert (merged.retries, merged.concurrency, merged.errors_by_status) == (3, 16, {"503": 3})
    # from the first start to the last end; stragglers in first / last done
    assert merged.started_at == 100.0 and merged.duration_s == 4.0 and merged.clock == "hosts"
    assert merged.extra["first_done_s"] == 2.0 and merged.extra["last_done_s"] == 4.0
    assert merged.throughput_mib_s == 4000 / 2**20 / 4.0
    # percentiles are not averaged: only the maximum survives a merge of summaries
    assert merged.p50_ms is None and merged.p99_ms is None and merged.max_ms == 95.0
    assert merged.ok and merged.error is None and merged.host == "c1,c2"
    assert [h["host"] for h in merged.extra["hosts"]] == ["c1", "c2"]
    assert [h["extra"]["done_s"] for h in merged.extra["hosts"]] == [2.0, 4.0]


def test_a_failed_host_fails_the_merge_naming_it() -> None:
    base = StepResult(scenario="s", step="up", driver="sdk", operation="upload", target="inventory")
    rows = [
        row("c1", 10.0, 1.0, bytes=10, objects=1),
        row("c2", 10.0, 0.5, ok=False, error="c2 (root@192.0.2.12:22): connection lost"),
    ]
    merged = merge_host_results(base, rows)
    assert not merged.ok and merged.error == "c2 (root@192.0.2.12:22): connection lost"
    rows[1].error = "AzCopy not found"  # a host's own words get its name in front
    assert merge_host_results(base, rows).error == "c2: AzCopy not found"
    assert not merge_host_results(base, []).ok


def test_host_rows_are_rows_of_their_own_and_the_report_lists_them() -> None:
    base = StepResult(scenario="s", step="up", driver="sdk", operation="upload", target="inventory")
    merged = merge_host_results(
        base, [row("c1", 0.0, 1.0, bytes=5, objects=1), row("c2", 0.0, 2.0, bytes=7, objects=1)]
    )
    merged.extra["share"] = "split"
    table = results_frame([merged])
    assert list(table["row_kind"]) == ["step", "host", "host"]
    assert list(host_rows(table)["host"]) == ["c1", "c2"]
    assert list(step_rows(table)["bytes"]) == [12]
    assert host_rows(table)["bytes"].sum() == step_rows(table)["bytes"].sum()
    (step,) = per_host(table)
    assert (step["step"], step["share"], step["last_done_s"]) == ("up", "split", 2.0)
    assert [(h["host"], h["objects"], h["done_s"]) for h in step["hosts"]] == [
        ("c1", 1, 1.0),
        ("c2", 1, 2.0),
    ]


def test_host_samples_join_the_runs_samples_and_are_drawn(tmp_path: Path) -> None:
    controller = pd.DataFrame(
        [
            {"t": 10.0, "role": "client", "step": "up", "target": "", "cpu_pct": 5.0,
             "rss_mib": 50.0, "processes": 1},
            {"t": 12.0, "role": "client", "step": "down", "target": "", "cpu_pct": 6.0,
             "rss_mib": 51.0, "processes": 1},
        ]
    )  # fmt: skip
    hosts = pd.DataFrame(
        [
            {"t": t, "host": h, "cpu_percent": 20.0, "mem_used_bytes": 2**30,
             "net_rx_bytes": 1000.0 * t, "net_tx_bytes": 0.0, "disk_read_bytes": 0.0,
             "disk_write_bytes": 0.0}
            for t in (10.5, 11.5, 12.5) for h in ("c1", "c2")
        ]
    )  # fmt: skip
    path = tmp_path / "host_samples.parquet"
    hosts.to_parquet(path)
    samples = with_host_samples(controller, {"inventory": {"host_samples": str(path)}})
    assert set(samples["host"]) == {"controller", "c1", "c2"}
    mine = samples[samples["host"] == "c1"].sort_values("t")
    assert list(mine["step"]) == ["up", "up", "down"]  # the step running at that moment
    assert list(mine["cpu_pct"]) == [20.0] * 3 and set(mine["role"]) == {"host"}
    assert host_samples_chart(samples).startswith("data:image/png;base64,")
    assert resources_chart(samples) is not None  # the controller's rows alone
    assert host_samples_chart(controller) is None
    assert with_host_samples(controller, {}).equals(controller.assign(host="controller"))


def test_history_keeps_the_merged_row_not_the_hosts(tmp_path: Path) -> None:
    import json

    from harness.history.records import run_rows
    from harness.runner import write_results

    base = StepResult(scenario="s", step="up", driver="sdk", operation="upload", target="inventory")
    merged = merge_host_results(
        base, [row("c1", 0.0, 1.0, bytes=2**20, objects=1), row("c2", 0.0, 2.0, bytes=2**20)]
    )
    run_dir = tmp_path / "20261101T010000Z-s"
    run_dir.mkdir()
    write_results(run_dir, results_frame([merged]))
    info = {"started_at": "2026-11-01T01:00:00+00:00", "host": {}, "git": {}, "targets": {}}
    (run_dir / "run.json").write_text(json.dumps(info))
    rows = run_rows(run_dir)
    throughput = rows[rows["kpi"] == "throughput_mib_s"]
    assert list(throughput["raw_values"]) == ["[1.0]"]  # 2 MiB over the 2 s span, once
