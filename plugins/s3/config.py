"""Config class of the ``s3`` plugin (light: attrs only)."""

from __future__ import annotations

from attrs import field, frozen

MIN_PART_SIZE = 5 * 2**20


@frozen(kw_only=True)
class S3ArtifactStoreConfig:
    """``[artifact_store]`` for the S3 store.

    Every setting left out falls back to the usual AWS sources: the environment
    (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
    ``AWS_REGION``/``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL``), then the shared
    config files, then instance metadata.  Values are checked when the store is
    built (:meth:`S3ArtifactStore.from_config`), with messages naming the key.

    Attributes:
        url: ``s3://bucket/prefix``: where the store lives (the bucket must exist).
        endpoint_url: an S3-compatible endpoint (MinIO, Ceph, ...), else AWS.
        region: the bucket's region.
        access_key_id: the access key (better: ``{ env = "..." }`` or the environment).
        secret_access_key: the secret key (never shown).
        session_token: a temporary session token (never shown).
        block_size: multipart upload part size in bytes (at least 5 MiB); writes
            smaller than this are one PUT.
    """

    url: str
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    block_size: int = 16 * 2**20
