"""HTTP conditional headers (If-Match, If-None-Match, If-(Un)Modified-Since), evaluated once.

Parsed by the HTTP layer, evaluated by the store under its per-blob lock for writes (so the check
and the commit are atomic across worker processes) and by handlers for reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from reference_server.errors import StorageError


def parse_http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None  # Azure ignores an unparsable date condition


def parse_etag_list(value: str | None) -> tuple[str, ...] | None:
    """``"a", "b"`` -> ("a", "b"); ``*`` stays ``*``; quotes and W/ are dropped."""
    if value is None:
        return None
    tags = []
    for part in value.split(","):
        tag = part.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        tags.append(tag.strip('"'))
    return tuple(t for t in tags if t)


@dataclass(frozen=True)
class Conditions:
    if_match: tuple[str, ...] | None = None
    if_none_match: tuple[str, ...] | None = None
    if_modified_since: float | None = None
    if_unmodified_since: float | None = None
    # the write may create the blob but not replace one: a SAS whose only permission for it is
    # c (create), checked with the others under the commit lock
    create_only: bool = False

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Conditions:
        return cls(
            parse_etag_list(headers.get("If-Match")),
            parse_etag_list(headers.get("If-None-Match")),
            parse_http_date(headers.get("If-Modified-Since")),
            parse_http_date(headers.get("If-Unmodified-Since")),
        )

    @property
    def empty(self) -> bool:
        return self == Conditions()

    def check_write(
        self, etag: str | None, last_modified: float | None, *, creating: bool = False
    ) -> None:
        """Raise when a write must not happen. ``etag`` None means the blob does not exist."""
        exists = etag is not None
        if self.create_only and exists:
            # Azure: "Create (c): ... may not overwrite existing blobs" (Create an account SAS)
            raise StorageError(
                "AuthorizationPermissionMismatch",
                details={
                    "AuthenticationErrorDetail": "The signed permission c (create) does not "
                    "allow overwriting an existing blob; that needs w (write)."
                },
            )
        if self.if_match is not None and (
            not exists or ("*" not in self.if_match and etag not in self.if_match)
        ):
            raise StorageError("ConditionNotMet")
        if self.if_none_match is not None and exists:
            if "*" in self.if_none_match:
                # Azure answers an overwrite guarded by If-None-Match: * with 409.
                raise StorageError("BlobAlreadyExists" if creating else "ConditionNotMet")
            if etag in self.if_none_match:
                raise StorageError("ConditionNotMet")
        if exists and last_modified is not None:
            lm = int(last_modified)
            if self.if_modified_since is not None and lm <= int(self.if_modified_since):
                raise StorageError("ConditionNotMet")
            if self.if_unmodified_since is not None and lm > int(self.if_unmodified_since):
                raise StorageError("ConditionNotMet")

    def check_unsatisfiable_read(self) -> None:
        """``If-None-Match: *`` on a read can never be met: 400 UnsatisfiableCondition, whether
        the blob exists or not (Azurite's ReadConditionalHeadersValidator; the JavaScript SDK's
        tests expect 400). Writes keep their meaning of "only if absent"."""
        if self.if_none_match is not None and "*" in self.if_none_match:
            raise StorageError("UnsatisfiableCondition")

    def check_read(self, etag: str, last_modified: float) -> None:
        """412 for If-Match / If-Unmodified-Since; 304 for If-None-Match / If-Modified-Since."""
        self.check_unsatisfiable_read()
        lm = int(last_modified)
        if self.if_match is not None and "*" not in self.if_match and etag not in self.if_match:
            raise StorageError("ConditionNotMet")
        if self.if_unmodified_since is not None and lm > int(self.if_unmodified_since):
            raise StorageError("ConditionNotMet")
        # A 304 still names the current version (RFC 9110 15.4.5)
        if self.if_none_match is not None and etag in self.if_none_match:
            raise StorageError("NotModified", headers={"ETag": f'"{etag}"'})
        if self.if_modified_since is not None and lm <= int(self.if_modified_since):
            raise StorageError("NotModified", headers={"ETag": f'"{etag}"'})
