"""The embedded reference façade: `python -m reference_server` on a free loopback port."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from harness.labca import LabCA, default_ca_dir
from harness.paths import ROOT
from harness.targets.base import (
    DEV_ACCOUNT,
    DEV_KEY,
    LAB_DOMAIN,
    Endpoint,
    LocalServerTarget,
    free_port,
)

# Every name a client may reach the façade by: loopback, and the lab proxy's virtual hosts
# ``<account>.blob.lab.test`` (one wildcard for every account, --account ones included).
TLS_NAMES = ("127.0.0.1", "localhost", f"*.blob.{LAB_DOMAIN}")


class ReferenceTarget(LocalServerTarget):
    name = "reference"
    account = DEV_ACCOUNT
    key = DEV_KEY

    def __init__(
        self,
        workers: int = 1,
        extra_args: list[str] | None = None,
        *,
        tls: bool = False,
        ca_dir: Path | None = None,
        identity: bool = False,
    ) -> None:
        super().__init__()
        self.workers = workers
        self.extra_args = list(extra_args or [])
        # identity: the lab token service beside the façade, which trusts its tenant (bearer
        # tokens need https, so it implies tls)
        self.identity = identity
        self.tls = tls or identity  # serve https with a certificate from the lab CA
        self.ca_dir = ca_dir  # the lab CA's directory (default: default_ca_dir())
        self.data_root: Path | None = None
        self.lab: Any = None  # the running LabIdentity
        self._token_service: Any = None
        self._login_proxy: Any = None

    def start(self, workdir: Path) -> None:
        # A fresh data root inside the run directory: runs never see each other's blobs.
        self.data_root = workdir / "data"
        self.data_root.mkdir(parents=True, exist_ok=True)
        port = free_port()
        argv = [
            sys.executable,
            "-m",
            "reference_server",
            "--data-root",
            str(self.data_root),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *self.extra_args,
        ]
        if self.workers > 1:
            argv += ["--workers", str(self.workers)]
        env: dict[str, str] = {}
        if self.identity:
            argv += self._start_identity(workdir)
        if self.tls:
            ca = LabCA.load_or_create(self.ca_dir or default_ca_dir())
            cert, key = ca.issue(TLS_NAMES, workdir / "tls")
            argv += ["--tls-cert", str(cert), "--tls-key", str(key)]
            # the façade fetches copy sources itself: an https lab source must verify too
            env["SSL_CERT_FILE"] = str(ca.bundle_path)
            self.ca_bundle = ca.bundle_path
        self._serve("reference façade", argv, port, workdir, cwd=ROOT, env=env)
        if self.identity:
            self._start_login_proxy()

    def _start_identity(self, workdir: Path) -> list[str]:
        """Start the lab token service; the façade's flags to trust it with the role layout of
        the bearer checks (``LAB_ROLES``)."""
        from harness.identity.lab import (
            INSTANCE_DISCOVERY_HOST,
            LAB_ROLES,
            TokenService,
            bearer_facade_args,
        )

        ca_dir = self.ca_dir or default_ca_dir()
        # the login host in its certificate: Go clients reach it there through the login proxy
        self._token_service = TokenService(
            workdir / "identity", ca_dir, tls_names=(INSTANCE_DISCOVERY_HOST,)
        )
        self.lab = self._token_service.start()
        return bearer_facade_args(self.lab, workdir / "identity", self.lab.ca_bundle, LAB_ROLES)

    def _start_login_proxy(self) -> None:
        """A lab proxy for clients that ask MSAL's instance discovery at the login host (rclone,
        AzCopy's SPN login): that name goes to the token service, the façade's lab name to the
        façade, anything else is refused, so no login host is ever looked up in DNS."""
        from harness.identity.lab import INSTANCE_DISCOVERY_HOST
        from harness.lab_proxy import LabProxy, routes_for

        token_port = int(self.lab.authority.rsplit(":", 1)[1])
        routes = routes_for(super().endpoint())
        self._login_proxy = LabProxy({**routes, INSTANCE_DISCOVERY_HOST: ("127.0.0.1", token_port)})
        self._login_proxy.start()

    def endpoint(self) -> Endpoint:
        endpoint = super().endpoint()
        if self.lab is not None and self._login_proxy is not None:
            # what a step with `auth: oauth` hands its client (drivers.common.client_env)
            env = self.lab.client_env()
            # plain http too: a client probing the real IMDS (http://169.254.169.254) is refused
            # by the proxy and shows in its refusals instead of leaving the machine
            proxy = self._login_proxy.url
            env |= {"HTTPS_PROXY": proxy, "HTTP_PROXY": proxy, "NO_PROXY": "127.0.0.1"}
            env["SSL_CERT_FILE"] = str(self.lab.ca_bundle)  # Go token clients: the system pool
            endpoint.extra["identity"] = {"authority": self.lab.authority, "env": env}
        return endpoint

    def stop(self) -> None:
        super().stop()
        if self._login_proxy is not None:
            self._login_proxy.stop()
            self._login_proxy = None
        if self._token_service is not None:
            self._token_service.stop()
            self._token_service = None

    def facts(self) -> dict[str, Any]:
        from importlib import metadata

        try:
            version = metadata.version("blob-facade-lab")
        except metadata.PackageNotFoundError:
            version = "unknown"
        return {
            "kind": self.name,
            "version": version,
            "workers": self.workers,
            "tls": self.tls,
            "identity": self._identity_facts(),
            "args": self.extra_args,
            "data_root": str(self.data_root) if self.data_root else None,
            "port": self.server.port if self.server else None,
        }

    def _identity_facts(self) -> dict[str, Any] | None:
        if self.lab is None:
            return None
        # a client that tried a host the lab does not route (a DNS lookup averted) shows here
        refused = list(self._login_proxy.refused) if self._login_proxy else []
        return {"authority": self.lab.authority, "tenant": self.lab.tenant, "refused": refused}
