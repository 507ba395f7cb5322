"""Timings that say which clock measured them, and reports a person can read (issue 10)."""

from __future__ import annotations

import json
from pathlib import Path

import lxml.html
import pandas as pd
import pytest
from click.testing import CliRunner
from rich.console import Console
from rich.progress import Progress

from harness.contract.proxy import Call
from harness.contract.record import apply_proxy_timing
from harness.datasets import default_cache_dir
from harness.drivers.azcopy import AzCopyDriver, go_duration_ms
from harness.drivers.rclone import RcloneDriver
from harness.progress import MiBSpeedColumn
from harness.report import load_run, side_by_side, summarize
from harness.report.compare import compare_runs
from harness.report.html import (
    STEP_KEY_WIDTH,
    small_bar_labels,
    step_key,
    step_starts,
    write_run_report,
)
from harness.report.terminal import print_run
from harness.results import StepResult
from harness.runner import results_frame, write_results

# What AzCopy 10.32.2 writes into its job log for each request (log level INFO).
OK = "-- RESPONSE SUCCESSFULLY RECEIVED"
AZCOPY_LOG = f"""\
2026/12/01 20:01:28 INFO: [P#0-T#0] Starting transfer: Source "/d/a.bin" Destination "http://h/a"
2026/12/01 20:01:28 ==> REQUEST/RESPONSE (Try=1/28.1ms, OpTime=28.6ms) {OK}
   PUT http://127.0.0.1:1/devstoreaccount1/ct/p%2Fa.bin?sig=-REDACTED-
2026/12/01 20:01:28 ==> REQUEST/RESPONSE (Try=1/512µs, OpTime=612µs) {OK}
   HEAD http://127.0.0.1:1/devstoreaccount1/ct/p%2Fa.bin?sig=-REDACTED-
2026/12/01 20:01:29 ==> REQUEST/RESPONSE (Try=2/1.5s, OpTime=1m2.5s) -- RESPONSE STATUS CODE ERROR
   PUT http://127.0.0.1:1/devstoreaccount1/ct/p%2Fb.bin?sig=-REDACTED-
   RESPONSE Status: 503 Server Busy
   X-Ms-Error-Code: [ServerBusy]
"""


def test_go_durations_read_as_milliseconds() -> None:
    assert go_duration_ms("28.5ms") == pytest.approx(28.5)
    assert go_duration_ms("512µs") == pytest.approx(0.512)
    assert go_duration_ms("1m2.5s") == pytest.approx(62_500)


def test_azcopy_job_log_gives_per_request_latency(tmp_path: Path) -> None:
    (tmp_path / "job1.log").write_text(AZCOPY_LOG)
    by_status, by_code, retries, latencies = AzCopyDriver._scan_logs(tmp_path, ["job1"])
    assert latencies == pytest.approx([28.6, 0.612, 62_500])
    assert by_status == {"503": 1} and by_code == {"[ServerBusy]": 1} and retries == 1


def _call(started: float, elapsed_ms: float) -> Call:
    return Call("PUT", "/a", "h", [], {}, 201, started=started, elapsed_ms=elapsed_ms)


def test_proxy_clock_replaces_azcopy_poll_quantised_duration() -> None:
    result = StepResult("s", "up", "azcopy", "upload", "reference", duration_s=2.05)
    result.p50_ms, result.latency_clock = 20.0, "azcopy-log"
    apply_proxy_timing(result, [_call(100.0, 50.0), _call(100.1, 200.0)], AzCopyDriver.proxy_timed)
    # first request at 100.0, last response at 100.1 + 0.2
    assert result.duration_s == pytest.approx(0.3)
    assert result.clock == "proxy" and result.extra["wall_duration_s"] == 2.05
    assert result.p50_ms == 20.0 and result.latency_clock == "azcopy-log"  # its own log wins


