"""The artifact-store conformance suite: one class every artifact store must pass.

Subclass :class:`ArtifactStoreContract` in a test module and provide the
``store`` fixture (an empty store for each test)::

    from conveyor.testing.artifacts import ArtifactStoreContract

    class TestMyStore(ArtifactStoreContract):
        @pytest.fixture
        def store(self, tmp_path):
            return MyStore(...)

Stores built on :class:`conveyor.fsstore.FsspecArtifactStore` get the
tampering helpers for free; others override :meth:`corrupt_blob`,
:meth:`corrupt_manifest` and :meth:`remove_blob`.  The atomicity tests fork
the test process and SIGKILL the child mid-write, so a store must work in a
forked child (re-create clients after ``fork``).

``moto_s3_endpoint`` (from :mod:`conveyor.testing.services`, re-exported here) is a
session fixture serving S3 (moto in server mode) on 127.0.0.1; import it into a
``conftest.py`` to use it.
"""

from __future__ import annotations

import hashlib
import os
import select
import signal
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from conveyor.artifacts import PARQUET, ArtifactStore
from conveyor.errors import AlreadyExistsError, ConfinementError, IntegrityError, NotFoundError
from conveyor.testing.keys import TRAVERSAL_CORPUS, VALID_KEYS
from conveyor.testing.services import free_port, moto_s3_endpoint

__all__ = [
    "TRAVERSAL_CORPUS",
    "VALID_KEYS",
    "ArtifactStoreContract",
    "free_port",
    "moto_s3_endpoint",
]

NO_GRACE = timedelta(0)


