"""The bench's anchors and instruments on their own: the minimal aiohttp server, Content-MD5 on
uploads, the server's process tree found by its port, fio's missing-package message, and the
arithmetic of the summary (anchors at their best, the proxy's cost, Locust per core, listing
goals)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import uvloop
from aiohttp import web

from harness.bench import summary
from harness.bench.client import KIB, MIB, BenchClient, listening_pids
from harness.bench.fio import FioMissing, fio_path
from harness.bench_cli import parse_counts
from harness.criteria import Verdict
from harness.targets.base import DEV_ACCOUNT, DEV_KEY, Endpoint, free_port
from harness.targets.floor import FloorTarget


@pytest.fixture
def floor(tmp_path: Path):
    target = FloorTarget(workers=2)
    target.start(tmp_path / "floor")
    try:
        yield target
    finally:
        target.stop()


def test_floor_answers_the_small_requests_with_no_storage_work(floor: FloorTarget) -> None:
    endpoint = floor.endpoint()
    # Its workers are children of the process that listens first: the tree's root is found.
    assert listening_pids(endpoint.blob_url) == floor.server_pids()
    client = BenchClient(endpoint, lambda: listening_pids(endpoint.blob_url))
    names = [f"n/{i}" for i in range(400)]

    async def go() -> tuple[Any, Any]:
        await client.ensure_container("bench")  # 201: it accepts any PUT
        return (
            await client.put_small("bench", names, KIB, 16),
            await client.get_small("bench", names, 16),
        )

    put, get = uvloop.run(go())
    assert (put.ops, put.errors, put.bytes) == (400, [], 400 * KIB)
    assert (get.ops, get.errors, get.bytes) == (400, [], 400 * KIB)  # a fixed 1 KiB body
    # The server's side of each phase is measured from its own process tree.
    for phase in (put, get):
        start, peak = phase.server_rss_mib
        assert 0 < start <= peak
        assert phase.server_cpu_s > 0 and phase.server_cpu_us_per_op > 0


def test_uploads_carry_content_md5_and_the_block_list_does_not() -> None:
    seen: list[tuple[str, str | None, bytes]] = []

    async def record(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append((request.query.get("comp", ""), request.headers.get("Content-MD5"), body))
        return web.Response(status=201)

    async def upload(md5: bool) -> list[tuple[int, str | None]]:
        # the recording server and the client on one loop
        app = web.Application(client_max_size=64 * MIB)
        app.router.add_route("PUT", "/{tail:.*}", record)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            url = f"http://127.0.0.1:{port}/{DEV_ACCOUNT}"
            client = BenchClient(Endpoint("rec", DEV_ACCOUNT, url, DEV_KEY), list, content_md5=md5)
            # 2.5 blocks: the short last block gets its own digest
            return (await client.put_blocks("bench", "b", 5 * MIB // 2, MIB, 2)).errors
        finally:
            await runner.cleanup()

    for md5 in (True, False):
        seen.clear()
        assert uvloop.run(upload(md5)) == []
        blocks = [s for s in seen if s[0] == "block"]
        assert sorted(len(body) for _, _, body in blocks) == [MIB // 2, MIB, MIB]
        for _, header, body in blocks:
            expected = base64.b64encode(hashlib.md5(body).digest()).decode()
            assert header == (expected if md5 else None)
        ((_, list_md5, _),) = [s for s in seen if s[0] == "blocklist"]
        assert list_md5 is None


def test_a_missing_fio_names_the_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_FIO", "/nonexistent/fio")
    with pytest.raises(FioMissing) as err:
        fio_path()
    assert "Debian package `fio`" in str(err.value) and "apt-get install fio" in str(err.value)


def test_counts_take_k_and_m() -> None:
    assert parse_counts("1k,10k, 100k,1M") == [1000, 10_000, 100_000, 1_000_000]
    assert parse_counts("250") == [250]
    import click

    with pytest.raises(click.BadParameter):
        parse_counts("ten")


def _row(step: str, target: str, **kw: Any) -> dict[str, Any]:
    row = {
        "step": step,
        "target": target,
        "driver": "rest-bench",
        "operation": kw.pop("operation", step),
        "warmup": False,
        "row_kind": kw.pop("row_kind", "step"),
        "ok": True,
        "concurrency": kw.pop("concurrency", 16),
        "extra": kw.pop("extra", {}),
        "p50_ms": kw.pop("p50_ms", None),
    }
    row.update(kw)
    return row


def _verdict(expression: str, step: str) -> Verdict:
    return Verdict("goal", expression, step, "rest-bench", "x", 1.0, True, "")


def test_anchor_notes_say_whether_the_anchor_was_at_its_best() -> None:
    best = {"kpi": "ops_s", "tried": {"8": 100.0, "32": 300.0}, "best": 32}
    results = pd.DataFrame(
        [
            _row("put-small", "reference"),
            _row("put-small", "azurite", extra={"at_best": best}),
            _row("put-block-burst", "azurite", concurrency=1000),
            _row("disk-write", "reference", extra={"at_best": {**best, "best": 8}}),
        ]
    )
    note = summary.anchor_note
    at_best = note(_verdict("ratio(ops_s, reference/azurite) >= 3", "put-small"), results)
    assert at_best == "yes: 32 of 8/32 in flight"
    one = note(_verdict("ratio(ops_s, reference/azurite) >= 3", "put-block-burst"), results)
    assert one == "no: only 1000 in flight"
    disk = "ratio(throughput_mib_s, put-block/disk-write) >= 0.9"
    assert note(_verdict(disk, "put-block/disk-write"), results) == "yes: 8 of 8/32 jobs"


def test_methodology_prices_the_proxy_and_locust_per_core() -> None:
    results = pd.DataFrame(
        [
            # 1,000 Put Blobs in 1.0 s direct, 1.2 s through the proxy: +200 µs per request
            _row("put-small", "reference", objects=1000, duration_s=1.0, client_cpu_pct_max=50.0),
            _row(
                "put-small-proxied", "reference", objects=1000, duration_s=1.2,
                client_cpu_pct_max=75.0,
            ),
            # 100 MiB/s direct, 50 MiB/s proxied: +10 ms per MiB
            _row("put-block", "reference", objects=8, duration_s=1.0, throughput_mib_s=100.0),
            _row(
                "put-block-proxied", "reference", objects=8, duration_s=1.0,
                throughput_mib_s=50.0,
            ),
            # Locust: 2,000 req/s at 50% of a core = 4,000 per core, below the goal
            _row(
                "locust-floor", "floor", driver="locust", operation="get_blob", row_kind="level",
                ops_s=2000.0, concurrency=32, extra={"generator_cpu_pct": 50.0},
            ),
        ]
    )  # fmt: skip
    lines = summary.methodology(results)
    assert any(
        "+200 µs of wall time" in line and "+400 µs of harness CPU" in line for line in lines
    )
    assert any("+10.00 ms per MiB" in line for line in lines)
    (locust,) = [line for line in lines if line.startswith("Locust")]
    assert "4,000 req/s per generator core" in locust and "below 5,000" in locust


def test_listing_goals_judge_each_layout_and_the_flatness() -> None:
    points = [
        summary.ScalePoint("flat", 1000, 20.0, 30000.0, 5.0, 1.0, True),
        summary.ScalePoint("flat", 100_000, 45.0, 25000.0, 6.0, 3.0, True),
        summary.ScalePoint("nested", 1000, 30.0, 21000.0, 5.0, 1.0, True),
        summary.ScalePoint("nested", 100_000, 70.0, 9000.0, 6.0, 3.0, True),
    ]
    judged = {goal: met for goal, _, met in summary.listing_goals(points)}
    assert judged["flat: first page < 50 ms"] and judged["flat: full listing ≥ 20,000 blobs/s"]
    assert not judged["flat: flat within 2× (1,000 → 100,000 blobs)"]  # 20 → 45 ms
    assert not judged["nested: first page < 50 ms"]
    assert not judged["nested: full listing ≥ 20,000 blobs/s"]


def test_bench_without_fio_fails_the_disk_step_naming_the_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from harness.runner import Runner
    from harness.scenario import load

    monkeypatch.setenv("LAB_FIO", str(tmp_path / "no-fio"))
    path = tmp_path / "disk.yaml"
    path.write_text(
        "name: disk\ntarget: {kind: reference}\nrepeats: 1\nsteps:\n"
        "  - {name: disk-write, driver: rest-bench, operation: load,"
        " options: {workload: disk-write, size: 1MiB, block_size: 1MiB}}\n"
    )
    outcome = Runner(load(str(path), []), out=tmp_path / "runs").run()
    assert outcome.exit_code == 1
    (error,) = list(outcome.results["error"])
    assert "fio not found" in error and "Debian package `fio`" in error
