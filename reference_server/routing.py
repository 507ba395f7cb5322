"""The one routing table: (resource, method, restype, comp) -> handler and the access it needs.

Reading ``ROUTES`` tells the whole API surface. Routes are tried in order; a route with
``requires`` matches only when those headers are present, ``forbids`` only when they are absent
(this is how the server-side copy operations are told apart from plain Put Blob / Put Block).

The access columns follow Azure's SAS tables ("Create an account SAS", "Create a service SAS"):
``permission`` holds the sp letters of which any one suffices ("" = any signed permission),
``resource_type`` the account SAS srt letters of which any one suffices, ``service_sas`` the
signed resources (sr) of a service SAS that may authorize the operation. A service SAS never acts
on the service or on the container itself (create, delete, properties, metadata): only an account
SAS or Shared Key can; a container SAS may list its blobs, and blob operations take sr=c or sr=b.
Writes that can create a blob take ``c`` as well as ``w``; authorized by ``c`` alone they may not
replace an existing blob (403 AuthorizationPermissionMismatch, decided under the commit lock:
``Conditions.create_only``).
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
    permission: str  # SAS permission letters, any one suffices; "" = any signed permission
    resource_type: str  # account SAS srt letters, any one suffices: s, c (container), o (object)
    service_sas: tuple[str, ...]  # service SAS signed resources (sr) allowed; () = none
    requires: tuple[str, ...] = ()
    forbids: tuple[str, ...] = ()


R = Route
COPY = ("x-ms-copy-source",)
NO_SVC: tuple[str, ...] = ()  # service SAS refused (service and container operations)
CT_SVC = ("c",)  # container SAS only (List Blobs)
OBJ_SVC = ("c", "b")  # container or blob SAS (blob operations)
ROUTES: tuple[Route, ...] = (
    # Get Account Information answers on service, container and blob URLs alike.
    # Azure answers it to any valid SAS (even srt=co&sp=wd on a container URL): it reveals only the
    # SKU and account kind.
    R(ANY, "GET", "account", "properties", service.get_account_info, "", "sco", OBJ_SVC),
    R(ANY, "HEAD", "account", "properties", service.get_account_info, "", "sco", OBJ_SVC),
    # service
    R("service", "GET", None, "list", service.list_containers, "l", "s", NO_SVC),
    R("service", "GET", "service", "properties", service.get_service_properties, "r", "s", NO_SVC),
    R("service", "PUT", "service", "properties", service.set_service_properties, "w", "s", NO_SVC),
    # bearer callers with a role at account scope; the handler refuses every other scheme
    R(
        "service",
        "POST",
        "service",
        "userdelegationkey",
        service.get_user_delegation_key,
        "",
        "s",
        NO_SVC,
    ),
    # container
    R("container", "PUT", "container", None, container.create_container, "cw", "c", NO_SVC),
    R("container", "DELETE", "container", None, container.delete_container, "d", "c", NO_SVC),
    R("container", "GET", "container", None, container.get_container_properties, "r", "c", NO_SVC),
    R("container", "HEAD", "container", None, container.get_container_properties, "r", "c", NO_SVC),
    R(
        "container",
        "GET",
        "container",
        "metadata",
        container.get_container_properties,
        "r",
        "c",
        NO_SVC,
    ),
    R(
        "container",
        "HEAD",
        "container",
        "metadata",
        container.get_container_properties,
        "r",
        "c",
        NO_SVC,
    ),
    R(
        "container",
        "PUT",
        "container",
        "metadata",
        container.set_container_metadata,
        "w",
        "c",
        NO_SVC,
    ),
    R("container", "GET", "container", "list", container.list_blobs, "l", "c", CT_SVC),
    # server-side copy (handlers/copy.py)
    R("blob", "PUT", None, "block", copy.put_block_from_url, "w", "o", OBJ_SVC, requires=COPY),
    R(
        "blob",
        "PUT",
        None,
        None,
        copy.put_blob_from_url,
        "cw",
        "o",
        OBJ_SVC,
        requires=(*COPY, "x-ms-blob-type"),
    ),
    R("blob", "PUT", None, None, copy.copy_blob, "cw", "o", OBJ_SVC, requires=COPY),
    R("blob", "PUT", None, "copy", copy.abort_copy, "w", "o", OBJ_SVC),
    # blob
    R("blob", "PUT", None, None, blob.put_blob, "cw", "o", OBJ_SVC),
    R("blob", "GET", None, None, blob.get_blob, "r", "o", OBJ_SVC),
    R("blob", "HEAD", None, None, blob.get_blob_properties, "r", "o", OBJ_SVC),
    R("blob", "PUT", None, "properties", blob.set_blob_properties, "w", "o", OBJ_SVC),
    R("blob", "GET", None, "metadata", blob.get_blob_metadata, "r", "o", OBJ_SVC),
    R("blob", "HEAD", None, "metadata", blob.get_blob_metadata, "r", "o", OBJ_SVC),
    R("blob", "PUT", None, "metadata", blob.set_blob_metadata, "w", "o", OBJ_SVC),
    R("blob", "DELETE", None, None, blob.delete_blob, "d", "o", OBJ_SVC),
    # blocks
    R("blob", "PUT", None, "block", block.put_block, "w", "o", OBJ_SVC),
    R("blob", "PUT", None, "blocklist", block.put_block_list, "cw", "o", OBJ_SVC),
    R("blob", "GET", None, "blocklist", block.get_block_list, "r", "o", OBJ_SVC),
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
    if resource == "service" and restype == "service" and comp == "stats":
        # Get Blob Service Stats exists only on the <account>-secondary endpoint of an RA-GRS
        # account (REST "Get Blob Service Stats"); the façade has no secondary, so every request
        # reaches a primary, which Azure (and Azurite's ServiceHandler.getStatistics) refuses
        # with 400 InvalidQueryParameterValue rather than 501.
        raise StorageError(
            "InvalidQueryParameterValue",
            "Get Blob Service Stats is served only on the secondary endpoint of an RA-GRS account.",
            details={"QueryParameterName": "comp", "QueryParameterValue": "stats"},
        )
    raise StorageError(
        "NotImplemented", f"{method} with restype={restype} comp={comp} on a {resource}."
    )
