"""A target with the lab identity beside it (``options: {identity: true}``): the lab token
service, the reference façade over https trusting its tenant, and a login proxy.

It wraps the target ``make_target`` built, so the façade is started exactly as every other
``reference`` target (one code path); what it adds is the token service, the façade's bearer
configuration and, in its endpoint, the settings a step with ``auth: oauth`` hands its client
(``Endpoint.extra["identity"]``, read by ``harness.drivers.common.client_env``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.identity.lab import (
    INSTANCE_DISCOVERY_HOST,
    LAB_ROLES,
    LabIdentity,
    TokenService,
    bearer_facade_args,
)
from harness.lab_proxy import LabProxy, routes_for
from harness.labca import default_ca_dir
from harness.targets.base import Endpoint
from harness.targets.reference import ReferenceTarget


class IdentityTarget:
    """``IdentityTarget(ReferenceTarget())``: the Target protocol around the façade it wraps."""

    def __init__(self, inner: ReferenceTarget) -> None:
        if not isinstance(inner, ReferenceTarget):
            raise ValueError("options.identity: only the reference target serves bearer tokens")
        self.inner = inner
        self.inner.tls = True  # bearer tokens travel over https only
        self.name = inner.name
        self.lab: LabIdentity | None = None
        self._service: TokenService | None = None
        self._proxy: LabProxy | None = None

    def start(self, workdir: Path) -> None:
        ca_dir = self.inner.ca_dir or default_ca_dir()
        # the login host in its certificate: Go clients reach it there through the login proxy
        self._service = TokenService(
            workdir / "identity", ca_dir, tls_names=(INSTANCE_DISCOVERY_HOST,)
        )
        self.lab = self._service.start()
        args = bearer_facade_args(self.lab, workdir / "identity", self.lab.ca_bundle, LAB_ROLES)
        self.inner.extra_args += args
        self.inner.start(workdir)
        # For clients that ask MSAL's instance discovery at the login host (rclone, AzCopy's
        # SPN login): that name goes to the token service, the façade's lab name to the façade,
        # anything else is refused, so no login host is ever looked up in DNS.
        token_port = int(self.lab.authority.rsplit(":", 1)[1])
        routes = routes_for(self.inner.endpoint())
        self._proxy = LabProxy({**routes, INSTANCE_DISCOVERY_HOST: ("127.0.0.1", token_port)})
        self._proxy.start()

    def endpoint(self) -> Endpoint:
        endpoint = self.inner.endpoint()
        if self.lab is not None and self._proxy is not None:
            env = self.lab.client_env()
            # plain http too: a client probing the real IMDS (http://169.254.169.254) is refused
            # by the proxy and shows in its refusals instead of leaving the machine
            proxy = self._proxy.url
            env |= {"HTTPS_PROXY": proxy, "HTTP_PROXY": proxy, "NO_PROXY": "127.0.0.1"}
            env["SSL_CERT_FILE"] = str(self.lab.ca_bundle)  # Go token clients: the system pool
            endpoint.extra["identity"] = {"authority": self.lab.authority, "env": env}
        return endpoint

    def stop(self) -> None:
        self.inner.stop()
        if self._proxy is not None:
            self._proxy.stop()
            self._proxy = None
        if self._service is not None:
            self._service.stop()
            self._service = None

    def facts(self) -> dict[str, Any]:
        facts = self.inner.facts()
        if self.lab is not None:
            # a client that tried a host the lab does not route (a DNS lookup averted) shows here
            refused = list(self._proxy.refused) if self._proxy else []
            facts["identity"] = {
                "authority": self.lab.authority,
                "tenant": self.lab.tenant,
                "refused": refused,
            }
        return facts

    def server_pids(self) -> list[int]:
        return self.inner.server_pids()
