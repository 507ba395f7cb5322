r"""Which account, container and blob a request addresses, from its Host header and raw path.

- Virtual-host style, when the host is ``<account>.blob.<any domain>`` (AzCopy uses it for every
  host name): ``/container/blob``.
- Path style otherwise (IP addresses, ``localhost``, any other name): ``/account/container/blob``.

The blob name is everything after the container segment, percent-decoded once, so ``/`` may
arrive literally or as ``%2F``. ``+`` stays a plus sign (it is a path, not a form). A backslash,
literal or ``%5C``, is a ``/``: Azure stores ``a\b.txt`` as ``a/b.txt`` (its naming page tells
clients to avoid ``\`` at the end of names; rclone's author found that "Azure converts this to
forward slash"), so such a blob is listed under the prefix ``a/`` and read as ``a/b.txt``.

The root container (REST "Working with the root container"): a single path segment that is not
a container request (no ``restype``) addresses a blob of ``$root``, so ``/acct/page.html`` (path
style) or ``/page.html`` (virtual host) is the blob ``$root/page.html``. Names in ``$root`` cannot
hold a ``/`` (400 InvalidResourceName).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from reference_server.errors import StorageError

ROOT_CONTAINER = "$root"
_VHOST_RE = re.compile(r"^([a-z0-9]{1,64})\.blob\.", re.IGNORECASE)


@dataclass(frozen=True)
class Target:
    account: str
    container: str | None
    blob: str | None
    path_style: bool
    raw_path: str  # the percent-encoded path as sent, without the query

    @property
    def level(self) -> str:
        """ "service", "container" or "blob"."""
        if self.container is None:
            return "service"
        return "container" if self.blob is None else "blob"


def _decode(segment: str) -> str:
    try:
        return unquote(segment, errors="strict")
    except UnicodeDecodeError:
        raise StorageError("InvalidUri", "The path is not valid percent-encoded UTF-8.") from None


def resolve(host: str | None, request_target: str, restype: str | None = None) -> Target:
    """``request_target`` is the raw request line target (origin or absolute form); ``restype``
    the request's, which tells a container request from a blob of the root container."""
    if request_target.startswith(("http://", "https://")):
        parts = urlsplit(request_target)
        host, raw_path = parts.netloc, parts.path or "/"
    else:
        raw_path = request_target.split("?", 1)[0]
    hostname = (host or "").rsplit("@", 1)[-1]
    if hostname.startswith("["):
        hostname = hostname[1 : hostname.find("]")]
    else:
        hostname = hostname.split(":", 1)[0]
    rest = raw_path.lstrip("/")
    match = _VHOST_RE.match(hostname)
    if match:
        account, path_style = match.group(1).lower(), False
    else:
        account, _, rest = rest.partition("/")
        account, path_style = _decode(account), True
        if not account:
            raise StorageError("InvalidUri", "Path-style requests start with /<account>.")
    container_raw, sep, blob_raw = rest.partition("/")
    container = _decode(container_raw) or None
    blob = _decode(blob_raw).replace("\\", "/") if sep and blob_raw else None
    if container and not sep and not restype:
        container, blob = ROOT_CONTAINER, container.replace("\\", "/")
    if container == ROOT_CONTAINER and blob and "/" in blob:
        raise StorageError("InvalidResourceName", "Blobs in the root container cannot hold a '/'.")
    return Target(account, container, blob if container else None, path_style, raw_path)
