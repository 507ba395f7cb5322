"""azure-storage-blob, the Python SDK: `sdk` (sync client, threads) and `sdk-aio` (asyncio client).

Every HTTP attempt is timed by a pipeline policy, so latency percentiles, errors by status and
``x-ms-error-code`` and retries come from the requests the SDK really sent.

Workloads (``options: {workload: ...}``) beyond the plain operations, `sdk` only:

- ``checkpoint`` (operation upload), after MLPerf Storage's checkpoint workload: each file of
  the step's dataset is one writer's shard; all writers start together (a barrier) and each
  uploads its shard as concurrent Put Blocks (``max_concurrency`` per writer), then Put Block
  List. Beyond the usual totals ``extra`` records the slowest writer's time and the lowest
  per-writer bandwidth.

The SDK itself is imported only when a step runs, so validating a scenario never loads it.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.datasets import Dataset, ManifestEntry
from harness.drivers.base import Driver, StepContext
from harness.drivers.common import client_env, local_dir, sdk_credential, sdk_transport
from harness.metrics import latency_summary
from harness.results import StepResult, count_errors
from harness.tools import Tool

if TYPE_CHECKING:
    from azure.storage.blob import ContentSettings

MIB = 1024 * 1024
DEFAULT_FILE_PARALLELISM = 8  # files in flight; each file also uses max_concurrency connections
WORKLOADS = ("checkpoint",)  # options.workload of the sync driver


@dataclass
class _Recorder:
    """Per-attempt timings and error responses, shared by the sync and async pipelines."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: list[tuple[int, str | None]] = field(default_factory=list)
    attempts: int = 0
    retries: int = 0
    active: bool = True  # off while the driver sets up (e.g. creating the container)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _attempt_policy(recorder: _Recorder) -> Any:
    """A pipeline policy that runs once per HTTP attempt (it sits after the retry policy):
    timing, errors, retries. Built on first use: its base class is the SDK's."""
    from azure.core.pipeline.policies import SansIOHTTPPolicy

    class AttemptPolicy(SansIOHTTPPolicy):
        def on_request(self, request: Any) -> None:
            # the retry policy re-sends the same PipelineRequest: a mark left here is a retry
            if recorder.active and request.context.get("lab_t0") is not None:
                with recorder.lock:
                    recorder.retries += 1
            request.context["lab_t0"] = time.perf_counter()

        def on_response(self, request: Any, response: Any) -> None:
            if not recorder.active:
                return
            elapsed = (time.perf_counter() - request.context["lab_t0"]) * 1000
            status = response.http_response.status_code
            code = response.http_response.headers.get("x-ms-error-code")
            with recorder.lock:
                recorder.attempts += 1
                recorder.latencies_ms.append(elapsed)
                if status >= 400:
                    recorder.errors.append((status, code))

    return AttemptPolicy()


def _oauth_credential(ctx: StepContext, aio: bool = False) -> Any:
    """``auth: oauth``: a service principal's secret credential from the step's client
    environment (``AZURE_TENANT_ID``, ``AZURE_CLIENT_ID``, ``AZURE_CLIENT_SECRET``,
    ``AZURE_AUTHORITY_HOST``, as EnvironmentCredential reads them), trusting the lab CA."""
    if aio:
        from azure.identity.aio import ClientSecretCredential
    else:
        from azure.identity import ClientSecretCredential  # type: ignore[assignment]

    env = client_env(ctx)
    missing = [
        k for k in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET") if k not in env
    ]
    if missing:
        raise ValueError(f"auth: oauth needs {', '.join(missing)} in options.env")
    kwargs: dict[str, Any] = {"disable_instance_discovery": True}  # no login.microsoftonline.com
    if "AZURE_AUTHORITY_HOST" in env:
        kwargs["authority"] = env["AZURE_AUTHORITY_HOST"]
    if ctx.endpoint.ca_bundle:
        kwargs["connection_verify"] = str(ctx.endpoint.ca_bundle)
    return ClientSecretCredential(
        env["AZURE_TENANT_ID"], env["AZURE_CLIENT_ID"], env["AZURE_CLIENT_SECRET"], **kwargs
    )


