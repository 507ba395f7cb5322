"""The disk's own limits, measured with fio on the data root's filesystem.

Sequential write of the bulk workload's size in its block size with an fdatasync after every
block (``--fdatasync=1``, so fio's clock counts the disk and not the page cache: the façade's
commit fsyncs every blob before it answers), and the same files read back with the page cache
dropped for them (``--invalidate=1``). fio comes from
Debian (package ``fio``); the bench installs it on first use when it runs as root with apt-get,
and otherwise names the package to install. ``LAB_FIO`` points at another binary (and turns
the installation off).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.tools import ToolMissing

PACKAGE = "fio"
INSTALL_TIMEOUT_S = 600


class FioMissing(ToolMissing):
    def __init__(self, why: str) -> None:
        RuntimeError.__init__(
            self,
            f"fio not found ({why}): the disk anchors need the Debian package `{PACKAGE}` "
            f"(apt-get install {PACKAGE})",
        )


def fio_path(install: bool = True) -> Path:
    """The fio binary; installed from Debian on first use when possible (root, apt-get)."""
    explicit = os.environ.get("LAB_FIO")
    if explicit:
        path = Path(explicit)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise FioMissing(f"LAB_FIO={explicit} is not an executable file")
    found = shutil.which("fio")
    if found:
        return Path(found)
    if not install or os.geteuid() != 0 or not shutil.which("apt-get"):
        raise FioMissing("not on PATH")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "install", "-y", "-qq", PACKAGE], ["apt-get", "update", "-qq"]):
        subprocess.run(argv, env=env, capture_output=True, timeout=INSTALL_TIMEOUT_S, check=False)
        if shutil.which("fio"):
            break
    else:  # the package lists were stale: install once more after the update
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", PACKAGE],
            env=env,
            capture_output=True,
            timeout=INSTALL_TIMEOUT_S,
            check=False,
        )
    found = shutil.which("fio")
    if not found:
        raise FioMissing("apt-get could not install it")
    return Path(found)


@dataclass
class FioResult:
    bytes: int
    duration_s: float
    argv: list[str]
    latency_ms_p50: float | None = None


def run_fio(
    directory: Path, rw: str, size: int, block_size: int, jobs: int, timeout_s: float = 600.0
) -> FioResult:
    """One fio run of ``jobs`` jobs, each on its own file of ``size / jobs`` bytes in
    ``directory``: ``rw`` "write" (each block durable) or "read" (cold, from the disk)."""
    if rw not in ("write", "read"):
        raise ValueError(f"fio rw {rw!r}: write or read")
    directory.mkdir(parents=True, exist_ok=True)
    per_job = max(block_size, size // jobs // block_size * block_size)
    argv = [
        str(fio_path()),
        "--name=anchor",
        f"--directory={directory}",
        f"--rw={rw}",
        f"--bs={block_size}",
        f"--size={per_job}",
        f"--numjobs={jobs}",
        "--ioengine=psync",
        "--group_reporting",
        "--output-format=json",
        *(["--fdatasync=1", "--end_fsync=1"] if rw == "write" else ["--invalidate=1"]),
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"fio {rw} failed ({out.returncode}): {out.stderr.strip()[:500]}")
    report = json.loads(out.stdout[out.stdout.index("{") :])  # fio may print notes first
    job = report["jobs"][0][rw]
    runtime_s = job["runtime"] / 1000  # ms, of the slowest job (group reporting)
    p50 = (job.get("clat_ns") or {}).get("percentile", {}).get("50.000000")
    return FioResult(int(job["io_bytes"]), runtime_s, argv, p50 / 1e6 if p50 is not None else None)


def same_filesystem(a: Path, b: Path) -> bool:
    return a.exists() and b.exists() and os.stat(a).st_dev == os.stat(b).st_dev
