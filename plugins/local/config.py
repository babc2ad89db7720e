"""Config classes of the ``local`` plugin (light: attrs only)."""

from __future__ import annotations

from typing import Any

from attrs import field, frozen


@frozen(kw_only=True)
class LocalArtifactStoreConfig:
    """``[artifact_store]`` for the local store.

    Attributes:
        url: the store root: a plain path or a ``file://`` URL, relative to the
            project root (default ``.conveyor/artifacts``).
        verify: ``changed`` (default): a Parquet table is hashed again only when its
            file changed since its last check; ``always``: on every read.
    """

    url: str = ".conveyor/artifacts"
    verify: str = field(default="changed")

    @verify.validator
    def _check_verify(self, _attribute: Any, value: str) -> None:
        if value not in ("changed", "always"):
            raise ValueError(f'verify must be "changed" or "always", not {value!r}')


@frozen(kw_only=True)
class LocalOrchestratorConfig:
    """``[orchestrator]`` for the local orchestrator.

    Attributes:
        max_workers: how many independent steps may run at once (threads).
    """

    max_workers: int = field(default=1)

    @max_workers.validator
    def _check_workers(self, _attribute: Any, value: int) -> None:
        if value < 1:
            raise ValueError("max_workers must be 1 or more")
