"""The model registry interface: versions, aliases/stages, approvals and an audit log."""

from __future__ import annotations

import abc
from datetime import datetime
from typing import Any

STAGES = ("development", "staging", "production", "archived")


class ModelRegistry(abc.ABC):
    """Keeps model versions and which version each alias points at.

    What an implementation must guarantee: version numbers are allocated inside
    the insert transaction (``(model, version)`` unique, 1, 2, 3, ... without gaps
    under concurrency); moving an alias is one atomic transaction that also
    appends to an append-only audit log; promotion to ``production`` requires a
    recorded validation verdict unless forced with a reason (which is audited).
    """

    @abc.abstractmethod
    def register(self, name: str, *, artifact_uri: str, sha256: str, **fields: Any) -> Any:
        """Register a new version of model ``name`` and return it."""

    @abc.abstractmethod
    def get(self, name: str, version: int | None = None) -> Any:
        """A version (the latest when ``version`` is None); NotFoundError if unknown."""

    @abc.abstractmethod
    def resolve(self, name: str, alias: str) -> Any | None:
        """The version ``alias`` points at now, or None."""

    @abc.abstractmethod
    def set_alias(self, name: str, alias: str, version: int, *, actor: str, reason: str = "",
                  force: bool = False) -> Any:
        """Move ``alias`` to ``version`` atomically, with an audit record."""

    @abc.abstractmethod
    def rollback(self, name: str, alias: str, *, actor: str, reason: str = "") -> Any:
        """Move ``alias`` back to its previous holder, audited."""

    @abc.abstractmethod
    def alias_at(self, name: str, alias: str, at: datetime) -> int | None:
        """Which version held ``alias`` at time ``at``."""

    @abc.abstractmethod
    def history(self, name: str, *, alias: str | None = None) -> list[Any]:
        """The audit log of a model, oldest first."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release connections."""