def test_proxy_gives_rclone_latency_but_keeps_its_own_clock() -> None:
    result = StepResult("s", "up", "rclone", "upload", "reference", duration_s=1.0)
    apply_proxy_timing(result, [_call(100.0, 10.0), _call(100.5, 30.0)], RcloneDriver.proxy_timed)
    assert result.duration_s == 1.0 and result.clock == "wall"
    assert result.latency_clock == "proxy"
    assert result.p50_ms == pytest.approx(10.0, rel=0.01)
    assert result.max_ms == pytest.approx(30.0, rel=0.01)


def _row(step: str, target: str, duration: float, repeat: int = 0, **kw) -> StepResult:
    driver, op = step.split("-", 1)
    return StepResult(
        "sc", step, driver, op, target, repeat=repeat, duration_s=duration,
        bytes=100 * 2**20, objects=10, **kw,
    )  # fmt: skip


def _run_dir(base: Path, name: str, rows: list[StepResult], targets: list[str]) -> Path:
    run_dir = base / name
    run_dir.mkdir(parents=True)
    write_results(run_dir, results_frame(rows))
    info = {
        "scenario": {"name": "sc", "description": "d"},
        "targets": {t: {"kind": t, "version": "1", "nested": {"a": 1}} for t in targets},
        "host": {"hostname": "box", "cpus_logical": 2},
        "tool_versions": {"azcopy": {"azcopy": "10.32.2"}},
        "git": {"revision": "abc"},
        "datasets": {},
        "passed": True,
        "notes": [],
    }
    (run_dir / "run.json").write_text(json.dumps(info))
    return run_dir


def test_unstable_repeats_are_flagged_and_give_no_ratio() -> None:
    rows = [_row("azcopy-download", "reference", d, i) for i, d in enumerate((2.1, 4.1, 2.1))]
    rows += [_row("azcopy-download", "azurite", d, i) for i, d in enumerate((1.0, 1.1, 1.2))]
    summary = summarize(results_frame(rows))
    flags = dict(zip(summary["target"], summary["unstable"], strict=True))
    assert flags == {"reference": True, "azurite": False}
    assert summary["spread"].iloc[0] == pytest.approx(4.1 / 2.1)
    by = {t: g for t, g in summary.groupby("target", sort=False)}
    _, compared = side_by_side(by)
    assert compared[0]["azurite:throughput_mib_s"] > 0
    assert compared[0]["azurite:throughput_mib_s:ratio"] is None
    assert compared[0]["azurite:unstable"] is False and compared[0]["reference:unstable"]


def test_terminal_summary_fits_80_columns_without_cutting_cells(tmp_path: Path) -> None:
    names = ["azcopy-upload", "azcopy-download", "rclone-sync-down", "boostedblob-upload"]
    rows = [_row(n, "reference", 1.0 + i, 0, p99_ms=12.5) for i, n in enumerate(names)]
    run = load_run(_run_dir(tmp_path, "20261201T000000Z-sc", rows, ["reference"]))
    for width in (80, 200):
        console = Console(width=width, record=True)
        print_run(run, console)
        text = console.export_text()
        table = [line for line in text.splitlines() if line[:1] in "┏┃┡│└"]
        assert max(len(line) for line in table) <= width
        assert table[0].endswith("┓") and table[-1].endswith("┘")  # the table is whole
        assert "…" not in text
        for name in names:
            assert name in text
    assert "clock" in text and "rclone-sync-down" in text


def test_compare_headers_name_targets_or_labels_and_warn_of_disjoint_runs(
    tmp_path: Path,
) -> None:
    a = _run_dir(tmp_path, "20261201T000000Z-sc", [_row("sdk-upload", "reference", 1.0)],
                 ["reference"])  # fmt: skip
    b = _run_dir(tmp_path, "20261201T000100Z-sc", [_row("rclone-upload", "azurite", 2.0)],
                 ["azurite"])  # fmt: skip
    c = _run_dir(tmp_path, "20261201T000200Z-sc", [], ["reference"])
    console = Console(width=200, record=True)
    path = compare_runs([a, b, c], tmp_path / "cmp", console)
    text = console.export_text()
    assert "azurite shares no steps with reference" in text
    assert "reference #3: no step results" in text  # kept and said, not dropped
    doc = lxml.html.parse(str(path)).getroot()
    heads = [th.text_content() for th in doc.get_element_by_id("comparison").iter("th")]
    assert "reference #1" in heads and "azurite" in heads and "reference #3" in heads
    assert not any("20261201T" in h for h in heads)
    assert len(doc.find_class("comparison-warning")) == 2
    path = compare_runs([a, b], tmp_path / "cmp2", Console(record=True), labels=["old", "new"])
    heads = [th.text_content() for th in lxml.html.parse(str(path)).getroot().iter("th")]
    assert "old" in heads and "new" in heads