def _client_kwargs(ctx: StepContext, recorder: _Recorder, aio: bool = False) -> dict[str, Any]:
    block = ctx.options.get("max_block_size", ctx.block_size_mib * MIB)
    oauth = ctx.options.get("auth") == "oauth"
    return {
        "credential": _oauth_credential(ctx, aio) if oauth else sdk_credential(ctx.endpoint),
        # the storage clients build their own pipeline; this hook appends a policy that sees
        # every attempt right before the transport
        "_additional_pipeline_policies": [_attempt_policy(recorder)],
        "max_block_size": int(block),
        "max_single_put_size": int(ctx.options.get("max_single_put_size", block)),
        "max_single_get_size": int(ctx.options.get("max_single_get_size", block)),
        "max_chunk_get_size": int(ctx.options.get("max_chunk_get_size", block)),
        "connection_timeout": 30,
        "read_timeout": int(min(ctx.timeout_s, 600)),
        **sdk_transport(ctx.endpoint),
    }


def _content_settings(entry: ManifestEntry) -> ContentSettings:
    from azure.storage.blob import ContentSettings

    # the manifest's md5 becomes Content-MD5, so AzCopy --check-md5 and listings can verify it
    return ContentSettings(
        content_type="application/octet-stream", content_md5=bytes.fromhex(entry.md5)
    )


def _sync_plan(
    dataset: Dataset, remote: dict[str, tuple[int, bytes | None]], prefix: str
) -> tuple[list[ManifestEntry], list[str]]:
    """Files to upload (missing or different size/MD5) and remote names the dataset lacks."""
    upload = []
    for entry in dataset.files:
        have = remote.get(prefix + entry.path)
        if have is None or have[0] != entry.size or (have[1] and have[1].hex() != entry.md5):
            upload.append(entry)
    wanted = {prefix + e.path for e in dataset.files}
    return upload, sorted(set(remote) - wanted)


@dataclass
class _Tally:
    objects: int = 0
    bytes: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ok(self, size: int) -> None:
        with self.lock:
            self.objects += 1
            self.bytes += size

    def fail(self, what: str, exc: BaseException) -> None:
        with self.lock:
            self.failed += 1
            code = getattr(exc, "error_code", None) or type(exc).__name__
            self.failures.append(f"{what}: {code}")


class _SdkBase(Driver):
    name = "sdk"
    operations = ("upload", "download", "list", "remove", "sync-up")
    tool = Tool("azure-storage-blob", distributions=("azure-storage-blob", "azure-core"))
    user_agent = "azsdk-python-"
    workloads: tuple[str, ...] = ()

    def prepare(self, ctx: StepContext) -> None:
        if ctx.operation not in self.operations:
            raise ValueError(f"{self.name} does not support operation {ctx.operation!r}")
        workload = ctx.options.get("workload")
        if workload is not None and workload not in self.workloads:
            valid = ", ".join(self.workloads) or "none"
            raise ValueError(f"{self.name} has no workload {workload!r}; valid: {valid}")
        if workload == "checkpoint" and (ctx.operation != "upload" or ctx.dataset is None):
            raise ValueError("the checkpoint workload saves a dataset: operation upload")
        sdk_credential(ctx.endpoint)

    def pids(self) -> list[int]:
        return [os.getpid()]

    def _finish(
        self, ctx: StepContext, recorder: _Recorder, tally: _Tally, started: float, wall: float
    ) -> StepResult:
        by_status, by_code = count_errors(recorder.errors)
        result = ctx.result(
            driver=self.name,
            started_at=started,
            duration_s=wall,
            objects=tally.objects,
            bytes=tally.bytes,
            failed=tally.failed,
            retries=recorder.retries,
            errors_by_status=by_status,
            errors_by_code=by_code,
            **latency_summary(recorder.latencies_ms),
        )
        result.extra["requests"] = recorder.attempts
        if tally.failed:
            result.ok = False
            result.error = f"{tally.failed} failed: " + "; ".join(tally.failures[:3])
        return result

    def _parallelism(self, ctx: StepContext) -> tuple[int, int]:
        files = int(
            ctx.options.get("file_parallelism", min(ctx.concurrency, DEFAULT_FILE_PARALLELISM))
        )
        per_blob = int(ctx.options.get("max_concurrency", ctx.concurrency))
        return max(1, files), max(1, per_blob)


