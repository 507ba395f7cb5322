"""`harness bench server|s2s|tls|listing`: shipped benchmark scenarios run through the runner.

Each command is a thin alias: its flags become overrides of ``scenarios/bench-*.yaml``, the
one runner runs it (results.parquet, run.json, report.html, junit.xml like any scenario), and
the command prints the scenario's ratio criteria as the goals table, each with whether its
anchor was measured at its best, then the server's CPU per request, the lab's own overhead
(methodology) and, for ``listing``, the scale curves; everything printed is also saved as
``bench-summary.txt`` in the run directory. It exits as ``harness run`` does: 1 when a goal (a
criterion, or a listing goal) or a step fails. ``bench large`` measures what no client step
sees (the façade's RSS during one commit) with harness.bench.large, and exits 1 when one of its
requests fails.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table

from harness.cli_common import SIZE, F, load_scenario, new_run_dir, out_option

if TYPE_CHECKING:  # the runner, pandas and the drivers load only when a command runs
    import pandas as pd

    from harness.criteria import Verdict
    from harness.runner import RunOutcome
    from harness.scenario import Scenario

BUSY_LOAD_PER_CORE = 0.5  # load average per core before the run above which it is flagged
# Azurite on this 2-core box with the JS SDK (SPEC.md, "Facts learned"): a sanity check. An
# Azurite far below these means the host, not the targets, set the pace of the run.
AZURITE_EXPECTED = {"put-block": 208.0, "get-blob": 345.0, "put-small": 500.0, "get-small": 500.0}
UNITS = {"throughput_mib_s": "MiB/s", "ops_s": "ops/s", "duration_s": "s"}
SUMMARY_NAME = "bench-summary.txt"  # everything the command printed, kept with the run
NOFILE = 65536  # open files the bench asks for (capped by the hard limit): 10,000 connections
SHOWN_OPS = {">=": "≥", "<=": "≤"}


def run_scenario(scenario: Scenario, out: Path | None, source: dict[str, Any]) -> RunOutcome:
    """Run ``scenario`` through the runner, write its report and JUnit, print its summary;
    the RunOutcome."""
    from harness.datasets import default_cache_dir
    from harness.report import load_run, render_run
    from harness.report.terminal import print_run
    from harness.runner import Runner

    runner = Runner(
        scenario,
        out=out or Path.cwd() / "reports",
        cache_dir=default_cache_dir(),
        source=source,
        hooks=[proxied_steps()],
    )
    outcome = runner.run()
    render_run(outcome.run_dir)
    print_run(load_run(outcome.run_dir))
    return outcome


def proxied_steps() -> Any:
    """A run hook that sends the steps marked ``options.via_proxy`` through the contract-
    recording proxy (one per target, started on first use): the lab's own overhead is the
    difference with the same workload sent straight to the target."""
    import dataclasses

    from harness.contract.proxy import RecordingProxy
    from harness.runner import RunHook

    class ProxiedSteps(RunHook):
        def __init__(self) -> None:
            self.proxies: dict[str, RecordingProxy] = {}

        def on_step(self, ex: Any, ctx: Any, driver: Any) -> bool:
            if not ctx.options.get("via_proxy"):
                return False
            proxy = self.proxies.get(ex.target)
            if proxy is None:
                proxy = RecordingProxy(ctx.endpoint.blob_url, ca_bundle=ctx.endpoint.ca_bundle)
                proxy.start()
                self.proxies[ex.target] = proxy
            # origin_url: errors (and the server's pids) name the target, not the proxy
            ctx.endpoint = dataclasses.replace(
                proxy.endpoint_for(ctx.endpoint), origin_url=ctx.endpoint.blob_url
            )
            return False

        def on_targets_stopping(self, runner: Any) -> None:
            for proxy in self.proxies.values():
                proxy.stop()
            self.proxies.clear()

    return ProxiedSteps()


def goals(verdicts: list[Verdict]) -> list[Verdict]:
    """The verdicts of ratio criteria: a benchmark's goals."""
    from harness.criteria import parse

    return [v for v in verdicts if parse(v.expression).is_ratio]


