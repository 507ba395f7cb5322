"""`harness nightly SUITE.yaml`: the whole night in one command."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import yaml

from harness.cli_common import EXIT_BAD_INPUT, EXIT_OK, cache_dir_option, load_scenario
from harness.provision.cli import arm_options


@click.command()
@click.argument("suite_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Parent of the night's directory [default: ./reports/nightly].",
)
@click.option(
    "--history",
    "location",
    metavar="URL_OR_PATH",
    envvar="HARNESS_HISTORY",
    default=None,
    help="History store (env HARNESS_HISTORY) [default: the suite's `history`, else "
    "reports/history.duckdb].",
)
@cache_dir_option("Where generated datasets are cached (as `harness run`).")
@click.option(
    "--endpoint",
    metavar="URL",
    envvar="HARNESS_ENDPOINT",
    default=None,
    help="Blob account URL for url targets (env HARNESS_ENDPOINT) [default: the suite's].",
)
@click.option(
    "--sample-interval",
    type=float,
    default=1.0,
    show_default=True,
    help="Seconds between CPU/RSS samples of the client and server processes.",
)
@click.option(
    "--contracts",
    "contracts_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Locked contracts the recorded calls are diffed against [default: fixtures/contracts].",
)
@click.option(
    "--lab-inventory",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="`harness lab up`'s inventory.yaml: its hosts stand in for the provisioned VMs "
    "[default: the suite's `lab_inventory`].",
)
@click.option(
    "--newest",
    type=click.Choice(["registry", "installed"]),
    envvar="HARNESS_CHECK_LATEST",
    default="registry",
    show_default=True,
    help="For the suite's check_latest: the newest clients from npm and PyPI, or the lab's own "
    "(env HARNESS_CHECK_LATEST).",
)
@arm_options
def nightly(
    suite_file: Path,
    out: Path | None,
    location: str | None,
    cache_dir: Path | None,
    endpoint: str | None,
    sample_interval: float,
    contracts_dir: Path | None,
    lab_inventory: Path | None,
    newest: str,
    arm_url: str | None,
    ca_bundle: Path | None,
) -> None:
    """Run the night of SUITE_FILE: provision (if the suite names a spec), run every scenario
    on every target, add the runs to the history, judge regressions, write one junit.xml and
    night.html, deprovision (also after a failure).

    Exit status: 0 all passed and no regression, 1 a gate or criterion failed or a regression
    is confirmed, 2 bad input, 3 the quota refused the VMs.
    """
    from harness.datasets import default_cache_dir
    from harness.history.store import DEFAULT_HISTORY
    from harness.nightly.night import run_night
    from harness.nightly.suite import load_suite, scenario_ref
    from harness.scenario import ScenarioError

    try:
        suite = load_suite(suite_file)
    except ScenarioError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        sys.exit(EXIT_BAD_INPUT)
    if endpoint:
        suite.endpoint = endpoint
    overrides = [*suite.set, *([f"repeats={suite.repeats}"] if suite.repeats else [])]
    # Every scenario is checked before anything is provisioned or run.
    scenarios = []
    for name in suite.scenarios:
        ref = scenario_ref(suite_file, name)
        scenarios.append((ref, load_scenario(ref, tuple(overrides))))
    provisioner = None
    if suite.provision:
        spec_path = Path(scenario_ref(suite_file, suite.provision))
        # lab hosts stand in for the VMs: the provisioned addresses are never reached
        stand_in = bool(lab_inventory or suite.lab_inventory)
        provisioner = _provisioner(spec_path, arm_url, ca_bundle, wait_ssh=not stand_in)
    night = run_night(
        suite,
        suite_file,
        scenarios,
        out=(out or Path("reports") / "nightly").resolve(),  # child processes run elsewhere
        history=location or suite.history or str(DEFAULT_HISTORY),
        cache_dir=cache_dir or default_cache_dir(),
        sample_interval=sample_interval,
        contracts_dir=contracts_dir,
        provisioner=provisioner,
        log=click.echo,
        lab_inventory=lab_inventory,
        newest=newest,
    )
    a = night.analysis
    if a is not None:
        for item in [*a.new_series, *a.regressions]:
            click.echo(item.line())
        for t in a.worse_tonight:
            click.echo(t.line())
        click.echo(
            f"regressions: {len(a.regressions)} open, {len(a.worse_tonight)} worse tonight, "
            f"{len(a.series)} series"
        )
    click.echo(f"junit: {night.night_dir / 'junit.xml'}")
    click.echo(f"report: {night.night_dir / 'night.html'}")
    click.echo(f"nightly {suite.name}: exit {night.exit_code}")
    sys.exit(night.exit_code)


def _provisioner(
    spec_path: Path, arm_url: str | None, ca_bundle: Path | None, wait_ssh: bool = True
) -> Callable[[str, Path], Any]:
    """provision / deprovision of the spec as a night stage (exit status and message)."""
    from harness.nightly.night import Stage
    from harness.provision.azure import ProvisionError, deprovision, inventory, provision
    from harness.provision.cli import clients_for, exit_code_of, load_or_exit

    spec = load_or_exit(spec_path)

    def stage(action: str, inventory_path: Path) -> Stage:
        try:
            clients = clients_for(spec, arm_url, ca_bundle)
            if action == "provision":
                hosts = provision(clients, spec, log=click.echo, wait_ssh=wait_ssh)
                inventory_path.parent.mkdir(parents=True, exist_ok=True)
                inventory_path.write_text(yaml.safe_dump(inventory(spec, hosts), sort_keys=False))
                message = f"{len(hosts)} hosts in {spec.resource_group}: {inventory_path}"
            else:
                gone = deprovision(clients, spec, log=click.echo)
                message = f"{spec.resource_group} " + ("deleted" if gone else "already absent")
        except ProvisionError as exc:
            click.echo(f"{action} failed: {exc}", err=True)
            return Stage(action, exit_code_of(exc), str(exc))
        return Stage(action, EXIT_OK, message)

    return stage
