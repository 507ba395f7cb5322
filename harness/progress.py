"""Live progress: one bar for the whole run, one for the step in flight (bytes, rate, ETA).

Off a terminal (CI logs) nothing can be redrawn, so a heartbeat line is printed instead every
``heartbeat_s`` seconds while a step runs: a long Locust sweep or a gate upload then still
shows that it is alive and how far it got.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class MiBSpeedColumn(ProgressColumn):
    """The transfer rate in MiB/s, the unit of every report (rich's own column says MB/s)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text("? MiB/s", style="progress.data.speed")
        return Text(f"{speed / 2**20:,.1f} MiB/s", style="progress.data.speed")


class RunProgress:
    def __init__(
        self,
        total_executions: int,
        console: Console | None = None,
        heartbeat_s: float = 30.0,
    ) -> None:
        self.console = console or Console(stderr=True)
        self.heartbeat_s = heartbeat_s
        self._steps = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
        )
        self._bytes = Progress(
            TextColumn("  {task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            MiBSpeedColumn(),
            TimeRemainingColumn(),
            TimeElapsedColumn(),  # steps that report no bytes (Locust, rclone) still tick
            console=self.console,
        )
        self._overall = self._steps.add_task("run", total=total_executions)
        self._current: TaskID | None = None
        self._lock = threading.Lock()  # drivers may report from worker threads
        self._live: Live | None = None
        self._label = ""
        self._started = 0.0
        self._done = self._total = 0
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def __enter__(self) -> RunProgress:
        self._live = Live(
            Group(self._steps, self._bytes), console=self.console, refresh_per_second=4
        )
        self._live.__enter__()
        if not self.console.is_terminal and self.heartbeat_s > 0:
            self._heartbeat = threading.Thread(target=self._beat, name="progress", daemon=True)
            self._heartbeat.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            with self._lock:
                if not self._label:
                    continue
                line = f"… {self._label}: running for {time.monotonic() - self._started:.0f} s"
                if self._total:
                    line += (
                        f", {self._done / 2**20:,.1f} of {self._total / 2**20:,.1f} MiB"
                        f" ({100 * self._done / self._total:.0f}%)"
                    )
            self.console.print(line, highlight=False, markup=False)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        if self._live is not None:
            self._live.__exit__(exc_type, exc, tb)
            if not self.console.is_terminal:
                # Off a terminal the final bar is printed without a line break, and the next
                # output (the summary on stdout) would continue the same line of a CI log.
                self.console.line()

    def begin(self, label: str, total_bytes: int) -> None:
        with self._lock:
            # labels read "upload [sdk] @reference": not rich markup
            self._current = self._bytes.add_task(escape(label), total=total_bytes or None)
            self._label, self._started = label, time.monotonic()
            self._done, self._total = 0, total_bytes

    def advance(self, done: int, total: int) -> None:
        """The StepContext.progress callback: absolute bytes done of total."""
        with self._lock:
            if self._current is not None:
                self._bytes.update(self._current, completed=done, total=total or None)
                self._done, self._total = done, total

    def end(self, summary: str, ok: bool) -> None:
        """Replace the step's bar by one line that stays in the scrollback."""
        with self._lock:
            if self._current is not None:
                self._bytes.remove_task(self._current)
                self._current = None
            self._label = ""
            self._steps.advance(self._overall)
        mark = "[green]✓[/]" if ok else "[red]✗[/]"
        self.console.print(f"{mark} {summary}", highlight=False)
