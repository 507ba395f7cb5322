"""The lab identity as the rest of the harness uses it: start the token service, know its tenant
and principals, mint tokens with its key material (for the negative checks), and describe the
``bearer`` block a façade's accounts YAML needs to trust it."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.identity.config import TokenServiceConfig, load_config
from harness.identity.keys import KeyRing
from harness.identity.token_service import STORAGE_RESOURCE, make_claims
from harness.paths import ROOT
from harness.targets.base import ServerProcess, free_port

DEFAULT_CONFIG = ROOT / "fixtures" / "identity" / "tenant.yaml"
# MSAL's instance discovery host: AzCopy's SPN login asks it even for a custom authority, so a
# lab proxy routes it to the token service, whose certificate then carries the name.
INSTANCE_DISCOVERY_HOST = "login.microsoftonline.com"
CONTRIBUTOR = "Storage Blob Data Contributor"
READER = "Storage Blob Data Reader"


@dataclass
class LabIdentity:
    """A running (or reachable) token service and what is known about it."""

    authority: str  # https://127.0.0.1:PORT, what azure-identity takes as ``authority``
    config: TokenServiceConfig
    state_dir: Path  # its signing keys
    ca_bundle: Path  # the CA its certificate chains to

    @property
    def tenant(self) -> str:
        return self.config.tenant

    @property
    def issuer_url(self) -> str:
        """The authority URL a façade trusts: discovery at ``<url>/.well-known/...``."""
        return f"{self.authority}/{self.tenant}/v2.0"

    def principal(self, name: str) -> tuple[str, str]:
        """(object id, client id) of a client or managed identity by its name."""
        for item in [*self.config.clients, *self.config.managed_identities]:
            if item.name == name:
                return item.object_id, item.client_id
        raise KeyError(f"no client or managed identity named {name!r} in the lab tenant")

    def claims(self, name: str, **overrides: Any) -> dict[str, Any]:
        """The claims the service would issue to ``name`` for Storage, with ``overrides``."""
        oid, appid = self.principal(name)
        claims = make_claims(
            self.tenant,
            object_id=oid,
            app_id=appid,
            resource=STORAGE_RESOURCE,
            lifetime_s=self.config.token_lifetime_s,
        )
        return claims | overrides

    def mint(self, name: str, **overrides: Any) -> str:
        """A token signed by the service's current key, as if it had issued it."""
        ring = KeyRing.load_or_create(self.state_dir, self.config.token_lifetime_s)
        return ring.sign(self.claims(name, **overrides), time.time())

    def signing_key(self) -> Any:
        """The service's current private key (for tokens a check tampers with)."""
        return KeyRing.load_or_create(self.state_dir, self.config.token_lifetime_s).signer()

    def client_env(self, origin: str | None = None) -> dict[str, str]:
        """The settings clients read to get tokens from this service (``harness token-service``
        prints the same), at ``origin`` (default: the service itself; a recording proxy in
        front of it otherwise), plus the tenant."""
        from harness.identity.token_service import describe

        env = describe(self.config, origin or self.authority)["env"]
        return {**env, "AZURE_TENANT_ID": self.tenant}

    def bearer_block(self, roles: list[tuple[str, str, str]]) -> dict[str, Any]:
        """An account's ``bearer`` mapping trusting this service; roles are
        (principal name, role, scope) with scope ``account`` or ``containers/NAME``."""
        assignments = []
        for name, role, scope in roles:
            oid, _ = self.principal(name)
            assignments.append({"principal": oid, "role": role, "scope": scope})
        return {"tenant": self.tenant, "issuers": [self.issuer_url], "roles": assignments}


