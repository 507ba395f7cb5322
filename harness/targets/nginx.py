"""nginx serving another target's data root as plain files on a free loopback port.

The read limit the façade is held to: a committed blob ``<container>/<name>`` of the façade is
the regular file ``<data root>/<account>/<container>/<name>``, and nginx serves that directory,
so a Get Blob of the façade and a GET of nginx read the very same file. nginx speaks no Blob
API (no account, no auth, no containers): the runner skips its preflight (``blob_api``) and the
REST bench driver only reads from it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from harness.targets.base import Endpoint, LocalServerTarget, free_port
from harness.tools import nginx_path, tool_versions

SCRATCH = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def nginx_config(port: int, root: Path, workdir: Path, workers: int) -> str:
    """A static-file nginx tuned like a file server should be: sendfile, no access log."""
    # mkdtemp-style 0700 directories: as root, the workers must stay root to read them.
    user = "user root;\n" if os.geteuid() == 0 else ""
    # Scratch dirs under data/: removed with the data roots when a run does not keep its data.
    temp = "".join(f"  {kind}_temp_path {workdir / 'data' / kind};\n" for kind in SCRATCH)
    return (
        f"{user}worker_processes {workers};\n"
        "daemon off;\n"
        f"pid {workdir / 'nginx.pid'};\n"
        f"error_log {workdir / 'error.log'} warn;\n"
        "events { worker_connections 4096; }\n"
        "http {\n"
        "  access_log off;\n"
        "  sendfile on;\n"
        "  tcp_nopush on;\n"
        "  keepalive_requests 100000;\n"
        f"{temp}"
        "  server {\n"
        f"    listen 127.0.0.1:{port};\n"
        f"    root {root};\n"
        "    location / { }\n"
        "  }\n"
        "}\n"
    )


class NginxTarget(LocalServerTarget):
    """nginx with a generated config in its workdir, serving the account directory of the
    target it ``serves`` (default: the reference façade): URLs are ``/<container>/<blob>``."""

    name = "nginx"
    blob_api = False

    def __init__(
        self, workers: int | None = None, serves: str = "reference", root: Path | None = None
    ) -> None:
        super().__init__()
        self.workers = workers
        self.serves = serves
        self.root = root

    def bind(self, peer: Any) -> None:
        """Serve ``peer``'s files: its data root's account directory (it must be started)."""
        data_root = getattr(peer, "data_root", None)
        if data_root is None:
            raise ValueError(f"nginx serves {self.serves}, which has no local data root")
        self.root = Path(data_root) / peer.account
        self.workers = self.workers or getattr(peer, "workers", 1)
        self.root.mkdir(parents=True, exist_ok=True)

    def start(self, workdir: Path) -> None:
        if self.root is None:
            raise ValueError("nginx has no directory to serve: bind it to a target first")
        for kind in SCRATCH:
            (workdir / "data" / kind).mkdir(parents=True, exist_ok=True)
        port = free_port()
        conf = workdir / "nginx.conf"
        conf.write_text(nginx_config(port, self.root, workdir, self.workers or 1))
        argv = [str(nginx_path()), "-c", str(conf), "-p", str(workdir)]
        self._serve("nginx", argv, port, workdir)

    def endpoint(self) -> Endpoint:
        endpoint = super().endpoint()
        endpoint.extra["static"] = True  # plain files: read-only, no containers to create
        return endpoint

    def facts(self) -> dict[str, Any]:
        return {
            "kind": self.name,
            "version": tool_versions().get("nginx", "unknown"),
            "workers": self.workers,
            "serves": self.serves,
            "root": str(self.root) if self.root else None,
            "port": self.server.port if self.server else None,
        }
