"""Fixtures of the PostgreSQL tests: a throwaway database per session, a schema per test.

The server is ``CONVEYOR_TEST_POSTGRES_URL`` (default ``postgresql://127.0.0.1:5432/test``,
trust auth).  Without a server the tests fail under CI (``CI`` set) and are skipped
otherwise.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

SERVER = os.environ.get("CONVEYOR_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """The URL of a database created for this test session (dropped at its end)."""
    import psycopg

    try:
        admin = psycopg.connect(SERVER, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        message = f"no PostgreSQL server at {SERVER}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    name = f"conveyor_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(SERVER, name)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def pg_schema(pg_url: str) -> Iterator[str]:
    """A fresh schema name in the session's database (dropped at teardown)."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def pg_toml(url: str, schema: str, *, name: str = "pg") -> str:
    """A ``conveyor.toml`` whose metadata store and registry are in ``schema``."""
    return (
        f'[project]\nname = "{name}"\n\n'
        f'[metadata_store]\nurl = "{url}"\nschema = "{schema}"\n\n'
        f'[model_registry]\nurl = "{url}"\nschema = "{schema}"\n'
    )


@pytest.fixture
def pg_app(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    plugin_manager: Any,
    register_plugin: Any,
    monkeypatch: pytest.MonkeyPatch,
    pg_url: str,
    pg_schema: str,
) -> Iterator[Any]:
    """An app in ``tmp_path`` whose metadata store and registry are on PostgreSQL."""
    import conveyor_postgres

    from conveyor.app import Conveyor
    from conveyor.config import Config
    from conveyor.testing import clean_environment, isolate_project_imports

    clean_environment(monkeypatch)
    isolate_project_imports(request, monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "conveyor.toml").write_text(pg_toml(pg_url, pg_schema))
    register_plugin(conveyor_postgres, "postgres")
    app = Conveyor(config=Config.load(cwd=tmp_path), pm=plugin_manager)
    yield app
    app.close()
