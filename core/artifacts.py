"""The artifact store interface: bytes and tables under keys, atomic and verified.

Everything Conveyor keeps as files (datasets, feature tables, models, reports,
prediction logs) goes through an :class:`ArtifactStore`.  Keys are relative,
``/``-separated names such as ``models/churn/3/model.txt``; a key can never
address anything outside the store (``ConfinementError``).

The stored form is two-level: immutable, content-addressed *blobs* (named by
their SHA-256) and one small *manifest* per key that points at a blob.  The
manifest is the commit point, so a key is a named, mutable pointer to an
immutable artifact; ``overwrite=False`` makes a key write-once.
:func:`validate_key` is the one allow-list every store applies to keys.
"""

from __future__ import annotations

import abc
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote

from attrs import frozen

from conveyor.errors import ConfinementError, NotFoundError

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

PARQUET = "application/vnd.apache.parquet"
BINARY = "application/octet-stream"

#: One key segment: ASCII letters, digits and ``. _ = + @ -``, not starting with ``.``.
#: Everything else (``..``, ``%``, ``\\``, ``:``, NUL, spaces, non-ASCII) is refused.
KEY_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._=+@-]{0,199}")
MAX_KEY_LENGTH = 1024
MAX_KEY_DEPTH = 32
_KEY_RULE = (
    "a key is 1 to 32 '/'-separated segments of ASCII letters, digits and . _ = + @ -, "
    f"each at most 200 characters and not starting with '.', {MAX_KEY_LENGTH} characters "
    "in all (e.g. 'models/churn/3/model.txt')"
)
#: The default age below which ``gc`` leaves temporary and unreferenced objects alone
#: (a writer may be using them right now).
DEFAULT_GC_GRACE = timedelta(hours=1)


def _fully_decoded(text: str) -> str:
    """``text`` percent-decoded repeatedly until decoding changes nothing more."""
    for _ in range(16):
        decoded = unquote(text, errors="strict") if "%" in text else text
        if decoded == text:
            return text
        text = decoded
    return text


def validate_key(key: Any, *, what: str = "artifact key") -> str:
    """Return ``key`` if it is a safe key, else raise :class:`ConfinementError`.

    An allow-list, applied both to the key as given and to its fully
    percent-decoded form: nothing outside ``[A-Za-z0-9._=+@-]`` and ``/`` can get
    through, so ``..``, ``%2e%2e``, absolute paths, URLs, backslashes, NUL bytes
    and look-alike Unicode are all refused.
    """
    if not isinstance(key, str):
        raise ConfinementError(f"{what} must be a string, got {type(key).__name__}", hint=_KEY_RULE)
    shown = repr(key) if len(key) <= 120 else repr(key[:120]) + "..."
    try:
        decoded = _fully_decoded(key)
    except UnicodeDecodeError:
        decoded = key
    for form in dict.fromkeys((key, decoded)):
        problem = _key_problem(form)
        if problem is not None:
            if form is not key:
                problem = f"its percent-decoded form {form!r} is refused: {problem}"
            raise ConfinementError(f"{what} {shown} is refused: {problem}", hint=_KEY_RULE)
    return key


def _key_problem(key: str) -> str | None:
    if not key:
        return "it is empty"
    if len(key) > MAX_KEY_LENGTH:
        return f"it is longer than {MAX_KEY_LENGTH} characters"
    if "\x00" in key:
        return "it contains a NUL byte"
    if "%" in key:
        return "it contains percent-encoding"
    if key.startswith("/") or key.startswith("\\"):
        return "it is an absolute path"
    if "://" in key or re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", key):
        return "it is a URL or has a drive letter"
    segments = key.split("/")
    if len(segments) > MAX_KEY_DEPTH:
        return f"it has more than {MAX_KEY_DEPTH} segments"
    for segment in segments:
        if segment in ("", ".", ".."):
            return f"segment {segment!r} is not allowed"
        if not KEY_SEGMENT.fullmatch(segment):
            return f"segment {segment!r} has a character outside the allowed set or is too long"
    return None


def validate_prefix(prefix: Any) -> str:
    """Return ``prefix`` if it is ``""`` or a key (a trailing ``/`` allowed), else refuse."""
    if prefix == "":
        return ""
    if isinstance(prefix, str) and prefix.endswith("/") and not prefix.endswith("//"):
        validate_key(prefix[:-1], what="artifact prefix")
        return prefix
    return validate_key(prefix, what="artifact prefix")


@frozen(kw_only=True)
class ArtifactInfo:
    """A committed artifact.

    Attributes:
        key: its key in the store.
        uri: the URI of its immutable, content-addressed bytes (``file:///...``,
            ``s3://...``).
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

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``created`` as ISO 8601)."""
        return {
            "key": self.key,
            "uri": self.uri,
            "sha256": self.sha256,
            "size": self.size,
            "created": self.created.isoformat(),
            "media_type": self.media_type,
        }


@frozen(kw_only=True)
class GcReport:
    """What ``gc`` removed (or would remove, in a dry run).

    Attributes:
        temporary: leftover temporary objects (paths relative to the store root).
        unreferenced: content blobs that no key points at any more.
        bytes_freed: their total size.
        dry_run: whether nothing was actually removed.
    """

    temporary: tuple[str, ...] = ()
    unreferenced: tuple[str, ...] = ()
    bytes_freed: int = 0
    dry_run: bool = True


class ArtifactWriter(Protocol):
    """The stream ``open_write`` yields: a writable binary file object.

    Attributes:
        info: the committed :class:`ArtifactInfo`, set once the ``with`` block ends.
    """

    info: ArtifactInfo | None

    def write(self, data: bytes | bytearray | memoryview, /) -> int: ...


