"""`harness deploy`: ship the checkout to each host over SFTP and build its environment there.

The release is a tarball of the tracked files (their working-tree content), unpacked into
``<work_dir>/releases/<revision>``; ``<work_dir>/current`` points at it. A release that is
already there (its ``.deployed`` marker) is left alone: a second deploy does nothing. The
environment: the controller's own interpreter when the host has one at the same path (the lab's
hosts share this machine's file system), else a venv built on the host from the release.
"""

from __future__ import annotations

import hashlib
import shlex
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import paramiko

from harness.cluster import ssh
from harness.cluster.inventory import Host, Inventory
from harness.paths import ROOT

IMPORT_PROBE = "import harness; print(harness.__file__)"


@dataclass
class Release:
    revision: str
    tarball: Path


@dataclass
class Deployed:
    """Where a release lives on one host, and the interpreter that runs it there."""

    host: Host
    work_dir: str  # absolute, on the host
    release_dir: str
    python: str
    changed: bool  # False when the release was already there


def revision(root: Path = ROOT) -> str:
    """HEAD's commit, with a digest of the uncommitted changes of tracked files when any."""
    git = ["git", "-C", str(root)]
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    diff = subprocess.run([*git, "diff", "HEAD"], capture_output=True, check=True).stdout
    rev = head.stdout.strip()[:12]
    return f"{rev}-dirty-{hashlib.sha256(diff).hexdigest()[:8]}" if diff else rev


def build_release(out_dir: Path, root: Path = ROOT) -> Release:
    """The tracked files of ``root`` as ``out_dir/<revision>.tar.gz``."""
    rev = revision(root)
    files = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-z"], capture_output=True, check=True
    ).stdout.split(b"\0")
    tarball = out_dir / f"{rev}.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        for name in filter(None, files):
            path = root / name.decode()
            if path.is_file():  # a tracked file deleted in the working tree is not shipped
                tar.add(path, arcname=name.decode(), recursive=False)
    return Release(rev, tarball)


def _q(text: str) -> str:
    return shlex.quote(text)


def _must(client: paramiko.SSHClient, host: Host, command: str, timeout: float = 600) -> str:
    result = ssh.run(client, command, timeout=timeout)
    if result.exit_code != 0:
        detail = (result.stderr or result.stdout).strip()[-1500:]
        raise ssh.HostError(f"{ssh.where(host)}: `{command[:80]}` failed: {detail}")
    return result.stdout


def work_dir(client: paramiko.SSHClient, host: Host) -> str:
    """The host's work directory, absolute (a relative one is under the user's home)."""
    wd = host.work_dir if host.work_dir.startswith("/") else f"$HOME/{host.work_dir}"
    return _must(client, host, f'mkdir -p "{wd}" && cd "{wd}" && pwd').strip()


def deploy_host(client: paramiko.SSHClient, host: Host, release: Release) -> Deployed:
    """Ship ``release`` to ``host`` unless it is there already; returns where it is."""
    wd = work_dir(client, host)
    rel = f"{wd}/releases/{release.revision}"
    marker = ssh.run(client, f"cat {_q(rel)}/.deployed 2>/dev/null")
    if marker.exit_code == 0 and marker.stdout.strip():
        return Deployed(host, wd, rel, marker.stdout.strip(), changed=False)
    _must(client, host, f"rm -rf {_q(rel)} && mkdir -p {_q(rel)}")
    remote_tar = f"{wd}/releases/{release.revision}.tar.gz"
    ssh.put(client, release.tarball, remote_tar)
    _must(client, host, f"tar -xzf {_q(remote_tar)} -C {_q(rel)} && rm -f {_q(remote_tar)}")
    # The controller's interpreter, when the host has it at the same path, already holds every
    # dependency; elsewhere the release builds its own venv (which needs the host's registry).
    here = sys.executable
    if ssh.run(client, f"test -x {_q(here)}").exit_code == 0:
        python = here
    else:
        python = f"{rel}/.venv/bin/python"
        _must(client, host, f"cd {_q(rel)} && python3 -m venv .venv && .venv/bin/pip install -q .")
    # the release's own packages must be the ones imported there, not the controller's
    probe = _must(
        client, host, f"cd {_q(rel)} && {_q(python)} -c 'import harness; print(harness.__file__)'"
    )
    if not probe.strip().startswith(rel):
        raise ssh.HostError(f"{ssh.where(host)}: the release imports {probe.strip()}, not {rel}")
    _must(
        client,
        host,
        f"echo {_q(python)} > {_q(rel)}/.deployed && ln -sfn {_q(rel)} {_q(wd)}/current",
    )
    return Deployed(host, wd, rel, python, changed=True)


def deploy(inv: Inventory, hosts: list[Host] | None = None) -> tuple[list[Deployed], list[str]]:
    """Deploy the checkout to ``hosts`` (default: every host); (deployed, one error per host)."""
    done: list[Deployed] = []
    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="blob-facade-lab-release-") as tmp:
        release = build_release(Path(tmp))
        for host in hosts if hosts is not None else inv.hosts:
            try:
                client = ssh.connect(inv, host)
            except ssh.HostError as exc:
                errors.append(str(exc))
                continue
            try:
                done.append(deploy_host(client, host, release))
            except (ssh.HostError, paramiko.SSHException, OSError) as exc:
                errors.append(f"{ssh.where(host)}: {exc}")
            finally:
                client.close()
    return done, errors