class SdkDriver(_SdkBase):
    """The sync client: files in a thread pool, each blob with ``max_concurrency`` threads."""

    name = "sdk"
    workloads = WORKLOADS

    def run(self, ctx: StepContext) -> StepResult:
        from azure.core.exceptions import AzureError, ResourceExistsError
        from azure.storage.blob import BlobServiceClient

        if ctx.options.get("workload") == "checkpoint":
            return self._checkpoint(ctx)
        recorder, tally = _Recorder(active=False), _Tally()
        started, t0 = time.time(), time.perf_counter()
        try:
            service = BlobServiceClient(ctx.endpoint.blob_url, **_client_kwargs(ctx, recorder))
            with service:
                container = service.get_container_client(ctx.container)
                if ctx.operation in ("upload", "sync-up"):
                    try:
                        container.create_container()
                    except ResourceExistsError:
                        pass
                recorder.active = True
                t0 = time.perf_counter()
                self._dispatch(ctx, container, tally)
        except (AzureError, OSError, ValueError) as exc:
            tally.fail(ctx.operation, exc)
        return self._finish(ctx, recorder, tally, started, time.perf_counter() - t0)

    def _dispatch(self, ctx: StepContext, container: Any, tally: _Tally) -> None:
        from azure.core.exceptions import AzureError

        files, per_blob = self._parallelism(ctx)
        op, prefix = ctx.operation, ctx.prefix
        total = ctx.dataset.total_bytes if ctx.dataset else 0
        done = [0]

        def progress(size: int) -> None:
            done[0] += size
            ctx.progress(done[0], total)

        def upload(entry: ManifestEntry) -> None:
            try:
                assert ctx.dataset is not None
                with open(ctx.dataset.root / entry.path, "rb") as fh:
                    container.upload_blob(
                        prefix + entry.path,
                        fh,
                        length=entry.size,
                        overwrite=True,
                        max_concurrency=per_blob,
                        content_settings=_content_settings(entry),
                    )
                tally.ok(entry.size)
                progress(entry.size)
            except (AzureError, OSError) as exc:
                tally.fail(entry.path, exc)

        def download(blob: Any) -> None:
            target = local_dir(ctx) / blob.name[len(prefix) :]
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(target, "wb") as fh:
                    size = container.download_blob(blob.name, max_concurrency=per_blob).readinto(fh)
                tally.ok(size)
                progress(size)
            except (AzureError, OSError) as exc:
                tally.fail(blob.name, exc)

        def delete(name: str) -> None:
            try:
                container.delete_blob(name)
                tally.ok(0)
            except (AzureError, OSError) as exc:
                tally.fail(name, exc)

        with ThreadPoolExecutor(files) as pool:
            if op == "upload":
                assert ctx.dataset is not None, "upload needs a dataset"
                list(pool.map(upload, ctx.dataset.files))
            elif op == "download":
                list(pool.map(download, container.list_blobs(name_starts_with=prefix or None)))
            elif op == "list":
                for size in _listing_sizes(ctx, container.walk_blobs, container.list_blobs):
                    tally.ok(size)
            elif op == "remove":
                names = [b.name for b in container.list_blobs(name_starts_with=prefix or None)]
                list(pool.map(delete, names))
            elif op == "sync-up":
                assert ctx.dataset is not None, "sync-up needs a dataset"
                remote = {
                    b.name: (b.size, b.content_settings.content_md5)
                    for b in container.list_blobs(name_starts_with=prefix or None)
                }
                todo, stale = _sync_plan(ctx.dataset, remote, prefix)
                total = sum(e.size for e in todo)
                list(pool.map(upload, todo))
                if ctx.options.get("delete_destination"):
                    list(pool.map(delete, stale))

    def _checkpoint(self, ctx: StepContext) -> StepResult:
        """N writers save one shard each at once; the slowest writer is the checkpoint's time."""
        from azure.core.exceptions import AzureError, ResourceExistsError
        from azure.storage.blob import BlobServiceClient

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


def _listing_sizes(ctx: StepContext, walk: Any, flat: Any) -> Iterable[int]:
    """Sizes of the listed blobs: flat list_blobs, or walk_blobs by delimiter when asked."""
    from azure.storage.blob import BlobProperties

    prefix = ctx.prefix or None
    if not ctx.options.get("delimiter"):
        return (
            b.size
            for b in flat(name_starts_with=prefix, results_per_page=ctx.options.get("page_size"))
        )

    def walk_tree(start: str | None) -> Iterable[int]:
        for item in walk(name_starts_with=start, delimiter=ctx.options["delimiter"]):
            if isinstance(item, BlobProperties):
                yield item.size
            else:  # a BlobPrefix: descend into the virtual directory
                yield from walk_tree(item.name)

    return walk_tree(prefix)


