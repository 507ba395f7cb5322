"""Driver: one client (AzCopy, SDK, boostedblob, rclone, Locust) behind one interface.

Adding a client is adding a module in this package that defines a Driver subclass and naming
it in ``harness.drivers.REGISTRY``. The class owns the facts about its client (its tool and
version, how contract recording treats it); a driver module imports its client library only
when a step runs, so validating a scenario loads no SDK.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from harness.datasets import Dataset
from harness.results import StepResult
from harness.targets.base import Endpoint
from harness.tools import Tool

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
    """Subclass it: the runner, the version report and contract recording read these facts."""

    name: ClassVar[str]
    operations: ClassVar[tuple[str, ...]]
    tool: ClassVar[Tool]  # the client program and how its version is read
    # Its calls go through the recording proxy and make its tool's contract. Locust's are the
    # lab's own requests: it reaches targets directly, so a load test does not measure the proxy.
    recorded: ClassVar[bool] = True
    # Its own clock is coarse (AzCopy ends a job only at its 2 s status poll): a recorded
    # step's duration is the proxy's first request to last response instead.
    proxy_timed: ClassVar[bool] = False
    # The User-Agent its requests start with: the Python SDK's calls around another tool (the
    # lab's own probes) are then told apart from the tool's.
    user_agent: ClassVar[str] = ""

    def prepare(self, ctx: StepContext) -> None:
        """Check the tool is present and ready (install hints in the error if not)."""

    def run(self, ctx: StepContext) -> StepResult:
        """Execute the step; never raises for a failed transfer: returns ok=False with error."""
        raise NotImplementedError

    def versions(self) -> dict[str, str]:
        """Tool name -> version string, recorded with every result (the first names the
        contract its calls are diffed against)."""
        return self.tool.versions()

    def pids(self) -> list[int]:
        """Client process ids to sample while the step runs (the current process if in-process)."""
        return []

    def needs_container(self, ctx: StepContext) -> bool:
        """True when the client would not create the step's container itself: the runner
        creates it first, directly on the target."""
        return False
