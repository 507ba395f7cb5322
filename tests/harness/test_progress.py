"""Live progress off a terminal (CI logs): its last line ends before the summary starts."""

from __future__ import annotations

import io
import time

from rich.console import Console

from harness.progress import RunProgress


def test_final_bar_ends_its_line_off_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=100)
    with RunProgress(1, console=console) as progress:
        progress.begin("upload [sdk] @reference", 1024)
        progress.advance(1024, 1024)
        progress.end("upload @reference: 1 objects", ok=True)
    console.print("summary table")
    lines = out.getvalue().splitlines()
    assert "✓ upload @reference: 1 objects" in lines
    assert lines[-1] == "summary table"
    assert "1/1" in lines[-2]  # the run bar, complete, on its own line


def test_off_a_terminal_a_long_step_prints_heartbeats() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=120)
    with RunProgress(1, console=console, heartbeat_s=0.05) as progress:
        progress.begin("sweep [locust] @reference", 4 * 2**20)
        progress.advance(2**20, 4 * 2**20)
        time.sleep(0.3)
        progress.end("sweep @reference: done", ok=True)
    beats = [line for line in out.getvalue().splitlines() if line.startswith("… ")]
    assert beats, out.getvalue()
    assert beats[0].startswith("… sweep [locust] @reference: running for ")
    assert beats[0].endswith(", 1.0 of 4.0 MiB (25%)")


def test_step_labels_are_not_taken_for_markup() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with RunProgress(1, console=console, heartbeat_s=0) as progress:
        progress.begin("upload [sdk] @reference", 0)
        progress._live.refresh()  # draw the step bar once
        progress.end("upload @reference: done", ok=True)
    assert "upload [sdk] @reference" in out.getvalue()
