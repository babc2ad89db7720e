"""The shared implementation of artifact stores on an fsspec filesystem.

Layout under the store root (the same for every backend)::

    blobs/<sha256>                 immutable content, named by its SHA-256
    keys/<key>~.json               one manifest per key: the commit point
    tmp/...                        temporary objects (backends that need them)

A write streams the bytes to a temporary object while hashing them, commits
the blob under its digest, then atomically writes the key's manifest
(``{"format", "key", "sha256", "size", "media_type", "created"}``).  Readers and
``list`` only ever look at manifests, so a key is visible exactly when its
manifest is.  ``~`` cannot occur in a key, so a manifest name never collides
with a key's folder; temporary names start with ``.`` which keys cannot.

Subclasses provide the few primitives that differ between filesystems: how a
blob and a manifest are committed atomically, how to walk files, which paths
are confined, and what counts as a leftover temporary object.
"""

from __future__ import annotations

import abc
import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from conveyor.artifacts import (
    BINARY,
    DEFAULT_GC_GRACE,
    PARQUET,
    ArtifactInfo,
    ArtifactStore,
    GcReport,
    validate_key,
    validate_prefix,
)
from conveyor.errors import AlreadyExistsError, ConveyorError, IntegrityError, NotFoundError
from conveyor.hashio import CHUNK, BlobSink, HashingWriter, VerifyingReader, check_digest

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa
    from fsspec import AbstractFileSystem

BLOBS = "blobs"
KEYS = "keys"
TMP = "tmp"
MANIFEST_SUFFIX = "~.json"
TEMP_PREFIX = ".tmp-"
MANIFEST_FORMAT = 1
_SHA256 = re.compile(r"[0-9a-f]{64}")


