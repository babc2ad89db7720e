"""Labels from a feature view: the same windows as the same labels given as Parquet."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from conveyor.errors import ConveyorError
from conveyor.features import Entity, Feature, FeatureView
from conveyor.models.signature import FeatureSpec, Signature
from conveyor.monitoring.service import monitor_performance
from conveyor.predictions import PredictionLog

START = datetime(2024, 3, 1, tzinfo=UTC)
DAY = timedelta(days=1)
USER = Entity(name="user", join_keys="user_id", dtype="string")
OUTCOMES = FeatureView(
    name="outcomes",
    entities=[USER],
    features=[Feature(name="churned", dtype="int64")],
    timestamp_field="known_at",
)


def _log_and_labels(app: Any, tmp_path: Path) -> tuple[pl.DataFrame, Path]:
    """Four days of one prediction per user a day; each label 1-23 hours later."""
    app.registry.register(
        "churn",
        artifact_uri=app.artifacts.put_bytes("models/churn/m.txt", b"tree\n").uri,
        sha256=app.artifacts.put_bytes("models/churn/m.txt", b"tree\n").sha256,
        signature=Signature(
            features=[FeatureSpec(name="x", dtype="float64")], label="churned", objective="binary"
        ),
        metrics={"auc": 0.8},
        actor="test",
    )
    rng = np.random.default_rng(7)
    users = [f"u{i}" for i in range(400)]
    rows = []
    with PredictionLog(app.artifacts) as log:
        for day in range(4):
            x = rng.normal(size=len(users))
            p = 1 / (1 + np.exp(-2 * x))
            at = START + day * DAY
            log.append(
                model="churn",
                version=1,
                features={"x": x.tolist()},
                predictions=p.tolist(),
                entity_keys=users,
                time=at,
            )
            y = (rng.random(len(users)) < p).astype(int)
            delay = rng.integers(1, 24, len(users))
            rows.append(
                pl.DataFrame(
                    {
                        "user_id": users,
                        "known_at": [at + timedelta(hours=int(d)) for d in delay],
                        "churned": y,
                    }
                )
            )
    labels = pl.concat(rows).with_columns(pl.col("known_at").dt.cast_time_unit("us"))
    path = tmp_path / "labels.parquet"
    labels.write_parquet(path)
    return labels, path


def _windows(monitored: Any) -> list[tuple[Any, ...]]:
    return [(w.start, w.rows, w.labelled, w.value, w.low, w.high) for w in monitored.report.windows]


def test_a_label_view_gives_the_windows_the_same_parquet_labels_give(
    conveyor_app: Any, tmp_path: Path
) -> None:
    labels, path = _log_and_labels(conveyor_app, tmp_path)
    conveyor_app.features.apply([USER, OUTCOMES])
    conveyor_app.features.ingest("outcomes", labels)
    window = dict(since=START, until=START + 4 * DAY)
    from_parquet = monitor_performance(
        conveyor_app,
        "churn",
        labels=str(path),
        on="entity",
        entity="user_id",
        label_time="known_at",
        **window,
    )
    from_view = monitor_performance(conveyor_app, "churn", label_view="outcomes", **window)
    assert _windows(from_view) == _windows(from_parquet)
    assert [w.labelled for w in from_view.report.windows] == [400] * 4
    assert all(w.value is not None and w.value > 0.7 for w in from_view.report.windows)
    # a 12-hour horizon drops the labels that came later
    short = monitor_performance(
        conveyor_app, "churn", label_view="outcomes", horizon=timedelta(hours=12), **window
    )
    late = labels.filter(pl.col("known_at").dt.hour() > 12).height
    assert sum(w.labelled for w in short.report.windows) == 1600 - late
    assert all(0 < w.labelled < 400 for w in short.report.windows)


def test_a_label_view_that_cannot_serve_labels_is_refused_with_the_reason(
    conveyor_app: Any, tmp_path: Path
) -> None:
    _, path = _log_and_labels(conveyor_app, tmp_path)
    static = FeatureView(
        name="plan", entities=[USER], features=[Feature(name="tier")], timestamp_field=None
    )
    two_keys = FeatureView(
        name="pairs",
        entities=[USER, Entity(name="shop", join_keys="shop_id")],
        features=[Feature(name="churned", dtype="int64")],
        timestamp_field="known_at",
    )
    conveyor_app.features.apply([USER, Entity(name="shop", join_keys="shop_id"), OUTCOMES])
    conveyor_app.features.apply([static, two_keys])
    with pytest.raises(ConveyorError, match="is static") as caught:
        monitor_performance(conveyor_app, "churn", label_view="plan", label="tier")
    assert "timestamp_field" in caught.value.hint
    with pytest.raises(ConveyorError, match="2 join keys"):
        monitor_performance(conveyor_app, "churn", label_view="pairs")
    with pytest.raises(ConveyorError, match="no feature 'nope'") as caught:
        monitor_performance(conveyor_app, "churn", label_view="outcomes", label="nope")
    assert "churned" in caught.value.hint
    with pytest.raises(ConveyorError, match="not both"):
        monitor_performance(conveyor_app, "churn", labels=str(path), label_view="outcomes")
    with pytest.raises(ConveyorError, match="nowhere"):
        monitor_performance(conveyor_app, "churn", label_view="nowhere")
