"""The conformance suite: load the registered checks, select them, and run them against one
endpoint, sequentially, each in its own containers."""

from __future__ import annotations

import importlib
import pkgutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from harness.conformance import checks as checks_pkg
from harness.conformance.framework import (
    FAIL,
    PASS,
    REGISTRY,
    SKIP,
    Check,
    CheckContext,
    CheckResult,
    RecordingHttp,
    run_one,
)
from harness.targets.base import Endpoint

# Reference façade started for the gate with a small in-flight limit, so the throttling check can
# reach it with a handful of held requests; the other checks run one request at a time.
GATE_MAX_INFLIGHT = 4


def load_checks() -> list[Check]:
    """Import every module of harness.conformance.checks (each registers its checks)."""
    for info in pkgutil.iter_modules(checks_pkg.__path__):
        importlib.import_module(f"{checks_pkg.__name__}.{info.name}")
    return list(REGISTRY.values())


def select(checks: Iterable[Check], only: Iterable[str] = ()) -> list[Check]:
    """Checks whose group or id prefix matches one of ``only`` (case-insensitive); all if empty."""
    wanted = [o.lower() for o in only]
    if not wanted:
        return list(checks)
    return [
        c for c in checks if any(c.group.lower() == w or c.id.lower().startswith(w) for w in wanted)
    ]


@dataclass
class ConformanceRun:
    target: str
    endpoint: str
    results: list[CheckResult]
    facts: dict[str, Any] = field(default_factory=dict)
    started_at: float = 0.0
    duration_s: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def ok(self) -> bool:
        return self.count(FAIL) == 0

    def groups(self) -> list[str]:
        return list(dict.fromkeys(r.group for r in self.results))

    def summary(self) -> dict[str, int]:
        return {s: self.count(s) for s in (PASS, FAIL, SKIP)} | {"total": len(self.results)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "endpoint": self.endpoint,
            "facts": self.facts,
            "started_at": self.started_at,
            "duration_s": self.duration_s,
            "summary": self.summary(),
            "results": [r.to_dict() for r in self.results],
        }


def run_checks(
    endpoint: Endpoint,
    *,
    capabilities: dict[str, Any] | None = None,
    only: Iterable[str] = (),
    facts: dict[str, Any] | None = None,
    on_result: Callable[[CheckResult], None] = lambda r: None,
) -> ConformanceRun:
    """Run the selected checks against ``endpoint`` (Shared Key from ``endpoint.key``)."""
    if not endpoint.key:
        raise ValueError("the conformance gate signs its own requests: the endpoint needs a key")
    http = RecordingHttp(
        endpoint.blob_url, endpoint.account, endpoint.key, ca_bundle=endpoint.ca_bundle
    )
    ctx = CheckContext(
        http=http,
        account=endpoint.account,
        key=endpoint.key,
        target=endpoint.target,
        capabilities=dict(capabilities or {}),
    )
    selected = select(load_checks(), only)
    started = time.time()
    results: list[CheckResult] = []
    for chk in selected:
        result = run_one(chk, ctx)
        results.append(result)
        on_result(result)
    http.close()
    return ConformanceRun(
        endpoint.target,
        endpoint.blob_url,
        results,
        dict(facts or {}),
        started,
        time.time() - started,
    )
