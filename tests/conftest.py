"""Shared fixtures: a real reference façade process on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reference_server.config import DEV_ACCOUNT, DEV_KEY

ROOT = Path(__file__).resolve().parents[1]
# The tests' labs of namespaces get their own number, so they never remove a lab someone made
# with the default one (0); set before anything imports harness.cluster.lab.
os.environ.setdefault("HARNESS_LAB_ID", "200")
pytest_plugins = ["identity_fixtures"]  # the lab token service and a bearer façade


def pytest_configure(config: pytest.Config) -> None:
    """One marker per driver, named like it, for the tests that drive its real client: adding a
    client adds its marker (``-m rclone`` runs one group)."""
    from harness.drivers import REGISTRY

    for name, driver in REGISTRY.items():
        if name.isidentifier():  # sdk-aio's tests carry `sdk`: one marker per client library
            config.addinivalue_line("markers", f"{name}: drives the real {driver.tool.name}")


def wait_until(predicate: Callable[[], bool], what: str, limit_s: float = 30) -> None:
    """Poll a condition; the limit only bounds a hung test, it is not what the test measures."""
    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningServer:
    port: int
    data_root: Path
    process: subprocess.Popen
    log_path: Path
    account: str = DEV_ACCOUNT
    key: str = DEV_KEY
    host: str = "127.0.0.1"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def account_url(self) -> str:
        return f"{self.base_url}/{self.account}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account};AccountKey={self.key};"
            f"BlobEndpoint={self.account_url};"
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(
    data_root: Path, log_path: Path, *extra_args: str, port: int | None = None
) -> RunningServer:
    port = port or free_port()
    data_root.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reference_server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-root",
            str(data_root),
            *extra_args,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"reference server exited early:\n{log_path.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return RunningServer(port, data_root, proc, log_path)
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"reference server did not listen on {port}:\n{log_path.read_text()}")


def stop_server(server: RunningServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    """A fresh reference façade with an empty data root, for one test."""
    srv = start_server(tmp_path / "data", tmp_path / "server.log")
    yield srv
    stop_server(srv)


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One reference façade for a whole session; tests must use their own containers."""
    base = tmp_path_factory.mktemp("shared-server")
    srv = start_server(base / "data", base / "server.log")
    yield srv
    stop_server(srv)
