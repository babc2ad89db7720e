"""The local-filesystem artifact store: short temp name, fsync, rename, fsync folder."""

from __future__ import annotations

import os
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from conveyor.errors import ConfigError, ConfinementError
from conveyor.fsstore import BLOBS, KEYS, TEMP_PREFIX, BlobSink, FsspecArtifactStore

if TYPE_CHECKING:
    import pyarrow as pa
    from fsspec import AbstractFileSystem

    from conveyor.plugins.local.config import LocalArtifactStoreConfig

#: ``[artifact_store] verify``: hash table blobs only when changed, or on every read
VERIFY_MODES = ("changed", "always")
#: beside ``blobs/<sha256>``: the identity of its file when its bytes were last hashed
CHECKED_SUFFIX = ".checked"
#: a record this close to the file's last change is not trusted (timestamps are coarse)
RACY_NS = 50_000_000
_TEMP_FLAGS = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


def root_from_url(url: str, project_root: Path | None = None) -> Path:
    """The folder a ``url`` setting names: a plain path or ``file://`` URL."""
    if "\x00" in url:
        raise ConfigError(
            "[artifact_store] url contains a NUL byte",
            hint='use a plain path such as ".conveyor/artifacts"',
        )
    if url.lower().startswith("file:"):
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
            raise ConfigError(
                f"[artifact_store] url {url!r} is not a local file URL",
                hint="write file:///absolute/path, or a plain path relative to the project",
            )
        path = Path(unquote(parts.path))
    else:
        path = Path(url).expanduser()
    if not path.is_absolute() and project_root is not None:
        path = project_root / path
    return path


