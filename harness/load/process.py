"""Locust in its own processes: one headless master, N workers, generator CPU sampled meanwhile.

Locust is never imported here (its gevent monkey-patching would break the harness's own HTTP
clients); it runs as ``python -m locust``. Worker launch sits behind ``WorkerLauncher``:
``LocalWorkers`` here, ``harness.load.remote.SshWorkers`` on an inventory's hosts. A launcher
says which address the master binds (loopback for local workers, the address the remote hosts
reach the controller at), and a worker that ends while the master still runs is recorded with
the time it ended (``LocustRun.workers_ended``): the driver reports it lost, never drops it.
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


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Worker(Protocol):
    """One Locust worker process, here or on another host."""

    name: str  # how reports name it: "worker-0", "h3 worker 1 (pid 4242)"

    @property
    def pid(self) -> int | None:
        """A process id of this machine (sampled with psutil), None for a remote worker."""

    def poll(self) -> int | None:
        """The exit status once the worker has ended, else None."""

    def wait(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` s for the end; the exit status, or None if still running."""

    def stop(self) -> None: ...

    def cpu_pct(self) -> float | None:
        """A remote worker's CPU (% of one core) over its last second; None for local ones."""


class WorkerLauncher(Protocol):
    """Starts Locust workers that connect to the master at (master_host, master_port)."""

    @property
    def bind_host(self) -> str:
        """The address the master listens on: one the workers can reach, never 0.0.0.0."""

    def launch(
        self, count: int, master_host: str, master_port: int, env: dict[str, str], log_dir: Path
    ) -> list[Worker]: ...

    def finish(self, out_dir: Path, log_dir: Path) -> None:
        """After the run: bring the workers' histogram files into ``out_dir``, logs into
        ``log_dir`` (nothing to do for local workers)."""


@dataclass
class LocalWorker:
    name: str
    proc: subprocess.Popen[bytes]

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        _stop(self.proc)

    def cpu_pct(self) -> float | None:
        return None  # sampled by psutil through ``pid``


class LocalWorkers:
    """Workers as processes on this machine."""

    bind_host = "127.0.0.1"

    def launch(
        self, count: int, master_host: str, master_port: int, env: dict[str, str], log_dir: Path
    ) -> list[Worker]:
        workers: list[Worker] = []
        for i in range(count):
            argv = [*locust_argv(), "--worker", "--master-host", master_host]
            argv += ["--master-port", str(master_port)]
            proc = _spawn(argv, env, log_dir / f"worker-{i}.log")
            workers.append(LocalWorker(f"worker-{i}", proc))
        return workers

    def finish(self, out_dir: Path, log_dir: Path) -> None:
        pass


def _spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    log: IO[bytes] = open(log_path, "wb")  # the child keeps its own descriptor
    try:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    finally:
        log.close()


@dataclass
class CpuSample:
    at: float  # unix seconds
    # local pid (or a remote worker's name) -> percent of one core since the previous sample
    cpu_pct: dict[int | str, float]


@dataclass
class WorkerEnd:
    """A worker that ended while the master still ran."""

    worker: str
    at: float  # unix seconds (this machine's clock) when its end was seen
    exit_code: int | None  # > 128 (remote) or < 0 (local): by a signal; remote -1: no status


@dataclass
class LocustRun:
    returncode: int | None
    timed_out: bool
    master_pid: int
    worker_pids: list[int]
    samples: list[CpuSample] = field(default_factory=list)
    log_dir: Path = Path()
    ended_at: float = 0.0  # unix seconds when the master exited
    workers: list[str] = field(default_factory=list)  # every worker started, by name
    workers_ended: list[WorkerEnd] = field(default_factory=list)
    master_bind: str = "127.0.0.1"  # the address the master listened on

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
    host = launcher.bind_host
    port = _free_port(host)
    argv = [*locust_argv(), "--master", "--headless", "--expect-workers", str(plan.workers)]
    argv += ["--master-bind-host", host, "--master-bind-port", str(port)]
    argv += ["--csv", str(run_dir / "locust"), "--csv-full-history"]
    argv += ["--json-file", str(run_dir / "locust-stats"), "--only-summary"]
    argv += ["--expect-workers-max-wait", "60", "--exit-code-on-error", "0"]
    master = _spawn(argv, env, run_dir / "master.log")
    try:
        workers = launcher.launch(plan.workers, host, port, env, run_dir)
    except BaseException:
        _stop(master)
        raise
    local = [master.pid, *(w.pid for w in workers if w.pid is not None)]
    procs = {pid: psutil.Process(pid) for pid in local}
    if on_start:
        on_start(list(procs))  # lets the harness's own sampler follow the generators too
    for p in procs.values():
        p.cpu_percent(None)  # prime: the next call reports usage since now
    samples: list[CpuSample] = []
    ended: dict[str, WorkerEnd] = {}
    deadline = time.monotonic() + (hard_timeout_s or plan.duration_s + 120)
    timed_out = False
    try:
        while master.poll() is None:
            if time.monotonic() > deadline:
                timed_out = True
                break
            time.sleep(SAMPLE_INTERVAL_S)
            pct: dict[int | str, float] = {}
            for pid, p in procs.items():
                try:
                    pct[pid] = p.cpu_percent(None)
                except psutil.Error:
                    continue
            for w in workers:
                remote = w.cpu_pct() if w.pid is None else None
                if remote is not None:
                    pct[w.name] = remote
                code = w.poll()
                if code is not None and w.name not in ended and master.poll() is None:
                    ended[w.name] = WorkerEnd(w.name, time.time(), code)
            samples.append(CpuSample(time.time(), pct))
    finally:
        _stop(master)
        ended_at = time.time()
        for w in workers:  # workers quit when the master does; a straggler is ended here
            if w.wait(timeout=15) is None:
                w.stop()
        launcher.finish(Path(plan.out_dir), run_dir)
    return LocustRun(
        returncode=master.returncode,
        timed_out=timed_out,
        master_pid=master.pid,
        worker_pids=[w.pid for w in workers if w.pid is not None],
        samples=samples,
        log_dir=run_dir,
        ended_at=ended_at,
        workers=[w.name for w in workers],
        workers_ended=list(ended.values()),
        master_bind=host,
    )
