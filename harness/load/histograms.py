"""Per-second HDR histograms per operation: recorded in each Locust worker, merged by the driver.

Percentiles cannot be averaged across workers or seconds; HDR histograms add bucket by bucket,
so the merged histogram of a window is exactly the histogram of all its requests. Each worker
appends one JSON line per (operation, second) to ``<out_dir>/<worker>.jsonl`` as soon as that
second is over, so a worker killed at the end still leaves every finished second behind.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 300_000_000  # 300 s: longer than any request timeout the plan allows
SIGNIFICANT_DIGITS = 3
PERCENTILES = {"p50_ms": 50.0, "p90_ms": 90.0, "p99_ms": 99.0, "p999_ms": 99.9}


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def merge(histograms: Iterable[HdrHistogram]) -> HdrHistogram:
    merged = new_histogram()
    for h in histograms:
        merged.add(h)
    return merged


def percentiles_ms(h: HdrHistogram) -> dict[str, float | None]:
    """p50/p90/p99/p99.9/max in milliseconds from one (merged) histogram."""
    if h.get_total_count() == 0:
        return {**dict.fromkeys(PERCENTILES), "max_ms": None}
    out: dict[str, float | None] = {
        k: h.get_value_at_percentile(p) / 1000.0 for k, p in PERCENTILES.items()
    }
    out["max_ms"] = h.get_max_value() / 1000.0
    return out


@dataclass
class Bucket:
    """Everything one worker saw for one operation in one wall-clock second (by request start)."""

    op: str
    second: int
    ok: int = 0
    bytes: int = 0
    errors_by_status: Counter[str] = field(default_factory=Counter)
    errors_by_code: Counter[str] = field(default_factory=Counter)
    hist: HdrHistogram = field(default_factory=new_histogram)

    def to_json(self) -> str:
        return json.dumps(
            {
                "op": self.op,
                "second": self.second,
                "ok": self.ok,
                "bytes": self.bytes,
                "errors_by_status": dict(self.errors_by_status),
                "errors_by_code": dict(self.errors_by_code),
                "hist": self.hist.encode().decode("ascii") if self.ok else None,
            }
        )

    @classmethod
    def from_json(cls, line: str) -> Bucket:
        d: dict[str, Any] = json.loads(line)
        b = cls(d["op"], d["second"], d["ok"], d["bytes"])
        b.errors_by_status.update(d["errors_by_status"])
        b.errors_by_code.update(d["errors_by_code"])
        if d["hist"]:
            b.hist = HdrHistogram.decode(d["hist"].encode("ascii"))
        return b


class Recorder:
    """Records requests of one worker into per-second buckets and appends finished seconds."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._open: dict[tuple[str, int], Bucket] = {}
        self._max_latency_s = 0.0

    def record(
        self,
        op: str,
        started_at: float,
        latency_s: float,
        *,
        status: int,
        ok: bool,
        nbytes: int = 0,
        error_code: str | None = None,
    ) -> None:
        key = (op, int(started_at))
        bucket = self._open.get(key)
        if bucket is None:
            bucket = self._open[key] = Bucket(op, key[1])
        if ok:
            bucket.ok += 1
            bucket.bytes += nbytes
            bucket.hist.record_value(max(LOWEST_US, min(HIGHEST_US, round(latency_s * 1e6))))
        else:
            bucket.errors_by_status[str(status)] += 1
            if error_code:
                bucket.errors_by_code[error_code] += 1
        self._max_latency_s = max(self._max_latency_s, latency_s)

    def flush(self, now: float | None = None) -> None:
        """Append buckets whose second can get no more requests (all of them when now is None).

        Requests are bucketed by start time and may finish long after, so a second is closed
        only once it is older than the longest latency seen so far plus a margin."""
        horizon = None if now is None else now - self._max_latency_s - 2.0
        done = [k for k in self._open if horizon is None or k[1] + 1 < horizon]
        if not done:
            return
        with self.path.open("a") as f:
            for k in sorted(done, key=lambda k: (k[1], k[0])):
                f.write(self._open.pop(k).to_json() + "\n")


def read_buckets(paths: Iterable[Path]) -> list[Bucket]:
    out: list[Bucket] = []
    for path in paths:
        for line in path.read_text().splitlines():
            if line.strip():
                out.append(Bucket.from_json(line))
    return out
