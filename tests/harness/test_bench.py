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
def test_bench_server_tiny_run(tmp_path: Path) -> None:
    """Every ratio of one run, both sides measured, each anchor's at-its-best note, the
    server's CPU per request and the lab's own overhead."""
    client_procs = 2
    # A wide terminal: how rich wraps table cells depends on the measured numbers.
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        bench,
        [
            "server",
            *("--size", "4MiB", "--block-size", "1MiB", "--concurrency", "4"),
            *("--burst", "20", "--small-ops", "20", "--small-concurrency", "4"),
            *("--repeats", "1", "--workers", "1", "--client-procs", str(client_procs)),
            *("--proxied-size", "4MiB", "--locust-seconds", "5"),
            *("--out", str(tmp_path)),
        ],
    )
    assert result.exit_code in (0, 1), result.output + repr(result.exception)
    (run_dir,) = tmp_path.glob("*-bench-server")
    data = json.loads((run_dir / "run.json").read_text())
    # Every bench run is a scenario run: the report, JUnit and run.json like any other.
    assert (run_dir / "report.html").exists() and (run_dir / "junit.xml").exists()
    assert data["scenario"]["name"] == "bench-server" and data["exit_code"] == result.exit_code
    # What the command printed is kept with the run.
    saved = (run_dir / "bench-summary.txt").read_text()
    assert "goals: ratios of medians of repeats" in saved

    rows = step_rows(read_results(run_dir)).to_dict("records")
    by_key = {(r["target"], r["step"]): r for r in rows}
    both = ["put-block", "get-blob", "put-block-burst", "put-small", "get-small"]
    expected = {(t, s) for t in ("reference", "azurite") for s in both}
    expected |= {("nginx", "get-blob"), ("floor", "put-small"), ("floor", "get-small")}
    expected |= {("reference", s) for s in ("disk-write", "disk-read")}
    expected |= {("reference", s) for s in ("put-small-proxied", "put-block-proxied")}
    expected |= {("floor", "locust-floor")}
    assert set(by_key) == expected
    for r in rows:
        assert r["ok"], r
        assert r["failed"] == 0 and r["duration_s"] > 0
    # The throughput workloads ran split across the client processes, the others on one.
    for r in rows:
        if r["driver"] == "rest-bench" and not r["step"].startswith("disk-"):
            large = r["step"] in ("put-block", "get-blob", "put-block-proxied")
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
        # the server's CPU per request, from its own process tree
        assert by_key[(target, "put-small")]["extra"]["server_cpu_us_per_op"] > 0
    # nginx read the file the façade committed; fio wrote and read the bulk size.
    assert by_key[("nginx", "get-blob")]["bytes"] == SIZE
    for step in ("disk-write", "disk-read"):
        fio = by_key[("reference", step)]["extra"]["fio"]
        assert by_key[("reference", step)]["bytes"] == SIZE and fio["same_fs_as_data_root"]
    # Each anchor measured at several concurrencies, its best kept.
    azurite = by_key[("azurite", "put-block")]["extra"]["at_best"]
    assert set(azurite["tried"]) == {"8", "32"}
    assert azurite["tried"][str(azurite["best"])] == max(azurite["tried"].values())

    # Ratios (the goals, as criteria) are the measured medians divided, every one present,
    # both sides measured.
    summary = [v for v in data["verdicts"] if parse(v["expression"]).is_ratio]
    pairs = {(s["step"], parse(s["expression"]).denominator) for s in summary}
    assert pairs == {
        ("put-block/disk-write", "disk-write"),
        ("get-blob", "nginx"),
        ("put-small", "floor"),
        ("get-small", "floor"),
        *((s, "azurite") for s in both),
    }
    for s in summary:
        expr = parse(s["expression"])
        assert all(v is not None and v > 0 for v in s["sides"].values()), s
        if "/" not in s["step"]:
            ours = by_key[("reference", s["step"])][expr.kpi]
            base = by_key[(expr.denominator, s["step"])][expr.kpi]
            assert s["sides"]["reference"] == pytest.approx(ours)
            assert s["observed"] == pytest.approx(ours / base)
        assert s["passed"] == (s["observed"] >= expr.value)
        # its line in the goals table, and its anchor's note
        assert s["criterion"] in result.output
        assert f"  {s['criterion']}: {expr.denominator} " in result.output
    out = " ".join(result.output.split())
    assert "Put Block throughput: azurite yes: " in out
    assert "concurrent Put Blocks: azurite no: only 20 in flight" in out
    assert "Put Block vs disk write: disk-write yes: " in out
    # The server's CPU per request and the lab's own overhead, printed.
    assert "server CPU per request" in out
    assert "contract-recording proxy: +" in out and "µs of wall time" in out
    assert "ms per MiB of Put Block" in out
    assert "req/s per generator core against floor" in out
    assert "disk read (fio, page cache dropped)" in out
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


@pytest.mark.slow
def test_bench_listing_tiny_run(tmp_path: Path) -> None:
    """The scale curves at their smallest: blobs seeded through the file side are all listed,
    Put Blob in the full container, connections held at once, the goals judged."""
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        bench,
        [
            "listing",
            *("--sizes", "300,1200", "--connections", "50,200", "--put-count", "20"),
            *("--upload", "4MiB", "--workers", "1", "--out", str(tmp_path)),
        ],
    )
    assert result.exit_code in (0, 1), result.output + repr(result.exception)
    (run_dir,) = tmp_path.glob("*-bench-listing")
    table = read_results(run_dir)
    levels = table[table["row_kind"] == "level"]
    listed = levels[levels["operation"] == "list-all"]
    # every seeded file was listed as a blob, for each size and layout
    assert sorted(
        (e["layout"], o) for e, o in zip(listed["extra"], listed["objects"], strict=True)
    ) == [
        ("flat", 300),
        ("flat", 1200),
        ("nested", 300),
        ("nested", 1200),
    ]
    assert (listed["ops_s"] > 0).all() and listed["ok"].all()
    first = levels[levels["operation"] == "list-first-page"]
    assert len(first) == 4 and (first["p50_ms"] > 0).all()
    puts = levels[levels["operation"] == "put-blob-full"]
    assert (puts["objects"] == 20).all()
    conns = levels[levels["operation"] == "connections"]
    assert list(conns["concurrency"]) == [50, 200] and (conns["failed"] == 0).all()
    assert all(e["server_rss_mib_max"] > 0 for e in conns["extra"])
    out = " ".join(result.output.split())
    for goal in ("first page < 50 ms", "full listing ≥ 20,000 blobs/s", "flat within 2×"):
        assert f"flat: {goal}" in out and f"nested: {goal}" in out
    assert "server RSS within +100 MiB" in out
    # Missed goals fail the command, named.
    assert (result.exit_code == 1) == ("goal(s) missed" in out)


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
