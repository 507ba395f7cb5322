"""`rest-bench`: raw Blob REST workloads from the benchmark client (aiohttp on uvloop).

No tool between the lab and the server: each step (operation ``load``) runs one workload,
``options.workload``, as one measured phase of ``harness.bench.client.BenchClient`` (requests
shaped and signed by ``harness.http``); its result rows name the workload as their operation:

- ``put-block``: ``size`` bytes as Put Blocks of ``block_size``, ``concurrency`` in flight,
  then the Put Block List of blob ``blob``;
- ``get-blob``: that blob read back as ranged Get Blobs of ``block_size``, ``concurrency`` in
  flight;
- ``put-block-burst``: ``count`` Put Blocks of ``object_size`` all in flight at once, one
  connection each;
- ``put-small``: ``count`` Put Blobs of ``object_size``, ``concurrency`` in flight;
- ``get-small``: Get Blobs of the names ``put-small`` wrote in the same repeat (same prefix).

Options (a step's ``options``): ``size``, ``block_size`` (default the step's block_size_mib),
``object_size``, ``count`` and ``blob`` as above; ``procs``, the client processes the
``put-block`` / ``get-blob`` phases are split across (one Python client tops out near 1 GB/s;
the pool is spawned before the measured phase and the shares are merged exactly, see
``harness.bench.client``). A static-file target (nginx) is only read from, by ``get-blob``.

Before its first step on a container of an endpoint the driver creates the container and makes
a few small round trips, unmeasured (connection set-up, caches, the server's first requests).
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any

import aiohttp
import uvloop

from harness.bench.client import KIB, MIB, BenchClient, ClientPool, PhaseResult
from harness.datasets import parse_size
from harness.drivers.base import Driver, StepContext
from harness.metrics import latency_summary
from harness.results import StepResult, count_errors
from harness.tools import Tool

CLIENT_BOUND_PCT = 90.0  # above this a client process, not the server, may set the pace
WARMUP_OPS = 50
DEFAULTS: dict[str, dict[str, Any]] = {  # per workload: count and object size
    "put-block-burst": {"count": 1000, "object_size": 64 * KIB},
    "put-small": {"count": 2000, "object_size": 1 * KIB},
    "get-small": {"count": 2000, "object_size": 1 * KIB},
}
WORKLOADS = ("put-block", "get-blob", "put-block-burst", "put-small", "get-small")
READS = ("get-blob",)  # the workloads a static-file target answers


def _size(value: Any, default: int) -> int:
    return default if value is None else parse_size(value)


class RestBenchDriver(Driver):
    name = "rest-bench"
    operations = ("load",)
    tool = Tool("rest-bench", distributions=("aiohttp", "uvloop"))
    recorded = False  # the lab's own raw requests, straight to the target: no proxy hop measured

    def __init__(self) -> None:
        self._warm: set[tuple[str, str]] = set()  # (account URL, container) warmed up
        self._pool: ClientPool | None = None

    def prepare(self, ctx: StepContext) -> None:
        workload = ctx.options.get("workload")
        if workload not in WORKLOADS:
            raise ValueError(f"options.workload {workload!r}: valid {', '.join(WORKLOADS)}")
        static = bool(ctx.endpoint.extra.get("static"))
        if static and workload not in READS:
            raise ValueError(f"{ctx.endpoint.target} serves plain files: only {', '.join(READS)}")
        if static or (ctx.endpoint.blob_url, ctx.container) in self._warm:
            return
        client = BenchClient(ctx.endpoint, list)
        names = [f"warmup/{i}" for i in range(WARMUP_OPS)]

        async def warm_up() -> None:
            await client.ensure_container(ctx.container)
            await client.put_small(ctx.container, names, 1 * KIB, 8)
            await client.get_small(ctx.container, names, 8)

        uvloop.run(warm_up())
        self._warm.add((ctx.endpoint.blob_url, ctx.container))

    def versions(self) -> dict[str, str]:
        return {
            "python": platform.python_version(),
            "aiohttp": aiohttp.__version__,
            "uvloop": uvloop.__version__,
        }

    def pids(self) -> list[int]:
        # The pool's processes too: the runner samples their CPU and stops them on a timeout
        # (ProcessPoolExecutor names its workers only in ``_processes``).
        pool = self._pool
        children = list(pool.executor._processes or {}) if pool is not None else []
        return [os.getpid(), *children]

    def run(self, ctx: StepContext) -> StepResult:
        workload = str(ctx.options.get("workload"))
        opts = {**DEFAULTS.get(workload, {}), **ctx.options}
        procs = int(opts.get("procs", 1))
        large = workload in ("put-block", "get-blob")
        try:
            if large and procs > 1:
                # Spawned (imports done) before the measured phase, closed after it.
                self._pool = ClientPool(procs)
            phase, concurrency = uvloop.run(self._phase(ctx, workload, opts, procs))
        finally:
            pool, self._pool = self._pool, None
            if pool is not None:
                pool.close()
        return to_step_result(ctx, workload, phase, concurrency, self.name)

    async def _phase(
        self, ctx: StepContext, op: str, opts: dict[str, Any], procs: int
    ) -> tuple[PhaseResult, int]:
        client = BenchClient(ctx.endpoint, list, self._pool)
        block_size = _size(opts.get("block_size"), ctx.block_size_mib * MIB)
        count, object_size = int(opts.get("count", 0)), _size(opts.get("object_size"), KIB)
        size = _size(opts.get("size"), 0)
        done = 0
        total = size if op in ("put-block", "get-blob") else count

        def progress(n: int) -> None:
            nonlocal done
            done += n
            ctx.progress(done, total)

        tag = f"{'w' if ctx.warmup else 'r'}{ctx.repeat}"
        blob = ctx.prefix + str(opts.get("blob", "large"))
        names = [f"{ctx.prefix}{tag}/{i:06d}" for i in range(count)]
        c = ctx.container
        if op in ("put-block", "get-blob") and size <= 0:
            raise ValueError(f"{op} needs options.size (bytes or e.g. '1GiB')")
        if op == "put-block":
            args = (c, blob, size, block_size, ctx.concurrency, progress)
            return await client.put_blocks(*args, procs=procs), ctx.concurrency
        if op == "get-blob":
            args = (c, blob, size, block_size, ctx.concurrency, progress)
            return await client.get_ranges(*args, procs=procs), ctx.concurrency
        if op == "put-block-burst":
            burst = f"{ctx.prefix}burst-{tag}"
            return await client.put_block_burst(c, burst, count, object_size, progress), count
        if op == "put-small":
            phase = await client.put_small(c, names, object_size, ctx.concurrency, progress)
            return phase, ctx.concurrency
        if op == "get-small":
            return await client.get_small(c, names, ctx.concurrency, progress), ctx.concurrency
        raise ValueError(f"rest-bench has no workload {op!r}")


def to_step_result(
    ctx: StepContext,
    workload: str,
    phase: PhaseResult,
    concurrency: int,
    driver: str = "rest-bench",
) -> StepResult:
    """One measured phase as the one results schema, the workload as its operation."""
    by_status, by_code = count_errors(phase.errors)
    return ctx.result(
        driver=driver,
        operation=workload,
        started_at=time.time() - phase.duration_s,
        ok=not phase.errors,
        duration_s=phase.duration_s,
        bytes=phase.bytes,
        objects=phase.ops,
        failed=len(phase.errors),
        concurrency=concurrency,
        latency_clock="client",
        **latency_summary(phase.latencies_ms),
        errors_by_status=by_status,
        errors_by_code=by_code,
        error=f"{len(phase.errors)} failed requests" if phase.errors else None,
        client_cpu_pct_max=round(phase.client_cpu_pct, 1),
        extra={
            # Any client process above the threshold may have set the pace of the whole phase.
            "client_bound": phase.busiest_client_pct > CLIENT_BOUND_PCT,
            "client_procs": phase.client_procs,
        },
    )
