"""Live progress: one bar for the whole run, one for the step in flight (bytes, rate, ETA)."""

from __future__ import annotations

import threading
from types import TracebackType

from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


class RunProgress:
    def __init__(self, total_executions: int, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
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
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
        )
        self._overall = self._steps.add_task("run", total=total_executions)
        self._current: TaskID | None = None
        self._lock = threading.Lock()  # drivers may report from worker threads
        self._live: Live | None = None

    def __enter__(self) -> RunProgress:
        self._live = Live(
            Group(self._steps, self._bytes), console=self.console, refresh_per_second=4
        )
        self._live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.__exit__(exc_type, exc, tb)

    def begin(self, label: str, total_bytes: int) -> None:
        with self._lock:
            self._current = self._bytes.add_task(label, total=total_bytes or None)

    def advance(self, done: int, total: int) -> None:
        """The StepContext.progress callback: absolute bytes done of total."""
        with self._lock:
            if self._current is not None:
                self._bytes.update(self._current, completed=done, total=total or None)

    def end(self, summary: str, ok: bool) -> None:
        """Replace the step's bar by one line that stays in the scrollback."""
        with self._lock:
            if self._current is not None:
                self._bytes.remove_task(self._current)
                self._current = None
            self._steps.advance(self._overall)
        mark = "[green]✓[/]" if ok else "[red]✗[/]"
        self.console.print(f"{mark} {summary}", highlight=False)
