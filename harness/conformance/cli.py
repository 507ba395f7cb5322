"""`harness conformance`: run the gate against one or more targets; matrix to HTML and JUnit."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from harness.cli_common import utc_stamp
from harness.conformance.framework import FAIL, PASS
from harness.conformance.report import gate_verdict, print_summary, write_outputs
from harness.conformance.suite import (
    GATE_MAX_INFLIGHT,
    ConformanceRun,
    load_checks,
    run_checks,
    select,
)
from harness.report.terminal import wide_console
from harness.targets import INVENTORY_TARGET, TARGET_NAMES, make_target
from harness.targets.base import Endpoint, Target


def locked_contracts_html() -> str:
    """The locked compatibility contracts as HTML tables, for the report's last section."""
    from harness.contract.model import Contract
    from harness.contract.record import CONTRACTS_DIR
    from harness.contract.table import to_html

    return to_html([Contract.load(p) for p in sorted(CONTRACTS_DIR.glob("*.yaml"))])


def capabilities_for(kind: str, target: Target | None = None) -> dict[str, Any]:
    """What a target offers beyond the portable contract.

    The reference façade is started here with a small in-flight limit (throttling is checkable)
    and maps names onto a file tree (names ending in '/' and 'a' beside 'a/b' are refused). The
    inventory target starts that same façade, with the same flags, on its server hosts: it
    offers the same, unless its clients reach a VIP (a cluster it did not start)."""
    if kind == "reference" or (
        kind == INVENTORY_TARGET and bool(getattr(target, "runs_facade", False))
    ):
        return {"throttle": GATE_MAX_INFLIGHT, "file_tree_names": True}
    return {}


def start_target(kind: str, workdir: Path, endpoint: str | None = None) -> Target:
    options: dict[str, Any] = {}
    if kind in ("reference", INVENTORY_TARGET):
        options["args"] = ["--max-inflight", str(GATE_MAX_INFLIGHT)]
    target = make_target(kind, endpoint=endpoint, options=options)
    target.start(workdir)
    return target


def bearer_capability(
    kind: str, workdir: Path, endpoint: Endpoint, identity: Path | None
) -> tuple[Any, Callable[[], None]]:
    """The bearer checks' endpoint and how to stop what it started. The reference façade gets
    the lab token service and a second façade (https and http) trusting it; any other target
    gets them only with ``--identity`` (a ``harness token-service --describe`` file) and is
    then expected to trust the lab tenant itself."""
    from harness.identity.lab import BearerEndpoint, BearerReference, identity_from_description

    if identity is not None:
        lab = identity_from_description(identity)
        bundle = endpoint.ca_bundle or lab.ca_bundle
        found = BearerEndpoint(lab, endpoint.blob_url, endpoint.account, endpoint.key, bundle)
        return found, lambda: None
    if kind != "reference":
        return None, lambda: None
    bearer = BearerReference(workdir / "bearer")
    try:
        return bearer.start(), bearer.stop
    except Exception:
        bearer.stop()
        raise


def run_target(
    kind: str,
    workdir: Path,
    *,
    endpoint: str | None = None,
    only: tuple[str, ...] = (),
    console: Console | None = None,
    identity: Path | None = None,
) -> ConformanceRun:
    """Start ``kind``, run the gate against it, stop it."""
    target = start_target(kind, workdir, endpoint)
    stop_bearer: Callable[[], None] = lambda: None  # noqa: E731
    try:
        facts = target.facts()
        capabilities = capabilities_for(kind, target)
        wants_bearer = not only or any(
            c.group in ("Auth Bearer", "Auth User Delegation SAS")
            for c in select(load_checks(), only)
        )
        if wants_bearer:
            capabilities["bearer"], stop_bearer = bearer_capability(
                kind, workdir, target.endpoint(), identity
            )
        marks = {PASS: "[green].[/green]", FAIL: "[red]F[/red]"}
        progress = (
            (lambda r: console.print(marks.get(r.status, "[yellow]s[/yellow]"), end=""))
            if console
            else (lambda r: None)
        )
        run = run_checks(
            target.endpoint(),
            capabilities=capabilities,
            only=only,
            facts=facts,
            on_result=progress,
        )
        if console:
            console.print()
        return run
    finally:
        stop_bearer()
        target.stop()


@click.command("conformance")
@click.option(
    "--target",
    "targets",
    multiple=True,
    type=click.Choice(TARGET_NAMES),
    default=("reference",),
    show_default=True,
    help="Target(s) to check; repeat for a side-by-side matrix.",
)
@click.option("--endpoint", default=None, help="Account URL for --target url.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Output directory (default reports/conformance-<UTC time>).",
)
@click.option("--only", multiple=True, help="Run only this operation group or check-id prefix.")
@click.option(
    "--identity",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="A `harness token-service --describe` file: run the bearer checks against a target "
    "configured with the lab tenant (the reference façade gets its own).",
)
@click.option(
    "--allow-fail",
    "allow_fail",
    multiple=True,
    type=click.Choice(TARGET_NAMES),
    help="Target whose failures are findings, not a failed gate (e.g. azurite).",
)
def conformance(
    targets: tuple[str, ...],
    endpoint: str | None,
    out: Path | None,
    only: tuple[str, ...],
    allow_fail: tuple[str, ...],
    identity: Path | None,
) -> None:
    """Run the conformance gate: one raw-HTTP check per contract behaviour.

    Writes conformance.html (operation × check matrix), conformance.junit.xml and
    conformance.json; exits 1 when a check fails on a target not listed in --allow-fail."""
    console = wide_console()
    if only and not select(load_checks(), only):
        # A mistyped --only would otherwise run nothing and pass the gate.
        groups = ", ".join(sorted({c.group for c in load_checks()}))
        raise click.UsageError(f"--only {' '.join(only)}: no check matches; groups: {groups}")
    out = out or Path("reports") / f"conformance-{utc_stamp()}"
    runs: list[ConformanceRun] = []
    with tempfile.TemporaryDirectory(prefix="conformance-") as tmp:
        for kind in dict.fromkeys(targets):
            console.print(f"[bold]conformance[/bold] against {kind}")
            runs.append(
                run_target(
                    kind,
                    Path(tmp) / kind,
                    endpoint=endpoint,
                    only=only,
                    console=console,
                    identity=identity,
                )
            )
    print_summary(runs, console)
    paths = write_outputs(runs, out, locked_contracts_html(), allow_fail)
    console.print(f"report: {paths['html']}  junit: {paths['junit']}")
    verdict = gate_verdict(runs, allow_fail)
    for target, n in verdict["findings"].items():
        console.print(
            f"[yellow]{target}: {n} failed check(s) recorded as findings (--allow-fail)[/]"
        )
    if not verdict["passed"]:
        console.print(
            f"[red]conformance gate FAILED on {', '.join(verdict['failed_targets'])}[/red]"
        )
        sys.exit(1)
    console.print("[green]conformance gate PASSED[/green]")
