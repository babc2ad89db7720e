"""The bundled SQLite plugin against the metadata-store and registry conformance suites."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conveyor.plugins.sqlite.metadata import SQLiteMetadataStore
from conveyor.plugins.sqlite.registry import SQLiteModelRegistry
from conveyor.testing.metadata import MetadataStoreContract
from conveyor.testing.registry import ModelRegistryContract


class TestSQLiteMetadataStore(MetadataStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Any:
        store = SQLiteMetadataStore(path=tmp_path / "meta.db")
        yield store
        store.close()


class TestSQLiteModelRegistry(ModelRegistryContract):
    @pytest.fixture
    def registry(self, conveyor_app: Any) -> Any:
        registry = conveyor_app.registry
        assert isinstance(registry, SQLiteModelRegistry)
        return registry

    @pytest.fixture
    def artifact_store(self, conveyor_app: Any) -> Any:
        return conveyor_app.artifacts

    @pytest.fixture
    def metadata(self, conveyor_app: Any) -> Any:
        return conveyor_app.metadata

    @pytest.fixture
    def project_dir(self, conveyor_app: Any) -> Path:
        (conveyor_app.root / "conveyor.toml").write_text('[project]\nname = "contract"\n')
        return conveyor_app.root
