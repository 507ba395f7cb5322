"""`harness contract record|diff|show`: lock and check the REST calls each tool makes."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from harness.contract.model import Contract
from harness.contract.record import CONTRACTS_DIR, drift_report, lock, record_scenario
from harness.contract.table import to_markdown
from harness.targets import TARGET_NAMES


def _scenario(name: str):
    from harness.cli import _load

    return _load(name)


@click.group("contract")
def contract() -> None:
    """Compatibility contracts: the exact REST calls of each tool version."""


@contract.command("record")
@click.argument("scenario")
@click.option("--target", type=click.Choice(TARGET_NAMES), default=None)
@click.option("--endpoint", default=None)
@click.option("--out", type=click.Path(path_type=Path), default=Path("reports"))
@click.option(
    "--dir", "directory", type=click.Path(path_type=Path), default=CONTRACTS_DIR, show_default=True
)
def record(
    scenario: str, target: str | None, endpoint: str | None, out: Path, directory: Path
) -> None:
    """Run SCENARIO through the recording proxy and lock each tool's contract."""
    console = Console()
    rec = record_scenario(_scenario(scenario), out, target, endpoint)
    for c in rec.contracts:
        yaml_path, md_path = lock(c, directory)
        console.print(
            f"locked {c.slug}: {len(c.operations)} operations, "
            f"{sum(o.count for o in c.operations)} calls -> {yaml_path}, {md_path}"
        )
    if not rec.contracts:
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
