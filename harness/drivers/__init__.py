"""The clients the harness drives, by the name a scenario step uses."""

from __future__ import annotations

from harness.drivers.azcopy import AzCopyDriver
from harness.drivers.base import Driver, StepContext
from harness.drivers.boostedblob import BoostedblobDriver
from harness.drivers.checkpoint import CheckpointDriver
from harness.drivers.rclone import RcloneDriver
from harness.drivers.sdk import SdkAioDriver, SdkDriver

REGISTRY: dict[str, type] = {
    "azcopy": AzCopyDriver,
    "sdk": SdkDriver,
    "sdk-aio": SdkAioDriver,
    "boostedblob": BoostedblobDriver,
    "rclone": RcloneDriver,
    "checkpoint": CheckpointDriver,
}

try:  # the load driver lives in its own module (Locust itself only runs in subprocesses)
    from harness.drivers.locust import LocustDriver

    REGISTRY["locust"] = LocustDriver
except ImportError:  # pragma: no cover - absent while the load module is not installed
    pass

__all__ = ["REGISTRY", "Driver", "StepContext"]
