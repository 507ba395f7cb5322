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


def count_errors(pairs: list[tuple[int, str | None]]) -> tuple[dict[str, int], dict[str, int]]:
    """(status, x-ms-error-code) pairs -> (errors_by_status, errors_by_code)."""
    by_status = Counter(str(s) for s, _ in pairs)
    by_code = Counter(c for _, c in pairs if c)
    return dict(by_status), dict(by_code)
