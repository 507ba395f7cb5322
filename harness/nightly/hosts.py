"""The night's hosts when `harness lab up` stands in for the provisioned VMs.

Provisioning still runs (against the Resource Manager endpoint given: the fake ARM in CI), and
its inventory is kept as ``provisioned.yaml``; the hosts the night runs on are the lab's. Each
provisioned host is mapped onto the next lab host that has its role, in the provisioned order:
the lab host keeps its name, address, key and work directory, and takes the provisioned host's
facts (``vm_size``, ``vm_id``, ...) plus ``provisioned_as`` (the VM's name). Provisioned hosts
left without a lab host are named in the message; lab hosts left over keep their own facts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.cluster.inventory import from_file


def map_onto_lab(
    provisioned: dict[str, Any], lab_inventory: Path, out: Path
) -> tuple[list[dict[str, Any]], str]:
    """Write the lab's inventory to ``out`` with the provisioned hosts' facts on the lab hosts
    standing in for them; the mapping as (provisioned name, lab name) rows and a message."""
    inv = from_file(lab_inventory)
    free = list(inv.hosts)
    pairs: list[dict[str, Any]] = []
    unmapped: list[str] = []
    for vm in provisioned.get("hosts") or []:
        roles = set(vm.get("roles") or [])
        host = next((h for h in free if roles & set(h.roles)), None)
        if host is None:
            unmapped.append(vm["name"])
            continue
        free.remove(host)
        host.facts = {**host.facts, **(vm.get("facts") or {}), "provisioned_as": vm["name"]}
        pairs.append({"provisioned": vm["name"], "lab": host.name, "address": host.address})
    # The copy lives in the night's directory: the lab's relative paths are made absolute.
    for host in inv.hosts:
        host.key_file = inv.path(host.key_file)
    inv.known_hosts = inv.path(inv.known_hosts)
    for credential in inv.credentials.values():
        credential.file = inv.path(credential.file)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(inv.model_dump(mode="json"), sort_keys=False))
    message = ", ".join(f"{p['provisioned']} → {p['lab']} ({p['address']})" for p in pairs)
    if unmapped:
        message += f"; no lab host for {', '.join(unmapped)}"
    return pairs, f"lab hosts of {lab_inventory}: {message or 'none mapped'}"
