"""Streaming I/O with a SHA-256 on the way: hashing writers and verifying readers.

An artifact store writes through :class:`HashingWriter` into a backend's
:class:`BlobSink` (a temporary object it commits under the digest) and reads
through :class:`VerifyingReader`, which raises IntegrityError at the end of a
read whose bytes do not match what was recorded at write.
"""

from __future__ import annotations

import abc
import hashlib
import io
import queue
import threading
from typing import IO, TYPE_CHECKING, Any

from conveyor.errors import IntegrityError

if TYPE_CHECKING:
    from conveyor.artifacts import ArtifactInfo

#: the size of one read or hashing batch
CHUNK = 4 << 20


class BlobSink(abc.ABC):
    """A temporary object being written; ``commit`` publishes it as ``blobs/<sha256>``."""

    @abc.abstractmethod
    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data``."""

    @abc.abstractmethod
    def commit(self, sha256: str) -> None:
        """Make the bytes written durable and visible as the blob ``sha256``."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Discard the temporary object (best effort; ``gc`` removes what is left)."""


class HashingWriter(io.RawIOBase):
    """The writable stream ``open_write`` hands out: hashes what passes into a sink.

    Large streams are hashed on a helper thread in batches of 8 MiB (``hashlib``
    releases the GIL), so hashing overlaps with producing the bytes, e.g. with
    Parquet encoding; small ones never start a thread.

    Attributes:
        info: the committed :class:`ArtifactInfo`, set once the ``with`` block ends.
    """

    _BATCH = 8 << 20

    def __init__(self, sink: BlobSink) -> None:
        super().__init__()
        self._sink = sink
        self._hash = hashlib.sha256()
        self._batch: list[bytes] = []
        self._batched = 0
        self._queue: queue.Queue[list[bytes] | None] | None = None
        self._thread: threading.Thread | None = None
        self.size = 0
        self.info: ArtifactInfo | None = None

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        # bytes are immutable; anything else is copied, as the caller may reuse its buffer
        chunk = data if type(data) is bytes else bytes(memoryview(data).cast("B"))
        self._sink.write(chunk)
        self.size += len(chunk)
        self._batch.append(chunk)
        self._batched += len(chunk)
        if self._batched >= self._BATCH:
            self._hand_over()
        return len(chunk)

    def tell(self) -> int:
        return self.size

    def _hand_over(self) -> None:
        if self._thread is None:
            self._queue = queue.Queue(maxsize=4)
            self._thread = threading.Thread(
                target=self._hash_batches, daemon=True, name="conveyor-hash"
            )
            self._thread.start()
        assert self._queue is not None
        self._queue.put(self._batch)
        self._batch, self._batched = [], 0

    def _hash_batches(self) -> None:
        assert self._queue is not None
        while (batch := self._queue.get()) is not None:
            for chunk in batch:
                self._hash.update(chunk)

    def finish(self) -> str:
        """The hex SHA-256 of everything written (waits for the helper thread)."""
        if self._thread is not None:
            assert self._queue is not None
            self._queue.put(self._batch)
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        else:
            for chunk in self._batch:
                self._hash.update(chunk)
        self._batch, self._batched = [], 0
        return self._hash.hexdigest()

    def discard(self) -> None:
        """Stop hashing (the write is being abandoned)."""
        if self._thread is not None:
            assert self._queue is not None
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        self._batch, self._batched = [], 0


class VerifyingReader(io.RawIOBase):
    """The readable stream ``open_read`` hands out: checks size and hash at the end."""

    def __init__(self, raw: IO[bytes], *, sha256: str, size: int, key: str) -> None:
        super().__init__()
        self._raw = raw
        self._expected = sha256
        self._size = size
        self._key = key
        self._hash = hashlib.sha256()
        self._seen = 0
        self.verified = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        return super().read(size) or b""  # None only from non-blocking raw streams

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._raw.read(len(view))
        n = len(data)
        if n == 0:
            if not self.verified:
                check_digest(
                    self._key, self._hash.hexdigest(), self._expected, self._seen, self._size
                )
                self.verified = True
            return 0
        self._seen += n
        if self._seen > self._size:
            check_digest(self._key, "", self._expected, self._seen, self._size)
        self._hash.update(data)
        view[:n] = data
        return n

    def readall(self) -> bytes:
        """Everything left, in large reads (RawIOBase would use 8 KiB ones)."""
        parts = []
        while chunk := self.read(CHUNK):
            parts.append(chunk)
        return b"".join(parts)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


def check_digest(key: str, actual: str, expected: str, size: int, expected_size: int) -> None:
    if size != expected_size or actual != expected:
        raise IntegrityError(
            f"artifact {key!r} is corrupt: its stored bytes ({size} bytes, sha256 "
            f"{actual[:12] or '?'}...) do not match what was recorded at write "
            f"({expected_size} bytes, sha256 {expected[:12]}...)",
            hint="restore it from a backup or write it again; `conveyor artifacts ls "
            "--json` shows the recorded digests",
        )


__all__ = ["CHUNK", "BlobSink", "HashingWriter", "VerifyingReader", "check_digest"]
