"""Target: where a scenario runs: the embedded façade, Azurite, a URL, remote hosts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

# The emulator's well-known account, served by the reference façade and Azurite alike.
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
# The lab's virtual-host domain (<account>.blob.lab.test, routed by harness.lab_proxy): a reserved
# TLD (RFC 2606) that can never resolve to a real host.
LAB_DOMAIN = "lab.test"


@dataclass
class Endpoint:
    """How a client reaches one Blob account."""

    target: str  # target name: "reference", "azurite", "url", ...
    account: str
    # Account URL in the form clients take: http://127.0.0.1:PORT/ACCOUNT (path style) or
    # https://ACCOUNT.blob.DOMAIN (virtual-host style).
    blob_url: str
    key: str | None = None  # base64 Shared Key, when the account key is known
    sas: str | None = None  # account SAS query string without '?', when one is used
    # Loopback forwarding proxy (http://127.0.0.1:PORT) that routes the virtual-host names of
    # ``virtual_host_url`` to this endpoint, for clients that infer the service from the host name.
    proxy_url: str | None = None
    virtual_host_url: str | None = None
    ca_bundle: Path | None = None  # lab CA when the endpoint speaks TLS
    extra: dict[str, Any] = field(default_factory=dict)
    # The account URL the user knows when ``blob_url`` is a loopback proxy in front of it (the
    # contract recorder's): errors name this one, not the proxy's port.
    origin_url: str | None = None

    @property
    def display_url(self) -> str:
        return self.origin_url or self.blob_url

    @property
    def connection_string(self) -> str:
        parts = ["DefaultEndpointsProtocol=" + self.blob_url.split(":", 1)[0]]
        parts.append(f"AccountName={self.account}")
        if self.key:
            parts.append(f"AccountKey={self.key}")
        if self.sas:
            parts.append(f"SharedAccessSignature={self.sas}")
        parts.append(f"BlobEndpoint={self.blob_url}")
        return ";".join(parts) + ";"


class Target(Protocol):
    name: str

    def start(self, workdir: Path) -> None:
        """Start (or reach) the target; workdir is private to this run."""

    def endpoint(self) -> Endpoint: ...

    def stop(self) -> None: ...

    def facts(self) -> dict[str, Any]:
        """Version, build, host and configuration facts recorded in run.json."""

    def server_pids(self) -> list[int]:
        """Local server process ids to sample for CPU/RSS (empty for remote targets)."""


def free_port() -> int:
    """A currently free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A local server subprocess on a loopback port: started, awaited, stopped, its log kept."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        port: int,
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        stop_signal: int = signal.SIGTERM,
        stop_grace_s: float = 10.0,
    ) -> None:
        self.name = name
        self.argv = argv
        self.port = port
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.stop_signal = stop_signal
        self.stop_grace_s = stop_grace_s
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            # A new session so Ctrl-C in the terminal reaches the harness, which stops us in order.
            self.process = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(self.env or {})},
                cwd=self.cwd,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode} before listening:\n"
                    f"{self.log_tail()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not listen on port {self.port}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Signal the whole process group (workers included), then kill what is left."""
        proc, self.process = self.process, None
        if proc is None:
            return
        for sig, wait in ((self.stop_signal, self.stop_grace_s), (signal.SIGKILL, 10)):
            if proc.poll() is not None:
                break
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        try:  # children that outlived the leader
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()

    def pids(self) -> list[int]:
        return [self.process.pid] if self.process and self.process.poll() is None else []


class LocalServerTarget:
    """A target served by one local process on a loopback port (the Target protocol's
    ``endpoint``, ``stop`` and ``server_pids``); subclasses build the command line in ``start``
    and say what ``facts`` to record."""

    name = "local"
    account = ""  # "" for a server without an account segment in its URLs (plain files)
    key: str | None = None
    ca_bundle: Path | None = None  # set by a subclass that serves https with the lab CA

    def __init__(self) -> None:
        self.server: ServerProcess | None = None

    def _serve(self, label: str, argv: list[str], port: int, workdir: Path, **kwargs: Any) -> None:
        """Start ``argv`` (listening on ``port``) with its log in ``workdir`` and wait for it."""
        self.server = ServerProcess(label, argv, port, workdir / "server.log", **kwargs)
        self.server.start()

    def endpoint(self) -> Endpoint:
        assert self.server, f"{self.name} not started"
        path = f"/{self.account}" if self.account else ""
        scheme = "https" if self.ca_bundle else "http"
        return Endpoint(
            target=self.name,
            account=self.account,
            blob_url=f"{scheme}://127.0.0.1:{self.server.port}{path}",
            key=self.key,
            ca_bundle=self.ca_bundle,
        )

    def stop(self) -> None:
        if self.server:
            self.server.stop()

    def server_pids(self) -> list[int]:
        return self.server.pids() if self.server else []
