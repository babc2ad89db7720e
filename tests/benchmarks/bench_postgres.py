"""PostgreSQL registry and metadata store against raw psycopg doing the same writes.

Run: ``pytest -m benchmark tests/benchmarks/bench_postgres.py -s`` (a PostgreSQL
server at ``CONVEYOR_TEST_POSTGRES_URL``, default ``postgresql://127.0.0.1:5432/test``).

The floor runs in the same process and run, on a schema created by the same
migrations, over one psycopg connection (autocommit, explicit transactions), with
the same statements and no framework around them.  A registration is two
transactions on both sides: the version in the registry, then its lineage record in
the metadata store (core records it there after the registry committed).
Goal: every workload within 2x of its floor.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.benchmark

SERVER = os.environ.get("CONVEYOR_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")
N = 300


def _per_op(fn: Callable[[int], Any], n: int) -> float:
    """Median seconds per call over five rounds of ``n // 5`` calls."""
    rounds = []
    for r in range(5):
        started = time.perf_counter()
        for i in range(n // 5):
            fn(r * n + i)
        rounds.append((time.perf_counter() - started) / (n // 5))
    return statistics.median(rounds)


@pytest.fixture
def schemas() -> Iterator[tuple[str, str]]:
    import psycopg

    try:
        admin = psycopg.connect(SERVER, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"no PostgreSQL server at {SERVER}: {exc}")
        pytest.skip(f"no PostgreSQL server at {SERVER}: {exc}")
    names = (f"bench_{uuid.uuid4().hex[:10]}", f"floor_{uuid.uuid4().hex[:10]}")
    yield names
    for name in names:
        admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    admin.close()


def test_registrations_and_metric_writes_against_raw_psycopg(
    tmp_path: Path, schemas: tuple[str, str]
) -> None:
    import psycopg
    from conveyor_postgres.config import PostgresMetadataStoreConfig
    from conveyor_postgres.metadata import PostgresMetadataStore

    from conveyor.app import Conveyor
    from conveyor.sqlstore.values import artifact_id

    ours, floor_schema = schemas
    (tmp_path / "conveyor.toml").write_text(
        f'[project]\nname = "bench"\n[metadata_store]\nurl = "{SERVER}"\nschema = "{ours}"\n'
        f'[model_registry]\nurl = "{SERVER}"\nschema = "{ours}"\n'
    )
    app = Conveyor.load(cwd=tmp_path)
    info = app.artifacts.put_bytes("models/m/model.txt", b"tree\nversion=v4\n")
    registry, metadata = app.registry, app.metadata
    registry.list_models()
    run_id = metadata.start_run("bench")

    PostgresMetadataStore(
        config=PostgresMetadataStoreConfig(url=SERVER, schema=floor_schema)
    ).close()  # the same migrations create the floor's
    raw = psycopg.connect(SERVER, autocommit=True)
    raw.execute(f'SET search_path TO "{floor_schema}"')
    raw.execute("INSERT INTO pipelines VALUES ('bench', NULL, NULL, now(), now())")
    raw.execute(
        "INSERT INTO runs (id, pipeline, status, started) VALUES ('r', 'bench', 'running', now())"
    )
    aid = artifact_id(info.uri, info.sha256)

    def raw_register(_: int) -> None:
        at = datetime.now(UTC)
        with raw.transaction():
            version = raw.execute(
                "INSERT INTO models (name, latest_version, created, updated) "
                "VALUES (%s, 1, %s, %s) ON CONFLICT (name) DO UPDATE SET "
                "latest_version = models.latest_version + 1, updated = excluded.updated "
                "RETURNING latest_version",
                ("m", at, at),
            ).fetchone()[0]
            raw.execute(
                "INSERT INTO registry_artifacts (id, uri, fingerprint, kind, metadata, "
                "created) VALUES (%s, %s, %s, 'model', '{}', %s) "
                "ON CONFLICT (id) DO NOTHING",
                (aid, info.uri, info.sha256, at),
            )
            raw.execute(
                "INSERT INTO model_versions (name, version, created, artifact_uri, "
                "sha256, artifact_id, model_format) VALUES (%s, %s, %s, %s, %s, %s, "
                "'lightgbm-text')",
                ("m", version, at, info.uri, info.sha256, aid),
            )
        with raw.transaction():
            raw.execute(
                "INSERT INTO artifacts (id, uri, fingerprint, kind, metadata, created) "
                "VALUES (%s, %s, %s, 'model', '{}', %s) ON CONFLICT (id) DO NOTHING",
                (aid, info.uri, info.sha256, at),
            )
            raw.execute(
                "INSERT INTO lineage_models (name, version, artifact_id, artifact_uri, "
                "sha256, created) VALUES (%s, %s, %s, %s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                ("m", version, aid, info.uri, info.sha256, at),
            )

    def raw_metric(i: int) -> None:
        with raw.transaction():
            raw.execute(
                "INSERT INTO metrics (run_id, key, value, idx, at) "
                "VALUES ('r', 'loss', %s, %s, %s)",
                (i / 7, i, datetime.now(UTC)),
            )

    def raw_batch(i: int) -> None:
        at = datetime.now(UTC)
        with raw.transaction(), raw.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO metrics (run_id, key, value, idx, at) "
                "VALUES ('r', 'loss', %s, %s, %s)",
                [(j / 7, j, at) for j in range(i, i + 100)],
            )

    rows = [
        (
            "registration",
            lambda i: registry.register("m", artifact_uri=info.uri, sha256=info.sha256),
            raw_register,
            N,
        ),
        (
            "log_metric",
            lambda i: metadata.log_metric(run_id, "loss", i / 7, index=i),
            raw_metric,
            2 * N,
        ),
        (
            "log_metrics x100",
            lambda i: metadata.log_metrics(run_id, [("loss", j / 7, j) for j in range(i, i + 100)]),
            raw_batch,
            N // 3,
        ),
    ]
    print("\nPostgreSQL (loaded shared machine: read ratios, not absolutes)")
    print(f"{'workload':<18}{'conveyor ms':>13}{'raw psycopg ms':>16}{'ratio':>8}")
    ratios = {}
    for name, ours_fn, floor_fn, n in rows:
        floor_fn(0)
        ours_fn(0)  # warm both paths (prepared statements, pool)
        theirs, mine = _per_op(floor_fn, n), _per_op(ours_fn, n)
        ratios[name] = mine / theirs
        verdict = "met" if ratios[name] <= 2 else "NOT MET"
        print(
            f"{name:<18}{mine * 1000:>13.3f}{theirs * 1000:>16.3f}{ratios[name]:>8.2f}  {verdict}"
        )
    raw.close()
    app.close()
    assert all(r > 0 for r in ratios.values())
