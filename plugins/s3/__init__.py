"""Bundled plugin ``s3``: an artifact store on S3 (or any S3-compatible service).

Needs ``pip install 'conveyor[s3]'`` (s3fs); it is imported only when the store
is first used, so this plugin costs nothing when another store is configured.
"""

from __future__ import annotations

from typing import Any

from conveyor import hookimpl


@hookimpl
def register_artifact_stores(register: Any) -> None:
    """The S3 artifact store (``s3://bucket/prefix`` URLs)."""
    register(
        "s3",
        factory="conveyor.plugins.s3.store:S3ArtifactStore.from_config",
        config_class="conveyor.plugins.s3.config:S3ArtifactStoreConfig",
        schemes=("s3",),
        extras=("conveyor[s3]",),
        description="Amazon S3 or S3-compatible storage through s3fs (SHA-256 verified)",
    )
