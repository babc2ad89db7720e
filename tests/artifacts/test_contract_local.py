"""The conformance suite on the local store, plus what only a filesystem has: links."""

from __future__ import annotations

import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest

from conveyor.errors import ConfinementError, NotFoundError
from conveyor.plugins.local.store import LocalArtifactStore
from conveyor.testing.artifacts import TRAVERSAL_CORPUS, ArtifactStoreContract


class TestLocalContract(ArtifactStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> LocalArtifactStore:
        return LocalArtifactStore(tmp_path / "store")


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "store")


def test_refused_keys_write_nothing_anywhere(store: LocalArtifactStore, tmp_path: Path) -> None:
    before = sorted(p for p in tmp_path.rglob("*"))
    for key in TRAVERSAL_CORPUS:
        with pytest.raises(ConfinementError):
            store.put_bytes(key, b"x")
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_folders_and_files_are_private(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "a" / "b" / "store")
    store.put_bytes("x/y/z", b"1")
    with store.open_write("w") as out:
        out.write(b"partial")
        temps = list((tmp_path / "a").rglob(".tmp-*"))
        assert temps
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in temps)
    for path in (tmp_path / "a").rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path


def test_temp_files_are_short_and_in_the_destination_folder(store: LocalArtifactStore) -> None:
    with store.open_write("k") as out:
        out.write(b"x")
        (temp,) = Path(store.root, "blobs").glob(".tmp-*")
        assert len(temp.name) == len(".tmp-") + 8
    assert not list(Path(store.root).rglob(".tmp-*"))


def test_symlinked_key_folder_leading_out_is_refused(
    store: LocalArtifactStore, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x~.json").write_text("{}")
    keys = Path(store.root, "keys")
    keys.mkdir()
    (keys / "evil").symlink_to(outside)
    for call in (
        lambda: store.put_bytes("evil/x", b"1"),
        lambda: store.get_bytes("evil/x"),
        lambda: store.info("evil/x"),
        lambda: store.delete("evil/x"),
        lambda: store.exists("evil/x"),
    ):
        with pytest.raises(ConfinementError, match="outside the artifact store"):
            call()
    assert sorted(p.name for p in outside.iterdir()) == ["x~.json"]


def test_symlinked_manifest_and_blob_leading_out_are_refused(
    store: LocalArtifactStore, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    info = store.put_bytes("k", b"content")
    blob = Path(store.root, "blobs", info.sha256)
    blob.unlink()
    blob.symlink_to(secret)
    with pytest.raises(ConfinementError):
        store.get_bytes("k")
    with pytest.raises(ConfinementError):
        store.get_table("k")
    manifest = Path(store.root, "keys", "m~.json")
    manifest.symlink_to(secret)
    with pytest.raises(ConfinementError):
        store.info("m")
    with pytest.raises(ConfinementError):
        list(store.list())


def test_the_root_itself_may_be_a_link(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    store = LocalArtifactStore(tmp_path / "link")
    store.put_bytes("a", b"1")
    assert store.get_bytes("a") == b"1"
    assert store.uri == real.as_uri()


def test_gc_removes_stale_temp_files_and_empty_folders(store: LocalArtifactStore) -> None:
    store.put_bytes("a/b/c", b"1")
    store.delete("a/b/c")
    stale = Path(store.root, "keys", ".tmp-deadbeef")
    stale.write_bytes(b"half")
    old = 1_000_000_000
    os.utime(stale, (old, old))
    report = store.gc(dry_run=True)
    assert report.temporary == ("keys/.tmp-deadbeef",)
    assert stale.exists()
    store.gc(dry_run=False, grace=timedelta(0))
    assert not stale.exists()
    assert not Path(store.root, "keys", "a").exists()
    with pytest.raises(NotFoundError):
        store.get_bytes("a/b/c")
