"""The lab's own hosts: network namespaces on this machine, each running a real OpenSSH sshd.

`up` makes a bridge (PREFIX-br) holding 10.213.L.1/24 in the root namespace and, per host, a
namespace PREFIX-hN joined to it by a veth pair, with the address 10.213.L.(10+N). That range
exists only on the bridge and inside these namespaces: nothing else is ever addressed. L is the
lab number (``HARNESS_LAB_ID``, default 0, prefix ``bflab``; lab L > 0 has prefix ``bflabL``), so
several labs can coexist on one machine without touching each other. Every
resource is written to the state file before it is made, so `down` undoes a crashed `up`;
`down` also removes whatever still carries the prefix.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml


class LabError(RuntimeError):
    """The lab cannot be made here (no namespaces, no sshd, not root), with the reason."""


LAB_ID_ENV = "HARNESS_LAB_ID"


def lab_id() -> int:
    """The lab number chosen by the environment (0..250)."""
    raw = os.environ.get(LAB_ID_ENV, "0").strip() or "0"
    if not raw.isdigit() or not 0 <= int(raw) <= 250:
        raise LabError(f"{LAB_ID_ENV}={raw!r}: expected a number from 0 to 250")
    return int(raw)


def prefix_for(lab: int) -> str:
    return "bflab" if lab == 0 else f"bflab{lab}"


def subnet_for(lab: int) -> str:
    return f"10.213.{lab}"  # /24, only on the lab bridge and inside its namespaces


def _lab_id_or_default() -> int:
    # a bad value is reported by `lab up` (LabError); importing never fails on it
    try:
        return lab_id()
    except LabError:
        return 0


PREFIX = prefix_for(_lab_id_or_default())
SUBNET = subnet_for(_lab_id_or_default())
BRIDGE_ADDRESS = f"{SUBNET}.1"
SSHD = Path("/usr/sbin/sshd")
STATE_FILE = "lab.json"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def unsupported_reason() -> str | None:
    """Why the lab cannot run on this machine, or None when it can."""
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces and veth pairs)"
    if not Path("/proc/self/ns/net").exists():
        return "the kernel has no network namespaces"
    if not SSHD.exists():
        return (
            f"{SSHD} is missing: install Debian's openssh-server "
            "(`bash harness/bootstrap.sh test` installs it)"
        )
    probe = f"{PREFIX}-probe"
    made = _ip("netns", "add", probe, check=False)
    _ip("netns", "del", probe, check=False)
    if made.returncode != 0:
        return f"cannot make a network namespace: {made.stderr.strip()}"
    return None


def host_address(n: int) -> str:
    return f"{SUBNET}.{10 + n}"


class Lab:
    def __init__(self, directory: Path) -> None:
        self.dir = directory.resolve()
        self.state_path = self.dir / STATE_FILE

    def _state(self) -> dict[str, Any]:
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {"namespaces": [], "links": [], "pids": []}

    def _record(self, state: dict[str, Any], kind: str, value: Any) -> None:
        # written before the resource is made: a crash leaves nothing unrecorded
        state[kind].append(value)
        self.state_path.write_text(json.dumps(state, indent=1))

    def up(
        self,
        hosts: int,
        roles: list[list[str]] | None = None,
        links: list[dict[str, Any]] | None = None,
    ) -> Path:
        """Make ``hosts`` namespaces with sshd; returns the inventory path. ``roles`` gives each
        host's roles (default: the first half serve, the rest are clients and load); ``links``
        go into the inventory as they are (``harness.cluster.links`` shapes them)."""
        lab_id()  # a malformed HARNESS_LAB_ID is refused here, with its value
        if roles is not None and len(roles) != hosts:
            raise LabError(f"--roles names {len(roles)} hosts, --hosts is {hosts}")
        reason = unsupported_reason()
        if reason:
            raise LabError(reason)
        if not 1 <= hosts <= 200:
            raise LabError("--hosts is between 1 and 200")
        self.down()  # a lab is made from nothing: leftovers of an earlier one go first
        self.dir.mkdir(parents=True, exist_ok=True)
        state: dict[str, Any] = {"namespaces": [], "links": [], "pids": []}
        key = self.dir / "lab_key"
        _keygen(key)
        bridge = f"{PREFIX}-br"
        self._record(state, "links", bridge)
        _ip("link", "add", bridge, "type", "bridge")
        _ip("addr", "add", f"{BRIDGE_ADDRESS}/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
        known: list[str] = []
        entries = []
        for n in range(1, hosts + 1):
            name, addr = f"h{n}", host_address(n)
            ns, veth = f"{PREFIX}-{name}", f"{PREFIX}-v{n}"
            home = self.dir / "hosts" / name
            home.mkdir(parents=True, exist_ok=True)
            self._record(state, "namespaces", ns)
            _ip("netns", "add", ns)
            self._record(state, "links", veth)
            _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("link", "set", veth, "master", bridge, "up")
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            hostkey = home / "ssh_host_ed25519_key"
            _keygen(hostkey)
            config = home / "sshd_config"
            config.write_text(_sshd_config(addr, hostkey, key.with_suffix(".pub"), home))
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, str(SSHD), "-D", "-e", "-f", str(config)],
                stdout=open(home / "sshd.log", "ab"),
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            self._record(state, "pids", proc.pid)
            pub = hostkey.with_suffix(".pub").read_text().split()
            known.append(f"{addr} {pub[0]} {pub[1]}")
            entries.append(
                {
                    "name": name,
                    "address": addr,
                    "user": "root",
                    "port": 22,
                    "key_file": "lab_key",
                    "roles": roles[n - 1] if roles else _roles(n, hosts),
                    "work_dir": str(home / "work"),
                }
            )
        (self.dir / "known_hosts").write_text("\n".join(known) + "\n")
        for entry in entries:
            _wait_listening(entry["address"], self.dir / "hosts" / entry["name"] / "sshd.log")
        inventory = {
            "name": "lab",
            "hosts": entries,
            "endpoints": {"port": 10000, "account": "devstoreaccount1"},
            "known_hosts": "known_hosts",
        }
        if links:
            inventory["links"] = links
        path = self.dir / "inventory.yaml"
        path.write_text(yaml.safe_dump(inventory, sort_keys=False))
        return path

    def down(self) -> list[str]:
        """Remove every namespace, link and sshd of the lab (recorded or carrying the prefix);
        returns what was removed. Safe to repeat."""
        state = self._state()
        removed: list[str] = []
        namespaces = set(state["namespaces"]) | set(_prefixed_namespaces())
        for ns in sorted(namespaces):
            # every process inside one of our namespaces is ours (sshd, the façade, tools)
            pids = _ip("netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                _kill(int(pid))
            if _ip("netns", "del", ns, check=False).returncode == 0:
                removed.append(f"netns {ns}")
        for pid in state["pids"]:
            _kill(pid)
        links = set(state["links"]) | set(_prefixed_links())
        for link in sorted(links, key=lambda name: name.endswith("-br")):  # bridge last
            if _ip("link", "del", link, check=False).returncode == 0:
                removed.append(f"link {link}")
        self.state_path.unlink(missing_ok=True)
        return removed


def _roles(n: int, hosts: int) -> list[str]:
    """The first half of the hosts serve, the rest are clients and load generators (a single
    host does both)."""
    servers = max(1, hosts // 2)
    if hosts == 1:
        return ["server", "client", "load"]
    return ["server"] if n <= servers else ["client", "load"]


def _keygen(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.with_suffix(".pub").unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "blob-facade-lab", "-f", str(path)],
        check=True,
        capture_output=True,
    )


def _sshd_config(addr: str, hostkey: Path, authorized: Path, home: Path) -> str:
    return "\n".join(
        [
            f"ListenAddress {addr}:22",
            f"HostKey {hostkey}",
            f"AuthorizedKeysFile {authorized}",
            f"PidFile {home / 'sshd.pid'}",
            "PermitRootLogin prohibit-password",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",  # the lab directory's modes are the checkout's
            "Subsystem sftp internal-sftp",
            "",
        ]
    )


def _wait_listening(addr: str, log: Path, timeout: float = 15.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((addr, 22), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise LabError(f"sshd on {addr}:22 did not listen within {timeout:g} s:\n{tail}")


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _prefixed_namespaces() -> list[str]:
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(f"{PREFIX}-")]


def _prefixed_links() -> list[str]:
    out = _ip("-o", "link", "show", check=False).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]
    return [name for name in names if name.startswith(f"{PREFIX}-")]
