"""`harness contract record|diff|show`: lock and check the REST calls each tool makes."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from harness.cli_common import load_scenario
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


@contract.command("show")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
def show(paths: tuple[Path, ...]) -> None:
    """Print locked contracts (default: all under fixtures/contracts/) as Markdown tables."""
    for path in paths or sorted(CONTRACTS_DIR.glob("*.yaml")):
        click.echo(to_markdown(Contract.load(path)))
