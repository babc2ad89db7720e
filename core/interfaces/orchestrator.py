"""The orchestrator interface: runs a pipeline's steps and records them."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any


class Orchestrator(abc.ABC):
    """Runs a pipeline DAG: dependency order, caching, retries, recording.

    What an implementation must guarantee: steps run only after their inputs
    exist; every run and step is recorded in the metadata store with the trigger
    that started it; a cached step is reused only when its code fingerprint,
    input fingerprints and parameters all match.
    """

    @abc.abstractmethod
    def run(self, pipeline: Any, *, parameters: Mapping[str, Any] | None = None,
            trigger_event: str | None = None) -> Any:
        """Run ``pipeline`` to the end and return its run record."""
