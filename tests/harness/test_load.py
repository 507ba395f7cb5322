"""Load: histogram merging, steady windows, client-bound marks, and real Locust runs."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from harness.drivers.base import StepContext
from harness.drivers.locust import LocustDriver
from harness.load.histograms import Bucket, Recorder, merge, new_histogram, read_buckets
from harness.load.kpis import CLIENT_BOUND_PCT, generator_cpu, steady_windows
from harness.load.plan import LoadPlan, PlanError, plan_from_options
from harness.load.process import CpuSample
from harness.targets.base import Endpoint
from reference_server.config import DEV_ACCOUNT, DEV_KEY


def _plan(tmp_path: Path, **options: object) -> LoadPlan:
    return plan_from_options(
        dict(options),
        blob_url="http://127.0.0.1:1/devstoreaccount1",
        account=DEV_ACCOUNT,
        key=DEV_KEY,
        sas=None,
        container="load",
        prefix="",
        out_dir=tmp_path,
        default_users=8,
    )


# ---------------------------------------------------------------- histograms


def test_merged_percentiles_equal_those_of_the_union(tmp_path: Path) -> None:
    rng = random.Random(5)
    union = new_histogram()
    recorders = [Recorder(tmp_path / f"w{i}.jsonl") for i in range(3)]
    for i, rec in enumerate(recorders):
        # Workers with very different latency profiles: averaging their p99s would be wrong.
        scale = (0.002, 0.03, 0.4)[i]
        for n in range(4000):
            latency = rng.expovariate(1 / scale)
            rec.record("put_block", 1000.0 + n % 7, latency, status=201, ok=True, nbytes=10)
            union.record_value(max(1, round(latency * 1e6)))
        rec.flush()
    buckets = read_buckets(sorted(tmp_path.glob("*.jsonl")))
    assert len(buckets) == 3 * 7  # one line per (worker, second)
    merged = merge(b.hist for b in buckets)
    assert merged.get_total_count() == union.get_total_count() == 12000
    for p in (50, 90, 99, 99.9, 100):
        assert merged.get_value_at_percentile(p) == union.get_value_at_percentile(p)
    assert sum(b.bytes for b in buckets) == 120000


def test_recorder_counts_errors_by_status_and_code(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "w.jsonl")
    rec.record("put_block", 5.2, 0.01, status=503, ok=False, error_code="ServerBusy")
    rec.record("put_block", 5.9, 0.01, status=503, ok=False, error_code="ServerBusy")
    rec.record("put_block", 5.5, 0.02, status=201, ok=True, nbytes=64)
    rec.flush()
    [b] = read_buckets([tmp_path / "w.jsonl"])
    assert (b.op, b.second, b.ok, b.bytes) == ("put_block", 5, 1, 64)
    assert b.errors_by_status == {"503": 2} and b.errors_by_code == {"ServerBusy": 2}
    assert Bucket.from_json(b.to_json()).hist.get_total_count() == 1


# ---------------------------------------------------------------- plan, windows, CPU


def test_plan_rejects_unknown_options_and_operations(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="unknown load option"):
        _plan(tmp_path, usres=5)
    with pytest.raises(PlanError, match="unknown operation"):
        _plan(tmp_path, mix={"put_blok": 1})
    with pytest.raises(PlanError, match="either users"):
        _plan(tmp_path, users=4, levels=[1, 2])


def test_steady_windows_exclude_each_levels_ramp(tmp_path: Path) -> None:
    plan = _plan(tmp_path, levels=[16, 64, 256], level_duration_s=10, ramp_s=3)
    windows = steady_windows(plan, t0=100.0, end=None)
    assert [(w.level.users, w.start, w.end, w.seconds) for w in windows] == [
        (16, 103, 110, 7),
        (64, 113, 120, 7),
        (256, 123, 130, 7),
    ]
    # A run ended early by its count bound cuts the window at its end.
    cut = steady_windows(plan, t0=100.0, end=115.5)
    assert [w.seconds for w in cut] == [7, 2, 0]


def test_client_bound_marking() -> None:
    def samples(per_pid: dict[int, float]) -> list[CpuSample]:
        return [CpuSample(at=float(t), cpu_pct=dict(per_pid)) for t in range(10, 20)]

    # Two workers on two cores, both nearly saturated: the generator is the bottleneck.
    busy = generator_cpu(samples({1: 95.0, 2: 92.0, 3: 3.0}), 10, 20, cores=2)
    assert busy.client_bound and busy.cpu_pct is not None and busy.cpu_pct >= CLIENT_BOUND_PCT
    # One gevent worker pinned at its core is enough, whatever the others do.
    one = generator_cpu(samples({1: 97.0, 2: 10.0}), 10, 20, cores=2)
    assert one.client_bound and one.max_process_pct == 97.0
    # Plenty of headroom: not client-bound.
    idle = generator_cpu(samples({1: 40.0, 2: 35.0, 3: 2.0}), 10, 20, cores=2)
    assert not idle.client_bound and idle.cpu_pct == 38.5
    # Samples outside the window do not count.
    assert generator_cpu(samples({1: 99.0}), 50, 60, cores=2).cpu_pct is None


# ---------------------------------------------------------------- real Locust runs


def _ctx(tmp_path: Path, blob_url: str, options: dict[str, object]) -> StepContext:
    endpoint = Endpoint("reference", DEV_ACCOUNT, blob_url, key=DEV_KEY)
    workdir = tmp_path / "step"
    workdir.mkdir()
    return StepContext("load-test", "load", "load", endpoint, "loadtest", workdir, options=options)


@pytest.mark.locust
def test_locust_run_against_the_reference_server(server, tmp_path: Path) -> None:
    options = {
        "mix": {"put_block": 60, "get_range": 20, "list_blobs": 10, "put_block_list": 10},
        "users": 20,
        "workers": 2,
        "level_duration_s": 6,
        "ramp_s": 2,
        "object_size": "256KiB",
        "block_size": "16KiB",
        "seed_objects": 4,
    }
    ctx = _ctx(tmp_path, server.account_url, options)
    driver = LocustDriver()
    driver.prepare(ctx)
    rows = driver.run_levels(ctx)
    assert {r.operation for r in rows} == {"put_block", "get_range", "list_blobs", "put_block_list"}
    for r in rows:
        assert r.ok, r.error
        assert r.objects > 0 and r.failed == 0
        assert r.concurrency == 20 and r.extra["level"] == 0
        assert r.p50_ms is not None and r.p50_ms <= r.p99_ms <= r.p999_ms <= r.max_ms
        assert r.extra["generator_cpu_pct"] is not None
        assert isinstance(r.extra["client_bound"], bool)
    by_op = {r.operation: r for r in rows}
    assert by_op["put_block"].bytes == by_op["put_block"].objects * 16 * 1024
    assert by_op["get_range"].bytes == by_op["get_range"].objects * 16 * 1024
    # Locust's own statistics name every operation.
    stats = (ctx.workdir / "locust_stats.csv").read_text()
    for op in by_op:
        assert f",{op}," in stats
    # The merged steady-window histogram counts exactly the rows' requests.
    buckets = read_buckets((ctx.workdir / "histograms").glob("*.jsonl"))
    assert len({p.name for p in (ctx.workdir / "histograms").glob("w*.jsonl")}) == 2
    start, end = rows[0].extra["steady_window"]["start"], rows[0].extra["steady_window"]["end"]
    steady = [b for b in buckets if b.op == "put_block" and start <= b.second < end]
    assert merge(b.hist for b in steady).get_total_count() == by_op["put_block"].objects


class SlowServer:
    """Answers every request after a fixed delay and records the most requests held at once."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.inflight = 0
        self.max_inflight = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self.inflight -= 1
        return web.Response(status=201 if request.method == "PUT" else 200)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> SlowServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture
