"""The clients the harness drives, by the name a scenario step uses.

A driver's module is imported on first use, so commands that never run a client (``--help``,
``list``) do not pay for loading one, and validating a scenario loads only the drivers it names
(whose modules load their client library only when a step runs). Everything else about a
client (its tool, version, how contract recording treats it) is declared by its Driver class.
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
    # Locust itself only ever runs in subprocesses; this module just drives them
    "locust": ("harness.drivers.locust", "LocustDriver"),
    # raw REST workloads of the benchmark client (harness bench server)
    "rest-bench": ("harness.drivers.rest_bench", "RestBenchDriver"),
}


class _Registry(Mapping[str, type[Driver]]):
    """Driver name -> Driver class, importing the class's module when it is looked up."""

    def __getitem__(self, name: str) -> type[Driver]:
        module, cls = _DRIVERS[name]
        return getattr(importlib.import_module(module), cls)

    def __contains__(self, name: object) -> bool:
        return name in _DRIVERS  # without importing anything

    def __iter__(self) -> Iterator[str]:
        return iter(_DRIVERS)

    def __len__(self) -> int:
        return len(_DRIVERS)


REGISTRY: Mapping[str, type[Driver]] = _Registry()


def client_versions() -> dict[str, str]:
    """Tool name -> version of every client the lab drives (each driver's declared tool)."""
    return {k: v for cls in REGISTRY.values() for k, v in cls.tool.versions().items()}


__all__ = ["REGISTRY", "Driver", "StepContext", "client_versions"]