def render(verdicts: list[Verdict], console: Console, results: pd.DataFrame | None = None) -> None:
    """The goals as a table: each side's value (the façade's, the anchor's), ratio, goal, met,
    and (given the results) whether the anchor was measured at its best."""
    from harness.bench.summary import anchor_note
    from harness.criteria import parse
    from harness.drivers.rest_bench import CLIENT_BOUND_PCT

    bound = any(v.client_bound for v in verdicts)
    table = Table(
        title="goals: ratios of medians of repeats",
        caption=f"* client-bound: a benchmark client process was above {CLIENT_BOUND_PCT:.0f}% CPU"
        if bound
        else None,
    )
    for col in ("workload", "unit", "measured", "baseline", "ratio", "goal", "met"):
        table.add_column(  # at 80 columns cells wrap (never "…"); numbers stay whole
            col,
            justify="right" if col == "ratio" else "left",
            no_wrap=col not in ("workload", "measured", "baseline"),
            overflow="fold",
            min_width=12 if col == "workload" else None,
        )
    for v in verdicts:
        expr = parse(v.expression)
        ours, base = (v.sides.get(t) for t in (expr.numerator, expr.denominator))
        met = "[green]yes[/]" if v.passed else "[red]no[/]"
        if v.client_bound:
            met += "[yellow]*[/]"
        table.add_row(
            v.criterion,
            UNITS.get(expr.kpi, expr.kpi),
            f"{expr.numerator} {_fmt(ours)}",
            f"{expr.denominator} {_fmt(base)}",
            "–" if v.observed is None else f"{v.observed:.2f}×",
            f"{SHOWN_OPS.get(expr.op, expr.op)} {expr.value}×",
            met,
        )
    console.print(table)
    if results is not None:  # one line per goal: an anchor below its best flatters a ratio
        console.print("anchor measured at its best (best level kept of those tried):")
        for v in verdicts:
            anchor = parse(v.expression).denominator
            console.print(f"  {v.criterion}: {anchor} {anchor_note(v, results)}", soft_wrap=True)


def render_server_side(results: pd.DataFrame, console: Console, kind: str = "step") -> None:
    """Server CPU per request (µs, user + system of its process tree) and RSS growth per
    workload and target; a client-bound row is marked (its rate measured the client)."""
    from harness.bench.summary import server_cpu

    rows = server_cpu(results, kind)
    if not rows:
        return
    table = Table(title="server CPU per request (medians of repeats)")
    for col in ("workload", "target", "µs CPU/request", "server CPU %", "RSS +MiB", "note"):
        left = col in ("workload", "target", "note")
        table.add_column(col, justify="left" if left else "right", overflow="fold")
    for r in rows:
        table.add_row(
            r.step,
            r.target,
            _fmt(r.us_per_op),
            _fmt(r.server_cpu_pct),
            _fmt(r.rss_delta_mib),
            ", ".join(n for n in ("client-bound" if r.client_bound else "", r.note) if n),
        )
    console.print(table)


def render_methodology(results: pd.DataFrame, console: Console) -> None:
    """The lab's own overhead and the anchors no ratio divides by."""
    from harness.bench.summary import disk_read, methodology

    lines = [*methodology(results)]
    read = disk_read(results)
    if read:
        lines.append(read)
    if lines:
        console.print("methodology (the lab's own overhead, measured in this run):")
        for line in lines:
            console.print(f"  {line}", soft_wrap=True)


def missed_goals(verdicts: list[Verdict]) -> list[str]:
    """The goals the table shows as not met, as "label ratio (goal ≥ N×)" lines."""
    from harness.criteria import parse

    missed = []
    for v in verdicts:
        if not v.passed:
            ratio = "no ratio" if v.observed is None else f"{v.observed:.2f}×"
            expr = parse(v.expression)
            shown = SHOWN_OPS.get(expr.op, expr.op)
            missed.append(f"{v.criterion} {ratio} (goal {shown} {expr.value}×)")
    return missed


def print_hot_spots(run_dir: Path, console: Console) -> bool:
    """The hot spots of every profiled target of the run (``options.profile``); any printed."""
    from harness.bench.profile import hot_spots

    run_json = run_dir / "run.json"
    targets = json.loads(run_json.read_text()).get("targets", {}) if run_json.exists() else {}
    printed = False
    for name, facts in targets.items():
        if isinstance(facts, dict) and facts.get("profile"):
            profile = Path(facts["profile"])
            console.print(f"{name} hot spots (self time, {profile}):", soft_wrap=True)
            for frame, share in hot_spots(profile, top=10):
                console.print(f"  {share:5.1f}% {frame}", soft_wrap=True)
            printed = True
    return printed


