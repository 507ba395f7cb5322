"""`harness provision SPEC.yaml --out inventory/NAME.yaml` and `harness deprovision SPEC.yaml`.

Exit status: 0 done, 1 Azure refused a step, 2 a bad spec or a resource group the lab did not
make, 3 the subscription's quota refused the VMs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml

from harness.cli_common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK

EXIT_QUOTA = 3
F = TypeVar("F", bound=Callable[..., Any])


def arm_options(f: F) -> F:
    f = click.option(
        "--ca-bundle",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=None,
        help="CA certificate the ARM endpoint's TLS is checked against (a fake ARM's lab CA).",
    )(f)
    return click.option(
        "--arm-url",
        envvar="HARNESS_ARM_URL",
        default=None,
        help="Resource Manager endpoint (env HARNESS_ARM_URL) [default: Azure's public cloud].",
    )(f)


def clients_for(spec: Any, arm_url: str | None, ca_bundle: Path | None) -> Any:
    """Management clients with HARNESS_ARM_TOKEN when set (a token in hand), else
    azure-identity's DefaultAzureCredential (environment, workload identity, managed identity,
    Azure CLI)."""
    from harness.provision.azure import StaticTokenCredential, make_clients

    token = os.environ.get("HARNESS_ARM_TOKEN")
    if token:
        credential: Any = StaticTokenCredential(token)
    else:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    interval = os.environ.get("HARNESS_ARM_POLL_S")
    return make_clients(
        spec.subscription_id(),
        credential,
        base_url=arm_url,
        ca_bundle=ca_bundle,
        polling_interval=float(interval) if interval else None,
    )


def load_or_exit(spec_file: Path) -> Any:
    from harness.provision.spec import load_spec
    from harness.scenario import ScenarioError

    try:
        spec = load_spec(spec_file)
        spec.subscription_id()
        spec.controller()
        return spec
    except ScenarioError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
    except ValueError as exc:
        click.echo(f"{spec_file}: {exc}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def exit_code_of(exc: Exception) -> int:
    from harness.provision.azure import NotLabMade, QuotaError

    if isinstance(exc, QuotaError):
        return EXIT_QUOTA
    if isinstance(exc, NotLabMade):
        return EXIT_BAD_INPUT
    return EXIT_FAILED


@click.command()
@click.argument("spec_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Inventory YAML to write, e.g. inventory/nightly.yaml.",
)
@click.option("--no-wait-ssh", is_flag=True, help="Do not wait for port 22 of every VM.")
@arm_options
def provision(
    spec_file: Path, out: Path, no_wait_ssh: bool, arm_url: str | None, ca_bundle: Path | None
) -> None:
    """Create the resource group, network, placement group and VMs of SPEC_FILE (again: only
    what is missing), wait for them, and write the inventory of their hosts."""
    from harness.provision.azure import ProvisionError, inventory
    from harness.provision.azure import provision as run_provision

    spec = load_or_exit(spec_file)
    try:
        hosts = run_provision(
            clients_for(spec, arm_url, ca_bundle), spec, log=click.echo, wait_ssh=not no_wait_ssh
        )
    except ProvisionError as exc:
        click.echo(f"provision failed: {exc}", err=True)
        sys.exit(exit_code_of(exc))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(inventory(spec, hosts), sort_keys=False))
    click.echo(f"inventory: {out} ({len(hosts)} hosts)")
    sys.exit(EXIT_OK)


@click.command()
@click.argument("spec_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@arm_options
def deprovision(spec_file: Path, arm_url: str | None, ca_bundle: Path | None) -> None:
    """Delete SPEC_FILE's resource group with everything in it, only if it carries the lab's
    tag (made-by: blob-facade-lab); a group that is already gone is success."""
    from harness.provision.azure import ProvisionError
    from harness.provision.azure import deprovision as run_deprovision

    spec = load_or_exit(spec_file)
    try:
        run_deprovision(clients_for(spec, arm_url, ca_bundle), spec, log=click.echo)
    except ProvisionError as exc:
        click.echo(f"deprovision failed: {exc}", err=True)
        sys.exit(exit_code_of(exc))
    sys.exit(EXIT_OK)
