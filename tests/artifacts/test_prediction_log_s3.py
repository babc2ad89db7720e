"""The prediction log on S3 (moto on loopback), with this folder's S3 fixtures."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conveyor.plugins.s3.store import S3ArtifactStore
from conveyor.testing.predictions import PredictionLogContract


class TestPredictionLogS3(PredictionLogContract):
    @pytest.fixture
    def store(self, make_s3_store: Callable[..., S3ArtifactStore]) -> S3ArtifactStore:
        return make_s3_store()