def notes(verdicts: list[Verdict], load_before: float) -> list[str]:
    """What makes the numbers of this run less telling: a busy host, a slow Azurite."""
    out = []
    cores = os.cpu_count() or 1
    if load_before > BUSY_LOAD_PER_CORE * cores:
        # Other processes compete with the servers and the client for the same cores.
        out.append(
            f"host busy before the run (1-min load average {load_before:.1f} on {cores} cores):"
            " absolute numbers are low and ratios noisy; rerun on an idle host"
        )
    slow = [
        f"{v.step} {v.sides['azurite']:.0f} vs ~{AZURITE_EXPECTED[v.step]:.0f}"
        for v in verdicts
        if v.step in AZURITE_EXPECTED
        and v.sides.get("azurite") is not None
        and v.sides["azurite"] < AZURITE_EXPECTED[v.step] / 2
    ]
    if slow:
        out.append("Azurite below half of its known numbers on this box: " + ", ".join(slow))
    return out


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f}"


def _run_alias(
    name: str,
    overrides: list[str],
    out: Path | None,
    profile: bool = False,
    extra_goals: Callable[[pd.DataFrame, Console], tuple[list[str], int]] | None = None,
) -> None:
    """Load the shipped scenario with the overrides, run it, print the goals, exit.
    ``extra_goals`` prints a workload's own goals: (those missed, how many there are)."""
    from harness.bench.scale import raise_nofile

    scenario = load_scenario(name, tuple(overrides))
    source = {"scenario": f"scenarios/{name}.yaml", "overrides": overrides, "command": name}
    console = Console(record=True)
    load_before = os.getloadavg()[0]
    raise_nofile(NOFILE)  # before the targets start: the servers inherit it
    outcome = run_scenario(scenario, out, source)
    verdicts = goals(outcome.verdicts)
    results = outcome.results
    if verdicts:
        render(verdicts, console, results if len(results) else None)
    if len(results):
        render_server_side(results, console)
        render_methodology(results, console)
    missed_extra, n_extra = (
        extra_goals(results, console) if extra_goals and len(results) else ([], 0)
    )
    run_dir = outcome.run_dir
    found = [
        *notes(verdicts, load_before),
        *(
            ["profiled run: py-spy sampled the façade, so its numbers are slightly low"]
            if profile and print_hot_spots(run_dir, console)
            else []
        ),
    ]
    for note in found:
        console.print(f"[yellow]note:[/] {note}")
    console.print(f"junit: {run_dir / 'junit.xml'}", soft_wrap=True)
    console.print(f"report: {run_dir / 'report.html'}", soft_wrap=True)
    missed = missed_goals(verdicts) + missed_extra
    if missed:  # a benchmark is a gate too: a missed goal fails the command
        console.print(
            f"[red]{len(missed)} of {len(verdicts) + n_extra} goal(s) missed:[/] "
            + "; ".join(missed)
        )
    if run_dir.is_dir():
        console.save_text(str(run_dir / SUMMARY_NAME))
    sys.exit(outcome.exit_code or (1 if missed_extra else 0))


def _set(key: str, value: Any) -> str:
    """One ``--set`` override; JSON is YAML, so lists and strings survive as they are."""
    return f"{key}={json.dumps(value)}"


def _overrides(mapping: dict[str, list[str]], options: dict[str, Any]) -> list[str]:
    """The given flags as overrides: each flag sets every scenario key it maps to."""
    return [
        _set(key, options[flag])
        for flag, keys in mapping.items()
        if options[flag] is not None
        for key in keys
    ]


def set_option(scenario: str) -> Callable[[F], F]:
    """``--set KEY=VALUE`` (repeatable): any override of the alias's shipped scenario."""
    return click.option(
        "--set",
        "extra",
        multiple=True,
        metavar="KEY=VALUE",
        help=f"any other override of scenarios/{scenario}.yaml (repeatable)",
    )


@click.group()
def bench() -> None:
    """Benchmarks: shipped scenarios (scenarios/bench-*.yaml) through the runner."""


