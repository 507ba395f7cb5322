"""Driver: one client (AzCopy, SDK, boostedblob, rclone, Locust) behind one interface.

Adding a client is adding a module in this package that defines a Driver and registers it in
``harness.drivers.REGISTRY``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness.datasets import Dataset
from harness.results import StepResult
from harness.targets.base import Endpoint

# Operations a step may ask for. Not every driver supports every one (Driver.operations says).
OPERATIONS = (
    "upload",  # local dataset dir -> container/prefix
    "download",  # container/prefix -> local dir (then verified against the manifest)
    "sync-up",  # local -> remote, only what changed
    "sync-down",  # remote -> local, only what changed
    "remove",  # delete container/prefix
    "list",  # enumerate container/prefix, count objects
    "copy",  # service-to-service: source endpoint -> endpoint
    "load",  # Locust load (driver-specific options)
)


@dataclass
class StepContext:
    """Everything a driver needs for one execution of one step."""

    scenario: str
    step: str
    operation: str
    endpoint: Endpoint
    container: str
    workdir: Path  # private directory of this step execution: logs, plan files, downloads
    dataset: Dataset | None = None
    prefix: str = ""  # blob name prefix inside the container ("" or ending in "/")
    local_dir: Path | None = None  # download / sync-down destination (defaults under workdir)
    concurrency: int = 16
    block_size_mib: int = 8
    timeout_s: float = 600.0
    repeat: int = 0
    warmup: bool = False
    source_endpoint: Endpoint | None = None  # for "copy"
    source_container: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # driver-specific scenario options
    # progress(done_bytes, total_bytes) — drivers call it as work advances (may be a no-op)
    progress: Callable[[int, int], None] = lambda done, total: None

    def result(self, **kwargs: Any) -> StepResult:
        """A StepResult pre-filled with this context's identity fields."""
        base: dict[str, Any] = dict(
            scenario=self.scenario,
            step=self.step,
            driver=kwargs.pop("driver", ""),
            operation=self.operation,
            target=self.endpoint.target,
            repeat=self.repeat,
            warmup=self.warmup,
            concurrency=self.concurrency,
        )
        base.update(kwargs)
        return StepResult(**base)


class Driver(Protocol):
    name: str
    operations: tuple[str, ...]

    def prepare(self, ctx: StepContext) -> None:
        """Check the tool is present and ready (install hints in the error if not)."""

    def run(self, ctx: StepContext) -> StepResult:
        """Execute the step; never raises for a failed transfer: returns ok=False with error."""

    def versions(self) -> dict[str, str]:
        """Tool name -> version string, recorded with every result."""

    def pids(self) -> list[int]:
        """Client process ids to sample while the step runs (the current process if in-process)."""
