"""`harness bench s2s`: server-side hydration against the client relay, as one ratio.

Two reference façades on loopback: a "lake" holding a dataset and an "edge" to hydrate. Each
repeat moves the dataset into the edge twice, with the same AzCopy at the same concurrency:

- **S2S**: ``azcopy copy`` BlobBlob — the edge fetches every byte from the lake itself (Put Blob
  From URL / Put Block From URL); nothing passes through the client;
- **relay**: ``azcopy copy`` lake → local disk, then local disk → edge: the path a client without
  server-side copy takes (download, then upload).

The ratio is the median S2S throughput over the median relay throughput (> 1: S2S is faster).
Every byte that reaches the edge is checked against the dataset's MD5s after each run.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click
from azure.storage.blob import BlobServiceClient
from rich.console import Console
from rich.table import Table

from harness.cli_common import SIZE, config_from_options, new_run_dir, out_option
from harness.datasets import Dataset, generate_dataset
from harness.drivers.azcopy import AzCopyDriver
from harness.drivers.base import StepContext
from harness.paths import ROOT
from harness.results import StepResult
from harness.targets.base import Endpoint
from harness.targets.reference import ReferenceTarget

MIB = 1024 * 1024
LAKE_ACCOUNT = "lake"
LAKE_KEY = base64.b64encode(b"lake-account-key-for-bench-s2s!").decode()
LAKE_CONTAINER, EDGE_S2S, EDGE_RELAY = "dataset", "hydrated-s2s", "hydrated-relay"


@dataclass
class S2SConfig:
    files: int = 8
    file_size: int = 128 * MIB
    small_files: int = 200
    small_size: int = 256 * 1024
    block_size_mib: int = 8
    concurrency: int = 32
    repeats: int = 3
    workers: int = 1  # façade worker processes of each of the two servers
    out: Path = ROOT / "reports"
    cache_dir: Path = ROOT / ".cache" / "datasets"


@dataclass
class S2SRun:
    config: dict
    s2s_mib_s: list[float] = field(default_factory=list)
    relay_mib_s: list[float] = field(default_factory=list)
    relay_down_s: list[float] = field(default_factory=list)
    relay_up_s: list[float] = field(default_factory=list)
    dataset_bytes: int = 0
    dataset_objects: int = 0
    ratio: float | None = None
    run_dir: Path | None = None

    def summary(self) -> dict[str, float | None]:
        s2s = statistics.median(self.s2s_mib_s) if self.s2s_mib_s else None
        relay = statistics.median(self.relay_mib_s) if self.relay_mib_s else None
        return {"s2s_mib_s": s2s, "relay_mib_s": relay, "ratio": self.ratio}


def _lake_endpoint(target: ReferenceTarget) -> Endpoint:
    assert target.server is not None
    url = f"http://127.0.0.1:{target.server.port}/{LAKE_ACCOUNT}"
    return Endpoint(target="lake", account=LAKE_ACCOUNT, blob_url=url, key=LAKE_KEY)


def _seed(lake: Endpoint, dataset: Dataset) -> None:
    with BlobServiceClient(lake.blob_url, credential=lake.key, max_block_size=8 * MIB) as svc:
        ct = svc.create_container(LAKE_CONTAINER)
        for entry in dataset.files:
            with open(dataset.root / entry.path, "rb") as f:
                ct.upload_blob(entry.path, f, length=entry.size, max_concurrency=8)


def _verify(edge: Endpoint, container: str, dataset: Dataset) -> None:
    with BlobServiceClient(edge.blob_url, credential=edge.key) as svc:
        ct = svc.get_container_client(container)
        for entry in dataset.files:
            md5 = hashlib.md5()
            for chunk in ct.download_blob(entry.path).chunks():
                md5.update(chunk)
            if md5.hexdigest() != entry.md5:
                raise RuntimeError(f"{container}/{entry.path} differs from the dataset")


def _ok(result: StepResult, what: str) -> StepResult:
    if not result.ok or result.failed:
        raise RuntimeError(f"{what} failed: {result.error}")
    return result


def run_s2s(cfg: S2SConfig, log: Callable[[str], None] = print) -> S2SRun:
    run_dir = new_run_dir(cfg.out, "bench-s2s")
    spec = {
        "name": "bench-s2s",
        "seed": 81,
        "files": [
            {"count": cfg.files, "size": cfg.file_size, "prefix": "large"},
            {"count": cfg.small_files, "size": cfg.small_size, "dir_depth": 1, "prefix": "small"},
        ],
    }
    spec["files"] = [g for g in spec["files"] if g["count"]]  # type: ignore[index]
    dataset = generate_dataset(spec, cfg.cache_dir)
    run = S2SRun(config={k: str(v) for k, v in asdict(cfg).items()}, run_dir=run_dir)
    run.dataset_bytes, run.dataset_objects = dataset.total_bytes, dataset.count
    lake_t = ReferenceTarget(cfg.workers, ["--account", f"{LAKE_ACCOUNT}:{LAKE_KEY}"])
    edge_t = ReferenceTarget(cfg.workers)
    azcopy = AzCopyDriver()
    try:
        lake_t.start(run_dir / "lake")
        edge_t.start(run_dir / "edge")
        lake, edge = _lake_endpoint(lake_t), edge_t.endpoint()
        log(f"seeding the lake: {dataset.count} objects, {dataset.total_bytes / MIB:,.0f} MiB")
        _seed(lake, dataset)

        def step(name: str, rep: int, **kw: object) -> StepContext:
            return StepContext(
                scenario="bench-s2s",
                step=name,
                operation=str(kw.pop("operation")),
                workdir=run_dir / "steps" / f"{name}-{rep}",
                concurrency=cfg.concurrency,
                block_size_mib=cfg.block_size_mib,
                timeout_s=3600,
                repeat=rep,
                **kw,  # type: ignore[arg-type]
            )

        for rep in range(cfg.repeats):
            s2s = _ok(
                azcopy.run(
                    step(
                        "s2s",
                        rep,
                        operation="copy",
                        endpoint=edge,
                        container=EDGE_S2S,
                        source_endpoint=lake,
                        source_container=LAKE_CONTAINER,
                    )
                ),
                "S2S copy",
            )
            run.s2s_mib_s.append(dataset.total_bytes / MIB / s2s.duration_s)
            log(f"repeat {rep + 1}: S2S {s2s.duration_s:.2f}s ({run.s2s_mib_s[-1]:.1f} MiB/s)")

            local = run_dir / "relay"
            t0 = time.perf_counter()
            down = _ok(
                azcopy.run(
                    step(
                        "relay-down",
                        rep,
                        operation="download",
                        endpoint=lake,
                        container=LAKE_CONTAINER,
                        dataset=dataset,
                        local_dir=local,
                        options={"verify": False},
                    )
                ),
                "relay download",
            )
            _svc_container(edge, EDGE_RELAY)
            up = _ok(
                azcopy.run(
                    step(
                        "relay-up",
                        rep,
                        operation="upload",
                        endpoint=edge,
                        container=EDGE_RELAY,
                        dataset=Dataset(dataset.name, local, dataset.files),
                    )
                ),
                "relay upload",
            )
            relay_s = time.perf_counter() - t0
            shutil.rmtree(local, ignore_errors=True)
            run.relay_down_s.append(down.duration_s)
            run.relay_up_s.append(up.duration_s)
            run.relay_mib_s.append(dataset.total_bytes / MIB / relay_s)
            log(
                f"repeat {rep + 1}: relay {relay_s:.2f}s ({run.relay_mib_s[-1]:.1f} MiB/s; "
                f"down {down.duration_s:.2f}s + up {up.duration_s:.2f}s)"
            )
        _verify(edge, EDGE_S2S, dataset)
        _verify(edge, EDGE_RELAY, dataset)
    finally:
        lake_t.stop()
        edge_t.stop()
    s = run.summary()
    run.ratio = s["s2s_mib_s"] / s["relay_mib_s"] if s["relay_mib_s"] else None  # type: ignore[operator]
    (run_dir / "s2s.json").write_text(
        json.dumps({**asdict(run), "summary": run.summary()}, indent=2, default=str)
    )
    return run


def _svc_container(endpoint: Endpoint, name: str) -> None:
    """AzCopy uploads need the container (S2S copies create their own)."""
    with BlobServiceClient(endpoint.blob_url, credential=endpoint.key) as svc:
        if not svc.get_container_client(name).exists():
            svc.create_container(name)


@click.command("s2s")
@click.option("--files", type=int, default=8, show_default=True, help="large files")
@click.option("--file-size", type=SIZE, default="128MiB", show_default=True)
@click.option("--small-files", type=int, default=200, show_default=True)
@click.option("--small-size", type=SIZE, default="256KiB", show_default=True)
@click.option("--block-size-mib", type=int, default=8, show_default=True)
@click.option("--concurrency", type=int, default=32, show_default=True, help="AZCOPY_CONCURRENCY")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--workers", type=int, default=1, show_default=True, help="per façade")
@out_option()
def s2s_command(**options: Any) -> None:
    """Lake → edge hydration by server-side copy vs download-then-upload through the client."""
    cfg = config_from_options(S2SConfig, options)
    console = Console()
    run = run_s2s(cfg, console.print)
    summary = run.summary()
    table = Table(
        title=f"hydration of {run.dataset_objects} objects, "
        f"{run.dataset_bytes / MIB:,.0f} MiB (median of {cfg.repeats})"
    )
    for col in ("path", "MiB/s", "repeats (MiB/s)"):
        table.add_column(col, justify="right" if col != "path" else "left")
    table.add_row(
        "S2S (edge fetches from the lake)",
        f"{summary['s2s_mib_s']:.1f}",
        ", ".join(f"{v:.1f}" for v in run.s2s_mib_s),
    )
    table.add_row(
        "relay (download, then upload)",
        f"{summary['relay_mib_s']:.1f}",
        ", ".join(f"{v:.1f}" for v in run.relay_mib_s),
    )
    console.print(table)
    console.print(f"S2S / client relay throughput ratio: [bold]{run.ratio:.2f}×[/]")
    console.print(f"results: {run.run_dir / 's2s.json'}")