class LocalArtifactStore(FsspecArtifactStore):
    """Artifacts in a local folder; every folder it creates is mode 0700.

    Commits are a temporary file (``.tmp-XXXXXXXX``, mode 0600) in the destination
    folder, fsync, ``os.replace`` (``os.link`` for write-once keys) and an fsync
    of the folder.  Every location is checked, after resolving links, to lie
    under the root's real path.
    """

    def __init__(self, root: str | os.PathLike[str], *, verify: str = "changed") -> None:
        path = Path(root).absolute()
        _make_private_dirs(path)
        real = os.path.realpath(path)
        super().__init__(uri=Path(real).as_uri(), root=real)
        if verify not in VERIFY_MODES:
            raise ConfigError(
                f"[artifact_store] verify = {verify!r} is not one of {', '.join(VERIFY_MODES)}",
                hint='"changed" hashes a table blob again only when its file changed',
            )
        self.verify = verify

    @classmethod
    def from_config(cls, *, app: Any, config: LocalArtifactStoreConfig) -> LocalArtifactStore:
        """The store ``[artifact_store] url`` names, relative to the project root."""
        root = root_from_url(config.url, app.config.root if app is not None else None)
        return cls(root, verify=config.verify)

    # -- verified once -------------------------------------------------------------------
    # A table blob whose file is unchanged since its bytes were last hashed is not hashed
    # again: <sha256>.checked beside it records the file's identity then.  Any write or
    # replacement through the filesystem changes that identity; see docs/artifacts.md for
    # what this does not catch (bit rot, a forger of both files).

    def _unchanged_since_checked(self, sha256: str, size: int) -> bool:
        if self.verify != "changed":
            return False
        blob = self._blob_path(sha256)
        try:
            with open(self._confine(blob + CHECKED_SUFFIX), "rb") as handle:
                recorded = handle.read(256).split()
            info = os.lstat(self._confine(blob))
        except (FileNotFoundError, NotADirectoryError):
            return False
        identity = _identity(info)
        if info.st_size != size or len(recorded) != len(identity) + 1:
            return False
        try:
            *then, at = (int(v) for v in recorded)
        except ValueError:
            return False
        # "racy" records are never trusted: a same-size write within the file clock's
        # granularity of the record could leave mtime as it was.  Every content write
        # sets mtime, and moving mtime back moves ctime (in the identity), so mtime
        # alone decides.
        return tuple(then) == identity and at - info.st_mtime_ns >= RACY_NS

    def _checked(self, sha256: str) -> None:
        if self.verify != "changed":
            return
        blob = self._confine(self._blob_path(sha256))
        try:
            info = os.lstat(blob)
        except FileNotFoundError:
            return
        now = time.time_ns()
        if now - info.st_mtime_ns < RACY_NS:
            return  # too fresh to vouch for: the next read hashes it and records it
        fd, tmp = _create_temp(os.path.dirname(blob))
        try:
            with open(fd, "wb") as out:
                out.write(" ".join(map(str, (*_identity(info), now))).encode())
            # no fsync: a record lost in a crash only costs one more hash
            os.replace(tmp, blob + CHECKED_SUFFIX)
        except BaseException:
            _unlink_quietly(tmp)
            raise

    # -- primitives ----------------------------------------------------------------------

    def _make_fs(self) -> AbstractFileSystem:
        from fsspec.implementations.local import LocalFileSystem

        return LocalFileSystem()

    def _confine(self, path: str) -> str:
        real = os.path.realpath(path)
        if real != self.root and not real.startswith(self.root + os.sep):
            raise ConfinementError(
                f"{path} resolves to {real}, outside the artifact store {self.root}",
                hint="a symbolic link inside the store leads out of it: remove the link",
            )
        return path

    def has_content(self, uri: str) -> bool:
        # A blob's name is a validated hex digest, so only the blobs folder itself
        # could lead out of the store: it is checked by _confine, the blob by lstat
        # (a regular file, never a link), which keeps registration cheap.
        path = self._blob_path(self._digest_of_uri(uri))
        if not getattr(self, "_blobs_confined", False):
            # checked once per store: replacing the folder by a link later needs write
            # access to the store itself (see docs/artifacts.md, known limits)
            self._confine(os.path.dirname(path))
            self._blobs_confined = True
        try:
            return stat.S_ISREG(os.lstat(path).st_mode)
        except FileNotFoundError:
            return False

    def _makedirs(self, folder: str) -> None:
        _make_private_dirs(Path(folder))
        self._confine(folder)

    def _blob_sink(self) -> BlobSink:
        folder = self._path(BLOBS)
        self._makedirs(folder)
        return _LocalSink(folder)

    def _commit_manifest(self, path: str, data: bytes, *, exclusive: bool) -> None:
        folder = os.path.dirname(path)
        self._makedirs(folder)
        fd, tmp = _create_temp(folder)
        try:
            with open(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            if exclusive:
                os.link(tmp, path)  # fails with FileExistsError if the key exists
                os.unlink(tmp)
            else:
                os.replace(tmp, path)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        _fsync_dir(folder)

    def _read_blob(self, path: str) -> bytes:
        with open(self._confine(path), "rb") as handle:
            return handle.read()

    def _read_buffer(self, path: str) -> pa.Buffer:
        import pyarrow as pa

        path = self._confine(path)
        if os.path.getsize(path) == 0:
            return pa.py_buffer(b"")
        # memory-mapped: hashing and parsing share one read of the file
        return pa.memory_map(path, "r").read_buffer()

    def _walk(self, folder: str) -> Iterator[tuple[str, int, float]]:
        for dirpath, _dirs, files in os.walk(folder, followlinks=False):
            for name in files:
                path = f"{dirpath}/{name}"
                try:
                    stat = os.lstat(path)
                except FileNotFoundError:
                    continue
                yield path, stat.st_size, stat.st_mtime

    def _temporaries(self, cutoff: float) -> list[tuple[str, int]]:
        return [
            (self._relative(path), size)
            for path, size, mtime in self._walk(self.root)
            if path.rpartition("/")[2].startswith(TEMP_PREFIX) and mtime <= cutoff
        ]

    def _remove_temporary(self, name: str) -> None:
        _unlink_quietly(self._confine(self._path(name)))

    def _after_gc(self, dry_run: bool, cutoff: float) -> None:
        if dry_run:
            return
        blobs = self._path(BLOBS)
        for path, _size, _mtime in self._walk(blobs):
            if path.endswith(CHECKED_SUFFIX) and not os.path.lexists(path[: -len(CHECKED_SUFFIX)]):
                _unlink_quietly(path)  # the record of a blob gc removed
        keys_root = self._path(KEYS)
        folders = [dirpath for dirpath, _dirs, _files in os.walk(keys_root) if dirpath != keys_root]
        # ages read before removing anything: removing a child touches its parent's mtime
        ages = {}
        for folder in folders:
            try:
                ages[folder] = os.lstat(folder).st_mtime
            except OSError:
                continue
        for folder in reversed(folders):  # children before parents
            if ages.get(folder, cutoff + 1) <= cutoff:
                try:
                    os.rmdir(folder)  # only succeeds when empty
                except OSError:
                    pass

    def describe(self) -> dict[str, Any]:
        """The store's URI, backend and root folder."""
        return {**super().describe(), "path": self.root}


class _LocalSink(BlobSink):
    """A ``.tmp-`` file in ``blobs/``; committed by fsync + rename to ``blobs/<sha256>``."""

    def __init__(self, folder: str) -> None:
        self._folder = folder
        fd, self._tmp = _create_temp(folder)
        self._file = open(fd, "wb")  # noqa: SIM115 - closed by commit/abort

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._file.write(data)

    def commit(self, sha256: str) -> None:
        self._file.flush()
        # mtime set back by twice the racy window, before the file is visible: the
        # store hashed these bytes as it wrote them, so it records them as checked at
        # once (no hash on the first read), and any later write sets a newer mtime
        now = time.time_ns()
        os.utime(self._file.fileno(), ns=(now, now - 2 * RACY_NS))
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._tmp, f"{self._folder}/{sha256}")
        _fsync_dir(self._folder)

    def abort(self) -> None:
        try:
            self._file.close()
        finally:
            _unlink_quietly(self._tmp)


def _identity(info: os.stat_result) -> tuple[int, ...]:
    """What changes when a file is written or replaced."""
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _create_temp(folder: str) -> tuple[int, str]:
    while True:
        path = f"{folder}/{TEMP_PREFIX}{secrets.token_hex(4)}"
        try:
            return os.open(path, _TEMP_FLAGS, 0o600), path
        except FileExistsError:
            continue


def _make_private_dirs(path: Path) -> None:
    """Create ``path`` and missing parents, each new folder mode 0700."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            pass


def _fsync_dir(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
