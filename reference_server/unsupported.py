"""Features outside the façade contract that a request can still name: snapshots, versions, leases.

Ignoring them would act on the base blob instead (``DELETE ?snapshot=T`` deleting the blob
itself, ``x-ms-lease-id`` accepted as if a lease had been checked), so such requests are refused
before routing, authorization or any handler runs, and touch nothing:

- ``snapshot`` or ``versionid`` in the query, any method: 400 InvalidQueryParameterValue. No
  snapshot or version exists here, and none can be created (Snapshot Blob answers 501).
- ``x-ms-lease-id``: 412 LeaseNotPresentWithBlobOperation (LeaseNotPresentWithContainerOperation
  on a container), what Azure answers for a lease id on a resource without a lease; and no lease
  can be taken here.
- ``comp=lease``: 400 InvalidQueryParameterValue; the other lease headers (action, duration, break
  period, proposed id, source lease id): 400 UnsupportedHeader.
- ``x-ms-delete-snapshots: only`` (delete the snapshots, keep the blob): 400 InvalidHeaderValue;
  ``include`` deletes the blob, which has no snapshots, and is served.
- a copy source (``x-ms-copy-source``) naming a snapshot or version: 400 InvalidHeaderValue; a
  source on this façade would otherwise be read from the base blob.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl, urlsplit

from reference_server.errors import StorageError

VERSIONED_QUERY = ("snapshot", "versionid")
LEASE_HEADERS = (
    "x-ms-lease-action",
    "x-ms-lease-duration",
    "x-ms-lease-break-period",
    "x-ms-proposed-lease-id",
    "x-ms-source-lease-id",
)


def refuse(level: str, query: Mapping[str, str], headers: Mapping[str, str]) -> None:
    """Raise the StorageError for a request naming a snapshot, a version or a lease; ``level`` is
    "service", "container" or "blob"."""
    for name, value in query.items():
        if name.lower() in VERSIONED_QUERY:
            raise StorageError(
                "InvalidQueryParameterValue",
                "Blob snapshots and versions are not supported by this service.",
                details={"QueryParameterName": name, "QueryParameterValue": value},
            )
    if (query.get("comp") or "").lower() == "lease":
        raise StorageError(
            "InvalidQueryParameterValue",
            "Leases are not supported by this service.",
            details={"QueryParameterName": "comp", "QueryParameterValue": "lease"},
        )
    if "x-ms-lease-id" in headers:
        if level == "container":
            raise StorageError("LeaseNotPresentWithContainerOperation")
        raise StorageError("LeaseNotPresentWithBlobOperation")
    for name in LEASE_HEADERS:
        if name in headers:
            raise StorageError(
                "UnsupportedHeader",
                "Leases are not supported by this service.",
                details={"HeaderName": name},
            )
    source = headers.get("x-ms-copy-source")
    if source and any(name.lower() in VERSIONED_QUERY for name in _query_names(source)):
        raise StorageError(
            "InvalidHeaderValue",
            "Copying from a blob snapshot or version is not supported by this service.",
            details={"HeaderName": "x-ms-copy-source"},
        )
    if (headers.get("x-ms-delete-snapshots") or "").strip().lower() == "only":
        raise StorageError(
            "InvalidHeaderValue",
            "Blob snapshots are not supported by this service: there are none to delete.",
            details={"HeaderName": "x-ms-delete-snapshots", "HeaderValue": "only"},
        )


def _query_names(url: str) -> list[str]:
    try:
        query = urlsplit(url.strip()).query
    except ValueError:  # e.g. "http://[::1/x": the copy handler answers for the source itself
        return []
    return [name for name, _ in parse_qsl(query, keep_blank_values=True)]
