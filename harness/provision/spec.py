"""The provisioning spec: what `harness provision SPEC.yaml` creates, validated like a scenario
(file:line: field: message)."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.scenario import load_model

# The tag that marks what the lab made: deprovision deletes only groups that carry it.
LAB_TAG, LAB_TAG_VALUE = "made-by", "blob-facade-lab"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SshSpec(_Model):
    user: str = "azureuser"
    public_key_file: Path = Path("~/.ssh/id_ed25519.pub")
    private_key_file: Path = Path("~/.ssh/id_ed25519")
    wait_s: float = Field(300, ge=0, description="seconds to wait for port 22; 0: do not wait")

    def public_key(self) -> str:
        return self.public_key_file.expanduser().read_text().strip()


class ImageSpec(_Model):
    publisher: str = "Canonical"
    offer: str = "ubuntu-24_04-lts"
    sku: str = "server"
    version: str = "latest"

    @property
    def urn(self) -> str:
        return f"{self.publisher}:{self.offer}:{self.sku}:{self.version}"


class NetworkSpec(_Model):
    address_space: str = "10.20.0.0/16"
    subnet: str = "10.20.0.0/24"

    @field_validator("address_space", "subnet")
    @classmethod
    def _cidr(cls, v: str) -> str:
        ipaddress.ip_network(v)
        return v


class VmGroup(_Model):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,40}$")  # VMs are <name>-0, <name>-1, ...
    role: Literal["server", "client", "load", "lake"]
    size: str = Field(pattern=r"^Standard_")
    count: int = Field(1, ge=1, le=100)
    accelerated_networking: bool = True


class ProvisionSpec(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9-]{1,60}$")
    subscription: str | None = None  # default: AZURE_SUBSCRIPTION_ID
    location: str
    resource_group: str = Field(pattern=r"^[-\w.()]{1,90}$")
    # The only source SSH is allowed from; HARNESS_CONTROLLER_CIDR overrides it (a CI runner
    # learns its public address only when the job starts).
    controller_cidr: str | None = None
    ssh: SshSpec = SshSpec()
    image: ImageSpec = ImageSpec()
    network: NetworkSpec = NetworkSpec()
    public_ip: bool = True
    vms: list[VmGroup] = Field(min_length=1)
    tags: dict[str, str] = {}

    @field_validator("controller_cidr")
    @classmethod
    def _one_source(cls, v: str) -> str:
        net = ipaddress.ip_network(v, strict=False)
        if net.num_addresses > 256:
            raise ValueError(
                f"{v} opens SSH to {net.num_addresses} addresses; give the controller's"
            )
        return str(net)

    @model_validator(mode="after")
    def _unique_groups(self) -> ProvisionSpec:
        names = [g.name for g in self.vms]
        if len(set(names)) != len(names):
            raise ValueError(f"vm group names repeat: {names}")
        return self

    def controller(self) -> str:
        """The address range SSH is opened to: HARNESS_CONTROLLER_CIDR, else the spec's."""
        env = os.environ.get("HARNESS_CONTROLLER_CIDR")
        if env:
            return controller_network(env)
        if not self.controller_cidr:
            raise ValueError("no controller_cidr: set it or HARNESS_CONTROLLER_CIDR")
        return self.controller_cidr

    def subscription_id(self) -> str:
        sub = self.subscription or os.environ.get("AZURE_SUBSCRIPTION_ID")
        if not sub:
            raise ValueError("no subscription: set `subscription:` or AZURE_SUBSCRIPTION_ID")
        return sub

    def all_tags(self) -> dict[str, str]:
        return {**self.tags, LAB_TAG: LAB_TAG_VALUE, "lab-spec": self.name}

    def vm_names(self) -> list[tuple[str, VmGroup]]:
        return [(f"{g.name}-{i}", g) for g in self.vms for i in range(g.count)]


def controller_network(text: str) -> str:
    """``203.0.113.7`` or ``203.0.113.0/28`` as a network; refuse one wider than 256 addresses
    (SSH open to the internet is what the NSG is there to prevent)."""
    net = ipaddress.ip_network(text.strip(), strict=False)
    if net.num_addresses > 256:
        raise ValueError(
            f"{text} opens SSH to {net.num_addresses} addresses; give the controller's"
        )
    return str(net)


def load_spec(path: Path) -> ProvisionSpec:
    """The validated spec; ScenarioError (file:line: field: message) on a problem."""
    return load_model(path, ProvisionSpec, what="a provisioning spec")