class FsspecArtifactStore(ArtifactStore):
    """An :class:`ArtifactStore` on an fsspec filesystem: all of the logic but commits.

    Attributes:
        uri: the store root as a URI (``file:///...``, ``s3://bucket/prefix``).
        root: the store root in the filesystem's own path form.
    """

    def __init__(self, *, uri: str, root: str) -> None:
        self.uri = uri.rstrip("/")
        self.root = root.rstrip("/")
        self._fs: AbstractFileSystem | None = None
        self._fs_pid: int | None = None

    # -- primitives a backend provides ---------------------------------------------------

    @abc.abstractmethod
    def _make_fs(self) -> AbstractFileSystem:
        """A new fsspec filesystem instance for this store."""

    @abc.abstractmethod
    def _blob_sink(self) -> BlobSink:
        """A new temporary object to stream a blob into."""

    @abc.abstractmethod
    def _commit_manifest(self, path: str, data: bytes, *, exclusive: bool) -> None:
        """Atomically make ``path`` hold ``data``; FileExistsError if ``exclusive`` and taken."""

    @abc.abstractmethod
    def _walk(self, folder: str) -> Iterator[tuple[str, int, float]]:
        """``(path, size, mtime)`` of every file under ``folder`` (nothing if missing)."""

    @abc.abstractmethod
    def _temporaries(self, cutoff: float) -> list[tuple[str, int]]:
        """Leftover temporary objects older than ``cutoff``: ``(name, size)``."""

    @abc.abstractmethod
    def _remove_temporary(self, name: str) -> None:
        """Remove one temporary object named by :meth:`_temporaries`."""

    def _confine(self, path: str) -> str:
        """``path`` if it resolves inside the root (backends with links check that)."""
        return path

    def _put_blob(self, sha256: str, data: bytes | memoryview) -> None:
        """Commit ``data`` (whose digest is known) as a blob."""
        sink = self._blob_sink()
        try:
            sink.write(data)
            sink.commit(sha256)
        except BaseException:
            sink.abort()
            raise
        self._checked(sha256)

    def _read_blob(self, path: str) -> bytes:
        return self.fs.cat_file(self._confine(path))

    def _read_buffer(self, path: str) -> pa.Buffer:
        """The whole blob as an Arrow buffer (a backend may memory-map it)."""
        import pyarrow as pa

        return pa.py_buffer(self._read_blob(path))

    def _scan_source(self, path: str) -> tuple[str, dict[str, Any] | None]:
        """What ``polars.scan_parquet`` needs to read the blob at ``path``."""
        return path, None

    def _after_gc(self, dry_run: bool, cutoff: float) -> None:
        """Backend-specific tidying at the end of ``gc`` (e.g. empty folders)."""

    def _unchanged_since_checked(self, sha256: str, size: int) -> bool:
        """Whether blob ``sha256`` is known, without reading it, to be unchanged since its
        bytes were last hashed (a backend that can tell; by default never)."""
        return False

    def _checked(self, sha256: str) -> None:
        """Blob ``sha256`` was just hashed (written or read in full): a backend may
        remember that, for :meth:`_unchanged_since_checked`."""

    # -- paths ---------------------------------------------------------------------------

    @property
    def fs(self) -> AbstractFileSystem:
        """The filesystem, recreated in a forked child (fsspec instances are not fork-safe)."""
        pid = os.getpid()
        if self._fs is None or self._fs_pid != pid:
            self._fs = self._make_fs()
            self._fs_pid = pid
        return self._fs

    def _path(self, *parts: str) -> str:
        return "/".join((self.root, *parts))

    def _manifest_path(self, key: str) -> str:
        return self._path(KEYS, key + MANIFEST_SUFFIX)

    def _blob_path(self, sha256: str) -> str:
        return self._path(BLOBS, sha256)

    def _relative(self, path: str) -> str:
        return path[len(self.root) + 1 :] if path.startswith(self.root + "/") else path

    # -- writing -------------------------------------------------------------------------

    def put_bytes(
        self, key: str, data: bytes, *, media_type: str = BINARY, overwrite: bool = True
    ) -> ArtifactInfo:
        """Store ``data`` under ``key`` and commit it (hashing it once)."""
        key = self._writable_key(key, overwrite)
        view = memoryview(data).cast("B")
        sha = hashlib.sha256(view).hexdigest()
        self._put_blob(sha, view)
        return self._commit(key, sha, len(view), media_type, overwrite)

    @contextmanager
    def open_write(
        self, key: str, *, media_type: str = BINARY, overwrite: bool = True
    ) -> Iterator[HashingWriter]:
        """A stream hashed as it is written; committed when the block exits cleanly."""
        key = self._writable_key(key, overwrite)
        sink = self._blob_sink()
        writer = HashingWriter(sink)
        try:
            yield writer
            sha = writer.finish()
            sink.commit(sha)
        except BaseException:
            writer.discard()
            sink.abort()
            raise
        self._checked(sha)
        writer.info = self._commit(key, sha, writer.size, media_type, overwrite)

    def put_table(
        self, key: str, table: pa.Table | pl.DataFrame, *, overwrite: bool = True
    ) -> ArtifactInfo:
        """Store ``table`` as Parquet, streamed straight into the store while hashed."""
        import pyarrow.parquet as pq

        if not hasattr(table, "schema") or hasattr(table, "to_arrow"):
            table = table.to_arrow()  # a polars DataFrame
        with self.open_write(key, media_type=PARQUET, overwrite=overwrite) as sink:
            pq.write_table(table, sink)
        assert sink.info is not None
        return sink.info

    def _writable_key(self, key: str, overwrite: bool) -> str:
        key = validate_key(key)
        self._confine(self._manifest_path(key))
        if not overwrite and self.exists(key):
            raise _already_exists(key)
        return key

    def _commit(
        self, key: str, sha256: str, size: int, media_type: str, overwrite: bool
    ) -> ArtifactInfo:
        created = datetime.now(UTC)
        manifest = {
            "format": MANIFEST_FORMAT,
            "key": key,
            "sha256": sha256,
            "size": size,
            "media_type": media_type,
            "created": created.isoformat(),
        }
        data = json.dumps(manifest, sort_keys=True).encode()
        try:
            self._commit_manifest(self._manifest_path(key), data, exclusive=not overwrite)
        except FileExistsError:
            raise _already_exists(key) from None
        return self._to_info(manifest)

    # -- reading -------------------------------------------------------------------------

    def info(self, key: str) -> ArtifactInfo:
        """What the manifest of ``key`` records."""
        return self._to_info(self._manifest(validate_key(key)))

    def get_bytes(self, key: str, *, sha256: str | None = None) -> bytes:
        """The bytes under ``key``, verified against the recorded (and given) SHA-256."""
        manifest = self._manifest(validate_key(key), sha256)
        data = self._read_committed_blob(manifest)
        check_digest(
            key, hashlib.sha256(data).hexdigest(), manifest["sha256"], len(data), manifest["size"]
        )
        return data

    def _digest_of_uri(self, uri: str) -> str:
        from conveyor.errors import ConfinementError

        prefix = f"{self.uri}/{BLOBS}/"
        digest = uri[len(prefix) :] if isinstance(uri, str) and uri.startswith(prefix) else ""
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ConfinementError(
                f"{uri!r} is not a content URI of the store {self.uri}",
                hint="use a URI this store handed out (ArtifactInfo.uri)",
            )
        return digest

    def has_content(self, uri: str) -> bool:
        """Whether the blob a content URI names exists (its name is its digest)."""
        return self.fs.exists(self._confine(self._blob_path(self._digest_of_uri(uri))))

    def read_uri(self, uri: str, *, sha256: str | None = None) -> bytes:
        """The bytes of a content URI of this store (``<root>/blobs/<sha256>``), verified."""
        digest = self._digest_of_uri(uri)
        if sha256 is not None and sha256 != digest:
            raise IntegrityError(
                f"{uri!r} holds content {digest}, not the expected {sha256}",
                hint="the record points at other bytes than it claims",
            )
        try:
            data = self._read_blob(self._blob_path(digest))
        except FileNotFoundError:
            raise NotFoundError(
                f"the content {uri!r} is no longer in the store",
                hint="it was removed by gc or by hand; restore it from a backup",
            ) from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise IntegrityError(
                f"{uri!r} hashes to {actual}: its bytes were modified",
                hint="restore the object from a backup",
            )
        return data

    @contextmanager
    def open_read(self, key: str, *, sha256: str | None = None) -> Iterator[VerifyingReader]:
        """A stream whose size and hash are checked when it is read to the end."""
        manifest = self._manifest(validate_key(key), sha256)
        path = self._confine(self._blob_path(manifest["sha256"]))
        try:
            raw = self.fs.open(path, "rb")
        except FileNotFoundError:
            raise _missing_blob(key, manifest) from None
        reader = VerifyingReader(raw, sha256=manifest["sha256"], size=manifest["size"], key=key)
        with reader:
            yield reader

    def get_table(
        self, key: str, *, columns: list[str] | None = None, sha256: str | None = None
    ) -> pa.Table:
        """Read a Parquet table; its bytes are verified before Arrow parses them."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        manifest = self._manifest(validate_key(key), sha256)
        digest, size = manifest["sha256"], manifest["size"]
        try:
            buffer = self._read_buffer(self._blob_path(digest))
        except FileNotFoundError:
            raise _missing_blob(key, manifest) from None
        if buffer.size != size or not self._unchanged_since_checked(digest, size):
            check_digest(key, hashlib.sha256(buffer).hexdigest(), digest, buffer.size, size)
            self._checked(digest)
        return pq.read_table(pa.BufferReader(buffer), columns=columns)

    def scan_table(self, key: str, *, sha256: str | None = None) -> pl.LazyFrame:
        """A lazy scan of a Parquet table whose bytes were verified just before."""
        import polars as pl

        manifest = self._manifest(validate_key(key), sha256)
        path = self._blob_path(manifest["sha256"])
        if not self._unchanged_since_checked(manifest["sha256"], manifest["size"]):
            with self.open_read(key, sha256=manifest["sha256"]) as reader:
                while reader.read(CHUNK):
                    pass
            self._checked(manifest["sha256"])
        source, options = self._scan_source(self._confine(path))
        return pl.scan_parquet(source, storage_options=options)

    def list(self, prefix: str = "") -> Iterator[ArtifactInfo]:
        """Committed artifacts whose keys start with ``prefix``, sorted by key."""
        prefix = validate_prefix(prefix)
        keys_root = self._path(KEYS)
        folder = prefix.rpartition("/")[0]
        found: dict[str, str] = {}
        for path, _size, _mtime in self._walk(f"{keys_root}/{folder}" if folder else keys_root):
            rel = path[len(keys_root) + 1 :]
            if not rel.endswith(MANIFEST_SUFFIX) or rel.rpartition("/")[2].startswith("."):
                continue
            key = rel[: -len(MANIFEST_SUFFIX)]
            if key.startswith(prefix):
                found[path] = key
        ordered = sorted(found, key=found.__getitem__)
        for start in range(0, len(ordered), 256):
            batch = ordered[start : start + 256]
            contents = self.fs.cat([self._confine(p) for p in batch], on_error="omit")
            for path in batch:
                if path in contents:  # deleted since the walk: not listed
                    yield self._to_info(self._parse_manifest(found[path], contents[path]))

    def _manifest(self, key: str, expected_sha256: str | None = None) -> dict[str, Any]:
        path = self._confine(self._manifest_path(key))
        try:
            raw = self.fs.cat_file(path)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFoundError(
                f"no artifact {key!r} in the store {self.uri}",
                hint="`conveyor artifacts ls` lists the stored artifacts",
            ) from None
        manifest = self._parse_manifest(key, raw)
        if expected_sha256 is not None and expected_sha256 != manifest["sha256"]:
            raise IntegrityError(
                f"artifact {key!r} has sha256 {manifest['sha256'][:12]}..., not the expected "
                f"{str(expected_sha256)[:12]}...: it was replaced or tampered with",
                hint="check what wrote this key since the digest was recorded",
            )
        return manifest

    def _parse_manifest(self, key: str, raw: bytes) -> dict[str, Any]:
        try:
            manifest = json.loads(raw)
            valid = (
                isinstance(manifest, dict)
                and manifest.get("format") == MANIFEST_FORMAT
                and manifest.get("key") == key
                and isinstance(manifest.get("sha256"), str)
                and _SHA256.fullmatch(manifest["sha256"]) is not None
                and type(manifest.get("size")) is int
                and manifest["size"] >= 0
                and isinstance(manifest.get("media_type"), str)
                and isinstance(manifest.get("created"), str)
            )
            if valid:
                datetime.fromisoformat(manifest["created"])
        except ValueError:
            valid = False
        if not valid:
            raise IntegrityError(
                f"the manifest of artifact {key!r} in {self.uri} is corrupt",
                hint="write the artifact again, or delete it with the store's delete()",
            )
        return manifest

    def _read_committed_blob(self, manifest: dict[str, Any]) -> bytes:
        try:
            return self._read_blob(self._blob_path(manifest["sha256"]))
        except FileNotFoundError:
            raise _missing_blob(manifest["key"], manifest) from None

    def _to_info(self, manifest: dict[str, Any]) -> ArtifactInfo:
        return ArtifactInfo(
            key=manifest["key"],
            uri=f"{self.uri}/{BLOBS}/{manifest['sha256']}",
            sha256=manifest["sha256"],
            size=manifest["size"],
            created=datetime.fromisoformat(manifest["created"]),
            media_type=manifest["media_type"],
        )

    # -- removing ------------------------------------------------------------------------

    def delete(self, key: str) -> None:
        """Remove ``key`` (its manifest); its blob goes at the next ``gc``."""
        key = validate_key(key)
        path = self._confine(self._manifest_path(key))
        if not self.fs.exists(path):
            raise NotFoundError(
                f"no artifact {key!r} in the store {self.uri}",
                hint="`conveyor artifacts ls` lists the stored artifacts",
            )
        try:
            self.fs.rm_file(path)
        except FileNotFoundError:
            raise NotFoundError(f"no artifact {key!r} in the store {self.uri}") from None

    def gc(self, *, dry_run: bool = True, grace: timedelta = DEFAULT_GC_GRACE) -> GcReport:
        """Remove temporary objects and unreferenced blobs older than ``grace``."""
        cutoff = time.time() - grace.total_seconds()
        temporaries = self._temporaries(cutoff)
        referenced = {info.sha256 for info in self.list()}
        unreferenced: list[tuple[str, int]] = []
        for path, size, mtime in self._walk(self._path(BLOBS)):
            name = path.rpartition("/")[2]
            if _SHA256.fullmatch(name) and name not in referenced and mtime <= cutoff:
                unreferenced.append((path, size))
        if not dry_run:
            for name, _size in temporaries:
                self._remove_temporary(name)
            # re-read the manifests: a key committed meanwhile may point at a blob again
            referenced = {info.sha256 for info in self.list()}
            kept = []
            for path, size in unreferenced:
                if path.rpartition("/")[2] in referenced:
                    continue
                try:
                    self.fs.rm_file(self._confine(path))
                except FileNotFoundError:
                    continue
                kept.append((path, size))
            unreferenced = kept
        self._after_gc(dry_run, cutoff)
        return GcReport(
            temporary=tuple(sorted(name for name, _ in temporaries)),
            unreferenced=tuple(sorted(self._relative(p) for p, _ in unreferenced)),
            bytes_freed=sum(s for _, s in temporaries) + sum(s for _, s in unreferenced),
            dry_run=dry_run,
        )

    def describe(self) -> dict[str, Any]:
        """The store's URI and the backend class."""
        return {"uri": self.uri, "backend": type(self).__name__}


def _already_exists(key: str) -> AlreadyExistsError:
    return AlreadyExistsError(
        f"artifact {key!r} already exists and was written with overwrite=False",
        hint="write to a new key, or pass overwrite=True to replace it",
    )


def _missing_blob(key: str, manifest: dict[str, Any]) -> ConveyorError:
    return IntegrityError(
        f"artifact {key!r} is recorded (sha256 {manifest['sha256'][:12]}...) but its "
        "content blob is missing from the store",
        hint="write the artifact again; check that nothing removes files under blobs/",
    )
