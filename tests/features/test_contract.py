"""The bundled feature store and online store against the shipped conformance suites."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.testing.features import FeatureStoreContract, OnlineStoreContract


class TestSQLiteOnlineStore(OnlineStoreContract):
    @pytest.fixture
    def online(self, tmp_path: Path):
        from conveyor.plugins.features.online import SQLiteOnlineStore

        store = SQLiteOnlineStore(path=tmp_path / "online.db")
        yield store
        store.close()


class TestLocalFeatureStore(FeatureStoreContract):
    @pytest.fixture
    def store(self, conveyor_app):
        return conveyor_app.features
