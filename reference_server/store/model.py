"""Plain records the store hands to handlers (no HTTP, no file handles except OpenBlob)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO

CONTENT_FIELDS = (
    "content_type",
    "content_encoding",
    "content_language",
    "content_disposition",
    "cache_control",
    "content_md5",
)


@dataclass
class ContentSettings:
    """The persisted content headers. ``content_md5`` is base64, as on the wire."""

    content_type: str | None = None
    content_encoding: str | None = None
    content_language: str | None = None
    content_disposition: str | None = None
    cache_control: str | None = None
    content_md5: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {k: getattr(self, k) for k in CONTENT_FIELDS}

    @classmethod
    def from_dict(cls, data: dict) -> ContentSettings:
        return cls(**{k: data.get(k) for k in CONTENT_FIELDS})


@dataclass
class BlobProps:
    name: str
    size: int
    etag: str  # unquoted, e.g. 0x8DC1A2B3C4D5E6F7
    last_modified: float  # epoch seconds
    creation_time: float
    content: ContentSettings = field(default_factory=ContentSettings)
    metadata: dict[str, str] = field(default_factory=dict)
    committed_blocks: list[tuple[str, int]] = field(default_factory=list)  # (base64 id, size)
    # copy state: x-ms-copy-* headers of the last Copy Blob into this blob, recorded as given
    # (their meaning belongs to reference_server/copy/state.py)
    copy: dict[str, str] = field(default_factory=dict)


@dataclass
class OpenBlob:
    """A blob opened for reading: the file object and the properties of exactly that version."""

    file: BinaryIO
    props: BlobProps
    # The whole content of a small blob, read in the same thread hop as the open, so the
    # response is one socket write instead of headers, then sendfile (see Store.open_blob).
    content: bytes | None = None

    def close(self) -> None:
        self.file.close()


@dataclass
class ContainerProps:
    name: str
    etag: str
    last_modified: float
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class BlockInfo:
    block_id: str  # base64, as the client sent it
    size: int


@dataclass
class ListPage:
    """One page of a listing: items in order (BlobProps, or str for a BlobPrefix)."""

    items: list[BlobProps | str]
    next_marker: str | None
