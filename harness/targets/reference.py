"""The embedded reference façade: `python -m reference_server` on a free loopback port."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from harness.labca import LabCA, default_ca_dir
from harness.paths import ROOT
from harness.targets.base import DEV_ACCOUNT, DEV_KEY, LAB_DOMAIN, LocalServerTarget, free_port

# Every name a client may reach the façade by: loopback, and the lab proxy's virtual hosts
# ``<account>.blob.lab.test`` (one wildcard for every account, --account ones included).
TLS_NAMES = ("127.0.0.1", "localhost", f"*.blob.{LAB_DOMAIN}")


class ReferenceTarget(LocalServerTarget):
    name = "reference"
    account = DEV_ACCOUNT
    key = DEV_KEY

    def __init__(
        self,
        workers: int = 1,
        extra_args: list[str] | None = None,
        *,
        tls: bool = False,
        ca_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.workers = workers
        self.extra_args = list(extra_args or [])
        self.tls = tls  # serve https with a certificate from the lab CA
        self.ca_dir = ca_dir  # the lab CA's directory (default: default_ca_dir())
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
        env: dict[str, str] = {}
        if self.tls:
            ca = LabCA.load_or_create(self.ca_dir or default_ca_dir())
            cert, key = ca.issue(TLS_NAMES, workdir / "tls")
            argv += ["--tls-cert", str(cert), "--tls-key", str(key)]
            # the façade fetches copy sources itself: an https lab source must verify too
            env["SSL_CERT_FILE"] = str(ca.bundle_path)
            self.ca_bundle = ca.bundle_path
        self._serve("reference façade", argv, port, workdir, cwd=ROOT, env=env)

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
            "tls": self.tls,
            "args": self.extra_args,
            "data_root": str(self.data_root) if self.data_root else None,
            "port": self.server.port if self.server else None,
        }