@bench.command("server")
@click.option(
    "--workers",
    type=int,
    default=lambda: os.cpu_count() or 1,
    show_default="cores",
    help="façade worker processes (nginx runs as many)",
)
@click.option(
    "--size", type=SIZE, help="large blob for the throughput workloads and fio's files [512MiB]"
)
@click.option("--block-size", type=SIZE, help="Put Block / ranged Get / fio block size [8MiB]")
@click.option(
    "--concurrency",
    type=int,
    help="requests in flight for the large Put Block / Get Blob workloads [16]",
)
@click.option("--burst", type=int, help="64 KiB Put Blocks all in flight at once [1000]")
@click.option("--small-ops", type=int, help="1 KiB Put Blobs (then Get Blobs) per repeat [1000]")
@click.option("--small-concurrency", type=int, help="[32]")
@click.option("--repeats", type=click.IntRange(min=1), help="the table shows the median [3]")
@click.option(
    "--client-procs",
    type=click.IntRange(min=1),
    help="client processes the Put Block / Get Blob throughput workloads are split across [2]",
)
@out_option()
@click.option("--profile", is_flag=True, help="sample the façade with py-spy during the run")
@click.option(
    "--facade-arg",
    "facade_args",
    multiple=True,
    help="extra flag for the façade, repeatable (e.g. --facade-arg=--loop=asyncio)",
)
@click.option(
    "--no-content-md5",
    "content_md5",
    flag_value=False,
    default=None,
    help="uploads without Content-MD5 (Azurite then hashes each block with a CRC64 in "
    "JavaScript: its Put Block runs about 3× slower)",
)
@click.option("--proxied-size", type=SIZE, help="Put Block through the recording proxy [256MiB]")
@click.option(
    "--locust-seconds",
    type=click.IntRange(min=5),
    help="Locust against the aiohttp floor: seconds of its level, 2 of them ramp-up [8]",
)
@set_option("bench-server")
def server(**options: Any) -> None:
    """The reference façade against its anchors in one run: the disk (fio), nginx, a minimal
    aiohttp server and Azurite at its best; server CPU per request; the lab's own overhead."""
    large, small = ("put-block", "get-blob"), ("put-small", "get-small")
    disk = ("disk-write", "disk-read")
    proxied = ("put-small-proxied", "put-block-proxied")
    uploads = ("put-block", "put-block-burst", "put-small", *proxied)
    mapping: dict[str, list[str]] = {
        "size": [f"steps.{s}.options.size" for s in (*disk, *large)],
        "block_size": [f"steps.{s}.options.block_size" for s in (*disk, *large)]
        + ["steps.put-block-proxied.options.block_size"],
        "concurrency": [f"steps.{s}.concurrency" for s in (*large, "put-block-proxied")],
        "client_procs": [f"steps.{s}.options.procs" for s in (*large, "put-block-proxied")],
        "burst": ["steps.put-block-burst.options.count"],
        "small_ops": [f"steps.{s}.options.count" for s in (*small, "put-small-proxied")],
        "small_concurrency": [f"steps.{s}.concurrency" for s in (*small, "put-small-proxied")],
        "repeats": ["repeats"],
        "workers": ["target.workers", "targets.floor.workers"],
        "content_md5": [f"steps.{s}.options.content_md5" for s in uploads],
        "proxied_size": ["steps.put-block-proxied.options.size"],
        "locust_seconds": ["steps.locust-floor.options.level_duration_s"],
    }
    overrides = _overrides(mapping, options)
    if options["facade_args"]:
        overrides.append(_set("target.options.args", list(options["facade_args"])))
    if options["profile"]:
        overrides.append(_set("target.options.profile", True))
    _run_alias("bench-server", [*overrides, *options["extra"]], options["out"], options["profile"])


@bench.command("s2s")
@click.option("--files", type=click.IntRange(min=1), help="large files [8]")
@click.option("--file-size", type=SIZE, help="[128MiB]")
@click.option("--small-files", type=click.IntRange(min=1), help="[200]")
@click.option("--small-size", type=SIZE, help="[256KiB]")
@click.option("--block-size-mib", type=int, help="[8]")
@click.option("--concurrency", type=int, help="AZCOPY_CONCURRENCY [32]")
@click.option("--repeats", type=click.IntRange(min=1), help="[3]")
@click.option("--workers", type=int, help="per façade [1]")
@out_option()
@set_option("bench-s2s")
def s2s(**options: Any) -> None:
    """Lake → edge hydration by server-side copy vs download-then-upload through the client."""
    azcopy = ("s2s", "relay-down", "relay-up")
    mapping: dict[str, list[str]] = {
        "files": ["datasets.0.files.0.count"],
        "file_size": ["datasets.0.files.0.size"],
        "small_files": ["datasets.0.files.1.count"],
        "small_size": ["datasets.0.files.1.size"],
        "block_size_mib": [f"steps.{s}.block_size_mib" for s in azcopy],
        "concurrency": [f"steps.{s}.concurrency" for s in azcopy],
        "repeats": ["repeats"],
        "workers": ["target.workers", "targets.lake.workers"],
    }
    _run_alias("bench-s2s", [*_overrides(mapping, options), *options["extra"]], options["out"])


