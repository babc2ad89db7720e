"""The artifact store interface: bytes and tables under keys, atomic and verified.

Everything Conveyor keeps as files (datasets, feature tables, models, reports,
prediction logs) goes through an :class:`ArtifactStore`.  Keys are relative,
``/``-separated names such as ``models/churn/3/model.txt``; a key can never
address anything outside the store (``ConfinementError``).
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

from attrs import frozen

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

PARQUET = "application/vnd.apache.parquet"
BINARY = "application/octet-stream"


@frozen(kw_only=True)
class ArtifactInfo:
    """A committed artifact.

    Attributes:
        key: its key in the store.
        uri: a URI that locates it (``file:///...``, ``s3://...``).
        sha256: hex SHA-256 of its bytes, recorded when it was written.
        size: its size in bytes.
        created: when it was committed (UTC).
        media_type: what the bytes are (``application/vnd.apache.parquet``, ...).
    """

    key: str
    uri: str
    sha256: str
    size: int
    created: datetime
    media_type: str = BINARY


@frozen(kw_only=True)
class GcReport:
    """What ``gc`` removed (or would remove, in a dry run)."""

    temporary: tuple[str, ...] = ()
    unreferenced: tuple[str, ...] = ()
    bytes_freed: int = 0
    dry_run: bool = True


class ArtifactStore(abc.ABC):
    """Stores bytes and Arrow tables under keys.

    What an implementation must guarantee:

    * **Atomic writes.** An artifact becomes visible (to ``info``, ``list``,
      ``exists`` and reads) only once all its bytes are durably stored; a writer
      killed part-way leaves nothing visible.  Overwriting a key is atomic too.
    * **Integrity.** A SHA-256 is recorded at write and verified at read; a
      mismatch raises :class:`~conveyor.errors.IntegrityError`, never a silent
      wrong read.
    * **Confinement.** A key that would resolve outside the store root (``..``,
      encoded variants, absolute paths, URLs, NUL bytes, links leading out) raises
      :class:`~conveyor.errors.ConfinementError`.
    * A missing key raises :class:`~conveyor.errors.NotFoundError`.

    Attributes:
        uri: the store's root URI.
    """

    uri: str

    @abc.abstractmethod
    def put_bytes(self, key: str, data: bytes, *, media_type: str = BINARY) -> ArtifactInfo:
        """Store ``data`` under ``key`` (replacing what was there) and commit it."""

    @abc.abstractmethod
    def open_write(self, key: str, *, media_type: str = BINARY
                   ) -> AbstractContextManager[IO[bytes]]:
        """A writable stream; committed when the block exits cleanly, discarded on error."""

    @abc.abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """The bytes stored under ``key``, verified against the recorded SHA-256."""

    @abc.abstractmethod
    def open_read(self, key: str) -> AbstractContextManager[IO[bytes]]:
        """A readable stream; the hash is checked once the stream is read to its end."""

    @abc.abstractmethod
    def put_table(self, key: str, table: pa.Table | pl.DataFrame) -> ArtifactInfo:
        """Store a table as Parquet under ``key``."""

    @abc.abstractmethod
    def get_table(self, key: str, *, columns: list[str] | None = None) -> pa.Table:
        """Read a Parquet table, verified."""

    @abc.abstractmethod
    def scan_table(self, key: str) -> pl.LazyFrame:
        """A lazy scan of a Parquet table (verified before the scan is handed out)."""

    @abc.abstractmethod
    def info(self, key: str) -> ArtifactInfo:
        """What is recorded about ``key``."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[ArtifactInfo]:
        """Committed artifacts whose keys start with ``prefix``, sorted by key."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; NotFoundError when it does not exist."""

    @abc.abstractmethod
    def gc(self, *, dry_run: bool = True, referenced: set[str] | None = None) -> GcReport:
        """Remove orphaned temporary objects and, given ``referenced``, unreferenced ones."""

    def exists(self, key: str) -> bool:
        """Whether a committed artifact is stored under ``key``."""
        from conveyor.errors import NotFoundError

        try:
            self.info(key)
        except NotFoundError:
            return False
        return True

    def close(self) -> None:  # noqa: B027 - optional for implementations
        """Release connections and handles."""

    def describe(self) -> dict[str, Any]:
        return {"uri": self.uri}
