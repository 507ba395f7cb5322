"""The one routing table: (resource, method, restype, comp) -> handler and the access it needs.

Reading ``ROUTES`` tells the whole API surface. Routes are tried in order; a route with
``requires`` matches only when those headers are present, ``forbids`` only when they are absent
(this is how the server-side copy operations are told apart from plain Put Blob / Put Block).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from reference_server.errors import StorageError
from reference_server.handlers import blob, block, container, copy, service
from reference_server.handlers.common import Ctx

Handler = Callable[[Ctx], Awaitable[web.StreamResponse]]
ANY = "*"


@dataclass(frozen=True)
class Route:
    resource: str  # "service", "container", "blob" or ANY
    method: str
    restype: str | None
    comp: str | None
    handler: Handler
    permission: str  # SAS permission letter the operation needs
    resource_type: str  # account SAS srt letter: s service, c container, o object
    requires: tuple[str, ...] = ()
    forbids: tuple[str, ...] = ()


R = Route
COPY = ("x-ms-copy-source",)
ROUTES: tuple[Route, ...] = (
    # Get Account Information answers on service, container and blob URLs alike.
    R(ANY, "GET", "account", "properties", service.get_account_info, "r", "s"),
    R(ANY, "HEAD", "account", "properties", service.get_account_info, "r", "s"),
    # service
    R("service", "GET", None, "list", service.list_containers, "l", "s"),
    R("service", "GET", "service", "properties", service.get_service_properties, "r", "s"),
    R("service", "PUT", "service", "properties", service.set_service_properties, "w", "s"),
    # container
    R("container", "PUT", "container", None, container.create_container, "c", "c"),
    R("container", "DELETE", "container", None, container.delete_container, "d", "c"),
    R("container", "GET", "container", None, container.get_container_properties, "r", "c"),
    R("container", "HEAD", "container", None, container.get_container_properties, "r", "c"),
    R("container", "GET", "container", "metadata", container.get_container_properties, "r", "c"),
    R("container", "HEAD", "container", "metadata", container.get_container_properties, "r", "c"),
    R("container", "PUT", "container", "metadata", container.set_container_metadata, "w", "c"),
    R("container", "GET", "container", "list", container.list_blobs, "l", "c"),
    # server-side copy (handlers/copy.py)
    R("blob", "PUT", None, "block", copy.put_block_from_url, "w", "o", requires=COPY),
    R(
        "blob",
        "PUT",
        None,
        None,
        copy.put_blob_from_url,
        "w",
        "o",
        requires=(*COPY, "x-ms-blob-type"),
    ),
    R("blob", "PUT", None, None, copy.copy_blob, "w", "o", requires=COPY),
    R("blob", "PUT", None, "copy", copy.abort_copy, "w", "o"),
    # blob
    R("blob", "PUT", None, None, blob.put_blob, "w", "o"),
    R("blob", "GET", None, None, blob.get_blob, "r", "o"),
    R("blob", "HEAD", None, None, blob.get_blob_properties, "r", "o"),
    R("blob", "PUT", None, "properties", blob.set_blob_properties, "w", "o"),
    R("blob", "GET", None, "metadata", blob.get_blob_metadata, "r", "o"),
    R("blob", "HEAD", None, "metadata", blob.get_blob_metadata, "r", "o"),
    R("blob", "PUT", None, "metadata", blob.set_blob_metadata, "w", "o"),
    R("blob", "DELETE", None, None, blob.delete_blob, "d", "o"),
    # blocks
    R("blob", "PUT", None, "block", block.put_block, "w", "o"),
    R("blob", "PUT", None, "blocklist", block.put_block_list, "w", "o"),
    R("blob", "GET", None, "blocklist", block.get_block_list, "r", "o"),
)

_KNOWN_METHODS = {"GET", "HEAD", "PUT", "DELETE", "POST", "OPTIONS"}


def match(
    resource: str, method: str, restype: str | None, comp: str | None, headers: dict | object
) -> Route:
    """The route for a request, or the Azure error for a request no route serves."""
    for route in ROUTES:
        if (
            route.resource in (resource, ANY)
            and route.method == method
            and route.restype == restype
            and route.comp == comp
            and all(h in headers for h in route.requires)  # type: ignore[operator]
            and not any(h in headers for h in route.forbids)  # type: ignore[operator]
        ):
            return route
    if method not in _KNOWN_METHODS:
        raise StorageError("UnsupportedHttpVerb")
    if resource == "container" and restype is None:
        raise StorageError("InvalidUri", "Container requests need restype=container.")
    if resource == "service" and restype is None and comp is None:
        raise StorageError("InvalidUri", "The requested URI does not name a container.")
    raise StorageError(
        "NotImplemented", f"{method} with restype={restype} comp={comp} on a {resource}."
    )