def slow_server() -> Iterator[SlowServer]:
    with SlowServer(delay_s=0.5) as srv:
        yield srv


@pytest.mark.locust
def test_open_loop_keeps_its_rate_when_the_server_is_slow(slow_server, tmp_path: Path) -> None:
    rate = 40
    options = {
        "mix": {"put_block": 1},
        "users": 2,
        "workers": 1,
        "arrival_rate": rate,
        "level_duration_s": 6,
        "ramp_s": 2,
        "block_size": "1KiB",
    }
    ctx = _ctx(tmp_path, f"http://127.0.0.1:{slow_server.port}/{DEV_ACCOUNT}", options)
    driver = LocustDriver()
    driver.prepare(ctx)
    summary = driver.run(ctx)  # the one-row form: per-level rows ride in extra["levels"]
    assert summary.ok, summary.error
    [row] = summary.extra["levels"]
    assert row["operation"] == "put_block" and row["ok"]
    assert row["extra"]["mode"] == "open-loop"
    assert row["extra"]["latency_from"] == "scheduled start"
    users = 3  # open_loop_users: max(2 users, ceil(40 / 16 per user), 1 worker)
    # A closed loop of 3 users never holds more than 3 requests at once; the open loop kept its
    # schedule, so requests piled up at the slow server instead (a count, not a timing).
    assert slow_server.max_inflight >= 4 * users
    # every request waited out the server's delay, and latency counts from the scheduled start
    assert row["p50_ms"] >= slow_server.delay_s * 1000
    assert summary.objects == row["objects"]
