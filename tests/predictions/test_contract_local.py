"""The prediction log on the local artifact store."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.plugins.local.store import LocalArtifactStore
from conveyor.testing.predictions import PredictionLogContract


class TestPredictionLogLocal(PredictionLogContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> LocalArtifactStore:
        return LocalArtifactStore(tmp_path / "artifacts")


def test_for_app_writes_to_the_configured_store(conveyor_app) -> None:
    from conveyor.predictions import PredictionLog, scan_predictions

    with PredictionLog.for_app(conveyor_app) as log:
        log.append(model="churn", version=1, features={"x": [1.0]}, predictions=[0.5])
    assert scan_predictions(conveyor_app.artifacts, model="churn").collect().height == 1
