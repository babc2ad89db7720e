"""A small trained model and a registered copy of it, for the conveyor.models tests."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from conveyor.ml.data import KEY, generate
from conveyor.ml.split import TimeSplit, split_by_time
from conveyor.ml.train import TrainConfig, train
from conveyor.models import TrainedModel

FAST = {"num_boost_round": 40, "early_stopping_rounds": 10, "learning_rate": 0.2, "num_threads": 2}


@pytest.fixture(scope="session")
def split() -> TimeSplit:
    frame = generate(3000, days=10, seed=3).with_columns(
        (pl.col("f00") * 10).round().cast(pl.Int32).alias("n_orders"),
        (pl.col("f01") > 0).alias("flag"),
    )
    return split_by_time(frame, timestamp="event_timestamp")


@pytest.fixture(scope="session")
def model(split: TimeSplit) -> TrainedModel:
    return train(
        split.train, split.validation, TrainConfig(exclude=("entity_id",), key=KEY, **FAST)
    )


@pytest.fixture
def register(conveyor_app: Any) -> Any:
    """``register(text, signature, name=, model_format=)``: store ``text`` in the app's
    artifact store and register it (what ``register_model`` does, without a run)."""

    def make(
        text: str | bytes,
        signature: Any,
        *,
        name: str = "churn",
        model_format: str = "lightgbm-text",
    ) -> Any:
        data = text.encode() if isinstance(text, str) else text
        info = conveyor_app.artifacts.put_bytes(f"models/{name}/{len(data)}.txt", data)
        return conveyor_app.registry.register(
            name,
            artifact_uri=info.uri,
            sha256=info.sha256,
            model_format=model_format,
            signature=signature,
            actor="test",
        )

    return make
