"""Locust in its own processes: one headless master, N workers, generator CPU sampled meanwhile.

Locust is never imported here (its gevent monkey-patching would break the harness's own HTTP
clients); it runs as ``python -m locust``. Worker launch sits behind ``WorkerLauncher`` so a
remote-host target can start workers over SSH later by handing the driver another launcher.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

import psutil

from harness.load.plan import PLAN_ENV, LoadPlan
from harness.paths import ROOT

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
SAMPLE_INTERVAL_S = 1.0


def locust_argv() -> list[str]:
    return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE)]


def locust_env(plan_path: Path) -> dict[str, str]:
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, PLAN_ENV: str(plan_path), "PYTHONPATH": pythonpath}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WorkerLauncher(Protocol):
    """Starts Locust workers that connect to the master at (master_host, master_port)."""

    def launch(
        self, count: int, master_host: str, master_port: int, env: dict[str, str], log_dir: Path
    ) -> list[subprocess.Popen[bytes]]: ...


class LocalWorkers:
    """Workers as processes on this machine."""

    def launch(
        self, count: int, master_host: str, master_port: int, env: dict[str, str], log_dir: Path
    ) -> list[subprocess.Popen[bytes]]:
        procs = []
        for i in range(count):
            argv = [*locust_argv(), "--worker", "--master-host", master_host]
            argv += ["--master-port", str(master_port)]
            procs.append(_spawn(argv, env, log_dir / f"worker-{i}.log"))
        return procs


def _spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    log: IO[bytes] = open(log_path, "wb")  # the child keeps its own descriptor
    try:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    finally:
        log.close()


@dataclass
class CpuSample:
    at: float  # unix seconds
    cpu_pct: dict[int, float]  # pid -> percent of one core since the previous sample


@dataclass
class LocustRun:
    returncode: int | None
    timed_out: bool
    master_pid: int
    worker_pids: list[int]
    samples: list[CpuSample] = field(default_factory=list)
    log_dir: Path = Path()
    ended_at: float = 0.0  # unix seconds when the master exited

    def log_tail(self, lines: int = 30) -> str:
        path = self.log_dir / "master.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _stop(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_locust(
    plan: LoadPlan,
    plan_path: Path,
    run_dir: Path,
    *,
    launcher: WorkerLauncher | None = None,
    hard_timeout_s: float | None = None,
    on_start: Callable[[list[int]], None] | None = None,
) -> LocustRun:
    """Run the plan to its end (time or count bound) and return the processes' CPU samples.

    ``hard_timeout_s`` kills everything if Locust has not ended by then (the plan's own bounds
    end it normally)."""
    launcher = launcher or LocalWorkers()
    env = locust_env(plan_path)
    port = _free_port()
    argv = [*locust_argv(), "--master", "--headless", "--expect-workers", str(plan.workers)]
    argv += ["--master-bind-host", "127.0.0.1", "--master-bind-port", str(port)]
    argv += ["--csv", str(run_dir / "locust"), "--csv-full-history"]
    argv += ["--json-file", str(run_dir / "locust-stats"), "--only-summary"]
    argv += ["--expect-workers-max-wait", "60", "--exit-code-on-error", "0"]
    master = _spawn(argv, env, run_dir / "master.log")
    workers = launcher.launch(plan.workers, "127.0.0.1", port, env, run_dir)
    procs = {p.pid: psutil.Process(p.pid) for p in [master, *workers]}
    if on_start:
        on_start(list(procs))  # lets the harness's own sampler follow the generators too
    for p in procs.values():
        p.cpu_percent(None)  # prime: the next call reports usage since now
    samples: list[CpuSample] = []
    deadline = time.monotonic() + (hard_timeout_s or plan.duration_s + 120)
    timed_out = False
    while master.poll() is None:
        if time.monotonic() > deadline:
            timed_out = True
            break
        time.sleep(SAMPLE_INTERVAL_S)
        pct: dict[int, float] = {}
        for pid, p in procs.items():
            try:
                pct[pid] = p.cpu_percent(None)
            except psutil.Error:
                continue
        samples.append(CpuSample(time.time(), pct))
    _stop(master)
    ended_at = time.time()
    for w in workers:  # workers quit when the master does; a straggler is ended here
        try:
            w.wait(timeout=15)
        except subprocess.TimeoutExpired:
            _stop(w)
    return LocustRun(
        returncode=master.returncode,
        timed_out=timed_out,
        master_pid=master.pid,
        worker_pids=[w.pid for w in workers],
        samples=samples,
        log_dir=run_dir,
        ended_at=ended_at,
    )