class TokenService:
    """``harness token-service`` as a subprocess on a free loopback port."""

    def __init__(
        self,
        workdir: Path,
        ca_dir: Path,
        config_path: Path = DEFAULT_CONFIG,
        rotate: bool = False,
        tls_names: tuple[str, ...] = (),
    ) -> None:
        self.workdir = workdir
        self.ca_dir = ca_dir
        self.config_path = config_path
        self.rotate = rotate
        self.tls_names = tls_names  # more certificate names, for clients routed by a lab proxy
        self.server: ServerProcess | None = None

    def start(self) -> LabIdentity:
        from harness.labca import LabCA

        port = free_port()
        state = self.workdir / "token-service"
        argv = [sys.executable, "-m", "harness.cli", "token-service"]
        argv += ["--config", str(self.config_path), "--state-dir", str(state)]
        argv += ["--port", str(port), "--ca-dir", str(self.ca_dir)]
        if self.rotate:
            argv.append("--rotate")
        for name in self.tls_names:
            argv += ["--tls-name", name]
        self.server = ServerProcess(
            "token service", argv, port, self.workdir / "token-service.log", cwd=ROOT
        )
        self.server.start()
        return LabIdentity(
            f"https://127.0.0.1:{port}",
            load_config(self.config_path),
            state,
            LabCA.load_or_create(self.ca_dir).bundle_path,
        )

    def log(self) -> str:
        return self.server.log_path.read_text(errors="replace") if self.server else ""

    def stop(self) -> None:
        if self.server:
            self.server.stop()


# The role layout the bearer conformance checks expect on the account under test.
SCOPED_CONTAINER = "scoped-ct"
LAB_ROLES = [
    ("writer", CONTRIBUTOR, "account"),
    ("vm", CONTRIBUTOR, "account"),
    ("reader", READER, "account"),
    ("scoped", CONTRIBUTOR, f"containers/{SCOPED_CONTAINER}"),
]


@dataclass
class BearerEndpoint:
    """An account that trusts the lab tenant, as the bearer checks reach it."""

    identity: LabIdentity
    url: str  # https account URL
    account: str
    key: str | None  # Shared Key, for fixtures; None when only tokens are known
    ca_bundle: Path | None
    http_url: str | None = None  # the same façade over plain http, when it listens there


def identity_from_description(path: Path) -> LabIdentity:
    """The LabIdentity a ``harness token-service --describe FILE`` run wrote."""
    import json

    data = json.loads(Path(path).read_text())
    return LabIdentity(
        data["authority"],
        load_config(Path(data["config"])),
        Path(data["state_dir"]),
        Path(data["ca_bundle"]),
    )


def bearer_facade_args(
    identity: LabIdentity, workdir: Path, ca_bundle: Path, roles: list[tuple[str, str, str]]
) -> list[str]:
    """The reference façade's flags to trust ``identity`` for ``devstoreaccount1`` (Shared Key
    still works) with ``roles``: an accounts YAML written into ``workdir``, and the CA the
    token service's certificate chains to."""
    import yaml

    from harness.targets.base import DEV_ACCOUNT, DEV_KEY

    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "bearer-accounts.yaml"
    account = {"name": DEV_ACCOUNT, "key": DEV_KEY, "bearer": identity.bearer_block(roles)}
    config.write_text(yaml.safe_dump({"accounts": [account]}))
    return ["--config", str(config), "--trust-ca", str(ca_bundle)]


class BearerReference:
    """The lab token service plus the reference façade trusting it: https (bearer works) and a
    second process over plain http (bearer must be refused), for the bearer checks."""

    def __init__(self, workdir: Path, ca_dir: Path | None = None) -> None:
        from harness.labca import default_ca_dir

        self.workdir = workdir
        self.ca_dir = ca_dir or default_ca_dir()
        self.service = TokenService(workdir / "identity", self.ca_dir)
        self.targets: list[Any] = []

    def start(self) -> BearerEndpoint:
        from harness.labca import LabCA
        from harness.targets.base import DEV_ACCOUNT, DEV_KEY
        from harness.targets.reference import ReferenceTarget

        identity = self.service.start()
        bundle = LabCA.load_or_create(self.ca_dir).bundle_path
        args = bearer_facade_args(identity, self.workdir, bundle, LAB_ROLES)
        https = ReferenceTarget(extra_args=args, tls=True, ca_dir=self.ca_dir)
        plain = ReferenceTarget(extra_args=args)
        for target, name in ((https, "bearer-https"), (plain, "bearer-http")):
            self.targets.append(target)
            target.start(self.workdir / name)
        return BearerEndpoint(
            identity,
            https.endpoint().blob_url,
            DEV_ACCOUNT,
            DEV_KEY,
            bundle,
            plain.endpoint().blob_url,
        )

    def stop(self) -> None:
        for target in self.targets:
            target.stop()
        self.service.stop()
