"""Fixtures of the identity tests: the lab token service and a reference façade over https
whose account trusts it (loaded by tests/conftest.py as a plugin).

Roles of the lab tenant's principals on ``devstoreaccount1``: ``writer`` and the managed
identity ``vm`` are Contributors on the account, ``reader`` a Reader, ``scoped`` a Contributor
on the container ``scoped-ct`` only, ``norole`` holds nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from harness.identity.lab import (
    INSTANCE_DISCOVERY_HOST,
    LAB_ROLES,
    SCOPED_CONTAINER,  # noqa: F401  (the tests import it from here)
    LabIdentity,
    TokenService,
)
from harness.lab_proxy import LabProxy, routes_for
from harness.labca import LabCA
from harness.paths import ROOT
from harness.targets.base import Endpoint, ServerProcess, free_port
from harness.targets.reference import TLS_NAMES
from reference_server.config import DEV_ACCOUNT, DEV_KEY


@dataclass
class BearerFacade:
    """A reference façade serving https with bearer tokens enabled for ``account``."""

    account_url: str  # https://127.0.0.1:PORT/devstoreaccount1
    http_account_url: str | None  # a second façade, plain http, same accounts (or None)
    account: str
    key: str
    ca_bundle: Path
    identity: LabIdentity
    data_root: Path


@pytest.fixture(scope="session")
def lab_ca(tmp_path_factory: pytest.TempPathFactory) -> LabCA:
    return LabCA.load_or_create(tmp_path_factory.mktemp("lab-ca"))


@pytest.fixture(scope="session")
def lab_identity(tmp_path_factory: pytest.TempPathFactory, lab_ca: LabCA) -> Iterator[LabIdentity]:
    """The token service (https, lab CA) for the whole session."""
    service = TokenService(
        tmp_path_factory.mktemp("identity"), lab_ca.directory, tls_names=(INSTANCE_DISCOVERY_HOST,)
    )
    identity = service.start()
    yield identity
    service.stop()


def _facade(base: Path, name: str, ca_bundle: Path, *args: str) -> ServerProcess:
    port = free_port()
    argv = [sys.executable, "-m", "reference_server", "--host", "127.0.0.1", "--port", str(port)]
    # copy sources over https (the façade fetching from itself) verify against the lab CA
    env = {"SSL_CERT_FILE": str(ca_bundle)}
    # one data root per façade: a data root belongs to one façade at a time
    server = ServerProcess(name, [*argv, "--data-root", str(base / name), *args], port,
                           base / f"{name}.log", env=env, cwd=ROOT)  # fmt: skip
    server.start()
    return server


def start_bearer_facade(
    base: Path, identity: LabIdentity, lab_ca: LabCA, roles: list[tuple[str, str, str]]
) -> tuple[BearerFacade, list[ServerProcess]]:
    """The same accounts served twice: over https (bearer works) and plain http (it must not)."""
    cert, key = lab_ca.issue(list(TLS_NAMES), base / "tls")  # the lab virtual hosts too
    accounts = [
        {"name": DEV_ACCOUNT, "key": DEV_KEY, "bearer": identity.bearer_block(roles)},
    ]
    config = base / "accounts.yaml"
    config.write_text(yaml.safe_dump({"accounts": accounts, "jwks_refresh_floor_s": 1}))
    common = ["--config", str(config), "--trust-ca", str(lab_ca.bundle_path)]
    tls = _facade(
        base, "https", lab_ca.bundle_path, *common, "--tls-cert", str(cert), "--tls-key", str(key)
    )
    plain = _facade(base, "http", lab_ca.bundle_path, *common)
    facade = BearerFacade(
        f"https://127.0.0.1:{tls.port}/{DEV_ACCOUNT}",
        f"http://127.0.0.1:{plain.port}/{DEV_ACCOUNT}",
        DEV_ACCOUNT,
        DEV_KEY,
        lab_ca.bundle_path,
        identity,
        base / "https",
    )
    return facade, [tls, plain]


@pytest.fixture(scope="session")
def bearer_facade(
    tmp_path_factory: pytest.TempPathFactory, lab_identity: LabIdentity, lab_ca: LabCA
) -> Iterator[BearerFacade]:
    facade, servers = start_bearer_facade(
        tmp_path_factory.mktemp("bearer-facade"), lab_identity, lab_ca, LAB_ROLES
    )
    yield facade
    for server in servers:
        server.stop()


@pytest.fixture
def login_proxy(bearer_facade: BearerFacade) -> Iterator[LabProxy]:
    """A lab proxy for Go clients (AzCopy, rclone): the façade's lab name, and MSAL's instance
    discovery host routed to the token service (which answers it). Clients get it as
    HTTPS_PROXY with NO_PROXY=127.0.0.1, so a login host is never looked up in DNS: the proxy
    refuses whatever it does not route."""
    endpoint = Endpoint("reference", bearer_facade.account, bearer_facade.account_url)
    token_port = int(bearer_facade.identity.authority.rsplit(":", 1)[1])
    routes = {**routes_for(endpoint), INSTANCE_DISCOVERY_HOST: ("127.0.0.1", token_port)}
    proxy = LabProxy(routes)
    proxy.start()
    yield proxy
    proxy.stop()
