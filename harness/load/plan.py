"""The resolved plan of one Locust load step: what the locustfile, the shape and the KPI code read.

Options come from the scenario (``ctx.options``) and are validated here once; the driver writes
the resolved plan as JSON next to the run and hands its path to every Locust process through
``LOAD_PLAN``. This module imports neither Locust nor aiohttp: the harness and the Locust
processes both use it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Operations the locustfile knows, with the HTTP status each one expects.
LOAD_OPERATIONS: dict[str, tuple[int, ...]] = {
    "put_block": (201,),
    "put_block_list": (201,),
    "put_blob": (201,),
    "get_blob": (200,),
    "get_range": (206,),
    "get_properties": (200,),
    "list_blobs": (200,),
    "delete_blob": (202,),
}
READ_OPERATIONS = ("get_blob", "get_range", "get_properties")
PLAN_ENV = "LOAD_PLAN"


class PlanError(ValueError):
    """A load option is missing or wrong; the message names the option."""


def _size(value: Any, name: str) -> int:
    # Imported here: harness.datasets pulls numpy in, which the Locust processes do not need.
    from harness.datasets import DatasetError, parse_size

    try:
        return parse_size(value)
    except DatasetError as exc:
        raise PlanError(f"{name}: {exc}") from exc


@dataclass(frozen=True)
class Level:
    """One concurrency level of a sweep, in seconds from the start of the test."""

    index: int
    users: int
    start_s: float
    end_s: float
    ramp_s: float

    @property
    def steady_from_s(self) -> float:
        return self.start_s + self.ramp_s


@dataclass
class LoadPlan:
    blob_url: str  # account URL, path style http://127.0.0.1:PORT/ACCOUNT
    account: str
    key: str | None
    sas: str | None
    container: str
    prefix: str  # blob name prefix for everything this run creates ("" or ending in "/")
    out_dir: str  # where workers write their histogram files
    mix: dict[str, int]
    levels: list[int]  # users per level; one entry for a fixed-users step
    level_duration_s: float
    ramp_s: float
    object_size: int
    block_size: int
    range_size: int
    seed_objects: int
    blocks_per_blob: int  # Put Blocks per blob before a Put Block List (or a fresh blob name)
    workers: int
    arrival_rate: float | None = None  # requests/s over all workers: open-loop mode when set
    per_user_concurrency: int = 16  # outstanding open-loop requests one user may hold
    max_requests: int | None = None  # count bound over the whole run (None: time bound only)
    timeout_s: float = 60.0  # one request's network timeout
    ca_bundle: str | None = None  # the lab CA an https endpoint is verified against
    extra: dict[str, Any] = field(default_factory=dict)

    # ---- derived -------------------------------------------------------------------------
    @property
    def open_loop(self) -> bool:
        return self.arrival_rate is not None

    @property
    def seed_prefix(self) -> str:
        return f"{self.prefix}seed/"

    def schedule(self) -> list[Level]:
        levels, t = [], 0.0
        for i, users in enumerate(self.levels):
            levels.append(Level(i, users, t, t + self.level_duration_s, self.ramp_s))
            t += self.level_duration_s
        return levels

    @property
    def duration_s(self) -> float:
        return self.level_duration_s * len(self.levels)

    @property
    def needs_seed(self) -> bool:
        return any(op in self.mix for op in (*READ_OPERATIONS, "list_blobs"))

    # ---- io ------------------------------------------------------------------------------
    def dump(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path | None = None) -> LoadPlan:
        path = path or os.environ[PLAN_ENV]
        return cls(**json.loads(Path(path).read_text()))


def resolve_workers(value: Any) -> int:
    """``workers: auto`` is the machine's cores; an int is taken as given (at least 1)."""
    if value in (None, "auto"):
        return max(1, os.cpu_count() or 1)
    try:
        n = int(value)
    except (TypeError, ValueError) as exc:
        raise PlanError(f"workers: expected an int or 'auto', got {value!r}") from exc
    if n < 1:
        raise PlanError("workers: must be at least 1")
    return n


def plan_from_options(
    options: dict[str, Any],
    *,
    blob_url: str,
    account: str,
    key: str | None,
    sas: str | None,
    container: str,
    prefix: str,
    out_dir: Path,
    default_users: int,
    ca_bundle: str | None = None,
) -> LoadPlan:
    """Validate the scenario's options into a plan; unknown options are an error, not ignored."""
    known = {
        "mix", "users", "levels", "level_duration_s", "duration_s", "ramp_s", "object_size",
        "block_size", "range_size", "seed_objects", "blocks_per_blob", "workers",
        "arrival_rate", "per_user_concurrency", "max_requests", "request_timeout_s",
    }  # fmt: skip
    unknown = sorted(set(options) - known)
    if unknown:
        raise PlanError(f"unknown load option(s) {unknown}; known: {sorted(known)}")
    mix = {str(k): int(v) for k, v in (options.get("mix") or {"put_block": 1}).items()}
    bad = sorted(set(mix) - set(LOAD_OPERATIONS))
    if bad:
        raise PlanError(f"mix: unknown operation(s) {bad}; known: {sorted(LOAD_OPERATIONS)}")
    if not mix or any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
        raise PlanError("mix: weights must be >= 0 with a positive sum")
    mix = {k: v for k, v in mix.items() if v > 0}
    if "levels" in options and "users" in options:
        raise PlanError("give either users (fixed) or levels (sweep), not both")
    levels = [int(u) for u in options.get("levels") or [options.get("users", default_users)]]
    if any(u < 1 for u in levels):
        raise PlanError("users/levels: every level needs at least 1 user")
    duration = float(options.get("level_duration_s", options.get("duration_s", 20)))
    ramp = float(options.get("ramp_s", min(5.0, duration / 4)))
    if not 0 <= ramp < duration:
        raise PlanError("ramp_s: must be >= 0 and shorter than level_duration_s")
    block_size = _size(options.get("block_size", "64KiB"), "block_size")
    object_size = _size(options.get("object_size", "1MiB"), "object_size")
    rate = options.get("arrival_rate")
    workers = resolve_workers(options.get("workers", "auto"))
    max_requests = options.get("max_requests")
    return LoadPlan(
        blob_url=blob_url.rstrip("/"),
        account=account,
        key=key,
        sas=sas,
        container=container,
        prefix=prefix,
        out_dir=str(out_dir),
        mix=mix,
        levels=levels,
        level_duration_s=duration,
        ramp_s=ramp,
        object_size=object_size,
        block_size=block_size,
        range_size=_size(options.get("range_size", block_size), "range_size"),
        seed_objects=int(options.get("seed_objects", 16)),
        blocks_per_blob=max(1, int(options.get("blocks_per_blob", 100))),
        workers=workers,
        arrival_rate=float(rate) if rate is not None else None,
        per_user_concurrency=int(options.get("per_user_concurrency", 16)),
        max_requests=int(max_requests) if max_requests is not None else None,
        timeout_s=float(options.get("request_timeout_s", 60.0)),
        ca_bundle=ca_bundle,
    )


def open_loop_users(plan: LoadPlan, users: int) -> int:
    """Users (issuing greenlets) for the open-loop mode: at least one per worker, and enough that
    ``per_user_concurrency`` outstanding requests each cover one second of arrivals."""
    assert plan.arrival_rate is not None
    need = math.ceil(plan.arrival_rate / max(1, plan.per_user_concurrency))
    return max(users, need, plan.workers)
