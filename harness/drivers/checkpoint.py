"""`checkpoint`: N writers save the shards of a checkpoint at once (after MLPerf Storage).

Each file of the step's dataset is one writer's shard. All writers start together (a barrier)
and each uploads its shard with the SDK as concurrent Put Blocks (``max_concurrency`` per
writer), then Put Block List. Beyond the usual totals the result records what a checkpoint
cares about: the slowest writer's time and the lowest per-writer bandwidth (``extra``).
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.storage.blob import BlobServiceClient

from harness.datasets import ManifestEntry
from harness.drivers.base import StepContext
from harness.drivers.sdk import MIB, _client_kwargs, _Recorder
from harness.metrics import latency_summary
from harness.results import StepResult, count_errors
from harness.tools import tool_versions


class CheckpointDriver:
    name = "checkpoint"
    operations = ("upload",)

    def prepare(self, ctx: StepContext) -> None:
        if ctx.operation != "upload" or ctx.dataset is None:
            raise ValueError("checkpoint saves a dataset: operation upload with a dataset")

    def versions(self) -> dict[str, str]:
        versions = tool_versions()
        return {k: versions[k] for k in ("azure-storage-blob", "azure-core")}

    def pids(self) -> list[int]:
        return [os.getpid()]

    def run(self, ctx: StepContext) -> StepResult:
        assert ctx.dataset is not None
        shards = ctx.dataset.files
        recorder = _Recorder(active=False)
        per_writer = int(ctx.options.get("max_concurrency", ctx.concurrency))
        barrier = threading.Barrier(len(shards))
        times: dict[str, tuple[float, float]] = {}
        failures: list[str] = []
        started = time.time()
        with BlobServiceClient(ctx.endpoint.blob_url, **_client_kwargs(ctx, recorder)) as svc:
            container = svc.get_container_client(ctx.container)
            try:
                container.create_container()
            except ResourceExistsError:
                pass
            except AzureError as exc:  # a driver reports a failed step, it never raises
                return ctx.result(driver=self.name, ok=False, error=f"create container: {exc}")
            recorder.active = True

            def write(shard: ManifestEntry) -> None:
                assert ctx.dataset is not None
                barrier.wait()
                t0 = time.perf_counter()
                try:
                    with open(ctx.dataset.root / shard.path, "rb") as fh:
                        container.upload_blob(
                            ctx.prefix + shard.path,
                            fh,
                            length=shard.size,
                            overwrite=True,
                            max_concurrency=per_writer,
                        )
                    times[shard.path] = (t0, time.perf_counter())
                except (AzureError, OSError) as exc:
                    failures.append(f"{shard.path}: {getattr(exc, 'error_code', None) or exc}")

            t_all = time.perf_counter()
            with ThreadPoolExecutor(max_workers=len(shards)) as pool:
                list(pool.map(write, shards))
            wall = time.perf_counter() - t_all
        by_status, by_code = count_errors(recorder.errors)
        done = [e for e in shards if e.path in times]
        result = ctx.result(
            driver=self.name,
            started_at=started,
            duration_s=wall,
            objects=len(done),
            bytes=sum(e.size for e in done),
            failed=len(failures),
            retries=recorder.retries,
            errors_by_status=by_status,
            errors_by_code=by_code,
            **latency_summary(recorder.latencies_ms),
        )
        if done:
            seconds = {e.path: times[e.path][1] - times[e.path][0] for e in done}
            result.extra.update(
                writers=len(shards),
                slowest_writer_s=max(seconds.values()),
                fastest_writer_s=min(seconds.values()),
                min_writer_mib_s=min(e.size / MIB / seconds[e.path] for e in done),
                last_done_s=max(t[1] for t in times.values()) - t_all,
                requests=recorder.attempts,
            )
        if failures:
            result.ok = False
            result.error = f"{len(failures)} writers failed: " + "; ".join(failures[:3])
        return result
