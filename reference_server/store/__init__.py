"""The POSIX data root behind the façade (see blobstore for the layout). No HTTP here."""

from reference_server.store.blobstore import (
    MAX_BLOCK_SIZE,
    MAX_PUT_BLOB_SIZE,
    Store,
    Upload,
    decode_block_id,
)
from reference_server.store.model import (
    BlobProps,
    BlockInfo,
    ContainerProps,
    ContentSettings,
    ListPage,
    OpenBlob,
)

__all__ = [
    "MAX_BLOCK_SIZE",
    "MAX_PUT_BLOB_SIZE",
    "BlobProps",
    "BlockInfo",
    "ContainerProps",
    "ContentSettings",
    "ListPage",
    "OpenBlob",
    "Store",
    "Upload",
    "decode_block_id",
]