class SdkAioDriver(_SdkBase):
    """The asyncio client: one event loop, files bounded by a semaphore."""

    name = "sdk-aio"

    def run(self, ctx: StepContext) -> StepResult:
        recorder, tally = _Recorder(active=False), _Tally()
        started = time.time()
        wall = asyncio.run(self._run(ctx, recorder, tally))
        return self._finish(ctx, recorder, tally, started, wall)

    async def _run(self, ctx: StepContext, recorder: _Recorder, tally: _Tally) -> float:
        from azure.core.exceptions import AzureError, ResourceExistsError
        from azure.storage.blob.aio import BlobServiceClient as AioBlobServiceClient

        t0 = time.perf_counter()
        credential = None
        try:
            kwargs = _client_kwargs(ctx, recorder, aio=True)
            credential = kwargs["credential"]
            async with AioBlobServiceClient(ctx.endpoint.blob_url, **kwargs) as service:
                container = service.get_container_client(ctx.container)
                if ctx.operation in ("upload", "sync-up"):
                    try:
                        await container.create_container()
                    except ResourceExistsError:
                        pass
                recorder.active = True
                t0 = time.perf_counter()
                await self._dispatch(ctx, container, tally)
        except (AzureError, OSError, ValueError) as exc:
            tally.fail(ctx.operation, exc)
        finally:
            if hasattr(credential, "close"):  # an OAuth credential owns an aiohttp session
                await credential.close()
        return time.perf_counter() - t0

    async def _dispatch(self, ctx: StepContext, container: Any, tally: _Tally) -> None:
        from azure.core.exceptions import AzureError

        files, per_blob = self._parallelism(ctx)
        gate = asyncio.Semaphore(files)
        op, prefix = ctx.operation, ctx.prefix
        total = ctx.dataset.total_bytes if ctx.dataset else 0
        done = [0]

        async def upload(entry: ManifestEntry) -> None:
            assert ctx.dataset is not None
            async with gate:
                try:
                    data = (
                        (ctx.dataset.root / entry.path).read_bytes() if entry.size <= MIB else None
                    )
                    if data is not None:
                        await container.upload_blob(
                            prefix + entry.path,
                            data,
                            overwrite=True,
                            content_settings=_content_settings(entry),
                        )
                    else:
                        with open(ctx.dataset.root / entry.path, "rb") as fh:
                            await container.upload_blob(
                                prefix + entry.path,
                                fh,
                                length=entry.size,
                                overwrite=True,
                                max_concurrency=per_blob,
                                content_settings=_content_settings(entry),
                            )
                    tally.ok(entry.size)
                    done[0] += entry.size
                    ctx.progress(done[0], total)
                except (AzureError, OSError) as exc:
                    tally.fail(entry.path, exc)

        async def download(name: str) -> None:
            target = local_dir(ctx) / name[len(prefix) :]
            async with gate:
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    stream = await container.download_blob(name, max_concurrency=per_blob)
                    with open(target, "wb") as fh:
                        size = await stream.readinto(fh)
                    tally.ok(size)
                except (AzureError, OSError) as exc:
                    tally.fail(name, exc)

        async def delete(name: str) -> None:
            async with gate:
                try:
                    await container.delete_blob(name)
                    tally.ok(0)
                except (AzureError, OSError) as exc:
                    tally.fail(name, exc)

        async def names() -> list[Any]:
            return [b async for b in container.list_blobs(name_starts_with=prefix or None)]

        if op == "upload":
            assert ctx.dataset is not None, "upload needs a dataset"
            await asyncio.gather(*(upload(e) for e in ctx.dataset.files))
        elif op == "download":
            await asyncio.gather(*(download(b.name) for b in await names()))
        elif op == "list":
            if ctx.options.get("delimiter"):
                await self._walk(container, prefix or None, ctx.options["delimiter"], tally)
            else:
                for blob in await names():
                    tally.ok(blob.size)
        elif op == "remove":
            await asyncio.gather(*(delete(b.name) for b in await names()))
        elif op == "sync-up":
            assert ctx.dataset is not None, "sync-up needs a dataset"
            remote = {b.name: (b.size, b.content_settings.content_md5) for b in await names()}
            todo, stale = _sync_plan(ctx.dataset, remote, prefix)
            total = sum(e.size for e in todo)
            await asyncio.gather(*(upload(e) for e in todo))
            if ctx.options.get("delete_destination"):
                await asyncio.gather(*(delete(n) for n in stale))

    async def _walk(self, container: Any, start: str | None, delimiter: str, tally: _Tally) -> None:
        from azure.storage.blob import BlobProperties

        async for item in container.walk_blobs(name_starts_with=start, delimiter=delimiter):
            if isinstance(item, BlobProperties):
                tally.ok(item.size)
            else:
                await self._walk(container, item.name, delimiter, tally)
