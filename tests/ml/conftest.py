"""Shared small data and models for the ML component tests (session-scoped: trained once)."""

from __future__ import annotations

import pytest

from conveyor.ml.data import KEY, generate
from conveyor.ml.split import TimeSplit, split_by_time
from conveyor.ml.train import TrainConfig, TrainedModel, train

FAST = {"num_boost_round": 80, "early_stopping_rounds": 10, "learning_rate": 0.15, "num_threads": 2}


@pytest.fixture(scope="session")
def frame():
    return generate(6000, days=20, seed=7)


@pytest.fixture(scope="session")
def split(frame) -> TimeSplit:
    return split_by_time(frame, timestamp="event_timestamp")


@pytest.fixture(scope="session")
def config() -> TrainConfig:
    return TrainConfig(exclude=("entity_id",), key=KEY, **FAST)


@pytest.fixture(scope="session")
def model(split, config) -> TrainedModel:
    return train(split.train, split.validation, config)


@pytest.fixture(scope="session")
def weak_model(split) -> TrainedModel:
    """A clearly worse model: two weak features, few rounds."""
    cfg = TrainConfig(
        features=("f05", "plan"), num_boost_round=5, early_stopping_rounds=0, num_threads=2
    )
    return train(split.train, split.validation, cfg)
