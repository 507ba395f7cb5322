"""Targets by name: `reference` (embedded façade), `azurite`, `url`, `nginx` (plain files),
`aiohttp-floor` (a minimal aiohttp server, the bench's Python ceiling), `inventory` (the
façade on an inventory's server hosts, over SSH)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.targets.base import Endpoint, Target

TARGET_NAMES = ("reference", "azurite", "url")  # targets that stand alone (`--target`)
# nginx serves another target's files, the aiohttp floor is the bench's Python ceiling: only
# beside another target, in a step's target list
STEP_TARGETS = ("nginx", "aiohttp-floor")
# hosts of an inventory over SSH: `harness run --target inventory --inventory FILE` only
INVENTORY_TARGET = "inventory"


def make_target(
    kind: str, endpoint: str | None = None, workers: int = 1, options: dict[str, Any] | None = None
) -> Target:
    """A Target of ``kind``; `options.args` adds command-line flags to a local server,
    `options.tls` serves the reference façade over https with the lab CA."""
    args = [str(a) for a in (options or {}).get("args", [])]
    if kind == "reference":
        from harness.targets.reference import ReferenceTarget

        return ReferenceTarget(
            workers=workers, extra_args=args, tls=bool((options or {}).get("tls"))
        )
    if kind == "azurite":
        from harness.targets.azurite import AzuriteTarget

        return AzuriteTarget(extra_args=args)
    if kind == "url":
        from harness.targets.url import UrlTarget

        return UrlTarget(endpoint)
    if kind == INVENTORY_TARGET:
        from harness.targets.inventory import InventoryTarget

        if not endpoint:
            raise ValueError("target 'inventory' needs --inventory FILE")
        # the inventory file travels in the endpoint slot: a target has one place to be told
        role = str((options or {}).get("role", "server"))  # lake: the façade on `lake` hosts
        return InventoryTarget(Path(endpoint), workers=workers, role=role, extra_args=args)
    if kind == "nginx":
        from harness.targets.nginx import NginxTarget

        # nginx runs as many workers as the target it serves unless its options say otherwise
        opts = options or {}
        return NginxTarget(opts.get("workers"), str(opts.get("serves", "reference")))
    if kind == "aiohttp-floor":
        from harness.targets.floor import FloorTarget

        return FloorTarget(workers)  # a named target gets the façade's workers
    valid = ", ".join((*TARGET_NAMES, INVENTORY_TARGET, *STEP_TARGETS))
    raise ValueError(f"unknown target {kind!r}; valid: {valid}")


__all__ = ["INVENTORY_TARGET", "TARGET_NAMES", "Endpoint", "Target", "make_target"]
