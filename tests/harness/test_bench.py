"""`harness bench server` at a tiny size: the shipped scenario through the runner, its outputs
and its arithmetic."""

from __future__ import annotations

import json
from pathlib import Path

import click
import psutil
import pytest
from click.testing import CliRunner

from harness.bench.client import ChildResult, merge_children
from harness.bench_cli import bench
from harness.cli_common import SIZE as SIZE_OPTION
from harness.criteria import parse
from harness.http import block_id, block_list_xml
from harness.runner import read_results, step_rows
from harness.targets.nginx import nginx_config

SIZE = 4 * 1024 * 1024


def test_size_option() -> None:
    """The bench takes sizes in the one syntax of scenarios and datasets."""
    assert SIZE_OPTION.convert("1GiB", None, None) == 1 << 30
    assert SIZE_OPTION.convert("8MiB", None, None) == 8 << 20
    assert SIZE_OPTION.convert("8MB", None, None) == 8_000_000
    assert SIZE_OPTION.convert("64KiB", None, None) == 64 << 10
    assert SIZE_OPTION.convert("4096", None, None) == 4096
    with pytest.raises(click.BadParameter, match="12 parsecs"):
        SIZE_OPTION.convert("12 parsecs", None, None)


def test_block_ids_share_one_length_and_list_is_xml() -> None:
    import xml.etree.ElementTree as ET

    ids = [block_id(i) for i in (0, 7, 12345)]
    assert len({len(i) for i in ids}) == 1
    root = ET.fromstring(block_list_xml(ids))
    assert root.tag == "BlockList"
    assert [e.text for e in root.findall("Latest")] == ids


def test_nginx_config_stays_on_loopback(tmp_path: Path) -> None:
    conf = nginx_config(12345, tmp_path / "root", tmp_path, 2)
    assert "listen 127.0.0.1:12345;" in conf
    assert f"root {tmp_path / 'root'};" in conf
    assert "sendfile on;" in conf


def test_merge_children_is_exact() -> None:
    """Shares of one phase add up; wall time spans them; latencies stay raw samples."""
    a = ChildResult(10.0, 12.0, 3 * 8, 3, [1.0, 2.0, 3.0], [], 1.0, 24)
    b = ChildResult(10.5, 13.0, 2 * 8, 2, [40.0, 50.0], [(500, "InternalError")], 2.5, 16)
    phase = merge_children([a, b])
    assert phase.bytes == 40 and phase.ops == 5
    assert phase.duration_s == pytest.approx(3.0)  # earliest start to latest end
    assert sorted(phase.latencies_ms) == [1.0, 2.0, 3.0, 40.0, 50.0]
    assert phase.errors == [(500, "InternalError")]
    assert phase.client_procs == 2
    assert phase.client_proc_cpu_pct == pytest.approx([50.0, 100.0])
    assert phase.busiest_client_pct == pytest.approx(100.0)
    assert phase.client_cpu_pct == pytest.approx(100 * 3.5 / 3.0)


