"""The clients the harness drives, by the name a scenario step uses.

A driver's module is imported on first use, so commands that never run a client (``--help``,
``list``) do not pay for loading every SDK.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from harness.drivers.base import Driver, StepContext

_DRIVERS: dict[str, tuple[str, str]] = {
    "azcopy": ("harness.drivers.azcopy", "AzCopyDriver"),
    "sdk": ("harness.drivers.sdk", "SdkDriver"),
    "sdk-aio": ("harness.drivers.sdk", "SdkAioDriver"),
    "boostedblob": ("harness.drivers.boostedblob", "BoostedblobDriver"),
    "rclone": ("harness.drivers.rclone", "RcloneDriver"),
    "checkpoint": ("harness.drivers.checkpoint", "CheckpointDriver"),
    # Locust itself only ever runs in subprocesses; this module just drives them
    "locust": ("harness.drivers.locust", "LocustDriver"),
    # raw REST workloads of the benchmark client (harness bench server)
    "rest-bench": ("harness.drivers.rest_bench", "RestBenchDriver"),
}


class _Registry(Mapping[str, type]):
    """Driver name -> Driver class, importing the class's module when it is looked up."""

    def __getitem__(self, name: str) -> type:
        module, cls = _DRIVERS[name]
        return getattr(importlib.import_module(module), cls)

    def __iter__(self) -> Iterator[str]:
        return iter(_DRIVERS)

    def __len__(self) -> int:
        return len(_DRIVERS)


REGISTRY: Mapping[str, type] = _Registry()

__all__ = ["REGISTRY", "Driver", "StepContext"]
