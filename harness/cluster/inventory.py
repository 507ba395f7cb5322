"""An inventory: the hosts of a cluster, their roles, its endpoints, credentials by reference.

Validated like scenarios (``harness.scenario.load_model``, in ``harness.cluster_cli``): every
problem as FILE:LINE: field.
Secrets are never inline: a credential names an environment variable or a file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Role = Literal["server", "client", "load", "lake"]


class Host(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    address: str  # an IP address or a name the controller resolves (never a lab host's name)
    user: str = "root"
    port: int = Field(default=22, ge=1, le=65535)
    key_file: Path | None = None  # relative to the inventory file
    jump: str | None = None  # another host of this inventory to tunnel through
    roles: list[Role] = Field(default_factory=list)
    facts: dict[str, Any] = Field(default_factory=dict)  # overrides of the measured facts
    work_dir: str = "blob-facade-lab"  # where deploy unpacks the lab (relative: to the home)


class Credential(BaseModel):
    """A secret by reference: exactly one of ``env`` (a variable name) or ``file``."""

    model_config = ConfigDict(extra="forbid")

    env: str | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Credential:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of env (a variable name) or file")
        return self

    def resolve(self, base: Path) -> str:
        """The secret's value; a clear error when the variable or file is missing."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if not value:
                raise ValueError(f"environment variable {self.env} is not set")
            return value
        assert self.file is not None
        path = self.file if self.file.is_absolute() else base / self.file
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise ValueError(f"cannot read credential file {path}: {exc.strerror}") from None


class Endpoints(BaseModel):
    """Where clients reach the cluster: one VIP for all server nodes, or each server node's
    address on ``port`` (the façade the inventory target starts there)."""

    model_config = ConfigDict(extra="forbid")

    vip: str | None = None  # an account URL, e.g. https://acct.blob.example.net
    port: int = Field(default=10000, ge=1, le=65535)
    account: str = "devstoreaccount1"
    key: str | None = None  # name of an entry of ``credentials`` holding the account key


class Link(BaseModel):
    """A shaped link between two groups of hosts (role names, host names, or ``controller``,
    the machine the harness runs on); shaped by ``harness.cluster.links``."""

    model_config = ConfigDict(extra="forbid")

    between: list[str] = Field(min_length=2, max_length=2)
    rate: str  # e.g. 1gbit, 100mbit (tc's units)
    delay: str | None = None  # e.g. 20ms


class Inventory(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    hosts: list[Host] = Field(min_length=1)
    endpoints: Endpoints = Field(default_factory=Endpoints)
    credentials: dict[str, Credential] = Field(default_factory=dict)
    links: list[Link] = Field(default_factory=list)
    known_hosts: Path | None = None  # host keys to verify against (relative to the file)
    # Set by ``load``: the directory relative paths are taken from.
    base_dir: Path = Field(default=Path("."), exclude=True)

    @model_validator(mode="after")
    def _references(self) -> Inventory:
        problems = []
        names = [h.name for h in self.hosts]
        for i, host in enumerate(self.hosts):
            if names.count(host.name) > 1:
                problems.append(f"hosts[{i}].name: {host.name!r} is used by another host")
            if host.jump is not None and (host.jump not in names or host.jump == host.name):
                problems.append(f"hosts[{i}].jump: no other host named {host.jump!r}")
        if self.endpoints.key and self.endpoints.key not in self.credentials:
            problems.append(f"endpoints.key: no credential named {self.endpoints.key!r}")
        groups = set(names) | {"server", "client", "load", "lake", "controller"}
        for i, link in enumerate(self.links):
            for end in link.between:
                if end not in groups:
                    problems.append(f"links[{i}].between: {end!r} is neither a role nor a host")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)

    def with_role(self, role: Role) -> list[Host]:
        return [h for h in self.hosts if role in h.roles]

    def path(self, p: Path | None) -> Path | None:
        """``p`` taken relative to the inventory file."""
        if p is None:
            return None
        p = p.expanduser()
        return p if p.is_absolute() else self.base_dir / p


def from_file(path: Path) -> Inventory:
    """An inventory already checked with file:line errors (``harness.cluster_cli.load``), read
    again where the harness uses it (the inventory target)."""
    import yaml

    inv = Inventory.model_validate(yaml.safe_load(path.read_text()))
    inv.base_dir = path.resolve().parent
    return inv
