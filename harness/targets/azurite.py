"""Azurite, Microsoft's emulator (npm package), as a comparison target on a free loopback port."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from harness.targets.base import DEV_ACCOUNT, DEV_KEY, LocalServerTarget, free_port
from harness.tools import azurite_path, tool_versions


class AzuriteTarget(LocalServerTarget):
    name = "azurite"
    account = DEV_ACCOUNT
    key = DEV_KEY

    def __init__(self, extra_args: list[str] | None = None) -> None:
        super().__init__()
        self.extra_args = list(extra_args or [])

    def start(self, workdir: Path) -> None:
        port = free_port()
        location = workdir / "data"
        location.mkdir(parents=True, exist_ok=True)
        # --skipApiVersionCheck: current clients send API versions newer than Azurite knows;
        # --loose: ignore headers Azurite does not support instead of failing the request.
        argv = [
            str(azurite_path()),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--location",
            str(location),
            "--skipApiVersionCheck",
            "--loose",
            "--silent",
            "--disableTelemetry",
            *self.extra_args,
        ]
        # Azurite's graceful close waits for every keep-alive connection the clients still
        # pool; its state is disposable, so it gets a short grace before SIGKILL.
        self._serve("Azurite", argv, port, workdir, stop_signal=signal.SIGINT, stop_grace_s=2.0)

    def facts(self) -> dict[str, Any]:
        return {
            "kind": self.name,
            "version": tool_versions().get("azurite", "unknown"),
            "args": self.extra_args,
            "port": self.server.port if self.server else None,
        }
