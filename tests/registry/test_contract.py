"""The bundled SQLite plugin, and a registry backend in memory, against the suites.

Both registry backends pass the same contract, policy tests included; the one in
memory holds no rule of its own, so the rules are demonstrably core's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conveyor.plugins.sqlite.metadata import SQLiteMetadataStore
from conveyor.plugins.sqlite.registry import SQLiteRegistryBackend
from conveyor.registry import ModelRegistry
from conveyor.testing.metadata import MetadataStoreContract
from conveyor.testing.registry import ModelRegistryContract

from .memory_backend import MemoryRegistryBackend, State


class TestSQLiteMetadataStore(MetadataStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Any:
        store = SQLiteMetadataStore(path=tmp_path / "meta.db")
        yield store
        store.close()


class TestSQLiteRegistryBackend(ModelRegistryContract):
    @pytest.fixture
    def backend(self, conveyor_app: Any) -> Any:
        registry = conveyor_app.registry
        assert isinstance(registry, ModelRegistry)
        assert isinstance(registry.backend, SQLiteRegistryBackend)
        return registry.backend

    @pytest.fixture
    def reopen(self, backend: SQLiteRegistryBackend) -> Callable[[], SQLiteRegistryBackend]:
        opened: list[SQLiteRegistryBackend] = []

        def again() -> SQLiteRegistryBackend:
            opened.append(SQLiteRegistryBackend(path=backend.db.path))
            return opened[-1]

        yield again
        for other in opened:
            other.close()

    @pytest.fixture
    def artifact_store(self, conveyor_app: Any) -> Any:
        return conveyor_app.artifacts

    @pytest.fixture
    def metadata(self, tmp_path: Path, backend: SQLiteRegistryBackend) -> Any:
        store = SQLiteMetadataStore(path=tmp_path / "elsewhere" / "metadata.db")
        assert store.db.path != backend.db.path  # lineage must not need a shared file
        yield store
        store.close()

    @pytest.fixture
    def project_dir(self, conveyor_app: Any) -> Path:
        (conveyor_app.root / "conveyor.toml").write_text('[project]\nname = "contract"\n')
        return conveyor_app.root


class TestMemoryRegistryBackend(ModelRegistryContract):
    @pytest.fixture
    def state(self) -> State:
        return State()

    @pytest.fixture
    def backend(self, state: State) -> MemoryRegistryBackend:
        return MemoryRegistryBackend(state)

    @pytest.fixture
    def reopen(self, state: State) -> Callable[[], MemoryRegistryBackend]:
        return lambda: MemoryRegistryBackend(state)

    @pytest.fixture
    def artifact_store(self, conveyor_app: Any) -> Any:
        return conveyor_app.artifacts

    @pytest.fixture
    def metadata(self, tmp_path: Path) -> Any:
        store = SQLiteMetadataStore(path=tmp_path / "metadata.db")
        yield store
        store.close()


def test_the_memory_backend_is_small() -> None:
    lines = Path(__file__).with_name("memory_backend.py").read_text().count("\n")
    assert lines < 250