def _payload(i: int, size: int = 65536) -> bytes:
    """A self-describing payload: ``_payload(int(data[:8])) == data`` for a complete one."""
    head = f"{i:08d}".encode()
    return head + hashlib.sha256(head).digest() * ((size - 8) // 32)


def _read_to_end(store: ArtifactStore, key: str) -> None:
    with store.open_read(key) as stream:
        while stream.read(4096):
            pass


def _fail_while_writing(store: ArtifactStore, key: str, size: int) -> None:
    with store.open_write(key) as out:
        out.write(os.urandom(size))
        raise RuntimeError("the writer failed")


# -- the suite ---------------------------------------------------------------------------


class ArtifactStoreContract:
    """Behaviour every :class:`~conveyor.artifacts.ArtifactStore` must have."""

    #: bytes the killed writer streams before it is killed (above one upload part)
    kill_payload_size: int = 12 * 2**20

    @pytest.fixture
    def store(self) -> ArtifactStore:
        """An empty store, fresh for each test: subclasses must override this."""
        raise NotImplementedError("subclass ArtifactStoreContract and define `store`")

    # -- tampering helpers (override for stores not built on FsspecArtifactStore) ------

    def _fsspec(self, store: ArtifactStore) -> Any:
        from conveyor.fsstore import FsspecArtifactStore

        if not isinstance(store, FsspecArtifactStore):
            pytest.skip("override corrupt_blob/corrupt_manifest/remove_blob for this store")
        return store

    def corrupt_blob(
        self, store: ArtifactStore, key: str, mutate: Callable[[bytes], bytes]
    ) -> None:
        """Change the stored bytes of ``key`` behind the store's back."""
        fstore = self._fsspec(store)
        path = fstore._blob_path(store.info(key).sha256)
        fstore.fs.pipe_file(path, mutate(fstore.fs.cat_file(path)))

    def corrupt_manifest(self, store: ArtifactStore, key: str, data: bytes) -> None:
        """Replace what the store recorded about ``key`` with ``data``."""
        fstore = self._fsspec(store)
        fstore.fs.pipe_file(fstore._manifest_path(key), data)

    def remove_blob(self, store: ArtifactStore, key: str) -> None:
        """Remove the stored bytes of ``key`` but not its record."""
        fstore = self._fsspec(store)
        fstore.fs.rm_file(fstore._blob_path(store.info(key).sha256))

    # -- round trips ---------------------------------------------------------------------

    @pytest.mark.parametrize("size", [0, 1, 1000, 3 * 2**20 + 7])
    def test_bytes_round_trip(self, store: ArtifactStore, size: int) -> None:
        data = os.urandom(size)
        info = store.put_bytes("data/blob.bin", data)
        assert store.get_bytes("data/blob.bin") == data
        assert info.sha256 == hashlib.sha256(data).hexdigest()
        assert info.size == size
        assert store.info("data/blob.bin") == info
        assert store.exists("data/blob.bin")

    def test_content_uris_outlive_their_key(self, store: ArtifactStore) -> None:
        first = store.put_bytes("models/m/model.txt", b"version one")
        store.put_bytes("models/m/model.txt", b"version two")  # the key moves on
        assert store.has_content(first.uri)
        assert store.read_uri(first.uri) == b"version one"
        assert store.read_uri(first.uri, sha256=first.sha256) == b"version one"
        with pytest.raises(IntegrityError):
            store.read_uri(first.uri, sha256="0" * 64)
        missing = first.uri.replace(first.sha256, "f" * 64)
        assert not store.has_content(missing)
        with pytest.raises(NotFoundError):
            store.read_uri(missing)
        for foreign in (
            "s3://elsewhere/blobs/" + first.sha256,
            first.uri + "/../x",
            first.uri[:-1],
            "file:///etc/passwd",
        ):
            with pytest.raises(ConfinementError):
                store.has_content(foreign)
            with pytest.raises(ConfinementError):
                store.read_uri(foreign)

    @pytest.mark.parametrize("key", VALID_KEYS)
    def test_valid_keys_round_trip(self, store: ArtifactStore, key: str) -> None:
        store.put_bytes(key, key.encode())
        assert store.get_bytes(key) == key.encode()
        assert [i.key for i in store.list()] == [key]

    def test_media_type_and_created_are_recorded(self, store: ArtifactStore) -> None:
        before = time.time()
        info = store.put_bytes("r/report.html", b"<p>", media_type="text/html")
        assert info.media_type == "text/html"
        assert before - 5 <= info.created.timestamp() <= time.time() + 5
        assert info.created.tzinfo is not None
        assert store.info("r/report.html").media_type == "text/html"

    def test_overwrite_replaces(self, store: ArtifactStore) -> None:
        store.put_bytes("k", b"one")
        info = store.put_bytes("k", b"two")
        assert store.get_bytes("k") == b"two"
        assert store.info("k") == info

    def test_write_once_keys_refuse_overwrite(self, store: ArtifactStore) -> None:
        store.put_bytes("k", b"one", overwrite=False)
        with pytest.raises(AlreadyExistsError):
            store.put_bytes("k", b"two", overwrite=False)
        with pytest.raises(AlreadyExistsError), store.open_write("k", overwrite=False) as out:
            out.write(b"three")
        assert store.get_bytes("k") == b"one"

    def test_streams_round_trip(self, store: ArtifactStore) -> None:
        chunks = [os.urandom(2**20) for _ in range(self.kill_payload_size // 2**20 + 1)]
        with store.open_write("s/big.bin") as out:
            for chunk in chunks:
                out.write(chunk)
            assert not store.exists("s/big.bin")  # not visible until the block ends
        data = b"".join(chunks)
        assert out.info is not None
        assert out.info.sha256 == hashlib.sha256(data).hexdigest()
        assert out.info.size == len(data)
        with store.open_read("s/big.bin") as stream:
            assert stream.read() == data
        assert store.get_bytes("s/big.bin") == data

    def test_files_round_trip(self, store: ArtifactStore, tmp_path: Path) -> None:
        source = tmp_path / "model.txt"
        source.write_bytes(b"tree\n" * 10000)
        info = store.put_file("m/model.txt", source)
        target = tmp_path / "out" / "model.txt"
        assert store.get_file("m/model.txt", target) == info
        assert target.read_bytes() == source.read_bytes()

    def test_tables_round_trip(self, store: ArtifactStore) -> None:
        import polars as pl
        import pyarrow as pa

        table = pa.table(
            {
                "id": list(range(1000)),
                "x": [i / 7 for i in range(1000)],
                "s": [f"r{i}" for i in range(1000)],
            }
        )
        info = store.put_table("t/a.parquet", table)
        assert info.media_type == PARQUET
        assert store.get_table("t/a.parquet").equals(table)
        assert store.get_table("t/a.parquet", columns=["x"]).equals(table.select(["x"]))
        lazy = store.scan_table("t/a.parquet")
        assert isinstance(lazy, pl.LazyFrame)
        got = lazy.filter(pl.col("id") < 10).collect()
        assert got.equals(pl.DataFrame(table.slice(0, 10)))
        frame = pl.DataFrame({"a": [1, 2, 3]})
        store.put_table("t/b.parquet", frame)
        assert store.get_table("t/b.parquet").equals(frame.to_arrow())

    def test_missing_keys_raise_not_found(self, store: ArtifactStore, tmp_path: Path) -> None:
        store.put_bytes("there", b"x")
        for call in (
            lambda: store.get_bytes("nope"),
            lambda: store.info("nope"),
            lambda: store.get_table("nope"),
            lambda: store.scan_table("nope"),
            lambda: store.delete("nope"),
            lambda: store.get_file("nope", tmp_path / "f"),
            lambda: store.get_bytes("there/below"),
        ):
            with pytest.raises(NotFoundError):
                call()
        with pytest.raises(NotFoundError), store.open_read("nope"):
            pass
        assert not store.exists("nope")
        assert not (tmp_path / "f").exists()

    def test_expected_digest_is_checked(self, store: ArtifactStore) -> None:
        info = store.put_bytes("k", b"abc")
        assert store.get_bytes("k", sha256=info.sha256) == b"abc"
        with pytest.raises(IntegrityError):
            store.get_bytes("k", sha256="0" * 64)

    # -- integrity -----------------------------------------------------------------------

    @pytest.mark.parametrize("how", ["flip", "truncate", "extend"])
    def test_tampered_bytes_raise_integrity_error(
        self, store: ArtifactStore, tmp_path: Path, how: str
    ) -> None:
        data = os.urandom(200_000)
        store.put_bytes("k", data)
        mutate = {
            "flip": lambda b: b[:1000] + bytes([b[1000] ^ 1]) + b[1001:],
            "truncate": lambda b: b[:-1],
            "extend": lambda b: b + b"\0",
        }[how]
        self.corrupt_blob(store, "k", mutate)
        with pytest.raises(IntegrityError):
            store.get_bytes("k")
        with pytest.raises(IntegrityError):
            _read_to_end(store, "k")
        with pytest.raises(IntegrityError):
            store.get_file("k", tmp_path / "copy")
        assert not (tmp_path / "copy").exists()

    def test_tampered_tables_raise_integrity_error(self, store: ArtifactStore) -> None:
        import pyarrow as pa

        store.put_table("t.parquet", pa.table({"x": list(range(10_000))}))
        self.corrupt_blob(store, "t.parquet", lambda b: b[:100] + bytes([b[100] ^ 0xFF]) + b[101:])
        with pytest.raises(IntegrityError):
            store.get_table("t.parquet")
        with pytest.raises(IntegrityError):
            store.scan_table("t.parquet")

    @pytest.mark.parametrize(
        "manifest",
        [
            b"",
            b"{not json",
            b"[]",
            b'{"format": 1}',
            b'{"format": 1, "key": "k", "sha256": "../../x", '
            b'"size": 1, "media_type": "x", "created": "now"}',
        ],
    )
    def test_corrupt_records_raise_integrity_error(
        self, store: ArtifactStore, manifest: bytes
    ) -> None:
        store.put_bytes("k", b"abc")
        self.corrupt_manifest(store, "k", manifest)
        with pytest.raises(IntegrityError):
            store.get_bytes("k")
        with pytest.raises(IntegrityError):
            store.info("k")

    def test_missing_content_raises_integrity_error(self, store: ArtifactStore) -> None:
        store.put_bytes("k", b"abc")
        self.remove_blob(store, "k")
        with pytest.raises(IntegrityError):
            store.get_bytes("k")
        with pytest.raises(IntegrityError), store.open_read("k") as stream:
            stream.read()

    # -- atomicity -----------------------------------------------------------------------

    def test_exception_inside_open_write_leaves_nothing(self, store: ArtifactStore) -> None:
        store.put_bytes("old", b"before")
        for key in ("new", "old"):
            with pytest.raises(RuntimeError, match="the writer failed"):
                _fail_while_writing(store, key, self.kill_payload_size)
        assert not store.exists("new")
        assert [i.key for i in store.list()] == ["old"]
        assert store.get_bytes("old") == b"before"

    def _fork(self, work: Callable[[Callable[[], None]], None]) -> int:
        """Run ``work(ready)`` in a forked child; return its pid once it called ``ready``."""
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                os.close(read_end)

                def signal_ready() -> None:
                    os.write(write_end, b"1")

                work(signal_ready)
                time.sleep(120)
            finally:
                os._exit(0)
        os.close(write_end)
        try:
            ready, _, _ = select.select([read_end], [], [], 60)
            if not ready or os.read(read_end, 1) != b"1":
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail("the writer process did not start writing")
        finally:
            os.close(read_end)
        return pid

    @staticmethod
    def _kill(pid: int) -> None:
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status)
        assert os.WTERMSIG(status) == signal.SIGKILL

    def test_killed_writer_leaves_nothing_visible(self, store: ArtifactStore) -> None:
        store.put_bytes("old", b"before")
        size = self.kill_payload_size

        def work(ready: Callable[[], None]) -> None:
            with store.open_write("new") as a, store.open_write("old") as b:
                for out in (a, b):
                    for _ in range(size // 2**20):
                        out.write(b"\x01" * 2**20)
                ready()
                time.sleep(120)

        self._kill(self._fork(work))
        assert not store.exists("new")
        assert [i.key for i in store.list()] == ["old"]
        assert store.get_bytes("old") == b"before"
        # the killed writer did leave temporary objects behind; gc finds and removes them
        report = store.gc(dry_run=True, grace=NO_GRACE)
        assert report.temporary, "the writer was killed before it stored anything"
        store.gc(dry_run=False, grace=NO_GRACE)
        assert store.gc(dry_run=True, grace=NO_GRACE).temporary == ()
        assert store.get_bytes("old") == b"before"

    def test_killed_overwriter_leaves_a_complete_version(self, store: ArtifactStore) -> None:
        store.put_bytes("k", _payload(0))

        def work(ready: Callable[[], None]) -> None:
            for i in range(1, 100_000):
                store.put_bytes("k", _payload(i))
                if i == 2:
                    ready()

        pid = self._fork(work)
        time.sleep(0.3)
        self._kill(pid)
        data = store.get_bytes("k")  # verified
        assert data == _payload(int(data[:8]))
        assert int(data[:8]) >= 2
        assert [i.key for i in store.list()] == ["k"]

    # -- confinement ---------------------------------------------------------------------

    def test_the_corpus_is_large(self) -> None:
        assert len(TRAVERSAL_CORPUS) >= 100

    @pytest.mark.parametrize(
        "key", TRAVERSAL_CORPUS, ids=[f"c{i:03d}" for i in range(len(TRAVERSAL_CORPUS))]
    )
    def test_traversal_keys_are_refused(
        self, store: ArtifactStore, key: str, tmp_path: Path
    ) -> None:
        calls: list[Callable[[], Any]] = [
            lambda: store.put_bytes(key, b"x"),
            lambda: store.get_bytes(key),
            lambda: store.info(key),
            lambda: store.exists(key),
            lambda: store.delete(key),
            lambda: store.get_table(key),
            lambda: store.scan_table(key),
            lambda: store.get_file(key, tmp_path / "f"),
        ]
        if key not in ("", "a/b/"):  # fine as list prefixes: everything, and folder a/b
            calls.append(lambda: list(store.list(key)))
        for call in calls:
            with pytest.raises(ConfinementError):
                call()
        for opener in (store.open_write, store.open_read):
            with pytest.raises(ConfinementError), opener(key):
                pass
        assert list(store.list()) == []

    # -- listing -------------------------------------------------------------------------

    def test_list_is_sorted_and_filtered_by_prefix(self, store: ArtifactStore) -> None:
        keys = ["b/2", "a/x/1", "a/1", "ab", "a/x/0", "b/10", "c"]
        for key in keys:
            store.put_bytes(key, key.encode())
        assert [i.key for i in store.list()] == sorted(keys)
        assert [i.key for i in store.list("a/")] == ["a/1", "a/x/0", "a/x/1"]
        assert [i.key for i in store.list("a")] == ["a/1", "a/x/0", "a/x/1", "ab"]
        assert [i.key for i in store.list("a/x")] == ["a/x/0", "a/x/1"]
        assert [i.key for i in store.list("b/1")] == ["b/10"]
        assert list(store.list("zzz/")) == []
        assert {i.key: i for i in store.list()}["c"] == store.info("c")

    def test_list_shows_no_partial_objects(self, store: ArtifactStore) -> None:
        store.put_bytes("done", b"1")
        with store.open_write("pending") as out:
            out.write(os.urandom(self.kill_payload_size))
            assert [i.key for i in store.list()] == ["done"]
            assert not store.exists("pending")
        assert [i.key for i in store.list()] == ["done", "pending"]

    # -- delete and gc -------------------------------------------------------------------

    def test_delete(self, store: ArtifactStore) -> None:
        store.put_bytes("a/k", b"shared")
        store.put_bytes("b/k", b"shared")  # same content, one blob
        store.delete("a/k")
        assert not store.exists("a/k")
        with pytest.raises(NotFoundError):
            store.delete("a/k")
        store.gc(dry_run=False, grace=NO_GRACE)
        assert store.get_bytes("b/k") == b"shared"
        assert [i.key for i in store.list()] == ["b/k"]

    def test_gc_dry_run_then_removal(self, store: ArtifactStore) -> None:
        store.put_bytes("keep", b"kept")
        store.put_bytes("over", b"first")
        store.put_bytes("over", b"second")
        store.put_bytes("gone", b"deleted")
        store.delete("gone")
        report = store.gc(dry_run=True, grace=NO_GRACE)
        assert report.dry_run
        assert len(report.unreferenced) == 2
        assert report.bytes_freed == len(b"first") + len(b"deleted")
        assert store.gc(dry_run=True, grace=NO_GRACE) == report  # nothing was removed
        done = store.gc(dry_run=False, grace=NO_GRACE)
        assert not done.dry_run
        assert done.unreferenced == report.unreferenced
        assert store.gc(dry_run=True, grace=NO_GRACE).unreferenced == ()
        assert store.get_bytes("keep") == b"kept"
        assert store.get_bytes("over") == b"second"

    def test_gc_leaves_young_objects_alone(self, store: ArtifactStore) -> None:
        store.put_bytes("k", b"first")
        store.put_bytes("k", b"second")
        report = store.gc(dry_run=False)  # default grace: a writer might still need them
        assert report.unreferenced == ()
        assert len(store.gc(dry_run=True, grace=NO_GRACE).unreferenced) == 1
