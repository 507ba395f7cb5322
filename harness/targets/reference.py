"""The embedded reference façade: `python -m reference_server` on a free loopback port."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from harness.paths import ROOT
from harness.targets.base import DEV_ACCOUNT, DEV_KEY, LocalServerTarget, free_port


class ReferenceTarget(LocalServerTarget):
    name = "reference"
    account = DEV_ACCOUNT
    key = DEV_KEY

    def __init__(self, workers: int = 1, extra_args: list[str] | None = None) -> None:
        super().__init__()
        self.workers = workers
        self.extra_args = list(extra_args or [])
        self.data_root: Path | None = None

    def start(self, workdir: Path) -> None:
        # A fresh data root inside the run directory: runs never see each other's blobs.
        self.data_root = workdir / "data"
        self.data_root.mkdir(parents=True, exist_ok=True)
        port = free_port()
        argv = [
            sys.executable,
            "-m",
            "reference_server",
            "--data-root",
            str(self.data_root),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *self.extra_args,
        ]
        if self.workers > 1:
            argv += ["--workers", str(self.workers)]
        self._serve("reference façade", argv, port, workdir, cwd=ROOT)

    def facts(self) -> dict[str, Any]:
        from importlib import metadata

        try:
            version = metadata.version("blob-facade-lab")
        except metadata.PackageNotFoundError:
            version = "unknown"
        return {
            "kind": self.name,
            "version": version,
            "workers": self.workers,
            "args": self.extra_args,
            "data_root": str(self.data_root) if self.data_root else None,
            "port": self.server.port if self.server else None,
        }
