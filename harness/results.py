"""The one results schema: every driver returns StepResult rows; every report reads only these."""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

MIB = 1024 * 1024

# Operations that move no object bodies: bytes over their duration is no throughput, so the
# reports show objects/s for them and leave the MiB/s and Gbit/s columns blank.
# Load (Locust) operations are named after the Blob calls; these carry no object bytes either.
NO_PAYLOAD_OPERATIONS = frozenset(
    {"list", "remove", "list_blobs", "get_properties", "delete_blob", "put_block_list"}
)


# The clocks a row can name, in words (reports and the README say the same).
CLOCKS = {
    "wall": "harness wall clock around the client (process start to exit, or the call)",
    "proxy": "first request to last response seen at the recording proxy",
    "steady-window": "Locust's steady-state windows (whole seconds after each level's ramp)",
    "client": "per request, timed inside the client process",
    "azcopy-log": "per request, AzCopy's own OpTime from its job log",
    "rclone-log": "per request, rclone's logged request and response times (--dump headers)",
    "hosts": "first start to last end over the client hosts of a `hosts:` step (their clocks "
    "corrected by each host's measured offset)",
    "per-host": "each host's own percentiles, in the per-host rows (percentile summaries of "
    "different hosts cannot be merged exactly); max is the largest of them",
}
# Repeats whose slowest and fastest differ by more than this factor are flagged unstable and
# left out of ratios: a median of bimodal repeats (e.g. AzCopy's 2 s status poll) is no KPI.
UNSTABLE_SPREAD = 1.5


def moves_payload(operation: str) -> bool:
    """Whether a step operation transfers object bodies (MiB/s means something)."""
    return operation not in NO_PAYLOAD_OPERATIONS


@dataclass
class StepResult:
    """One execution (one repeat) of one scenario step by one driver against one target."""

    scenario: str
    step: str
    driver: str
    operation: str
    target: str
    repeat: int = 0
    warmup: bool = False
    ok: bool = True
    started_at: float = 0.0  # unix seconds
    duration_s: float = 0.0
    # Which clock measured duration_s (and so MiB/s and ops/s): "wall" = the harness's clock
    # around the client (process start to exit, or the in-process call); "proxy" = first request
    # to last response seen at the recording proxy; "steady-window" = Locust's; see CLOCKS.
    clock: str = "wall"
    bytes: int = 0
    objects: int = 0
    verified_bytes: int = 0
    verified_objects: int = 0
    failed: int = 0  # failed transfers / operations
    concurrency: int = 0
    retries: int = 0
    # latency percentiles in milliseconds (None when the client exposes no per-request timings)
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    p999_ms: float | None = None
    max_ms: float | None = None
    # where the percentiles come from ("client" = timed in-process, "azcopy-log" / "rclone-log"
    # = the tool's own per-request times, "proxy" = at the recording proxy; None = none)
    latency_clock: str | None = None
    # errors by HTTP status ("503") and by x-ms-error-code ("ServerBusy")
    errors_by_status: dict[str, int] = field(default_factory=dict)
    errors_by_code: dict[str, int] = field(default_factory=dict)
    # client-specific counters kept as-is (AzCopy's ServerBusyPercentage, PerfConstraint, ...)
    extra: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # human-readable reason when ok is False
    # CPU / RSS peaks of the client process tree during the step
    client_cpu_pct_max: float | None = None
    client_rss_mib_max: float | None = None
    # The inventory host the client ran on (a `hosts:` step); None: on the controller. The
    # merged row of a `hosts:` step names every host ("h3,h4"), its per-host rows one each.
    host: str | None = None

    @property
    def throughput_mib_s(self) -> float:
        return self.bytes / MIB / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def throughput_gbit_s(self) -> float:
        return self.bytes * 8 / 1e9 / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def ops_s(self) -> float:
        return self.objects / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def server_busy_share(self) -> float:
        total = sum(self.errors_by_status.values()) + self.objects
        return self.errors_by_status.get("503", 0) / total if total else 0.0

    def to_row(self) -> dict[str, Any]:
        """A flat row for the results table (derived KPIs included)."""
        row = dataclasses.asdict(self)
        row["throughput_mib_s"] = self.throughput_mib_s
        row["throughput_gbit_s"] = self.throughput_gbit_s
        row["ops_s"] = self.ops_s
        row["server_busy_share"] = self.server_busy_share
        return row

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepResult:
        """A StepResult from ``dataclasses.asdict`` output (or a row: derived KPIs are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def merge_host_results(base: StepResult, rows: list[StepResult]) -> StepResult:
    """One step row from the per-host rows of a `hosts:` execution, merged exactly: bytes,
    objects, failures, retries and errors summed; the duration from the first start to the last
    end (``started_at`` already on the controller's clock); ``extra.first_done_s`` and
    ``extra.last_done_s`` (seconds from that start) show stragglers. Percentiles of different
    hosts cannot be merged from their summaries: only ``max_ms`` is kept (the largest). The
    per-host rows ride along in ``extra["hosts"]`` (``harness.runner.results_frame`` makes them
    rows of their own)."""
    merged = dataclasses.replace(base, extra=dict(base.extra))
    if not rows:
        merged.ok = False
        merged.error = merged.error or "no client host ran the step"
        return merged
    start = min(r.started_at for r in rows)
    ends = [r.started_at + r.duration_s for r in rows]
    merged.started_at, merged.duration_s, merged.clock = start, max(ends) - start, "hosts"
    for name in ("bytes", "objects", "verified_bytes", "verified_objects", "failed", "retries"):
        setattr(merged, name, sum(getattr(r, name) for r in rows))
    merged.concurrency = sum(r.concurrency for r in rows)  # in flight across the cluster
    for name in ("errors_by_status", "errors_by_code"):
        total: Counter[str] = Counter()
        for r in rows:
            total.update(getattr(r, name))
        setattr(merged, name, dict(total))
    maxima = [r.max_ms for r in rows if r.max_ms is not None]
    merged.max_ms = max(maxima) if maxima else None
    merged.p50_ms = merged.p90_ms = merged.p99_ms = merged.p999_ms = None
    merged.latency_clock = "per-host" if maxima else None
    for name in ("client_cpu_pct_max", "client_rss_mib_max"):  # the busiest client host
        values = [getattr(r, name) for r in rows if getattr(r, name) is not None]
        setattr(merged, name, max(values) if values else None)
    merged.ok = all(r.ok for r in rows)
    failed = [_named(str(r.host), r.error or "failed") for r in rows if not r.ok]
    merged.error = "; ".join(failed) or None
    merged.host = ",".join(str(r.host) for r in rows)
    host_rows = []
    for r, end in zip(rows, ends, strict=True):
        row = r.to_row()
        row["extra"] = {**row["extra"], "done_s": round(end - start, 6)}
        host_rows.append(row)
    merged.extra.update(
        hosts=host_rows,
        host_count=len(rows),
        first_done_s=round(min(ends) - start, 6),
        last_done_s=round(max(ends) - start, 6),
    )
    return merged


def _named(host: str, error: str) -> str:
    """``error`` led by the host it happened on (once: it may name the host already)."""
    return error if error.startswith((f"{host}:", f"{host} (")) else f"{host}: {error}"


def count_errors(pairs: list[tuple[int, str | None]]) -> tuple[dict[str, int], dict[str, int]]:
    """(status, x-ms-error-code) pairs -> (errors_by_status, errors_by_code)."""
    by_status = Counter(str(s) for s, _ in pairs)
    by_code = Counter(c for _, c in pairs if c)
    return dict(by_status), dict(by_code)