@bench.command("tls")
@click.option("--workers", type=int, help="worker processes of each façade [2]")
@click.option("--size", type=SIZE, help="the bulk blob [256MiB]")
@click.option("--block-size", type=SIZE, help="Put Block / ranged Get size [8MiB]")
@click.option("--concurrency", type=int, help="bulk requests in flight [16]")
@click.option("--small-ops", type=int, help="1 KiB Put Blobs (then Get Blobs) per repeat [1000]")
@click.option("--small-concurrency", type=int, help="[32]")
@click.option("--repeats", type=click.IntRange(min=1), help="the table shows the median [3]")
@out_option()
@set_option("bench-tls")
def tls(**options: Any) -> None:
    """Small-op and bulk throughput over https against http on the reference façade (goal:
    https ≥ 0.5× of http)."""
    large, small = ("put-block", "get-blob"), ("put-small", "get-small")
    mapping: dict[str, list[str]] = {
        "size": [f"steps.{s}.options.size" for s in large],
        "block_size": [f"steps.{s}.options.block_size" for s in large],
        "concurrency": [f"steps.{s}.concurrency" for s in large],
        "small_ops": [f"steps.{s}.options.count" for s in small],
        "small_concurrency": [f"steps.{s}.concurrency" for s in small],
        "repeats": ["repeats"],
        "workers": ["target.workers", "targets.tls.workers"],
    }
    _run_alias("bench-tls", [*_overrides(mapping, options), *options["extra"]], options["out"])


@bench.command("large")
@click.option("--blocks", type=click.IntRange(min=1), help="blocks of the block-list case [50000]")
@click.option("--size", type=SIZE, help="the large blob, on reflinked XFS [4.5TiB]")
@out_option()
def large(**options: Any) -> None:
    """Commit time and façade RSS for a 50,000-block commit and a 4.5 TiB one."""
    from harness.bench.large import LARGE_SIZE, MAX_BLOCKS, run_large

    run_dir = new_run_dir(options["out"] or Path.cwd() / "reports", "bench-large")
    results = run_large(run_dir, options["blocks"] or MAX_BLOCKS, options["size"] or LARGE_SIZE)
    console = Console()
    table = Table(title="large commits: one Put Block List each")
    for col in (
        "case",
        "blocks",
        "stage s",
        "commit s",
        "RSS before MiB",
        "RSS peak MiB",
        "disk MiB",
    ):
        table.add_column(col, justify="left" if col == "case" else "right")
    failed = False
    for r in results:
        if r.skipped:
            table.add_row(r.case, f"{r.blocks:,}", *(["–"] * 5))
            console.print(f"[yellow]skipped:[/] {r.case}: {r.skipped}")
            continue
        table.add_row(
            r.case,
            f"{r.blocks:,}",
            *(_fmt(v) for v in (r.stage_s, r.commit_s, r.rss_before_mib, r.rss_peak_mib)),
            _fmt(r.disk_used_mib),
        )
        for error in r.errors:
            console.print(f"[red]{r.case}:[/] {error}")
        failed = failed or bool(r.errors)
    console.print(table)
    console.print(f"results: {run_dir / 'large.json'}", soft_wrap=True)
    sys.exit(1 if failed else 0)


COUNT_SUFFIXES = {"k": 1000, "m": 1000_000}


def parse_counts(text: str) -> list[int]:
    """``1k,10k,100k,1M`` -> [1000, 10000, 100000, 1000000] (counts, in powers of ten)."""
    counts = []
    for part in (p.strip().lower() for p in text.split(",") if p.strip()):
        factor = COUNT_SUFFIXES.get(part[-1], 1)
        number = part[:-1] if part[-1] in COUNT_SUFFIXES else part
        try:
            value = int(float(number) * factor)
        except ValueError:
            raise click.BadParameter(f"{part!r} is not a count like 10k or 1M") from None
        if value <= 0:
            raise click.BadParameter(f"{part!r}: counts are positive")
        counts.append(value)
    if not counts:
        raise click.BadParameter("give at least one count")
    return counts


