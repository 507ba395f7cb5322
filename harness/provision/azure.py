"""Provision and deprovision a nightly's hosts with the real Azure management clients.

Everything lives in one resource group tagged ``made-by: blob-facade-lab``: a NSG allowing SSH
from the controller only, a VNet/subnet behind it, a proximity placement group, and per VM a
public IP, a NIC with accelerated networking and the VM (``delete_option: Delete`` on NIC and
OS disk). Every PUT is ARM's idempotent create-or-update; a VM that already exists and
succeeded is left alone, so a rerun after a failure creates only what is missing.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.core.credentials import AccessToken, TokenCredential
from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError

from harness.provision.spec import LAB_TAG, LAB_TAG_VALUE, ProvisionSpec


class ProvisionError(Exception):
    """Azure refused a step; the message names the resource, ARM's code and its message."""


class QuotaError(ProvisionError):
    """The subscription's quota does not allow the VMs asked."""


class NotLabMade(ProvisionError):
    """The resource group exists without the lab's tag: the lab neither uses nor deletes it."""


class StaticTokenCredential:
    """A bearer token already in hand (``az account get-access-token``, or a test's)."""

    def __init__(self, token: str, lifetime_s: int = 3600) -> None:
        self._token = AccessToken(token, int(time.time()) + lifetime_s)

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return self._token


@dataclass
class Clients:
    resource: Any
    network: Any
    compute: Any


def make_clients(
    subscription: str,
    credential: TokenCredential,
    base_url: str | None = None,
    ca_bundle: Path | None = None,
    polling_interval: float | None = None,
) -> Clients:
    """The three management clients; ``base_url``/``ca_bundle`` point them at a fake ARM."""
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.network import NetworkManagementClient
    from azure.mgmt.resource.resources import ResourceManagementClient

    kwargs: dict[str, Any] = {}
    if base_url:
        kwargs["base_url"] = base_url
    if ca_bundle:
        kwargs["connection_verify"] = str(ca_bundle)
    if polling_interval is not None:
        kwargs["polling_interval"] = polling_interval
    return Clients(
        ResourceManagementClient(credential, subscription, **kwargs),
        NetworkManagementClient(credential, subscription, **kwargs),
        ComputeManagementClient(credential, subscription, **kwargs),
    )


def _refusal(what: str, exc: AzureError) -> ProvisionError:
    if not isinstance(exc, HttpResponseError):  # no answer: connection, TLS, credentials
        return ProvisionError(f"{what}: {type(exc).__name__}: {exc.message}")
    code = getattr(exc.error, "code", None) or str(exc.status_code)
    message = getattr(exc.error, "message", None) or exc.message
    text = f"{what}: Azure answered {exc.status_code} {code}: {message}"
    if code in ("QuotaExceeded", "OperationNotAllowed") and "quota" in message.lower():
        return QuotaError(
            text + " (raise the family's vCPU quota in this location, or ask for smaller sizes)"
        )
    return ProvisionError(text)


def _lab_group(clients: Clients, spec: ProvisionSpec) -> dict[str, str] | None:
    """The group's tags when it exists (None when it does not); refuse one the lab did not make."""
    try:
        group = clients.resource.resource_groups.get(spec.resource_group)
    except ResourceNotFoundError:
        return None
    tags = group.tags or {}
    if tags.get(LAB_TAG) != LAB_TAG_VALUE:
        raise NotLabMade(
            f"resource group {spec.resource_group} exists without the tag "
            f"{LAB_TAG}={LAB_TAG_VALUE}: not made by the lab, left untouched"
        )
    return tags