def test_html_report_environment_is_tables_and_summary_fits(tmp_path: Path) -> None:
    rows = [_row("azcopy-upload", "reference", 1.0, 0, clock="proxy")]
    run = load_run(_run_dir(tmp_path, "20261201T000000Z-sc", rows, ["reference"]))
    doc = lxml.html.parse(str(write_run_report(run))).getroot()
    env = doc.get_element_by_id("environment")
    assert "{'" not in env.text_content() and '{"' not in env.text_content()
    facts = {
        tuple(td.text_content() for td in tr.iter("td"))[1:]
        for tr in doc.get_element_by_id("env-targets").iter("tr")
    }
    assert ("nested", "a: 1") in facts and ("version", "1") in facts
    assert doc.get_element_by_id("env-host").xpath(".//td[text()='hostname']")
    for table_id in ("summary", "summary-detail"):
        assert len(doc.get_element_by_id(table_id).xpath("./thead/tr/th")) <= 14
    clock = doc.get_element_by_id("summary").xpath(".//td[@data-col='clock']")[0]
    assert clock.text_content() == "proxy"
    assert "@media print" in doc.find("head/style").text


def test_small_bars_get_value_labels_and_steps_are_marked() -> None:
    assert small_bar_labels([500.0, 3.25], top=520.0) == ["", "3.2"]
    samples = pd.DataFrame(
        {"t": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "step": ["", "up", "up", "", "down", "up"]}
    )
    assert step_starts(samples) == [(2.0, "up"), (5.0, "down")]


def test_step_key_numbers_the_step_starts_and_wraps_between_steps() -> None:
    # 20 steps starting a fraction of a second apart: names at the lines would overlap
    names = [f"{tool}-{op}" for tool in ("azcopy", "sdk-aio", "boostedblob", "rclone")
             for op in ("upload", "list", "download", "remove", "sync-down")]  # fmt: skip
    lines = step_key([(0.1 * i, name) for i, name in enumerate(names)])
    assert len(lines) > 1 and all(len(line) <= STEP_KEY_WIDTH for line in lines)
    entries = " ".join(lines).removeprefix("steps: ").split(" · ")  # wrapped at spaces only
    assert entries == [f"{n}\u00a0{name}" for n, name in enumerate(names, 1)]


def test_progress_rate_is_in_mib_per_second() -> None:
    progress = Progress()
    task_id = progress.add_task("x", total=100)
    task = progress.tasks[task_id]
    task._progress.extend([])  # no samples yet: no rate
    assert "MiB/s" in MiBSpeedColumn().render(task).plain
    task.finished_speed = 3 * 2**20
    assert MiBSpeedColumn().render(task).plain == "3.0 MiB/s"


def test_dataset_cache_defaults_to_a_user_cache(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HARNESS_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "blob-facade-lab" / "datasets"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "blob-facade-lab" / "datasets"
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"


class _Stop(Exception):
    pass


def test_run_writes_under_cwd_reports_and_takes_cache_dir(monkeypatch, tmp_path: Path) -> None:
    import harness.runner
    from harness.cli import main

    seen: dict = {}

    class FakeRunner:
        def __init__(self, scenario, **options) -> None:
            seen.update(options)

        def run(self):
            raise _Stop

    monkeypatch.setattr(harness.runner, "Runner", FakeRunner)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HARNESS_CACHE_DIR", raising=False)
    result = CliRunner().invoke(main, ["run", "smoke", "--no-contract"])
    assert isinstance(result.exception, _Stop)
    assert seen["out"] == tmp_path / "reports"
    assert seen["cache_dir"] == default_cache_dir()
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "env-cache"))
    CliRunner().invoke(main, ["run", "smoke", "--no-contract"])
    assert seen["cache_dir"] == tmp_path / "env-cache"
    CliRunner().invoke(main, ["run", "smoke", "--no-contract", "--cache-dir", "c"])
    assert seen["cache_dir"] == Path("c")