@pytest.mark.azurite
@pytest.mark.nginx
@pytest.mark.slow
@pytest.mark.parametrize("client_procs", [1, 2])
def test_bench_server_tiny_run(tmp_path: Path, client_procs: int) -> None:
    # A wide terminal: how rich wraps table cells depends on the measured numbers.
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        bench,
        [
            "server",
            "--size",
            "4MiB",
            "--block-size",
            "1MiB",
            "--concurrency",
            "4",
            "--burst",
            "20",
            "--small-ops",
            "20",
            "--small-concurrency",
            "4",
            "--repeats",
            "1",
            "--workers",
            "1",
            "--client-procs",
            str(client_procs),
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code in (0, 1), result.output + repr(result.exception)
    (run_dir,) = tmp_path.glob("*-bench-server")
    data = json.loads((run_dir / "run.json").read_text())
    # Every bench run is a scenario run: the report, JUnit and run.json like any other.
    assert (run_dir / "report.html").exists() and (run_dir / "junit.xml").exists()
    assert data["scenario"]["name"] == "bench-server" and data["exit_code"] == result.exit_code
    assert "Put Block throughput" in result.output

    rows = step_rows(read_results(run_dir)).to_dict("records")
    by_key = {(r["target"], r["step"]): r for r in rows}
    steps = ["put-block", "get-blob", "put-block-burst", "put-small", "get-small"]
    assert set(by_key) == {(t, s) for t in ("reference", "azurite") for s in steps} | {
        ("nginx", "get-blob")
    }
    for r in rows:
        assert r["ok"], r
        assert r["failed"] == 0 and r["duration_s"] > 0
        assert r["client_cpu_pct_max"] is not None and r["p50_ms"] is not None
    # The throughput workloads ran split across the client processes, the others on one.
    config = {s["name"]: s for s in data["scenario"]["steps"]}
    assert config["put-block"]["options"]["procs"] == client_procs
    for r in rows:
        large = r["step"] in ("put-block", "get-blob")
        assert r["extra"]["client_procs"] == (client_procs if large else 1), r
    # The shares add up: every byte and every block or range once, whatever the split.
    for target in ("reference", "azurite"):
        assert by_key[(target, "get-blob")]["objects"] == 4
        assert by_key[(target, "put-block")]["bytes"] == SIZE
        assert by_key[(target, "put-block")]["objects"] == 4
        assert by_key[(target, "get-blob")]["bytes"] == SIZE
        assert by_key[(target, "put-block-burst")]["objects"] == 20
        assert by_key[(target, "put-small")]["objects"] == 20
        assert by_key[(target, "get-small")]["bytes"] == 20 * 1024
    # nginx read the file the façade committed: the blob is a whole regular file on disk.
    assert by_key[("nginx", "get-blob")]["bytes"] == SIZE

    # Ratios (the goals, as criteria) are the measured medians divided, every one present.
    summary = [v for v in data["verdicts"] if parse(v["expression"]).is_ratio]
    assert [(s["step"], s["target"].split("/")[1]) for s in summary] == [
        *((s, "azurite") for s in steps),
        ("get-blob", "nginx"),
    ]
    for s in summary:
        expr = parse(s["expression"])
        ours = by_key[("reference", s["step"])][expr.kpi]
        base = by_key[(expr.denominator, s["step"])][expr.kpi]
        assert s["sides"]["reference"] == pytest.approx(ours)
        assert s["sides"][expr.denominator] == pytest.approx(base)
        assert s["observed"] == pytest.approx(ours / base)
        assert s["passed"] == (s["observed"] >= expr.value)
    # A missed goal fails the command; the client-bound footnote only explains a marked row.
    assert result.exit_code == (0 if all(s["passed"] for s in summary) else 1), result.output
    footnote = "* client-bound: a benchmark client process" in result.output
    assert footnote == any(s["client_bound"] for s in summary)

    # Data roots are gone, logs stay, no server is left running.
    assert not (run_dir / "targets" / "reference" / "data").exists()
    assert not (run_dir / "targets" / "azurite" / "data").exists()
    assert (run_dir / "targets" / "nginx" / "nginx.conf").exists()
    leftovers = [
        p
        for p in psutil.process_iter(["cmdline"])
        if str(run_dir) in " ".join(p.info["cmdline"] or [])
    ]
    assert leftovers == []


@pytest.mark.azcopy
@pytest.mark.sdk
@pytest.mark.slow
def test_bench_s2s_tiny_run(tmp_path: Path) -> None:
    args = ["s2s", "--files", "1", "--file-size", "4MiB", "--small-files", "3"]
    args += [
        "--small-size",
        "64KiB",
        "--repeats",
        "1",
        "--concurrency",
        "4",
        "--out",
        str(tmp_path),
    ]
    result = CliRunner(env={"COLUMNS": "200"}).invoke(bench, args)
    assert result.exit_code in (0, 1), result.output + repr(result.exception)
    (run_dir,) = tmp_path.glob("*-bench-s2s")
    rows = step_rows(read_results(run_dir)).set_index("step")
    assert rows["ok"].all(), rows["error"].tolist()
    # Every object went lake -> edge both ways, and the S2S copy was read back against the MD5s.
    assert (rows.loc[["s2s", "relay-down", "relay-up"], "objects"] == 4).all()
    assert rows.loc["verify-s2s", "verified_objects"] == 4
    data = json.loads((run_dir / "run.json").read_text())
    (goal,) = [v for v in data["verdicts"] if parse(v["expression"]).is_ratio]
    relay = rows.loc["relay-down", "duration_s"] + rows.loc["relay-up", "duration_s"]
    assert goal["observed"] == pytest.approx(relay / rows.loc["s2s", "duration_s"])
    assert result.exit_code == (0 if all(v["passed"] for v in data["verdicts"]) else 1)
    assert "S2S faster than the client relay" in result.output
    assert not (run_dir / "targets" / "lake" / "data").exists()