def provision(
    clients: Clients, spec: ProvisionSpec, log: Any = print, wait_ssh: bool = True
) -> list[dict[str, Any]]:
    """Create (or complete) everything of ``spec``; the inventory's hosts, in spec order."""
    from azure.mgmt.compute import models as cmp
    from azure.mgmt.network import models as net
    from azure.mgmt.resource.resources import models as res

    rg, loc, tags = spec.resource_group, spec.location, spec.all_tags()
    step = "resource group"
    try:
        _lab_group(clients, spec)
        clients.resource.resource_groups.create_or_update(
            rg, res.ResourceGroup(location=loc, tags=tags)
        )
        log(f"resource group {rg} ({loc})")
        step = "network security group"
        nsg = clients.network.network_security_groups.begin_create_or_update(
            rg, f"{spec.name}-nsg", _nsg_body(spec, tags)
        ).result()
        step = "virtual network"
        vnet = clients.network.virtual_networks.begin_create_or_update(
            rg,
            f"{spec.name}-vnet",
            net.VirtualNetwork(
                location=loc,
                tags=tags,
                address_space=net.AddressSpace(address_prefixes=[spec.network.address_space]),
                subnets=[
                    net.Subnet(
                        name="hosts",
                        address_prefix=spec.network.subnet,
                        network_security_group=net.NetworkSecurityGroup(id=nsg.id),
                    )
                ],
            ),
        ).result()
        subnet_id = vnet.subnets[0].id
        log(f"network {vnet.name}: subnet {spec.network.subnet}, SSH from {spec.controller()}")
        step = "proximity placement group"
        ppg = clients.compute.proximity_placement_groups.create_or_update(
            rg, f"{spec.name}-ppg", cmp.ProximityPlacementGroup(location=loc, tags=tags)
        )
        pollers = []
        for name, group in spec.vm_names():
            step = f"VM {name}"
            existing = _existing_vm(clients, rg, name)
            if existing is not None:
                log(f"{name}: exists ({existing.hardware_profile.vm_size}), left as it is")
                pollers.append((name, group, None))
                continue
            nic = _nic(clients, spec, name, group, subnet_id, tags)
            body = _vm_body(spec, name, group, nic.id, ppg.id, tags)
            pollers.append(
                (
                    name,
                    group,
                    clients.compute.virtual_machines.begin_create_or_update(rg, name, body),
                )
            )
            log(f"{name}: creating {group.size} ({group.role})")
        hosts = []
        for name, group, poller in pollers:
            step = f"VM {name}"
            vm = poller.result() if poller else clients.compute.virtual_machines.get(rg, name)
            hosts.append(_host(clients, spec, vm, group))
            log(f"{name}: {vm.provisioning_state}")
    except AzureError as exc:
        raise _refusal(step, exc) from None
    if wait_ssh and spec.ssh.wait_s > 0:
        for host in hosts:
            wait_for_port(host["address"], 22, spec.ssh.wait_s)
    return hosts


def deprovision(clients: Clients, spec: ProvisionSpec, log: Any = print) -> bool:
    """Delete the spec's resource group if the lab made it; False when there was none."""
    try:
        if _lab_group(clients, spec) is None:
            log(f"resource group {spec.resource_group}: does not exist, nothing to delete")
            return False
        clients.resource.resource_groups.begin_delete(spec.resource_group).result()
    except AzureError as exc:
        raise _refusal(f"deleting resource group {spec.resource_group}", exc) from None
    log(f"resource group {spec.resource_group}: deleted with everything in it")
    return True


def _existing_vm(clients: Clients, rg: str, name: str) -> Any | None:
    try:
        vm = clients.compute.virtual_machines.get(rg, name)
    except ResourceNotFoundError:
        return None
    return vm if vm.provisioning_state == "Succeeded" else None


def _nsg_body(spec: ProvisionSpec, tags: dict[str, str]) -> Any:
    from azure.mgmt.network import models as net

    return net.NetworkSecurityGroup(
        location=spec.location,
        tags=tags,
        security_rules=[
            net.SecurityRule(
                name="ssh-from-controller",
                priority=100,
                direction="Inbound",
                access="Allow",
                protocol="Tcp",
                source_address_prefix=spec.controller(),
                source_port_range="*",
                destination_address_prefix="*",
                destination_port_range="22",
            )
        ],
    )


