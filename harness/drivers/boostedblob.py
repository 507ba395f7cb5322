"""boostedblob (`bbb cptree/lstree/rmtree/sync`), run through `boostedblob_cli` (URL override)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from harness.drivers.base import Driver, StepContext
from harness.drivers.common import ProcessRunner, client_env, local_dir
from harness.metrics import latency_summary
from harness.paths import ROOT
from harness.results import StepResult, count_errors
from harness.tools import Tool

MIB = 1024 * 1024


class BoostedblobDriver(Driver):
    name = "boostedblob"
    operations = ("upload", "download", "sync-up", "sync-down", "remove", "list")
    # imported only by the CLI subprocess (boostedblob_cli), never by the harness itself
    tool = Tool("boostedblob", distributions=("boostedblob",))

    def __init__(self) -> None:
        self._runner = ProcessRunner()

    def prepare(self, ctx: StepContext) -> None:
        if not ctx.endpoint.key:
            # boostedblob signs with the account key; it has no way to take a SAS for a whole tree
            raise ValueError("boostedblob needs the endpoint's account key")

    def pids(self) -> list[int]:
        pid = self._runner.pid()
        return [pid] if pid else []

    def _remote(self, ctx: StepContext) -> str:
        # a directory path: boostedblob's tree commands want the trailing slash
        return f"az://{ctx.endpoint.account}/{ctx.container}/{ctx.prefix}"

    def _command(self, ctx: StepContext) -> list[str]:
        op, remote = ctx.operation, self._remote(ctx)
        conc = ["--concurrency", str(ctx.concurrency)]
        delete = ["--delete"] if ctx.options.get("delete_destination") else []
        if op == "upload":
            assert ctx.dataset is not None, "upload needs a dataset"
            return ["cptree", "-q", *conc, f"{ctx.dataset.root}/", remote]
        if op == "download":
            return ["cptree", "-q", *conc, remote, f"{local_dir(ctx)}/"]
        if op == "sync-up":
            src = ctx.local_dir or (ctx.dataset.root if ctx.dataset else None)
            assert src is not None, "sync-up needs a local directory"
            return ["sync", "-q", *conc, *delete, f"{src}/", remote]
        if op == "sync-down":
            return ["sync", "-q", *conc, *delete, remote, f"{local_dir(ctx)}/"]
        if op == "remove":
            return ["rmtree", "-q", *conc, remote]
        if op == "list":
            return ["lstree", "-l", "--machine", remote]
        raise ValueError(f"boostedblob does not support operation {op!r}")

    def run(self, ctx: StepContext) -> StepResult:
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        stats_path = ctx.workdir / "bbb-stats.json"
        stats_path.unlink(missing_ok=True)
        try:
            self.prepare(ctx)
            argv = [sys.executable, "-m", "harness.drivers.boostedblob_cli", *self._command(ctx)]
        except (ValueError, AssertionError) as exc:
            return ctx.result(driver=self.name, ok=False, error=str(exc))
        env = {
            **os.environ,
            "LAB_BBB_ENDPOINT": ctx.endpoint.blob_url,
            "LAB_BBB_STATS": str(stats_path),
            "LAB_BBB_CHUNK_SIZE": str(int(ctx.options.get("chunk_size", ctx.block_size_mib * MIB))),
            "AZURE_STORAGE_ACCOUNT": ctx.endpoint.account,
            "AZURE_STORAGE_ACCOUNT_KEY": ctx.endpoint.key or "",
            "BBB_DISABLE_CACHE": "1",  # no token cache in the user's home
            "LAB_BBB_CA_BUNDLE": str(ctx.endpoint.ca_bundle or ""),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        for key in ("AZURE_STORAGE_KEY", "AZURE_STORAGE_CONNECTION_STRING", "AZURE_USE_IDENTITY"):
            env.pop(key, None)
        if ctx.options.get("auth") == "oauth":
            # boostedblob takes the first credential it finds: without a key it reads the OAuth
            # settings given in options.env (MSI_ENDPOINT, AZURE_CLIENT_ID, ...)
            env.pop("AZURE_STORAGE_ACCOUNT_KEY", None)
        env.update(client_env(ctx))
        outcome = self._runner.run(
            argv, env, cwd=ctx.workdir, stderr_path=ctx.workdir / "bbb.stderr"
        )
        stats: dict[str, Any] = json.loads(stats_path.read_text()) if stats_path.is_file() else {}
        errors = [(int(s), c) for s, c in stats.get("errors", [])]
        by_status, by_code = count_errors(errors)
        result = ctx.result(
            driver=self.name,
            duration_s=outcome.duration_s,
            errors_by_status=by_status,
            errors_by_code=by_code,
            **latency_summary(stats.get("latencies_ms", [])),
        )
        result.extra["argv"] = " ".join(argv[3:])
        result.extra["requests"] = stats.get("requests", 0)
        result.extra["methods"] = stats.get("methods", {})
        op = ctx.operation
        if op in ("upload", "sync-up"):
            result.objects, result.bytes = stats.get("blobs_written", 0), stats.get("bytes_up", 0)
        elif op in ("download", "sync-down"):
            result.objects, result.bytes = stats.get("blobs_read", 0), stats.get("bytes_down", 0)
        elif op == "list":
            lines = [ln for ln in outcome.stdout_lines if ln.strip() and not ln.endswith("/")]
            result.objects = len(lines)
            result.bytes = sum(_listed_size(ln) for ln in lines)
        elif op == "remove":
            result.objects = stats.get("blobs_deleted", 0)
        if outcome.returncode != 0:
            result.ok, result.failed = False, 1
            result.error = f"bbb exit {outcome.returncode}: {outcome.stderr.strip()[-600:]}"
        return result


def _listed_size(line: str) -> int:
    """Size column of ``bbb lstree -l --machine`` (size, mtime, path separated by spaces)."""
    first = line.split(maxsplit=1)[0] if line.split() else ""
    return int(first) if first.isdigit() else 0
