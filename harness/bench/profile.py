"""py-spy on a local target's server processes during a run, and the hot spots it found.

A scenario turns it on per target with ``options: {profile: true}`` (``harness bench server
--profile``): the runner starts the sampler once the target listens and stops it before the
target stops; the collapsed stacks land in ``targets/<name>/profile.txt``.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

PROFILE_NAME = "profile.txt"

# Leaf frames of threads parked waiting for work: time there is idle, not cost.
_IDLE_FRAMES = (
    "_worker (concurrent/futures/thread.py",
    "select (selectors.py",
    "main (multiprocessing/resource_tracker.py",
    "wait (threading.py",
)


class Profiler:
    """py-spy recording one process and its forked workers, collapsed stacks into ``workdir``."""

    def __init__(self, pid: int, workdir: Path) -> None:
        py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent))
        py_spy = py_spy or shutil.which("py-spy")
        if py_spy is None:
            raise RuntimeError("py-spy is not installed (pip install py-spy)")
        self.output = workdir / PROFILE_NAME
        argv = [py_spy, "record", "--pid", str(pid), "--subprocesses", "--rate", "100"]
        argv += ["--format", "raw", "--output", str(self.output)]
        with (workdir / "py-spy.log").open("wb") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> Path | None:
        """Stop sampling (py-spy writes its output on SIGINT); the profile's path, if written."""
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.output if self.output.exists() else None


def hot_spots(profile: Path, top: int = 15) -> list[tuple[str, float]]:
    """Self-time share per frame from py-spy's collapsed stacks, idle waits left out."""
    counts: dict[str, int] = {}
    total = 0
    for line in profile.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frame = stack.split(";")[-1]
        if frame.startswith(_IDLE_FRAMES) or ".wait (threading.py" in frame:
            continue
        total += int(n)
        counts[frame] = counts.get(frame, 0) + int(n)
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
    return [(f, 100 * n / total) for f, n in ranked] if total else []
