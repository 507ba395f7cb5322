"""`harness bench server` / `bench s2s`: shipped benchmark scenarios run through the runner.

Each command is a thin alias: its flags become overrides of ``scenarios/bench-*.yaml``, the
one runner runs it (results.parquet, run.json, report.html, junit.xml like any scenario), and
the command prints the scenario's ratio criteria as the goals table. It exits as ``harness
run`` does: 1 when a goal (a criterion) or a step fails. ``bench large`` measures what no client
step sees (the façade's RSS during one commit) with harness.bench.large, and exits 1 when one of
its requests fails.
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
    from harness.criteria import Verdict
    from harness.runner import RunOutcome
    from harness.scenario import Scenario

BUSY_LOAD_PER_CORE = 0.5  # load average per core before the run above which it is flagged
# Azurite on this 2-core box with the JS SDK (SPEC.md, "Facts learned"): a sanity check. An
# Azurite far below these means the host, not the targets, set the pace of the run.
AZURITE_EXPECTED = {"put-block": 208.0, "get-blob": 345.0, "put-small": 500.0, "get-small": 500.0}
UNITS = {"throughput_mib_s": "MiB/s", "ops_s": "ops/s", "duration_s": "s"}
SHOWN_OPS = {">=": "≥", "<=": "≤"}


def run_scenario(scenario: Scenario, out: Path | None, source: dict[str, Any]) -> RunOutcome:
    """Run ``scenario`` through the runner, write its report and JUnit, print its summary;
    the RunOutcome."""
    from harness.datasets import default_cache_dir
    from harness.report import load_run, render_run
    from harness.report.terminal import print_run
    from harness.runner import Runner

    runner = Runner(
        scenario, out=out or Path.cwd() / "reports", cache_dir=default_cache_dir(), source=source
    )
    outcome = runner.run()
    render_run(outcome.run_dir)
    print_run(load_run(outcome.run_dir))
    return outcome


def goals(verdicts: list[Verdict]) -> list[Verdict]:
    """The verdicts of ratio criteria: a benchmark's goals."""
    from harness.criteria import parse

    return [v for v in verdicts if parse(v.expression).is_ratio]


def render(verdicts: list[Verdict], console: Console) -> None:
    """The goals as a table: each side's value (the façade's, the anchor's), ratio, goal, met."""
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


def _run_alias(name: str, overrides: list[str], out: Path | None, profile: bool = False) -> None:
    """Load the shipped scenario with the overrides, run it, print the goals, exit."""
    scenario = load_scenario(name, tuple(overrides))
    source = {"scenario": f"scenarios/{name}.yaml", "overrides": overrides, "command": name}
    console = Console()
    load_before = os.getloadavg()[0]
    outcome = run_scenario(scenario, out, source)
    verdicts = goals(outcome.verdicts)
    render(verdicts, console)
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
    missed = missed_goals(verdicts)
    if missed:  # a benchmark is a gate too: a missed goal fails the command
        console.print(
            f"[red]{len(missed)} of {len(verdicts)} goal(s) missed:[/] " + "; ".join(missed)
        )
    sys.exit(outcome.exit_code)


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
@click.option("--size", type=SIZE, help="large blob for the throughput workloads [1GiB]")
@click.option("--block-size", type=SIZE, help="Put Block / ranged Get size [8MiB]")
@click.option(
    "--concurrency",
    type=int,
    help="requests in flight for the large Put Block / Get Blob workloads [16]",
)
@click.option("--burst", type=int, help="64 KiB Put Blocks all in flight at once [1000]")
@click.option("--small-ops", type=int, help="1 KiB Put Blobs (then Get Blobs) per repeat [2000]")
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
@set_option("bench-server")
def server(**options: Any) -> None:
    """The reference façade against Azurite (goal ≥ 3×) and nginx (goal ≥ 0.7×)."""
    large, small = ("put-block", "get-blob"), ("put-small", "get-small")
    mapping: dict[str, list[str]] = {
        "size": [f"steps.{s}.options.size" for s in large],
        "block_size": [f"steps.{s}.options.block_size" for s in large],
        "concurrency": [f"steps.{s}.concurrency" for s in large],
        "client_procs": [f"steps.{s}.options.procs" for s in large],
        "burst": ["steps.put-block-burst.options.count"],
        "small_ops": [f"steps.{s}.options.count" for s in small],
        "small_concurrency": [f"steps.{s}.concurrency" for s in small],
        "repeats": ["repeats"],
        "workers": ["target.workers"],
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
    """Commit time and façade RSS for a 50,000-block commit and a 4.5 TiB one (issue 18)."""
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