def test_sampler_samples_the_moment_a_step_starts() -> None:
    from harness.metrics import Sampler

    with Sampler(lambda: {}, interval=60) as sampler:  # no periodic sample during the test
        before = len(sampler.samples)
        sampler.step = "up"
        assert len(sampler.samples) == before + 1
        assert sampler.samples[-1].step == "up"
        sampler.step = ""  # the end of a step takes none
        assert len(sampler.samples) == before + 1


# What rclone 1.75 writes with --use-json-log --dump headers (header blocks shortened).
RCLONE_LOG = [
    "2026/12/01 20:10:15 NOTICE: Automatically setting -vv as --dump is enabled",
    {"time": "2026-12-01T20:10:15.894613585Z", "msg": "HTTP REQUEST (req 0xa1)"},
    {"time": "2026-12-01T20:10:15.894627716Z", "msg": "HEAD /acct/ct/p HTTP/1.1\r\n"},
    {"time": "2026-12-01T20:10:15.895000000Z", "msg": "HTTP REQUEST (req 0xb2)"},
    {"time": "2026-12-01T20:10:15.896438755Z", "msg": "HTTP RESPONSE (req 0xa1)"},
    {"time": "2026-12-01T20:10:15.925000000Z", "msg": "HTTP RESPONSE (req 0xb2)"},
    {"time": "2026-12-01T20:10:16.000000000Z", "msg": "HTTP REQUEST (req 0xc3)"},  # no answer
    {"time": "2026-12-01T20:10:16.1Z", "level": "notice", "stats": {"transfers": 2}},
]


def test_rclone_request_log_gives_per_request_latency(tmp_path: Path) -> None:
    from harness.drivers.rclone import _parse_log

    path = tmp_path / "rclone.log.jsonl"
    lines = [e if isinstance(e, str) else json.dumps(e) for e in RCLONE_LOG]
    path.write_text("\n".join(lines) + "\n")
    stats, errors, latencies = _parse_log(path)
    assert latencies == pytest.approx([1.825, 30.0], abs=0.002)
    assert stats == {"transfers": 2} and errors == []


def test_comparison_fits_80_columns_with_one_rate_per_label(tmp_path: Path) -> None:
    rows = [_row("azcopy-download", "reference", 1.0), _row("sdk-remove", "reference", 0.5)]
    twin = [_row("azcopy-download", "azurite", 2.0), _row("sdk-remove", "azurite", 0.25)]
    a = _run_dir(tmp_path, "20261201T000000Z-sc", rows, ["reference"])
    b = _run_dir(tmp_path, "20261201T000100Z-sc", twin, ["azurite"])
    console = Console(width=80, record=True)
    compare_runs([a, b], tmp_path / "cmp", console)
    table = [line for line in console.export_text().splitlines() if line[:1] in "┏┃┡│└"]
    assert max(len(line) for line in table) <= 80 and table[0].endswith("┓")
    cells = {line.split("│")[1].strip(): line for line in table if line.startswith("│")}
    assert "0.50" in cells["azcopy-download"]  # 100 vs 50 MiB/s
    assert "(20.0)" in cells["sdk-remove"] and "2.00" in cells["sdk-remove"]  # ops/s, no body


