"""The conformance suite on S3: moto in server mode on 127.0.0.1, reached through s3fs."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conveyor.errors import ConfigError
from conveyor.plugins.s3.store import S3ArtifactStore
from conveyor.testing.artifacts import ArtifactStoreContract


class TestS3Contract(ArtifactStoreContract):
    @pytest.fixture
    def store(self, make_s3_store: Callable[..., S3ArtifactStore]) -> S3ArtifactStore:
        return make_s3_store()


def test_a_missing_bucket_is_a_clear_error(moto_s3_endpoint: str) -> None:
    store = S3ArtifactStore(
        bucket="no-such-bucket",
        endpoint_url=moto_s3_endpoint,
        region="eu-west-1",
        access_key_id="a",
        secret_access_key="b",
    )
    with pytest.raises(ConfigError, match="does not exist"):
        store.put_bytes("k", b"1")


def test_stores_under_different_prefixes_are_separate(
    make_s3_store: Callable[..., S3ArtifactStore],
) -> None:
    one, two = make_s3_store("team/one"), make_s3_store("team/two")
    one.put_bytes("k", b"1")
    assert not two.exists("k")
    assert [i.key for i in one.list()] == ["k"]
    assert one.uri.endswith("/team/one")


def test_credentials_never_show(make_s3_store: Callable[..., S3ArtifactStore]) -> None:
    store = make_s3_store()
    assert "testing-secret" not in repr(store)
    assert "testing-secret" not in str(store.describe())
