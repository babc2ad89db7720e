"""The model registry's values and the primitives a registry backend implements.

A registry *backend* (the ``model_registry`` backend kind) is storage only:
:class:`RegistryBackend` allocates versions, moves aliases by compare-and-set
with an audit record in the same transaction, flags archives, records verdicts
and approvals, and reads.  Every rule (names, reserved aliases, promotion
evidence, approvals, artifact confinement, audit replay, events, lineage) is
core's: :class:`conveyor.registry.ModelRegistry` wraps whichever backend config
selects, and is what ``app.registry`` returns.

Values are frozen attrs classes defined here (this module imports nothing
heavier than attrs).

Stages and aliases: ``staging`` and ``production`` are exclusive aliases (one
holder at a time, like any free alias such as ``champion``); ``archived`` is a
per-version flag; a version holding none of them is in ``development``.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from attrs import Factory, field, frozen

from conveyor.checks import Finding
from conveyor.convert import to_tuple
from conveyor.errors import ConveyorError
from conveyor.models.signature import FeatureSpec, Signature  # noqa: F401 - re-exported

#: Audit actions: ``set``/``rollback``/``remove`` move an alias; ``archive`` and
#: ``unarchive`` flag a version (their records have ``alias == "archived"``).
AUDIT_ACTIONS = ("set", "rollback", "remove", "archive", "unarchive")
ALIAS_ACTIONS = AUDIT_ACTIONS[:3]
#: Model and alias names: a letter or digit, then letters, digits, ``_``, ``.``, ``-``.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
#: The only model formats a registry accepts (nothing is ever unpickled).
MODEL_FORMATS = ("lightgbm-text", "lightgbm-json")


def parse_model_ref(ref: str) -> tuple[str, int | None]:
    """``"churn:3" -> ("churn", 3)``, ``"churn" -> ("churn", None)``."""
    name, sep, version = ref.rpartition(":")
    if not sep:
        return ref, None
    if not version.isdigit():
        raise ValueError(f"{ref!r}: the version after ':' must be a positive integer")
    return name, int(version)


# -- values ---------------------------------------------------------------------------


@frozen(kw_only=True)
class DatasetRef:
    """A dataset a model was trained or evaluated on.

    Attributes:
        uri: where it is stored.
        fingerprint: its content hash.
        role: ``train``, ``validation``, ``holdout``, ...
        start: first event time it covers, if time-bounded.
        end: last event time it covers.
    """

    uri: str
    fingerprint: str
    role: str = "train"
    start: datetime | None = None
    end: datetime | None = None


@frozen(kw_only=True)
class Approval:
    """Someone signed off a model version.

    Attributes:
        model: the model's name.
        version: the version approved.
        by: who approved it.
        at: when.
        comment: what they said.
    """

    model: str
    version: int
    by: str
    at: datetime
    comment: str = ""


@frozen(kw_only=True)
class Governance:
    """Who owns a model and what it may be used for.

    Attributes:
        description: what the model does.
        owner: the person or team answerable for it.
        intended_use: what it is meant for.
        limitations: what it must not be relied on for.
        approvals: sign-offs recorded with ``approve`` (filled on read).
    """

    description: str = ""
    owner: str = ""
    intended_use: str = ""
    limitations: str = ""
    approvals: tuple[Approval, ...] = field(default=(), converter=to_tuple)


@frozen(kw_only=True)
class ValidationVerdict:
    """The outcome of validating a model version (targets met, not worse than incumbent).

    Attributes:
        id: the verdict's id.
        model: the model's name.
        version: the version validated.
        passed: whether it may be promoted to production.
        at: when the verdict was recorded.
        actor: who or what produced it (a run, a person).
        run_id: the run that validated it, if any.
        summary: one line for people.
        details: the evidence: metrics, incumbent comparison, findings.
    """

    id: int
    model: str
    version: int
    passed: bool
    at: datetime
    actor: str = ""
    run_id: str | None = None
    summary: str = ""
    details: dict[str, Any] = Factory(dict)


@frozen(kw_only=True)
class ModelVersion:
    """One registered version of a model.

    Attributes:
        id: the registry's id for it (``name:version``).
        name: the model's name.
        version: 1, 2, 3, ... allocated by the registry.
        created: when it was registered.
        artifact_uri: where its file is, inside the configured artifact store.
        sha256: hex SHA-256 of that file, checked on every load.
        model_format: ``lightgbm-text`` (or ``lightgbm-json``).
        stage: ``production``/``staging`` when it holds that alias, ``archived`` when
            archived, else ``development``.
        aliases: every alias it holds now, stage aliases included.
        archived: whether it is archived.
        datasets: the data it was trained and evaluated on.
        metrics: its evaluation metrics.
        params: its training parameters.
        governance: description, owner, intended use, limitations, approvals.
        signature: the input features it expects (names, types, nullability,
            category maps, order).
        profile_uri: the training-data profile monitoring compares live data with.
        run_id: the pipeline run that produced it.
        created_by: who registered it.
    """

    id: str
    name: str
    version: int
    created: datetime
    artifact_uri: str
    sha256: str
    model_format: str = "lightgbm-text"
    stage: str = "development"
    aliases: tuple[str, ...] = field(default=(), converter=to_tuple)
    archived: bool = False
    datasets: tuple[DatasetRef, ...] = field(default=(), converter=to_tuple)
    metrics: dict[str, float] = Factory(dict)
    params: dict[str, Any] = Factory(dict)
    governance: Governance = Factory(Governance)
    signature: Signature = Factory(Signature)
    profile_uri: str | None = None
    run_id: str | None = None
    created_by: str = ""


@frozen(kw_only=True)
class AliasChange:
    """One record of the append-only audit log.

    Attributes:
        id: position in the log (increasing in commit order).
        model: the model's name.
        alias: the alias or stage moved (``archived`` for archive records).
        from_version: the previous holder (``None``: the alias was unset).
        to_version: the new holder (``None``: the alias was removed).
        action: ``set``, ``rollback``, ``remove``, ``archive`` or ``unarchive``.
        actor: who did it.
        at: when it was committed.
        reason: why, in their words.
        forced: whether a missing validation verdict was overridden.
        evidence: the validation verdict (or other evidence) it relied on.
    """

    id: int
    model: str
    alias: str
    from_version: int | None
    to_version: int | None
    action: str = "set"
    actor: str
    at: datetime
    reason: str = ""
    forced: bool = False
    evidence: dict[str, Any] = Factory(dict)


@frozen(kw_only=True)
class ModelSummary:
    """A registered model at a glance (``conveyor models list``)."""

    name: str
    latest_version: int
    versions: int
    aliases: dict[str, int] = Factory(dict)
    updated: datetime


@frozen(kw_only=True)
class NewVersion:
    """A version to insert: every field but the number, which the backend allocates.

    Core has checked every field (name, hash, format, artifact confinement) and
    normalised it; the backend stores it as given.  ``governance.approvals`` is
    always empty here.
    """

    name: str
    created: datetime
    artifact_uri: str
    sha256: str
    model_format: str = "lightgbm-text"
    datasets: tuple[DatasetRef, ...] = field(default=(), converter=to_tuple)
    metrics: dict[str, float] = Factory(dict)
    params: dict[str, Any] = Factory(dict)
    governance: Governance = Factory(Governance)
    signature: Signature = Factory(Signature)
    profile_uri: str | None = None
    run_id: str | None = None
    created_by: str = ""


@frozen(kw_only=True)
class AuditSnapshot:
    """Everything the audit-replay check compares, read in one consistent state.

    Attributes:
        holders: ``(model, alias) -> (version, id of the audit record that set it)``.
        archived: ``(model, version)`` of every archived version.
        changes: the whole audit log, oldest first.
        artifacts: ``(model, version, artifact_uri, sha256)`` of every version.
    """

    holders: dict[tuple[str, str], tuple[int, int]] = Factory(dict)
    archived: frozenset[tuple[str, int]] = field(default=frozenset(), converter=frozenset)
    changes: tuple[AliasChange, ...] = field(default=(), converter=to_tuple)
    artifacts: tuple[tuple[str, int, str, str], ...] = field(default=(), converter=to_tuple)


class StaleAliasError(ConveyorError):
    """A compare-and-set found another holder than expected: someone moved it first."""


# -- the backend interface --------------------------------------------------------------


class RegistryBackend(abc.ABC):
    """Storage primitives of a model registry (the ``model_registry`` backend kind).

    What an implementation must guarantee:

    * :meth:`insert_version` allocates the number inside its insert transaction:
      ``(model, version)`` is unique and concurrent inserts, from any number of
      processes, get 1, 2, 3, ... with no gap and no duplicate;
    * :meth:`move_alias` is one atomic compare-and-set that appends its audit
      record(s) in the same transaction: readers see the old holder or the new
      one, never none or two, and the log always replays to the current holders;
    * the audit log, verdicts and approvals are append-only, and audit ids and
      times increase in commit order (``changes_since`` relies on it);
    * a method returns only after its write committed.

    It enforces no policy: names, evidence, approvals and artifact checks are
    core's (:class:`conveyor.registry.ModelRegistry`).  Unknown models or
    versions raise :class:`~conveyor.errors.NotFoundError`.
    """

    # -- writes ---------------------------------------------------------------------------

    @abc.abstractmethod
    def insert_version(self, new: NewVersion) -> ModelVersion:
        """Allocate the next version number of ``new.name`` and insert it, atomically."""

    @abc.abstractmethod
    def move_alias(
        self,
        name: str,
        alias: str,
        target: int | None,
        *,
        expected: int | None,
        action: str,
        actor: str,
        reason: str = "",
        forced: bool = False,
        evidence: Mapping[str, Any] | None = None,
        after: int | None = None,
    ) -> list[AliasChange]:
        """Compare-and-set: move ``alias`` from ``expected`` to ``target`` (None: unset).

        Raises :class:`StaleAliasError` when the holder is not ``expected`` (or,
        with ``after``, when the alias's last audit record is not ``after``).  An
        archived target is unarchived in the same transaction, with its own
        ``unarchive`` record before the move's.  Returns the records appended.
        """

    @abc.abstractmethod
    def set_archived(
        self, name: str, version: int, archived: bool, *, actor: str, reason: str = ""
    ) -> AliasChange:
        """Flag a version (un)archived with its audit record, in one transaction.

        Archiving a version that holds an alias raises :class:`StaleAliasError`.
        """

    @abc.abstractmethod
    def add_validation(
        self,
        name: str,
        version: int,
        *,
        passed: bool,
        actor: str = "",
        run_id: str | None = None,
        summary: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> ValidationVerdict:
        """Append a validation verdict for a version."""

    @abc.abstractmethod
    def add_approval(self, name: str, version: int, *, by: str, comment: str = "") -> Approval:
        """Append an approval of a version."""

    # -- reads ----------------------------------------------------------------------------

    @abc.abstractmethod
    def get_version(self, name: str, version: int | None = None) -> ModelVersion:
        """A version with its aliases and approvals (the latest when ``version`` is None)."""

    @abc.abstractmethod
    def list_versions(self, name: str) -> list[ModelVersion]:
        """Every version of a model, oldest first."""

    @abc.abstractmethod
    def list_models(self) -> list[ModelSummary]:
        """Every registered model, by name."""

    @abc.abstractmethod
    def resolve(self, name: str, alias: str) -> ModelVersion | None:
        """The version holding ``alias`` now, read in one consistent state, or None."""

    @abc.abstractmethod
    def aliases(self, name: str) -> dict[str, int]:
        """Every alias of a model and the version holding it."""

    @abc.abstractmethod
    def history(self, name: str, *, alias: str | None = None) -> list[AliasChange]:
        """The audit log of a model (optionally one alias), oldest first."""

    @abc.abstractmethod
    def changes_since(
        self, audit_id: int, *, model: str | None = None, limit: int = 1000
    ) -> list[AliasChange]:
        """Audit records with ``id > audit_id`` (optionally of one model), oldest first.

        One indexed query: a watcher in another process polls it with the last
        id it saw to learn of every alias move.
        """

    @abc.abstractmethod
    def validations(self, name: str, version: int) -> list[ValidationVerdict]:
        """Every verdict recorded for a version, oldest first."""

    @abc.abstractmethod
    def audit_snapshot(self) -> AuditSnapshot:
        """Holders, archive flags, the audit log and artifacts, in one consistent read."""

    @abc.abstractmethod
    def check_storage(self) -> list[Finding]:
        """Storage-level integrity: the store's own check, versions exactly 1..latest."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release connections."""
