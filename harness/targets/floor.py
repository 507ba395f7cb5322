"""The minimal aiohttp server (``harness.bench.floor``) as a target: the Python ceiling the
façade's small requests are held to. It speaks no Blob API (no auth, no storage), so the runner
skips its preflight; the REST bench and Locust send it the same requests as the façade."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from harness.paths import ROOT
from harness.targets.base import DEV_ACCOUNT, DEV_KEY, LocalServerTarget, free_port


class FloorTarget(LocalServerTarget):
    name = "aiohttp-floor"
    account = DEV_ACCOUNT  # the URLs and signatures of the façade's requests, unchecked
    key = DEV_KEY
    blob_api = False

    def __init__(self, workers: int = 1) -> None:
        super().__init__()
        self.workers = workers

    def start(self, workdir: Path) -> None:
        port = free_port()
        argv = [sys.executable, "-m", "harness.bench.floor", "--port", str(port)]
        argv += ["--workers", str(self.workers)]
        self._serve("aiohttp floor", argv, port, workdir, cwd=ROOT)

    def facts(self) -> dict[str, Any]:
        import aiohttp

        return {
            "kind": self.name,
            "version": aiohttp.__version__,
            "workers": self.workers,
            "port": self.server.port if self.server else None,
        }