def _nic(
    clients: Clients, spec: ProvisionSpec, name: str, group: Any, subnet_id: str, tags: dict
) -> Any:
    from azure.mgmt.network import models as net

    rg, loc = spec.resource_group, spec.location
    config = net.NetworkInterfaceIPConfiguration(name="ipconfig", subnet=net.Subnet(id=subnet_id))
    if spec.public_ip:
        ip = clients.network.public_ip_addresses.begin_create_or_update(
            rg,
            f"{name}-ip",
            net.PublicIPAddress(
                location=loc,
                tags=tags,
                sku=net.PublicIPAddressSku(name="Standard"),
                public_ip_allocation_method="Static",
            ),
        ).result()
        config.public_ip_address = net.PublicIPAddress(id=ip.id, delete_option="Delete")
    return clients.network.network_interfaces.begin_create_or_update(
        rg,
        f"{name}-nic",
        net.NetworkInterface(
            location=loc,
            tags=tags,
            enable_accelerated_networking=group.accelerated_networking,
            ip_configurations=[config],
        ),
    ).result()


def _vm_body(
    spec: ProvisionSpec, name: str, group: Any, nic_id: str, ppg_id: str, tags: dict
) -> Any:
    from azure.mgmt.compute import models as cmp

    user, image = spec.ssh.user, spec.image
    key = cmp.SshPublicKey(
        path=f"/home/{user}/.ssh/authorized_keys", key_data=spec.ssh.public_key()
    )
    return cmp.VirtualMachine(
        location=spec.location,
        tags={**tags, "lab-role": group.role},
        hardware_profile=cmp.HardwareProfile(vm_size=group.size),
        proximity_placement_group=cmp.SubResource(id=ppg_id),
        storage_profile=cmp.StorageProfile(
            image_reference=cmp.ImageReference(
                publisher=image.publisher, offer=image.offer, sku=image.sku, version=image.version
            ),
            os_disk=cmp.OSDisk(
                create_option="FromImage",
                delete_option="Delete",
                managed_disk=cmp.ManagedDiskParameters(storage_account_type="Premium_LRS"),
            ),
        ),
        os_profile=cmp.OSProfile(
            computer_name=name,
            admin_username=user,
            linux_configuration=cmp.LinuxConfiguration(
                disable_password_authentication=True, ssh=cmp.SshConfiguration(public_keys=[key])
            ),
        ),
        network_profile=cmp.NetworkProfile(
            network_interfaces=[
                cmp.NetworkInterfaceReference(id=nic_id, primary=True, delete_option="Delete")
            ]
        ),
    )


def _host(clients: Clients, spec: ProvisionSpec, vm: Any, group: Any) -> dict[str, Any]:
    """One inventory host, with the facts Azure reports about it."""
    rg = spec.resource_group
    nic = clients.network.network_interfaces.get(rg, f"{vm.name}-nic")
    private = nic.ip_configurations[0].private_ip_address
    public = None
    if spec.public_ip:
        public = clients.network.public_ip_addresses.get(rg, f"{vm.name}-ip").ip_address
    return {
        "name": vm.name,
        "address": public or private,
        "user": spec.ssh.user,
        "port": 22,
        "key_file": str(spec.ssh.private_key_file),
        "roles": [group.role],
        "facts": {
            "vm_size": vm.hardware_profile.vm_size,
            "vm_id": vm.vm_id,
            "location": vm.location,
            "zones": list(vm.zones or []),
            "provisioning_state": vm.provisioning_state,
            "private_address": private,
            "public_address": public,
            "accelerated_networking": bool(nic.enable_accelerated_networking),
            "image": spec.image.urn,
            "resource_group": rg,
            "proximity_placement_group": f"{spec.name}-ppg",
        },
    }


def wait_for_port(host: str, port: int, timeout_s: float) -> None:
    """Block until ``host:port`` accepts TCP (sshd is up) or raise after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=5):
                return
        except OSError as exc:
            if time.monotonic() >= deadline:
                message = f"{host}:{port}: no SSH after {timeout_s:.0f} s ({exc})"
                raise ProvisionError(message) from None
            time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))


def inventory(spec: ProvisionSpec, hosts: list[dict[str, Any]]) -> dict[str, Any]:
    """The inventory document (the cluster model's shape: name, hosts, endpoints, links)."""
    # endpoints: the cluster model's defaults (port 10000, the emulator's account), so
    # `--target inventory` reads this file as it is
    return {"name": spec.name, "hosts": hosts, "endpoints": {}, "links": []}
