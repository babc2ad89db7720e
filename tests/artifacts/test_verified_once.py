"""A table blob is hashed again only when its file changed since its last check."""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from conveyor import fsstore
from conveyor.errors import ConfigError, IntegrityError
from conveyor.plugins.local.store import CHECKED_SUFFIX, LocalArtifactStore

TABLE = pa.table({"x": list(range(1000)), "y": [float(i) / 3 for i in range(1000)]})


class CountingSha256:
    """hashlib.sha256, counting the digests taken (the real hash runs)."""

    def __init__(self) -> None:
        self.calls = 0

    def sha256(self, *args: object) -> hashlib._Hash:
        self.calls += 1
        return hashlib.sha256(*args)  # type: ignore[arg-type]


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> CountingSha256:
    counter = CountingSha256()
    monkeypatch.setattr(fsstore, "hashlib", counter)
    return counter


def written(store: LocalArtifactStore, key: str = "t.parquet") -> Path:
    # no wait needed: the store sets a written blob's mtime back past the racy window
    return Path(store.root) / "blobs" / store.put_table(key, TABLE).sha256


def flip_a_byte(blob: Path) -> None:
    """Rewrite ``blob`` with one byte flipped: the same size, a new mtime."""
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.chmod(0o600)
    blob.write_bytes(bytes(data))


def test_a_second_read_of_an_unchanged_table_skips_the_hash(
    tmp_path: Path, hashes: CountingSha256
) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    blob = written(store)
    Path(str(blob) + CHECKED_SUFFIX).unlink()  # as if written by an older store
    hashes.calls = 0
    assert store.get_table("t.parquet").equals(TABLE)
    assert hashes.calls == 1  # the first read hashes, and records the file's identity
    assert Path(str(blob) + CHECKED_SUFFIX).is_file()
    assert store.get_table("t.parquet").equals(TABLE)
    assert store.scan_table("t.parquet").collect().to_arrow().equals(TABLE)
    assert hashes.calls == 1


@pytest.mark.parametrize("read", ["get_table", "scan_table"])
def test_a_changed_file_is_hashed_again_and_refused(tmp_path: Path, read: str) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    blob = written(store)
    store.get_table("t.parquet")  # checked and recorded
    stat = blob.stat()
    flip_a_byte(blob)
    os.utime(blob, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # times kept; ctime moves
    with pytest.raises(IntegrityError):
        getattr(store, read)("t.parquet")


def test_a_replaced_file_is_hashed_again_and_refused(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    blob = written(store)
    store.get_table("t.parquet")
    data = bytearray(blob.read_bytes())
    data[-20] ^= 0x01
    other = blob.with_name("other")
    other.write_bytes(bytes(data))
    os.replace(other, blob)  # a new inode under the old name
    with pytest.raises(IntegrityError):
        store.get_table("t.parquet")


def test_a_table_the_store_wrote_is_not_hashed_on_its_first_read(
    tmp_path: Path, hashes: CountingSha256
) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    info = store.put_table("t.parquet", TABLE)  # hashed as it was written
    assert Path(store.root, "blobs", info.sha256 + CHECKED_SUFFIX).is_file()
    hashes.calls = 0
    assert store.get_table("t.parquet").equals(TABLE)
    assert store.scan_table("t.parquet").collect().to_arrow().equals(TABLE)
    assert hashes.calls == 0


def test_a_rewrite_right_after_the_store_wrote_is_caught(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    info = store.put_table("t.parquet", TABLE)
    flip_a_byte(Path(store.root, "blobs", info.sha256))  # within the record's clock tick
    with pytest.raises(IntegrityError):
        store.get_table("t.parquet")


def test_a_record_taken_right_after_an_outside_write_is_not_trusted(
    tmp_path: Path, hashes: CountingSha256
) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    blob = written(store)
    Path(str(blob) + CHECKED_SUFFIX).unlink()
    os.utime(blob)  # an outside writer's fresh mtime
    hashes.calls = 0
    store.get_table("t.parquet")  # hashed; too fresh to record
    assert not Path(str(blob) + CHECKED_SUFFIX).exists()
    assert hashes.calls == 1


@pytest.mark.parametrize("record", [b"", b"garbage", b"1 2 3", b"1 2 3 4 5 6 7 8"])
def test_a_broken_record_means_a_hash(
    tmp_path: Path, hashes: CountingSha256, record: bytes
) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    blob = written(store)
    Path(str(blob) + CHECKED_SUFFIX).write_bytes(record)
    hashes.calls = 0
    assert store.get_table("t.parquet").equals(TABLE)
    assert hashes.calls == 1


def test_verify_always_hashes_every_read(tmp_path: Path, hashes: CountingSha256) -> None:
    store = LocalArtifactStore(tmp_path / "store", verify="always")
    blob = written(store)
    hashes.calls = 0
    for _ in range(3):
        store.get_table("t.parquet")
    assert hashes.calls == 3
    assert not Path(str(blob) + CHECKED_SUFFIX).exists()
    with pytest.raises(ConfigError, match="verify"):
        LocalArtifactStore(tmp_path / "store", verify="sometimes")


def test_gc_removes_the_record_with_its_blob(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    blob = written(store)
    store.get_table("t.parquet")
    store.delete("t.parquet")
    report = store.gc(dry_run=False, grace=timedelta(0))
    assert report.unreferenced == (f"blobs/{blob.name}",)
    assert not blob.exists()
    assert not Path(str(blob) + CHECKED_SUFFIX).exists()


def test_config_selects_the_mode_and_refuses_others(tmp_path: Path) -> None:
    from conveyor.plugins.local.config import LocalArtifactStoreConfig

    config = LocalArtifactStoreConfig(url=str(tmp_path / "s"), verify="always")
    assert LocalArtifactStore.from_config(app=None, config=config).verify == "always"
    assert LocalArtifactStoreConfig().verify == "changed"
    with pytest.raises(ValueError, match='"changed" or "always"'):
        LocalArtifactStoreConfig(verify="sometimes")
