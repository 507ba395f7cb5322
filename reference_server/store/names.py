"""Mapping of container and blob names onto the data root, and the names that cannot map.

A blob name is split on ``/`` into path segments below ``<root>/<account>/<container>/``. Names
that can never be a file path are refused with **400 InvalidResourceName**:

- empty, longer than 1,024 characters, or with a segment longer than 255 UTF-8 bytes;
- an empty segment (leading ``/``, ``a//b``, trailing ``/``), a ``.`` or ``..`` segment;
- a NUL character or anything that is not valid Unicode.

Names that are valid but collide with what is on disk (writing ``a`` while ``a/b`` exists, or
``a/b`` while the file ``a`` exists) are refused with **400 InvalidPath** by the store at commit.
Reads of a name that cannot map simply find nothing (404), so probes such as AzCopy's HEAD of
``dir/`` behave as on Azure. None of these checks lets a name escape the container directory:
every segment is a plain file name.
"""

from __future__ import annotations

import hashlib
import re

from reference_server.addressing import ROOT_CONTAINER
from reference_server.errors import StorageError

MAX_BLOB_NAME = 1024
MAX_SEGMENT_BYTES = 255
_CONTAINER_RE = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")
# Azure's system containers: addressable (404 ContainerNotFound while absent, not 400), though
# not valid names otherwise. $root and $web are made by clients; $logs (Storage Analytics) and
# $blobchangefeed (change feed) only by the service, which the façade is not (create: 400).
SYSTEM_CONTAINERS = frozenset({ROOT_CONTAINER, "$web", "$logs", "$blobchangefeed"})
CLIENT_CREATED_SYSTEM_CONTAINERS = frozenset({ROOT_CONTAINER, "$web"})


def check_container_name(name: str) -> None:
    """3-63 chars of ``[a-z0-9-]``, starting and ending alphanumeric, no ``--``; or one of the
    system containers."""
    if name not in SYSTEM_CONTAINERS and not _CONTAINER_RE.match(name):
        raise StorageError("InvalidResourceName", f"The container name {name!r} is invalid.")


def check_creatable_container_name(name: str) -> None:
    """Create Container's rule: a valid name, and no system container the service makes."""
    check_container_name(name)
    if name in SYSTEM_CONTAINERS and name not in CLIENT_CREATED_SYSTEM_CONTAINERS:
        raise StorageError(
            "InvalidResourceName", f"The container {name!r} is made by the service, not clients."
        )


def blob_segments(name: str) -> list[str]:
    """The path segments of a blob name, or InvalidResourceName when it cannot be a file path."""
    problem = name_problem(name)
    if problem:
        raise StorageError("InvalidResourceName", f"The blob name cannot map to a file: {problem}.")
    return name.split("/")


def name_problem(name: str) -> str | None:
    """Why a blob name cannot be a file path, or None when it can."""
    if not name:
        return "empty name"
    if len(name) > MAX_BLOB_NAME:
        return "longer than 1,024 characters"
    if "\x00" in name:
        return "NUL character"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid Unicode"
    for seg in name.split("/"):
        if seg == "":
            return "empty path segment (leading, trailing or doubled '/')"
        if seg in (".", ".."):
            return f"'{seg}' path segment"
        if len(seg.encode("utf-8")) > MAX_SEGMENT_BYTES:
            return "path segment longer than 255 bytes"
    return None


def name_hash(name: str) -> str:
    """Stable key of a blob name for sidecar and block-staging paths (flat, collision-free)."""
    return hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()