def test_report_refuses_a_label_count_that_does_not_match_the_runs(tmp_path: Path) -> None:
    from harness.cli import main

    a = _run_dir(tmp_path, "a", [_row("sdk-upload", "reference", 1.0)], ["reference"])
    b = _run_dir(tmp_path, "b", [_row("sdk-upload", "azurite", 1.0)], ["azurite"])
    result = CliRunner().invoke(main, ["report", str(a), str(b), "--label", "only-one"])
    assert result.exit_code == 2 and "1 --label for 2 runs" in result.output
    out = tmp_path / "cmp"
    result = CliRunner().invoke(
        main, ["report", str(a), str(b), "--label", "old", "--label", "new", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "old = " in result.output and "new" in (out / "report.html").read_text()


RECORDED = """\
name: clocks
repeats: 2
datasets:
  - name: d
    seed: 4
    files:
      - {count: 6, size: 64KiB}
      - {count: 1, size: 9MiB, prefix: big}
steps:
  - {driver: azcopy, operation: upload, dataset: d, prefix: a/, concurrency: 4}
  - {driver: rclone, operation: download, dataset: d, prefix: a/, concurrency: 4}
"""


@pytest.mark.azcopy
@pytest.mark.rclone
def test_a_recorded_run_times_azcopy_by_the_proxy_and_both_tools_by_their_logs(
    tmp_path: Path,
) -> None:
    from harness import scenario
    from harness.contract.record import ContractRecorder
    from harness.runner import Runner

    (tmp_path / "s.yaml").write_text(RECORDED)
    runner = Runner(
        scenario.load(tmp_path / "s.yaml"),
        out=tmp_path / "reports",
        cache_dir=tmp_path / "c",
        hooks=[ContractRecorder()],
    )
    outcome = runner.run()
    rows = outcome.results[outcome.results.row_kind == "step"]
    assert rows.ok.all(), list(rows.error)
    azcopy = rows[rows.driver == "azcopy"]
    assert set(azcopy.clock) == {"proxy"} and set(azcopy.latency_clock) == {"azcopy-log"}
    for extra, duration in zip(azcopy.extra, azcopy.duration_s, strict=True):
        # AzCopy's own process ends only at a status poll; the proxy's span is the work itself
        assert duration < extra["wall_duration_s"]
        assert (
            duration == pytest.approx(extra["proxy_span_s"], abs=1e-5)
            and extra["requests_timed"] >= 8
        )
    rclone = rows[rows.driver == "rclone"]
    assert set(rclone.clock) == {"wall"} and set(rclone.latency_clock) == {"rclone-log"}
    assert (rclone.p50_ms > 0).all() and (rclone.max_ms >= rclone.p99_ms).all()


def test_columns_80_is_honoured_off_a_terminal(monkeypatch) -> None:
    from harness.report.terminal import wide_console

    monkeypatch.setenv("COLUMNS", "80")
    assert wide_console().width == 80
    monkeypatch.delenv("COLUMNS")
    assert wide_console().width == 160  # a CI log without COLUMNS keeps the wide table


@pytest.mark.sdk
def test_contract_recording_caches_datasets_in_the_user_cache(monkeypatch, tmp_path: Path) -> None:
    from harness import scenario
    from harness.contract.record import record_scenario

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "s.yaml").write_text(
        "name: cache-check\ndatasets:\n  - {name: d, seed: 1, files: [{count: 2, size: 1KiB}]}\n"
        "steps:\n  - {driver: sdk, operation: upload, dataset: d, prefix: c}\n"
    )
    rec = record_scenario(scenario.load(tmp_path / "s.yaml"), tmp_path / "reports")
    assert rec.outcome.exit_code == 0
    assert [p.name.split("-")[0] for p in (tmp_path / "cache").iterdir()] == ["d"]


def test_trend_ticks_tell_two_nights_of_one_day_apart() -> None:
    from harness.history.page import night_ticks

    assert night_ticks(["2026-11-20T01:00:00Z", "2026-11-21T01:00:00Z"]) == [
        "2026-11-20",
        "2026-11-21",
    ]
    # two runs a day used to read "2026-12-01", "2026-12-01": now their UTC times show
    assert night_ticks(["2026-12-01T01:00:00Z", "2026-12-01T13:30:00Z"]) == [
        "2026-12-01 01:00 UTC",
        "2026-12-01 13:30 UTC",
    ]
    assert night_ticks(["2026-12-01T23:42:15Z", "2026-12-01T23:42:38Z"]) == [
        "2026-12-01 23:42:15 UTC",
        "2026-12-01 23:42:38 UTC",
    ]
