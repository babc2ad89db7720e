"""The metadata store interface: runs, steps, artifacts, metrics, trigger events, lineage."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any


class MetadataStore(abc.ABC):
    """Records what ran, on what, producing what, and why it ran.

    What an implementation must guarantee: every write is transactional (a
    crash leaves either the whole record or nothing); ids are unique strings;
    concurrent writers from several processes do not lose or duplicate records;
    the schema is versioned and migrated on open without racing other processes.
    """

    @abc.abstractmethod
    def start_run(self, pipeline: str, *, parameters: Mapping[str, Any] | None = None,
                  trigger_event: str | None = None, code_fingerprint: str | None = None
                  ) -> str:
        """Record a new run of ``pipeline`` and return its id."""

    @abc.abstractmethod
    def finish_run(self, run_id: str, status: str, *, error: str | None = None) -> None:
        """Mark a run ``succeeded``, ``failed`` or ``refused``."""

    @abc.abstractmethod
    def get_run(self, run_id: str) -> Any:
        """The run with its steps, parameters and metrics; NotFoundError if unknown."""

    @abc.abstractmethod
    def list_runs(self, *, pipeline: str | None = None, status: str | None = None,
                  limit: int = 50) -> list[Any]:
        """Runs, newest first."""

    @abc.abstractmethod
    def log_metrics(self, run_id: str, metrics: Mapping[str, float], *,
                    step: str | None = None) -> None:
        """Record metrics for a run (or one of its steps) in one transaction."""

    @abc.abstractmethod
    def record_trigger_event(self, trigger: str, reason: str, *,
                             details: Mapping[str, Any] | None = None) -> str:
        """Record why a trigger fired; returns the event id runs refer to."""

    @abc.abstractmethod
    def lineage(self, node: str, *, direction: str = "upstream", depth: int = 10) -> Any:
        """The lineage graph around an artifact, run or model version."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release connections."""
