"""A request body streamed into a temp file of the staging dir, hashed on the way (MD5, and the
CRC64 a request sent, see reference_server/checksums.py)."""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import os
import threading
from collections.abc import Callable

from reference_server.checksums import crc64, crc64_bytes
from reference_server.errors import StorageError
from reference_server.store.atomic import write_all

MAX_IOV = 512  # chunks per writev (IOV_MAX is 1024 on Linux)
# Bytes per copy_file_range call: a reflink remaps this much at once, a plain copy stays a
# bounded in-kernel step (Linux caps one call at 2 GiB anyway). A multiple of every block size.
COPY_CHUNK = 1 << 30
READ_CHUNK = 4 * 1024 * 1024  # the read/write fallback and checksum reads
# copy_file_range refusals that mean "not between these files" (another filesystem on older
# kernels, a filesystem without it, special files), not an I/O error: copy by read/write.
COPY_REFUSED = {errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP}


def copy_range(src_fd: int, dst_fd: int, offset: int, count: int) -> None:
    """Append ``count`` bytes of ``src_fd`` from ``offset`` at ``dst_fd``'s position, in the
    kernel (copy_file_range: on a reflink filesystem such as XFS or btrfs the extents are
    shared, holes stay holes). Falls back to a bounded read/write loop only where the kernel
    refuses; other errors (ENOSPC, EIO) propagate. Blocking."""
    kernel = True
    while count > 0:
        if kernel:
            try:
                n = os.copy_file_range(src_fd, dst_fd, min(count, COPY_CHUNK), offset)
            except OSError as exc:
                if exc.errno not in COPY_REFUSED:
                    raise
                kernel = False
                continue
        else:
            data = os.pread(src_fd, min(count, READ_CHUNK), offset)
            if data:
                write_all(dst_fd, data)
            n = len(data)
        if n == 0:
            raise StorageError("InternalError", "The source range is shorter than expected.")
        offset += n
        count -= n


class Upload:
    """A temp file in the staging dir that a request body is streamed into.

    The file is created on the first write, so a small body costs no thread hop of its own: the
    HTTP layer hands whole batches of chunks to ``write_chunks`` in a thread (hashing there too:
    hashlib releases the GIL on large buffers) and leaves the last batch in ``tail`` for
    ``finish``, which runs in the same thread hop as the commit. Expected MD5s are checked there,
    and the expected CRC64 (which alone makes the upload compute one).
    """

    def __init__(
        self,
        open_temp: Callable[[], tuple[int, str]],
        want_md5: bool,
        limit: int,
        expect_md5: tuple[bytes | None, ...] = (),
        expect_crc64: bytes | None = None,
    ) -> None:
        self._open_temp = open_temp
        self.fd = -1
        self.path = ""
        self.size = 0  # bytes received (written or in tail)
        self.limit = limit
        self.tail: list[bytes] = []
        self._expect = [m for m in expect_md5 if m is not None]
        self._md5 = hashlib.md5() if want_md5 or self._expect else None
        self._md5_b64: str | None = None
        self._expect_crc64 = expect_crc64
        self._crc64: int | None = 0 if expect_crc64 is not None else None
        self._io = threading.Lock()  # a write in a thread vs an abort on the loop thread
        self._aborted = False

    def count(self, n: int) -> None:
        """Account for ``n`` more body bytes; RequestBodyTooLarge past the limit."""
        self.size += n
        if self.size > self.limit:
            raise StorageError("RequestBodyTooLarge")

    def _ensure_open(self) -> None:
        if self.fd < 0:
            if self._aborted:
                raise StorageError("InternalError", "The upload was aborted.")
            self.fd, self.path = self._open_temp()

    def write_chunks(self, chunks: list[bytes]) -> None:
        """Append ``chunks`` (already counted) to the file and the hash. Blocking."""
        with self._io:
            self._ensure_open()
            if len(chunks) == 1:
                write_all(self.fd, chunks[0])
            else:
                if len(chunks) > MAX_IOV:
                    chunks = [b"".join(chunks)]
                total = sum(len(c) for c in chunks)
                written = os.writev(self.fd, chunks)
                if written != total:  # a short write (signal, full disk): write the rest
                    write_all(self.fd, b"".join(chunks)[written:])
            if self._md5 is not None:
                for c in chunks:
                    self._md5.update(c)
            if self._crc64 is not None:
                for c in chunks:
                    self._crc64 = crc64(c, self._crc64)

    def copy_from(
        self,
        src_fd: int,
        offset: int,
        count: int,
        observe: Callable[[bytes], None] | None = None,
    ) -> None:
        """Append ``count`` bytes of the file ``src_fd`` from ``offset`` by a kernel copy
        (``copy_range``), never through Python. Only a checksum makes the range be read: the
        upload's MD5 / CRC64 when it computes them, and ``observe`` (every chunk, in order).
        Blocking."""
        self.count(count)
        if self.tail:
            self.write_chunks(self.tail)
            self.tail = []
        pos, end = offset, offset + count
        while pos < end:
            # a chunk at a time under the lock, so an abort waits for one chunk at most
            n = min(COPY_CHUNK, end - pos)
            with self._io:
                self._ensure_open()  # refuses once aborted
                copy_range(src_fd, self.fd, pos, n)
            pos += n
        if self._md5 is None and self._crc64 is None and observe is None:
            return
        while offset < end:
            if self._aborted:
                raise StorageError("InternalError", "The upload was aborted.")
            data = os.pread(src_fd, min(end - offset, READ_CHUNK), offset)
            if not data:
                raise StorageError("InternalError", "The source range shrank while copied.")
            offset += len(data)
            if self._md5 is not None:
                self._md5.update(data)
            if self._crc64 is not None:
                self._crc64 = crc64(data, self._crc64)
            if observe is not None:
                observe(data)

    def write(self, chunk: bytes) -> None:
        """Count and write one chunk now (blocking)."""
        self.count(len(chunk))
        self.write_chunks([chunk])

    def finish(self, durable: bool = True) -> os.stat_result:
        """Write the tail, check expected MD5s, make the bytes durable (fsync, unless not
        ``durable``) and close; the stat of the finished file. Aborts the upload on failure.
        Blocking."""
        try:
            self.write_chunks(self.tail) if self.tail else self._ensure_open()
            self.tail = []
            if self._md5 is not None:
                digest = self._md5.digest()
                self._md5_b64 = base64.b64encode(digest).decode()
                if any(m != digest for m in self._expect):
                    raise StorageError("Md5Mismatch")
            if self._crc64 is not None and crc64_bytes(self._crc64) != self._expect_crc64:
                raise StorageError("Crc64Mismatch")
            if durable:
                os.fsync(self.fd)
            st = os.fstat(self.fd)
            self.close()
            return st
        except BaseException:
            self.abort()
            raise

    @property
    def md5_b64(self) -> str | None:
        if self._md5_b64 is not None:
            return self._md5_b64
        return base64.b64encode(self._md5.digest()).decode() if self._md5 else None

    @property
    def crc64_b64(self) -> str | None:
        """The body's CRC64 (base64), when the upload was asked to check one."""
        return None if self._crc64 is None else base64.b64encode(crc64_bytes(self._crc64)).decode()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def abort(self) -> None:
        with self._io:
            self._aborted = True
            self.close()
            if self.path:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
