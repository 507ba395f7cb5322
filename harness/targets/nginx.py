"""nginx serving a directory on a free loopback port: the read limit the façade is held to."""

from __future__ import annotations

import os
from pathlib import Path

from harness.targets.base import LocalServerTarget, free_port
from harness.tools import nginx_path


def nginx_config(port: int, root: Path, workdir: Path, workers: int) -> str:
    """A static-file nginx tuned like a file server should be: sendfile, no access log."""
    # mkdtemp-style 0700 directories: as root, the workers must stay root to read them.
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "".join(
        f"  {kind}_temp_path {workdir / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
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


class NginxServer(LocalServerTarget):
    """nginx with a generated config in ``workdir``, serving ``root`` as plain files: no account
    segment, URLs are <root>/<container>/<blob> on disk."""

    name = "nginx"

    def __init__(self, root: Path, workers: int) -> None:
        super().__init__()
        self.root = root
        self.workers = workers

    def start(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        conf = workdir / "nginx.conf"
        conf.write_text(nginx_config(port, self.root, workdir, self.workers))
        argv = [str(nginx_path()), "-c", str(conf), "-p", str(workdir)]
        self._serve("nginx", argv, port, workdir)
