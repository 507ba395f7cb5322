"""Resource sampling (psutil) and latency percentiles, each computed in one place."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import psutil
from hdrh.histogram import HdrHistogram

MIB = 1024 * 1024


def latency_summary(latencies_ms: Iterable[float]) -> dict[str, float | None]:
    """p50/p90/p99/p99.9/max in ms via an HDR histogram (mergeable; 3 significant digits)."""
    hist = HdrHistogram(1, 3_600_000_000, 3)  # microseconds, 1 us .. 1 h
    count = 0
    for ms in latencies_ms:
        hist.record_value(max(1, round(ms * 1000)))
        count += 1
    if not count:
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None, "p999_ms": None, "max_ms": None}
    q = hist.get_value_at_percentile
    return {
        "p50_ms": q(50) / 1000,
        "p90_ms": q(90) / 1000,
        "p99_ms": q(99) / 1000,
        "p999_ms": q(99.9) / 1000,
        "max_ms": hist.get_max_value() / 1000,
    }


@dataclass
class Sample:
    t: float  # unix seconds
    role: str  # "client" or "server"
    step: str  # step label running at that moment ("" between steps)
    target: str
    cpu_pct: float  # summed over the process tree; 100 = one core
    rss_mib: float
    processes: int

    def to_row(self) -> dict[str, Any]:
        return dict(self.__dict__)


class _Tree:
    """CPU accounting for a process tree; keeps psutil.Process objects so cpu_percent has a base."""

    def __init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}

    def measure(self, roots: list[int], exclude: set[int]) -> tuple[float, float, int]:
        seen: dict[int, psutil.Process] = {}
        for pid in roots:
            try:
                root = self._procs.get(pid) or psutil.Process(pid)
                members = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for proc in members:
                if proc.pid not in exclude:
                    seen.setdefault(proc.pid, self._procs.get(proc.pid, proc))
        cpu = rss = 0.0
        for pid, proc in list(seen.items()):
            try:
                with proc.oneshot():
                    cpu += proc.cpu_percent(None)  # first call per process returns 0.0
                    rss += proc.memory_info().rss / MIB
            except psutil.Error:
                seen.pop(pid)
        self._procs = seen
        return cpu, rss, len(seen)


class Sampler:
    """Samples CPU/RSS of the client tree (this process and its children, minus servers) and of
    the local server processes every ``interval`` seconds in a background thread."""

    def __init__(
        self,
        server_pids: Callable[[], dict[str, list[int]]],
        extra_client_pids: Callable[[], list[int]] = list,
        interval: float = 1.0,
    ) -> None:
        self.samples: list[Sample] = []
        self._step = ""
        self._server_pids = server_pids
        self._extra_client_pids = extra_client_pids
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = _Tree()
        self._servers: dict[str, _Tree] = {}
        self._lock = threading.Lock()

    @property
    def step(self) -> str:
        """The step running now ("" between steps); samples are labelled with it."""
        return self._step

    @step.setter
    def step(self, name: str) -> None:
        self._step = name
        if name and self._thread is not None:
            self.sample()  # one sample at the very start, so charts mark where each step begins

    def __enter__(self) -> Sampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.sample()  # primes cpu_percent baselines
        self._thread = threading.Thread(target=self._loop, name="harness-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.sample()

    def sample(self) -> None:
        now = time.time()
        servers = self._server_pids()
        server_all: set[int] = set()
        for pids in servers.values():
            for pid in pids:
                server_all.add(pid)
                try:
                    server_all.update(c.pid for c in psutil.Process(pid).children(recursive=True))
                except psutil.Error:
                    pass
        rows: list[Sample] = []
        cpu, rss, n = self._client.measure([os.getpid(), *self._extra_client_pids()], server_all)
        step = self.step
        rows.append(Sample(now, "client", step, "", cpu, rss, n))
        for target, pids in servers.items():
            tree = self._servers.setdefault(target, _Tree())
            cpu, rss, n = tree.measure(pids, set())
            if n:
                rows.append(Sample(now, "server", step, target, cpu, rss, n))
        with self._lock:
            self.samples.extend(rows)

    def peaks(self, since: float, role: str = "client") -> tuple[float | None, float | None]:
        """Max CPU % and RSS MiB of ``role`` since a unix time (None when nothing was sampled)."""
        with self._lock:
            rows = [s for s in self.samples if s.role == role and s.t >= since]
        if not rows:
            return None, None
        return max(s.cpu_pct for s in rows), max(s.rss_mib for s in rows)