class _Counts(click.ParamType):
    name = "COUNTS"

    def convert(self, value: Any, param: Any, ctx: Any) -> list[int]:
        return value if isinstance(value, list) else parse_counts(str(value))


def render_scale(results: pd.DataFrame, console: Console) -> tuple[list[str], int]:
    """The listing curves, the connection levels and the listing and memory goals; the goals
    missed and how many there were."""
    from harness.bench.summary import listing_goals, rss_goal, scale_points
    from harness.runner import level_rows

    points = scale_points(results)
    if points:
        table = Table(title="listing as the container grows (medians of repeats)")
        for col in ("layout", "blobs", "first page ms", "full listing blobs/s", "Put Blob p50 ms"):
            table.add_column(col, justify="left" if col == "layout" else "right")
        for p in points:
            table.add_row(
                p.layout + ("" if p.ok else " [red](failed)[/]"),
                f"{p.blobs:,}",
                _fmt(p.first_page_ms),
                _fmt(p.blobs_s),
                _fmt(p.put_p50_ms),
            )
        console.print(table)
    levels = level_rows(results)
    conns = levels[levels["operation"] == "connections"] if len(levels) else levels
    if len(conns):
        table = Table(title="concurrent connections (all opened at once, then one request each)")
        for col in ("connections", "open all s", "ops/s", "p99 ms", "errors", "RSS +MiB"):
            table.add_column(col, justify="right")
        for _, r in conns.iterrows():
            extra = r["extra"] if isinstance(r["extra"], dict) else {}
            table.add_row(
                f"{int(r['concurrency']):,}",
                _fmt(extra.get("open_all_s")),
                _fmt(r["ops_s"]),
                _fmt(r["p99_ms"]),
                str(int(r["failed"])),
                _fmt(extra.get("server_rss_delta_mib")),
            )
        console.print(table)
    render_server_side(results, console, kind="level")
    judged = listing_goals(points)
    memory = rss_goal(results)
    if memory:
        judged.append(memory)
    if judged:
        table = Table(title="scale goals")
        for col in ("goal", "measured", "met"):
            table.add_column(col)
        for goal, evidence, met in judged:
            table.add_row(goal, evidence, "[green]yes[/]" if met else "[red]no[/]")
        console.print(table)
    return [f"{goal}: {evidence}" for goal, evidence, met in judged if not met], len(judged)


@bench.command("listing")
@click.option(
    "--sizes",
    type=_Counts(),
    help="blob counts of the listing curve, e.g. 1k,10k,100k,1M [1k,10k]",
)
@click.option(
    "--layouts",
    type=click.Choice(["flat", "nested", "both"]),
    help="flat (one directory) or nested (1,000 per directory) [both]",
)
@click.option("--connections", type=_Counts(), help="connection levels, e.g. 1k,10k [1k,2k]")
@click.option("--put-count", type=int, help="Put Blobs into each full container [200]")
@click.option("--upload", type=SIZE, help="the memory check's large upload, e.g. 10GiB [256MiB]")
@click.option("--workers", type=int, help="façade worker processes [2]")
@click.option("--repeats", type=click.IntRange(min=1), help="[1]")
@out_option()
@set_option("bench-listing")
def listing(**options: Any) -> None:
    """Scale curves: List Blobs at 1k..1M blobs (seeded through the file side), Put Blob in
    the full container, 1,000 → 10,000 connections, and the server's RSS through them."""
    layouts = {"both": ["flat", "nested"], None: None}.get(options["layouts"], [options["layouts"]])
    options["layouts"] = layouts
    mapping: dict[str, list[str]] = {
        "sizes": ["steps.listing.options.sizes"],
        "layouts": ["steps.listing.options.layouts"],
        "put_count": ["steps.listing.options.put_count"],
        "connections": ["steps.connections.options.levels"],
        "upload": ["steps.upload.options.size"],
        "workers": ["target.workers"],
        "repeats": ["repeats"],
    }
    _run_alias(
        "bench-listing",
        [*_overrides(mapping, options), *options["extra"]],
        options["out"],
        extra_goals=render_scale,
    )
