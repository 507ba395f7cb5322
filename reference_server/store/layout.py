"""Where everything lives under the data root: containers are directories, committed blobs are
regular files.

Layout under the data root (hidden names start with a dot, which no account name can)::

    <root>/<account>/<container>/<blob path>         the namespace: blob bytes, byte for byte
                                                      (+ xattr user.blobfacade.props: properties)
    <root>/.blobmeta/<account>/service-properties.xml
    <root>/.blobmeta/<account>/<container>/container.json
    <root>/.blobmeta/<account>/<container>/blobs/<hh>/<sha256(name)>.json   large records
    <root>/.blobmeta/<account>/<container>/locks/<hh>.lock                  commit locks
    <root>/.blocks/<account>/<container>/<sha256(name)>/<hex block id>     uncommitted blocks
                                                      (+ xattr user.blobfacade.name: the name)
    <root>/.staging/                                  temp files and trash (same filesystem)
    <root>/.copyjobs/<copy id>.json                   asynchronous copy journals (copy/jobs.py)
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from reference_server.errors import StorageError
from reference_server.store.names import check_container_name, name_problem

STAGED_NAME_XATTR = "user.blobfacade.name"


def is_container_name(name: str) -> bool:
    """Only directories a request can address are containers (not ``Tmp``, ``a b``, ...)."""
    try:
        check_container_name(name)
    except StorageError:
        return False
    return True


class Layout:
    """Paths of one data root; makes the root, the staging dir and the account dirs."""

    def __init__(self, root: Path | str, accounts: list[str]) -> None:
        self.root = str(Path(root).resolve())
        self.staging = os.path.join(self.root, ".staging")
        self.blocks_root = os.path.join(self.root, ".blocks")
        os.makedirs(self.staging, exist_ok=True)
        for acct in accounts:
            os.makedirs(os.path.join(self.root, acct), exist_ok=True)

    def account_dir(self, acct: str) -> str:
        return os.path.join(self.root, acct)

    def container_dir(self, acct: str, ct: str) -> str:
        return os.path.join(self.root, acct, ct)

    def meta_dir(self, acct: str, ct: str) -> str:
        return os.path.join(self.root, ".blobmeta", acct, ct)

    def service_record(self, acct: str) -> str:
        return os.path.join(self.root, ".blobmeta", acct, "service-properties.xml")

    def container_record(self, acct: str, ct: str) -> str:
        return os.path.join(self.meta_dir(acct, ct), "container.json")

    def sidecars_dir(self, acct: str, ct: str) -> str:
        return os.path.join(self.meta_dir(acct, ct), "blobs")

    def sidecar(self, acct: str, ct: str, h: str) -> str:
        return os.path.join(self.sidecars_dir(acct, ct), h[:2], h + ".json")

    def lock_file(self, acct: str, ct: str, h: str) -> str:
        return os.path.join(self.meta_dir(acct, ct), "locks", h[:2] + ".lock")

    def container_blocks(self, acct: str, ct: str) -> str:
        return os.path.join(self.blocks_root, acct, ct)

    def blocks_dir(self, acct: str, ct: str, h: str) -> str:
        return os.path.join(self.blocks_root, acct, ct, h)

    def name_blocks_dir(self, d: str, name: str) -> None:
        """Note the blob name on its staging dir (a hash cannot be listed by name). Without
        user xattrs the blob's blocks still commit; only include=uncommittedblobs misses it."""
        with contextlib.suppress(OSError):
            os.setxattr(d, STAGED_NAME_XATTR, name.encode("utf-8", "surrogateescape"))

    def blocks_dir_name(self, d: str) -> str | None:
        """The blob name noted on a staging dir, or None."""
        try:
            return os.getxattr(d, STAGED_NAME_XATTR).decode("utf-8", "surrogateescape")
        except OSError:
            return None

    def existing_path(self, acct: str, ct: str, name: str) -> str | None:
        """The file path of a blob name, or None for a name that cannot map (reads find
        nothing: 404, as AzCopy's HEAD of ``dir/`` expects)."""
        if name_problem(name):
            return None
        return os.path.join(self.container_dir(acct, ct), *name.split("/"))

    def require_container(self, acct: str, ct: str) -> str:
        """The container's directory; InvalidResourceName or ContainerNotFound."""
        check_container_name(ct)
        path = self.container_dir(acct, ct)
        if not os.path.isdir(path):
            raise StorageError("ContainerNotFound")
        return path


def ensure_parent(ct_dir: str, segments: list[str]) -> None:
    """Make the directories a blob path needs; InvalidPath where a blob file sits instead."""
    parent = ct_dir
    for seg in segments[:-1]:
        parent = os.path.join(parent, seg)
        try:
            os.mkdir(parent)
        except FileExistsError:
            if not os.path.isdir(parent):
                raise StorageError(
                    "InvalidPath",
                    f"A blob named {os.path.relpath(parent, ct_dir)!r} exists, "
                    "so no blob can be stored below it.",
                ) from None
