"""`harness contract record|diff|show`: lock and check the REST calls each tool makes."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from harness.cli_common import cache_dir_option, load_scenario
from harness.contract.model import Contract
from harness.contract.record import (
    CONTRACTS_DIR,
    drift_report,
    lock,
    merge_recordings,
    record_scenario,
)
from harness.contract.table import to_markdown
from harness.targets import TARGET_NAMES


def _scenario(name: str, overrides: tuple[str, ...] = ()):
    return load_scenario(name, overrides)


def _overrides_for(name: str, overrides: tuple[str, ...], names: tuple[str, ...]) -> tuple:
    """``--set k=v`` applies to every scenario; ``--set SCENARIO:k=v`` to that one only."""
    out = []
    for item in overrides:
        head, sep, rest = item.partition(":")
        if sep and head in names and "=" not in head:
            if head == name:
                out.append(rest)
        else:
            out.append(item)
    return tuple(out)


@click.group("contract")
def contract() -> None:
    """Compatibility contracts: the exact REST calls of each tool version."""


@contract.command("record")
@click.argument("scenarios", nargs=-1, required=True)
@click.option("--target", type=click.Choice(TARGET_NAMES), default=None)
@click.option("--endpoint", default=None)
@click.option("--out", type=click.Path(path_type=Path), default=Path("reports"))
@click.option(
    "--dir", "directory", type=click.Path(path_type=Path), default=CONTRACTS_DIR, show_default=True
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    help="Scenario override as for `harness run --set`; `SCENARIO:key=value` scopes it to one.",
)
def record(
    scenarios: tuple[str, ...],
    target: str | None,
    endpoint: str | None,
    out: Path,
    directory: Path,
    overrides: tuple[str, ...],
) -> None:
    """Run each of SCENARIOS through the recording proxy and lock one contract per tool
    version: what the tool did across all of them (operations with counts, and the scenarios
    and steps that made them)."""
    console = Console()
    recordings = []
    for name in scenarios:
        sc = _scenario(name, _overrides_for(name, overrides, scenarios))
        rec = record_scenario(sc, out, target, endpoint)
        console.print(
            f"recorded {sc.name}: "
            + (
                ", ".join(
                    f"{c.slug} ({sum(o.count for o in c.operations)} calls)" for c in rec.contracts
                )
                or "no calls"
            )
        )
        recordings.append(rec)
    contracts = merge_recordings(recordings)
    for c in contracts:
        yaml_path, md_path = lock(c, directory)
        console.print(
            f"locked {c.slug}: {len(c.operations)} operations, "
            f"{sum(o.count for o in c.operations)} calls -> {yaml_path}, {md_path}"
        )
    if not contracts:
        console.print("[red]no calls recorded[/red]")
        sys.exit(1)


@contract.command("diff")
@click.argument("scenario")
@click.option("--target", type=click.Choice(TARGET_NAMES), default=None)
@click.option("--endpoint", default=None)
@click.option("--out", type=click.Path(path_type=Path), default=Path("reports"))
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=CONTRACTS_DIR)
@click.option("--partial", is_flag=True, help="Do not report vanished operations.")
def diff_cmd(
    scenario: str,
    target: str | None,
    endpoint: str | None,
    out: Path,
    directory: Path,
    partial: bool,
) -> None:
    """Run SCENARIO through the recording proxy; report drift from the locked contracts.
    Exits 1 when any tool drifted."""
    console = Console()
    rec = record_scenario(_scenario(scenario), out, target, endpoint)
    report = drift_report(rec.contracts, directory, partial=partial)
    drifted = False
    for slug, lines in report.items():
        if not lines:
            console.print(f"[green]{slug}: matches its locked contract[/green]")
        for d in lines:
            drifted = True
            console.print(f"[yellow]drift[/yellow] {slug} {d.line()}", highlight=False)
    sys.exit(1 if drifted else 0)


@contract.command("check-latest")
@click.option(
    "--newest",
    type=click.Choice(["registry", "installed"]),
    envvar="HARNESS_CHECK_LATEST",
    default="registry",
    show_default=True,
    help="Where the newest versions come from: npm and PyPI, or the lab's installed ones "
    "(env HARNESS_CHECK_LATEST).",
)
@click.option("--pin", "pins", multiple=True, metavar="TOOL=VERSION", help="Take this version.")
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    help="Replay only this scenario [default: every one the locked contracts come from].",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=CONTRACTS_DIR,
    help="Locked contracts to compare with [default: fixtures/contracts].",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="check-latest.json, its JUnit and the replay's runs [default: "
    "reports/check-latest-<time>].",
)
@cache_dir_option("Scratch environments (check-latest/) and datasets [default: the dataset cache].")
def check_latest_cmd(
    newest: str,
    pins: tuple[str, ...],
    scenarios: tuple[str, ...],
    directory: Path,
    out: Path | None,
    cache_dir: Path | None,
) -> None:
    """Install the newest AzCopy, azure-storage-blob, boostedblob and rclone into a scratch
    environment, replay the contract scenarios with them against the reference façade, and
    report drift from the locked contracts.

    Exit status: 0 no drift, 1 drift or a replay that failed, 2 the install failed."""
    from harness.cli_common import EXIT_BAD_INPUT, utc_stamp
    from harness.contract.latest import RESOLVERS, InstallError, check_latest, parse_pins
    from harness.datasets import default_cache_dir

    try:
        pinned = parse_pins(pins)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    out = (out or Path("reports") / f"check-latest-{utc_stamp()}").resolve()
    try:
        result = check_latest(
            RESOLVERS[newest],
            directory.resolve(),
            out,
            (cache_dir or default_cache_dir()).resolve(),
            scenarios=list(scenarios) or None,
            pins=pinned,
            log=click.echo,
        )
    except InstallError as exc:
        click.echo(f"check-latest: install failed: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    for line in result.lines():
        click.echo(line)
    drifted = [t.tool for t in result.tools if t.lines]
    verdict = f"drift in {', '.join(drifted) or 'the replay'}" if result.drifted else "no drift"
    click.echo(f"check-latest: {verdict} ({out / 'check-latest.json'})")
    sys.exit(1 if result.drifted else 0)


@contract.command("show")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
def show(paths: tuple[Path, ...]) -> None:
    """Print locked contracts (default: all under fixtures/contracts/) as Markdown tables."""
    for path in paths or sorted(CONTRACTS_DIR.glob("*.yaml")):
        click.echo(to_markdown(Contract.load(path)))
