"""KPIs per level and operation from the workers' per-second buckets and the CPU samples.

The steady-state window of a level is its whole seconds from ``start + ramp_s`` to its end (or
to the end of a count-bounded run); requests are counted by the second they started in, so the
window's ops/s is exact and its percentiles come from one merged histogram.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from harness.load.histograms import Bucket, merge, percentiles_ms
from harness.load.plan import Level, LoadPlan
from harness.load.process import CpuSample

CLIENT_BOUND_PCT = 90.0  # Locust's own warning threshold for a saturated generator


@dataclass
class Window:
    level: Level
    start: float  # unix seconds, whole
    end: float  # exclusive

    @property
    def seconds(self) -> int:
        return max(0, int(self.end - self.start))


@dataclass
class GeneratorCpu:
    cpu_pct: float | None  # all generator processes, % of the cores they can use
    max_process_pct: float | None  # busiest single process (a Locust process uses one core)
    client_bound: bool


@dataclass
class OpKpi:
    level: Level
    op: str
    window: Window
    ok: int
    bytes: int
    errors_by_status: dict[str, int]
    errors_by_code: dict[str, int]
    latency: dict[str, float | None]
    cpu: GeneratorCpu
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return sum(self.errors_by_status.values())


def steady_windows(plan: LoadPlan, t0: float, end: float | None) -> list[Window]:
    windows = []
    for lv in plan.schedule():
        stop = t0 + lv.end_s if end is None else min(t0 + lv.end_s, end)
        start = math.ceil(t0 + lv.steady_from_s)
        windows.append(Window(lv, start, max(start, math.floor(stop))))
    return windows


def generator_cpu(
    samples: Iterable[CpuSample], start: float, end: float, cores: int
) -> GeneratorCpu:
    """CPU of the generator processes over [start, end): mean of the samples in the window.

    A level is client-bound when the processes together use >= 90% of the cores they can have
    (one per process, at most the machine's cores), or when one process alone is >= 90% of its
    core — either way the load generator, not the server, set the pace."""
    inside = [s for s in samples if start <= s.at <= end + 1.0]  # a sample covers the second before
    if not inside:
        return GeneratorCpu(None, None, False)
    pids = {pid for s in inside for pid in s.cpu_pct}
    per_pid = {pid: sum(s.cpu_pct.get(pid, 0.0) for s in inside) / len(inside) for pid in pids}
    capacity = max(1, min(len(pids), cores))
    total = sum(per_pid.values()) / capacity
    busiest = max(per_pid.values())
    bound = total >= CLIENT_BOUND_PCT or busiest >= CLIENT_BOUND_PCT
    return GeneratorCpu(round(total, 1), round(busiest, 1), bound)


def level_kpis(
    plan: LoadPlan,
    buckets: list[Bucket],
    t0: float,
    end: float | None,
    samples: list[CpuSample],
    cores: int,
) -> list[OpKpi]:
    """One OpKpi per level and per operation of the mix (zero rows included: a silent op shows)."""
    out: list[OpKpi] = []
    for w in steady_windows(plan, t0, end):
        cpu = generator_cpu(samples, w.start, w.end, cores)
        inside = [b for b in buckets if w.start <= b.second < w.end]
        ops = list(plan.mix) + sorted({b.op for b in inside} - set(plan.mix))
        for op in ops:
            mine = [b for b in inside if b.op == op]
            by_status: Counter[str] = Counter()
            by_code: Counter[str] = Counter()
            for b in mine:
                by_status.update(b.errors_by_status)
                by_code.update(b.errors_by_code)
            out.append(
                OpKpi(
                    level=w.level,
                    op=op,
                    window=w,
                    ok=sum(b.ok for b in mine),
                    bytes=sum(b.bytes for b in mine),
                    errors_by_status=dict(by_status),
                    errors_by_code=dict(by_code),
                    latency=percentiles_ms(merge(b.hist for b in mine)),
                    cpu=cpu,
                )
            )
    return out
