"""``harness token-service``: run the lab's Entra ID stand-in in the foreground."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from harness.cli_common import EXIT_BAD_INPUT
from harness.paths import ROOT

DEFAULT_CONFIG = ROOT / "fixtures" / "identity" / "tenant.yaml"


@click.command("token-service")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_CONFIG,
    show_default=True,
    help="YAML: tenant, confidential clients, managed identities.",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=ROOT / ".cache" / "token-service",
    show_default=True,
    help="Where the signing keys live (ring.json and one PEM per key).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Listen address.")
@click.option("--port", type=int, default=0, show_default=True, help="0 picks a free port.")
@click.option(
    "--ca-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Lab CA directory that issues the https certificate "
    "[default: $LAB_CA_DIR or .cache/lab-ca].",
)
@click.option(
    "--describe",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the authority URL, tenant and client environment as JSON here.",
)
@click.option("--rotate", is_flag=True, help="Publish a new signing key at start (rotation).")
@click.option(
    "--tls-name",
    "tls_names",
    multiple=True,
    help="Another name for the certificate, for clients routed here by a lab proxy "
    "(e.g. login.microsoftonline.com for MSAL's instance discovery); repeatable.",
)
def token_service(
    config_path: Path,
    state_dir: Path,
    host: str,
    port: int,
    ca_dir: Path | None,
    describe: Path | None,
    rotate: bool,
    tls_names: tuple[str, ...],
) -> None:
    """A stand-in for Entra ID speaking its wire protocol over https: OIDC discovery, JWKS,
    client credentials, managed identity (IMDS, App Service, MSI_ENDPOINT). Prints
    ``listening on https://HOST:PORT`` and the client environment, then serves until Ctrl-C."""
    from harness.identity.config import load_config
    from harness.identity.keys import KeyRing
    from harness.identity.token_service import (
        describe as describe_service,
    )
    from harness.identity.token_service import serve, server_ssl_context, write_description
    from harness.labca import LabCA, default_ca_dir
    from harness.scenario import ScenarioError

    try:
        config = load_config(config_path)
    except (ScenarioError, OSError) as exc:
        for problem in getattr(exc, "problems", [str(exc)]):
            click.echo(problem, err=True)
        sys.exit(EXIT_BAD_INPUT)
    ring = KeyRing.load_or_create(state_dir, config.token_lifetime_s)
    if rotate:
        ring.rotate(config.rotation_lead_s)
    ca = LabCA.load_or_create(ca_dir or default_ca_dir())
    names = list(dict.fromkeys([host, "localhost", *tls_names]))
    cert, key = ca.issue(names)

    def ready(bound: int) -> None:
        origin = f"https://{host}:{bound}"
        info = describe_service(config, origin)
        click.echo(f"listening on {origin}")
        click.echo(f"tenant {config.tenant}; CA bundle {ca.bundle_path}")
        for name, value in info["env"].items():
            click.echo(f"  {name}={value}")
        if describe:
            # what `harness conformance --identity FILE` reads back to mint tokens
            paths = {"config": str(config_path.resolve()), "state_dir": str(state_dir.resolve())}
            write_description(describe, info | paths | {"ca_bundle": str(ca.bundle_path)})
        sys.stdout.flush()

    asyncio.run(
        serve(config, ring, host=host, port=port, tls=server_ssl_context(cert, key), on_ready=ready)
    )
