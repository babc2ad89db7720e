"""Fixtures of the artifact-store tests: a moto S3 server and stores on it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from conveyor.testing.services import moto_s3_endpoint  # noqa: F401 - a fixture

BUCKET = "conveyor-tests"
REGION = "eu-west-1"
CREDENTIALS = {"access_key_id": "testing", "secret_access_key": "testing-secret"}


@pytest.fixture(scope="session")
def s3_bucket(moto_s3_endpoint: str) -> str:  # noqa: F811
    """The test bucket on the moto server, created once."""
    import s3fs

    fs = s3fs.S3FileSystem(
        key=CREDENTIALS["access_key_id"],
        secret=CREDENTIALS["secret_access_key"],
        endpoint_url=moto_s3_endpoint,
        client_kwargs={"region_name": REGION},
        skip_instance_cache=True,
    )
    fs.mkdir(BUCKET)
    return BUCKET


@pytest.fixture
def make_s3_store(moto_s3_endpoint: str, s3_bucket: str) -> Iterator[Callable[..., object]]:  # noqa: F811
    """``make(prefix=None)``: an S3 store under a fresh prefix of the test bucket."""
    from conveyor.plugins.s3.store import S3ArtifactStore

    stores = []

    def make(prefix: str | None = None, **options: object) -> S3ArtifactStore:
        store = S3ArtifactStore(
            bucket=s3_bucket,
            prefix=prefix or f"t-{uuid.uuid4().hex[:12]}",
            endpoint_url=moto_s3_endpoint,
            region=REGION,
            block_size=5 * 2**20,
            **CREDENTIALS,
            **options,
        )
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()