class ArtifactReader(Protocol):
    """The stream ``open_read`` yields: a readable binary file object."""

    def read(self, size: int = -1, /) -> bytes: ...


class ArtifactStore(abc.ABC):
    """Stores bytes and Arrow tables under keys.

    What an implementation must guarantee (``conveyor.testing.artifacts``
    checks it):

    * **Atomic writes.** An artifact becomes visible (to ``info``, ``list``,
      ``exists`` and reads) only once all its bytes are durably stored; a writer
      killed part-way, or an exception inside ``open_write``, leaves nothing
      visible.  Overwriting a key is atomic too.
    * **Integrity.** A SHA-256 is recorded at write and verified at read; a
      mismatch raises :class:`~conveyor.errors.IntegrityError`, never a silent
      wrong read.  Reads also accept the digest the caller expects (``sha256=``).
    * **Confinement.** A key that is not allowed by :func:`validate_key`, or that
      would resolve outside the store root (links leading out), raises
      :class:`~conveyor.errors.ConfinementError`.
    * A missing key raises :class:`~conveyor.errors.NotFoundError`; writing an
      existing key with ``overwrite=False`` raises
      :class:`~conveyor.errors.AlreadyExistsError`.

    Attributes:
        uri: the store's root URI.
    """

    uri: str

    @abc.abstractmethod
    def put_bytes(
        self, key: str, data: bytes, *, media_type: str = BINARY, overwrite: bool = True
    ) -> ArtifactInfo:
        """Store ``data`` under ``key`` (replacing what was there) and commit it."""

    @abc.abstractmethod
    def open_write(
        self, key: str, *, media_type: str = BINARY, overwrite: bool = True
    ) -> AbstractContextManager[ArtifactWriter]:
        """A writable stream; committed when the block exits cleanly, discarded on error.

        After the block, the stream's ``info`` attribute is the committed
        :class:`ArtifactInfo`.
        """

    @abc.abstractmethod
    def get_bytes(self, key: str, *, sha256: str | None = None) -> bytes:
        """The bytes stored under ``key``, verified against the recorded SHA-256."""

    @abc.abstractmethod
    def open_read(
        self, key: str, *, sha256: str | None = None
    ) -> AbstractContextManager[ArtifactReader]:
        """A readable stream; the hash is checked when the stream reaches its end."""

    @abc.abstractmethod
    def put_table(
        self, key: str, table: pa.Table | pl.DataFrame, *, overwrite: bool = True
    ) -> ArtifactInfo:
        """Store a table as Parquet under ``key``."""

    @abc.abstractmethod
    def get_table(
        self, key: str, *, columns: list[str] | None = None, sha256: str | None = None
    ) -> pa.Table:
        """Read a Parquet table, verified before it is parsed."""

    @abc.abstractmethod
    def scan_table(self, key: str, *, sha256: str | None = None) -> pl.LazyFrame:
        """A lazy scan of a Parquet table (verified before the scan is handed out)."""

    @abc.abstractmethod
    def info(self, key: str) -> ArtifactInfo:
        """What is recorded about ``key``."""

    @abc.abstractmethod
    def has_content(self, uri: str) -> bool:
        """Whether the content URI ``uri`` (an ``ArtifactInfo.uri``) is stored here.

        Cheap (no read): the registry calls it for every registration.  A URI that is
        not a content URI of this store raises ConfinementError.
        """

    @abc.abstractmethod
    def read_uri(self, uri: str, *, sha256: str | None = None) -> bytes:
        """The bytes behind a URI this store handed out (``ArtifactInfo.uri``), verified.

        Such URIs name immutable content (the registry records them), so they stay
        readable after the key they were written under is overwritten.  A URI
        outside this store raises ConfinementError.
        """

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[ArtifactInfo]:
        """Committed artifacts whose keys start with ``prefix``, sorted by key."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; NotFoundError when it does not exist."""

    @abc.abstractmethod
    def gc(self, *, dry_run: bool = True, grace: timedelta = DEFAULT_GC_GRACE) -> GcReport:
        """Remove leftover temporary objects and blobs no key points at.

        Only objects older than ``grace`` are touched, so writers in progress are
        safe.  Keys themselves are never removed by ``gc``: that is ``delete``.
        """

    def exists(self, key: str) -> bool:
        """Whether a committed artifact is stored under ``key``."""
        try:
            self.info(key)
        except NotFoundError:
            return False
        return True

    def put_file(
        self,
        key: str,
        path: str | os.PathLike[str],
        *,
        media_type: str = BINARY,
        overwrite: bool = True,
    ) -> ArtifactInfo:
        """Store the file at ``path`` under ``key`` (streamed, not loaded in memory)."""
        with (
            open(path, "rb") as source,
            self.open_write(key, media_type=media_type, overwrite=overwrite) as sink,
        ):
            shutil.copyfileobj(source, sink, 4 << 20)
        assert sink.info is not None, "open_write sets info when the block ends"
        return sink.info

    def get_file(
        self, key: str, path: str | os.PathLike[str], *, sha256: str | None = None
    ) -> ArtifactInfo:
        """Copy ``key`` to the local file ``path``; it appears only once verified."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out, self.open_read(key, sha256=sha256) as source:
                shutil.copyfileobj(source, out, 4 << 20)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self.info(key)

    def close(self) -> None:  # noqa: B027 - optional for implementations
        """Release connections and handles."""

    def describe(self) -> dict[str, Any]:
        """A short JSON-ready description of the store."""
        return {"uri": self.uri}
