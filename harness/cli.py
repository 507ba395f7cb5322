"""`harness`: run scenarios against Blob targets, validate them, and report on runs.

Exit status of every command: 0 everything passed, 1 a step or criterion failed, 2 bad input
(an invalid scenario, a missing run directory, a usage error, a target that fails its
preflight), 130 / 143 when Ctrl-C / SIGTERM stopped a run (its partial report is written).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import yaml

from harness import scenario as scenario_mod
from harness.bench_cli import bench
from harness.cli_common import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    cache_dir_option,
    load_scenario,
)
from harness.cluster_cli import deploy, inventory, lab, remote_step
from harness.conformance.cli import conformance
from harness.contract.cli import contract
from harness.history.cli import history, regress
from harness.identity.cli import token_service
from harness.nightly.cli import nightly
from harness.provision.cli import deprovision, provision
from harness.report.pilot_cli import charts, deck, pilot
from harness.targets import INVENTORY_TARGET, TARGET_NAMES


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def main() -> None:
    """Blob façade lab: drive real Azure Blob clients (AzCopy, the Python SDK, boostedblob,
    rclone) against a target and measure them.

    \b
    Typical use:
      harness list                         shipped scenarios
      harness run smoke                    run one on the embedded reference façade
      harness run sdk-gate --target azurite
      harness run my.yaml --target url --endpoint https://acct.blob.example.net
      harness report reports/A reports/B   two runs side by side

    Exit status: 0 all passed, 1 a step or criterion failed, 2 bad input.
    """


@main.command()
@click.argument("scenarios", nargs=-1, required=True, metavar="SCENARIO...")
@click.option(
    "--target",
    type=click.Choice((*TARGET_NAMES, INVENTORY_TARGET)),
    default=None,
    help="Where steps run unless a step names its own targets "
    "[default: the scenario's, usually reference: the embedded façade on a free "
    "loopback port with a fresh data root].",
)
@click.option(
    "--endpoint",
    metavar="URL",
    default=None,
    help="Blob account URL for --target url. Credentials come from "
    "AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN.",
)
@click.option(
    "--inventory",
    "inventory_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Inventory for --target inventory: the façade is started on its server hosts over SSH.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory that receives the run directory [default: ./reports of the current directory].",
)
@cache_dir_option()
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a scenario field before validation, e.g. repeats=3, "
    "steps.0.concurrency=4 or steps.sdk-upload.concurrency=4 (repeatable).",
)
@click.option(
    "--sample-interval",
    type=float,
    default=1.0,
    show_default=True,
    help="Seconds between CPU/RSS samples of the client and server processes.",
)
@click.option(
    "--no-contract",
    is_flag=True,
    help="Do not route client calls through the recording proxy, and skip the contract "
    "drift report (Locust steps are never proxied).",
)
@click.option(
    "--contracts",
    "contracts_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Locked contracts to diff the recorded calls against [default: fixtures/contracts].",
)
def run(
    scenarios: tuple[str, ...],
    target: str | None,
    endpoint: str | None,
    inventory_file: Path | None,
    out: Path | None,
    cache_dir: Path | None,
    overrides: tuple[str, ...],
    sample_interval: float,
    no_contract: bool,
    contracts_dir: Path | None,
) -> None:
    """Run SCENARIO (a YAML path or a shipped name such as `smoke`); several run one after
    the other, each in its own run directory, and the exit status is the worst of them.

    Writes reports/<UTC time>-<scenario>/ with results.parquet, samples.parquet, run.json,
    report.html and junit.xml, prints a summary table and, last, the report's path. Client
    calls are recorded through a loopback proxy and diffed against each tool's locked
    contract (drift lines in the summary and the report) unless --no-contract.
    """
    from harness.contract.record import CONTRACTS_DIR, ContractRecorder
    from harness.datasets import default_cache_dir
    from harness.report import load_run, render_run
    from harness.report.terminal import print_run
    from harness.runner import Runner

    # Every scenario is checked before the first one runs: a typo in the third is exit 2 now,
    # not after the first two have run for an hour.
    loaded = [(name, load_scenario(name, overrides)) for name in scenarios]
    if (target == INVENTORY_TARGET) != (inventory_file is not None):
        raise click.UsageError("--target inventory and --inventory FILE go together")
    inv = None
    if inventory_file is not None:
        from harness.cluster_cli import load_inventory

        inv = load_inventory(inventory_file)  # exit 2 on a bad file, before anything runs
        endpoint = str(inventory_file.resolve())
        for _, sc in loaded:  # named inventory targets (a `lake`) are on the same inventory
            for spec in sc.targets.values():
                if spec.kind == INVENTORY_TARGET and not spec.endpoint:
                    spec.endpoint = endpoint
    # `hosts:` steps need the inventory target and the hosts they name: exit 2 now, not mid-run
    problems = [
        problem
        for name, sc in loaded
        for problem in scenario_mod.hosts_problems(
            sc, scenario_mod.resolve_path(name), target or sc.target.kind, inv
        )
    ]
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        sys.exit(EXIT_BAD_INPUT)
    for _, sc in loaded:
        if (target or sc.target.kind) == "url":
            _check_url_target(endpoint or sc.target.endpoint)
    outcomes: list[tuple[str, int, Path]] = []
    for scenario, sc in loaded:
        source = {
            "scenario": str(scenario_mod.resolve_path(scenario)),
            "overrides": list(overrides),
            "target": target,
            "endpoint": endpoint,
            "contract": not no_contract,
        }
        options = dict(
            out=(out or Path.cwd() / "reports").resolve(),  # Locust workers run elsewhere
            cache_dir=cache_dir or default_cache_dir(),
            target=target,
            endpoint=endpoint,
            sample_interval=sample_interval,
            source=source,
        )
        hooks: list[Any] = []  # harness.runner.RunHook objects
        if not no_contract:
            hooks.append(ContractRecorder(contracts_dir or CONTRACTS_DIR))
        if inventory_file is not None:  # KPI extra.link_utilization of steps over shaped links
            from harness.cluster.links import LinkUtilization

            hooks.append(LinkUtilization(inventory_file))
        runner = Runner(sc, hooks=hooks, **options)
        outcome = runner.run()
        paths = render_run(outcome.run_dir)
        print_run(load_run(outcome.run_dir))
        click.echo(f"junit: {paths['junit']}")
        click.echo(f"report: {paths['html']}")
        outcomes.append((sc.name, outcome.exit_code, paths["html"]))
        if outcome.interrupted:  # Ctrl-C or SIGTERM stops the whole invocation
            break
    if len(scenarios) > 1:
        for name, code, html in outcomes:
            click.echo(f"{name}: exit {code} ({html})")
        for name in [sc.name for _, sc in loaded][len(outcomes) :]:
            click.echo(f"{name}: not run (interrupted)")
    # 0 passed, 1 failed, 2 a target failed its preflight, 130 Ctrl-C, 143 SIGTERM: the worst.
    sys.exit(max(code for _, code, _ in outcomes))


def _check_url_target(endpoint: str | None) -> None:
    """Refuse a url target without an endpoint; warn when no credentials were found (every
    client but an anonymous reader would fail each step with an auth error)."""
    from harness.targets.url import UrlTarget

    try:
        url_target = UrlTarget(endpoint)
    except ValueError as exc:
        raise click.UsageError(f"--target url: {exc}") from None
    if url_target.key is None and url_target.sas is None:
        click.echo(
            f"warning: no credentials for {url_target.url}: set AZURE_STORAGE_CONNECTION_STRING "
            "(AccountKey or SharedAccessSignature), AZURE_STORAGE_KEY or "
            "AZURE_STORAGE_SAS_TOKEN; running anonymously",
            err=True,
        )


@main.command(name="list")
def list_() -> None:
    """List the shipped scenarios with their descriptions."""
    for path in scenario_mod.shipped_scenarios():
        try:
            data = yaml.safe_load(path.read_text()) or {}
            description = str(data.get("description", "")).strip().splitlines()
        except yaml.YAMLError:
            description = ["(invalid YAML: run `harness validate` for details)"]
        click.echo(f"{path.stem:<20} {description[0] if description else ''}")


@main.command()
@click.argument("scenario")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Apply the same overrides as `harness run --set`.",
)
def validate(scenario: str, overrides: tuple[str, ...]) -> None:
    """Check SCENARIO without running it; print its plan of steps."""
    from harness.runner import plan

    sc = load_scenario(scenario, overrides)
    executions = plan(sc, sc.target.kind)
    click.echo(
        f"{scenario_mod.resolve_path(scenario)}: valid scenario {sc.name!r}, "
        f"{len(sc.steps)} steps, {len(executions)} executions, "
        f"{len(sc.criteria)} criteria"
    )
    for step in sc.steps:
        targets = ",".join(step.target or [sc.target.kind])
        if step.hosts is not None:  # the client runs on an inventory's hosts
            targets = f"{INVENTORY_TARGET} on hosts {step.hosts}"
        click.echo(
            f"  {step.name:<28} {step.driver:<12} {step.operation:<10} "
            f"x{step.repeats} (+{step.warmup} warm-up) @{targets}"
        )


@main.command()
@click.argument(
    "run_dirs",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the comparison goes [default: a new <time>-compare directory beside "
    "the first run].",
)
@click.option(
    "--label",
    "labels",
    multiple=True,
    metavar="NAME",
    help="Column name of each run in a comparison, in order (repeat once per run) "
    "[default: each run's target].",
)
def report(run_dirs: tuple[Path, ...], out: Path | None, labels: tuple[str, ...]) -> None:
    """Re-render the report of one RUN_DIR, or put several side by side with ratios."""
    from harness.report import load_run, render_run
    from harness.report.compare import compare_runs
    from harness.report.terminal import print_run

    try:
        runs = [load_run(d) for d in run_dirs]
    except (FileNotFoundError, ValueError) as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_BAD_INPUT)
    if len(runs) == 1:
        paths = render_run(runs[0].run_dir)
        print_run(runs[0])
        click.echo(f"report: {paths['html']}")
        sys.exit(EXIT_OK if runs[0].passed else EXIT_FAILED)
    if labels and len(labels) != len(runs):
        raise click.UsageError(f"{len(labels)} --label for {len(runs)} runs: give one per run")
    path = compare_runs(list(run_dirs), out, labels=list(labels) or None)
    click.echo(f"report: {path}")
    sys.exit(EXIT_OK if all(r.passed for r in runs) else EXIT_FAILED)


@main.command(
    context_settings={
        "ignore_unknown_options": True,
        "allow_extra_args": True,
        "help_option_names": [],
    }
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def serve(args: tuple[str, ...]) -> None:
    """Run the reference façade in the foreground (flags as `python -m reference_server`:
    --data-root, --host, --port, --workers, --max-inflight; `harness serve --help` lists them)."""
    import signal
    import subprocess

    # A child process, as every target starts it: the harness never imports the server. Its
    # output is relayed line by line; Ctrl-C reaches it too (same process group), SIGTERM is
    # passed on.
    cmd = [sys.executable, "-m", "reference_server", *args]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
        try:
            for line in proc.stdout or ():
                click.echo(line, nl=False)
            sys.exit(proc.wait())
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait()
            sys.exit(130)


# Subcommands contributed by other parts of the lab: one `main.add_command(...)` line each.
main.add_command(bench)
main.add_command(conformance)
main.add_command(contract)
main.add_command(history)
main.add_command(regress)
main.add_command(token_service)
main.add_command(provision)
main.add_command(deprovision)
main.add_command(nightly)
main.add_command(pilot)
main.add_command(deck)
main.add_command(charts)
main.add_command(inventory)
main.add_command(remote_step)
main.add_command(lab)
main.add_command(deploy)


if __name__ == "__main__":
    main()
