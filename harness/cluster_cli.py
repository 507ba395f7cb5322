"""`harness inventory check`, `harness lab up|down`, `harness deploy`: clusters over SSH."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from harness.cli_common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from harness.cluster.inventory import Inventory

DEFAULT_LAB_DIR = Path(".lab")


def load(path: Path) -> Inventory:
    """A validated inventory; raises ``ScenarioError`` (FILE:LINE: field: message). Kept out
    of ``harness.cluster``, which the targets import: the scenario module reaches the targets."""
    from harness.scenario import load_model

    inv = load_model(path, Inventory, what="an inventory")
    inv.base_dir = path.resolve().parent
    return inv


def load_inventory(path: Path) -> Inventory:
    """A validated inventory, or every problem on stderr and exit 2."""
    from harness.scenario import ScenarioError

    try:
        return load(path)
    except ScenarioError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        sys.exit(EXIT_BAD_INPUT)


def _gib(n: int | None) -> str:
    return f"{n / 2**30:.1f} GiB" if n else "-"


@click.group()
def inventory() -> None:
    """Inventories of cluster hosts (inventory/*.yaml)."""


@inventory.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def check(file: Path) -> None:
    """Connect to every host of FILE over SSH and print its facts: CPU, memory, kernel, NVMe,
    NICs, clock offset to this controller, Python and tool versions. Exit 1 when a host is
    unreachable or misconfigured (one line each), 2 when FILE is invalid."""
    from rich.console import Console
    from rich.table import Table

    from harness.cluster.facts import collect

    inv = load_inventory(file)
    facts, errors = collect(inv)
    table = Table(title=f"inventory {inv.name}: {len(facts)}/{len(inv.hosts)} hosts reachable")
    for col in ("host", "roles", "cpu", "memory", "kernel", "nvme", "nics", "clock", "versions"):
        table.add_column(col)
    for f in facts:
        table.add_row(*_row(f))
    Console(width=160).print(table)
    for error in errors:
        click.echo(f"error: {error}", err=True)
    sys.exit(EXIT_FAILED if errors else EXIT_OK)


def _row(f: dict[str, Any]) -> list[str]:
    nvme = ", ".join(f"{d['device']} {_gib(d['bytes'])}" for d in f.get("nvme", [])) or "-"
    nics = ", ".join(f"{n['name']} {n['speed_mbps'] or '?'} Mbit/s" for n in f.get("nics", []))
    versions = " ".join(
        f"{tool} {f[tool]}" for tool in ("python", "azcopy", "rclone") if f.get(tool)
    )
    return [
        f["name"],
        ",".join(f.get("roles", [])),
        f"{f.get('cpu_count')}× {f.get('cpu_model') or '?'}",
        _gib((f.get("memory_kib") or 0) * 1024),
        str(f.get("kernel")),
        nvme,
        nics or "-",
        f"{f.get('clock_offset_s', 0) * 1000:+.1f} ms",
        versions,
    ]


@click.group()
def lab() -> None:
    """The lab's own hosts: network namespaces on this machine running real sshd."""


@lab.command()
@click.option("--hosts", type=int, default=2, show_default=True, help="How many hosts.")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_LAB_DIR,
    show_default=True,
    help="Where keys, host homes, the state file and inventory.yaml go.",
)
@click.option(
    "--roles",
    "roles_spec",
    metavar="R1,R2,...",
    default=None,
    help="Each host's roles, in host order, `+` between a host's roles, e.g. "
    "server,client+load,lake (sets --hosts) [default: the first half server, the rest "
    "client+load].",
)
@click.option(
    "--link",
    "link_specs",
    multiple=True,
    metavar="A,B,RATE",
    help="A link of the inventory, shaped when an inventory target starts (or by `lab "
    "shape`): two groups (roles, host names, controller) and a tc rate, e.g. lake,server,200mbit.",
)
def up(hosts: int, directory: Path, roles_spec: str | None, link_specs: tuple[str, ...]) -> None:
    """Make HOSTS network namespaces on a lab bridge (10.213.L.0/24, L = HARNESS_LAB_ID or 0),
    each with its own sshd, host key and work directory, and write DIR/inventory.yaml. Exit 2
    where the machine cannot (no namespaces, not root, no sshd)."""
    from harness.cluster.lab import Lab, LabError

    roles = _roles_option(roles_spec)
    hosts = len(roles) if roles else hosts
    links = [_link_option(spec, hosts, roles) for spec in link_specs]
    lab_ = Lab(directory)
    try:
        path = lab_.up(hosts, roles=roles, links=links)
    except (LabError, subprocess.CalledProcessError) as exc:
        lab_.down()  # a half-made lab is not left behind
        detail = getattr(exc, "stderr", None) or ""
        click.echo(f"error: lab up: {exc} {detail}".rstrip(), err=True)
        sys.exit(EXIT_BAD_INPUT)
    click.echo(f"lab: {hosts} hosts up")
    click.echo(f"inventory: {path}")


ROLES = ("server", "client", "load", "lake")


def _roles_option(spec: str | None) -> list[list[str]] | None:
    if spec is None:
        return None
    roles = [[r for r in host.split("+") if r] for host in spec.split(",")]
    for host in roles:
        bad = [r for r in host if r not in ROLES]
        if bad or not host:
            raise click.BadParameter(
                f"{'+'.join(host) or 'an empty host'}: roles are {', '.join(ROLES)}",
                param_hint="--roles",
            )
    return roles


def _link_option(spec: str, hosts: int, roles: list[list[str]] | None) -> dict[str, Any]:
    from harness.cluster.links import CONTROLLER, rate_bits

    parts = spec.split(",")
    groups = {*ROLES, CONTROLLER, *(f"h{n}" for n in range(1, hosts + 1))}
    if len(parts) != 3 or not set(parts[:2]) <= groups:
        raise click.BadParameter(
            f"{spec!r}: expected A,B,RATE with A and B among {', '.join(sorted(groups))}",
            param_hint="--link",
        )
    try:
        rate_bits(parts[2])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--link") from None
    return {"between": parts[:2], "rate": parts[2]}


@lab.command()
@click.argument(
    "inventory_file",
    metavar="[INVENTORY]",
    required=False,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=DEFAULT_LAB_DIR / "inventory.yaml",
)
@click.option("--off", is_flag=True, help="Remove the shaping instead.")
def shape(inventory_file: Path, off: bool) -> None:
    """Shape the inventory's `links` with tc on its hosts over SSH (root there), as an inventory
    target does while it runs; --off removes it. One line per shaped host and device; exit 1
    when a link cannot be shaped (e.g. a delay without netem), 2 for a bad file."""
    from harness.cluster.links import Shaper, ShapingError
    from harness.cluster.ssh import HostError

    inv = load_inventory(inventory_file)
    shaper = Shaper(inv)
    if off:
        removed = shaper.remove()
        click.echo(f"links: unshaped {', '.join(removed) or 'nothing'}")
        return
    if not inv.links:
        click.echo(f"links: {inventory_file} has none")
        return
    try:
        applied = shaper.apply()
    except (ShapingError, HostError) as exc:
        click.echo(f"error: lab shape: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    for entry in applied:
        for link in entry["links"]:
            peers = ", ".join(link["peers"])
            click.echo(
                f"{entry['host']} {entry['dev']}: {' <-> '.join(link['between'])} at "
                f"{link['rate']} to {peers}"
            )


@lab.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_LAB_DIR,
    show_default=True,
)
def down(directory: Path) -> None:
    """Remove every namespace, link and sshd the lab made (also after a crashed `lab up`)."""
    from harness.cluster.lab import Lab

    removed = Lab(directory).down()
    click.echo(f"lab: removed {len(removed)} ({', '.join(removed) or 'nothing left'})")


@click.command()
@click.argument(
    "inventory_file",
    metavar="INVENTORY",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
def deploy(inventory_file: Path) -> None:
    """Ship this checkout (its tracked files) to every host of INVENTORY over SFTP and build
    its environment there; a release already deployed is left alone. Exit 1 when a host
    fails (one line each), 2 when INVENTORY is invalid."""
    from harness.cluster.deploy import deploy as deploy_all

    inv = load_inventory(inventory_file)
    done, errors = deploy_all(inv)
    for d in done:
        state = "deployed" if d.changed else "up to date"
        rev = Path(d.release_dir).name
        click.echo(f"{d.host.name}: {state} {rev} in {d.release_dir} (python {d.python})")
    for error in errors:
        click.echo(f"error: {error}", err=True)
    sys.exit(EXIT_FAILED if errors else EXIT_OK)


@click.command(name="remote-step", hidden=True)
@click.argument("job", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--start-on-stdin",
    is_flag=True,
    help="Print `ready` once prepared and start the client only when `go` arrives on stdin.",
)
def remote_step(job: Path, start_on_stdin: bool) -> None:
    """Run one `hosts:` step's driver on this host from JOB (written there by the controller,
    harness.cluster.remote) and write its StepResult as result.json beside JOB."""
    from harness.runner import run_job

    def start() -> bool:
        print("ready", flush=True)
        return sys.stdin.readline().strip() == "go"  # EOF: the controller is gone

    sys.exit(run_job(job, start if start_on_stdin else None))
