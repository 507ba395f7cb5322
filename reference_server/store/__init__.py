"""The POSIX data root behind the façade: the ``Store`` (facade.py) over small modules, each
with one job (the list is in facade.py; the layout of the data root in layout.py). No HTTP
here."""

from reference_server.store.blocks import MAX_BLOCK_SIZE, decode_block_id
from reference_server.store.commit import MAX_PUT_BLOB_SIZE
from reference_server.store.facade import Store
from reference_server.store.model import (
    BlobProps,
    BlockInfo,
    ContainerProps,
    ContentSettings,
    ListPage,
    OpenBlob,
)
from reference_server.store.upload import Upload

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
