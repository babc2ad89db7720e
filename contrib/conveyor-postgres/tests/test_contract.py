"""The PostgreSQL metadata store and registry backend against the shipped contract suites."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conveyor_postgres.config import PostgresMetadataStoreConfig, PostgresModelRegistryConfig
from conveyor_postgres.db import migrations
from conveyor_postgres.metadata import PostgresMetadataStore
from conveyor_postgres.registry import PostgresRegistryBackend

from conveyor.registry import ModelRegistry
from conveyor.testing.metadata import MetadataStoreContract
from conveyor.testing.registry import ModelRegistryContract


class TestPostgresMetadataStore(MetadataStoreContract):
    @pytest.fixture
    def store(self, pg_url: str, pg_schema: str) -> Iterator[PostgresMetadataStore]:
        store = PostgresMetadataStore(
            config=PostgresMetadataStoreConfig(url=pg_url, schema=pg_schema)
        )
        yield store
        store.close()


class TestPostgresRegistryBackend(ModelRegistryContract):
    @pytest.fixture
    def backend(self, pg_app: Any) -> PostgresRegistryBackend:
        registry = pg_app.registry
        assert isinstance(registry, ModelRegistry)
        assert isinstance(registry.backend, PostgresRegistryBackend)
        return registry.backend

    @pytest.fixture
    def reopen(
        self, backend: PostgresRegistryBackend
    ) -> Iterator[Callable[[], PostgresRegistryBackend]]:
        opened: list[PostgresRegistryBackend] = []

        def again() -> PostgresRegistryBackend:
            opened.append(PostgresRegistryBackend(config=backend.config))
            return opened[-1]

        yield again
        for other in opened:
            other.close()

    @pytest.fixture
    def artifact_store(self, pg_app: Any) -> Any:
        return pg_app.artifacts

    @pytest.fixture
    def metadata(self, pg_url: str, backend: PostgresRegistryBackend) -> Iterator[Any]:
        import uuid

        import psycopg

        schema = f"m_{uuid.uuid4().hex[:12]}"  # lineage must not need the registry's schema
        store = PostgresMetadataStore(config=PostgresMetadataStoreConfig(url=pg_url, schema=schema))
        yield store
        store.close()
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')

    @pytest.fixture
    def project_dir(self, pg_app: Any) -> Path:
        return pg_app.root


def test_the_backends_are_selected_by_url(pg_app: Any) -> None:
    assert isinstance(pg_app.metadata, PostgresMetadataStore)
    assert isinstance(pg_app.registry.backend, PostgresRegistryBackend)
    assert pg_app.metadata.describe()["schema_version"] == len(migrations())


def test_postgres_scheme_is_accepted_too(pg_url: str, pg_schema: str) -> None:
    url = "postgres://" + pg_url.split("://", 1)[1]
    backend = PostgresRegistryBackend(config=PostgresModelRegistryConfig(url=url, schema=pg_schema))
    try:
        assert backend.list_models() == []
    finally:
        backend.close()
