"""The model registry interface: versions, aliases/stages, approvals and an audit log.

Values are frozen attrs classes defined here (this module imports nothing
heavier than attrs).

Stages and aliases: ``staging`` and ``production`` are exclusive aliases (one
holder at a time, like any free alias such as ``champion``); ``archived`` is a
per-version flag; a version holding none of them is in ``development``.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from attrs import Factory, field, frozen

from conveyor.checks import Finding
from conveyor.models.signature import FeatureSpec, Signature  # noqa: F401 - re-exported

STAGES = ("development", "staging", "production", "archived")
#: Stages that are held by one version at a time, like aliases.
STAGE_ALIASES = ("staging", "production")
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
    approvals: tuple[Approval, ...] = field(default=(), converter=tuple)


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
    aliases: tuple[str, ...] = field(default=(), converter=tuple)
    archived: bool = False
    datasets: tuple[DatasetRef, ...] = field(default=(), converter=tuple)
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


# -- the interface --------------------------------------------------------------------


class ModelRegistry(abc.ABC):
    """Keeps model versions and which version each alias points at.

    What an implementation must guarantee:

    * version numbers are allocated inside the insert transaction: ``(model,
      version)`` is unique, and concurrent registrations get 1, 2, 3, ... with no
      gap and no duplicate;
    * the artifact URI lies inside the configured artifact store and its recorded
      SHA-256 matches (the server chooses artifact locations, not the client);
    * moving an alias is one atomic transaction that also appends to the
      append-only audit log: readers see the old holder or the new one, never
      none or two, and the log always replays to the current holders;
    * promotion to ``production`` requires a passing validation verdict for that
      version unless forced with a reason (the force is audited);
    * ``on_model_registered`` and ``on_alias_changed`` fire after commit.

    Unknown models or versions raise :class:`~conveyor.errors.NotFoundError`.
    """

    @abc.abstractmethod
    def register(self, name: str, *, artifact_uri: str, sha256: str,
                 model_format: str = "lightgbm-text", run_id: str | None = None,
                 datasets: Sequence[DatasetRef] = (),
                 metrics: Mapping[str, float] | None = None,
                 params: Mapping[str, Any] | None = None,
                 governance: Governance | None = None,
                 signature: Signature | None = None, profile_uri: str | None = None,
                 actor: str = "") -> ModelVersion:
        """Register the next version of model ``name`` and return it."""

    @abc.abstractmethod
    def get(self, name: str, version: int | None = None) -> ModelVersion:
        """A version (the latest when ``version`` is None)."""

    @abc.abstractmethod
    def list_models(self) -> list[ModelSummary]:
        """Every registered model, by name."""

    @abc.abstractmethod
    def list_versions(self, name: str) -> list[ModelVersion]:
        """Every version of a model, oldest first."""

    @abc.abstractmethod
    def resolve(self, name: str, alias: str) -> ModelVersion | None:
        """The version ``alias`` points at now, or None."""

    @abc.abstractmethod
    def aliases(self, name: str) -> dict[str, int]:
        """Every alias of a model and the version holding it."""

    @abc.abstractmethod
    def set_alias(self, name: str, alias: str, version: int, *, actor: str,
                  reason: str = "", force: bool = False) -> AliasChange:
        """Move ``alias`` (a free alias or ``staging``/``production``) to ``version``.

        Moving ``production`` needs a passing validation verdict for ``version``
        (``ValidationError`` otherwise) unless ``force`` with a non-empty reason.
        """

    @abc.abstractmethod
    def remove_alias(self, name: str, alias: str, *, actor: str, reason: str = ""
                     ) -> AliasChange:
        """Unset ``alias``, audited."""

    @abc.abstractmethod
    def rollback(self, name: str, alias: str, *, actor: str, reason: str = ""
                 ) -> AliasChange:
        """Move ``alias`` back to the holder before the current one, audited.

        Repeated rollbacks keep walking back through the alias's history.
        """

    @abc.abstractmethod
    def archive(self, name: str, version: int, *, actor: str, reason: str = ""
                ) -> AliasChange:
        """Mark a version archived (refused while it holds an alias), audited."""

    @abc.abstractmethod
    def alias_at(self, name: str, alias: str, at: datetime) -> int | None:
        """Which version held ``alias`` at time ``at`` (None: nobody)."""

    @abc.abstractmethod
    def history(self, name: str, *, alias: str | None = None) -> list[AliasChange]:
        """The audit log of a model (optionally one alias), oldest first."""

    @abc.abstractmethod
    def record_validation(self, name: str, version: int, *, passed: bool, actor: str = "",
                          run_id: str | None = None, summary: str = "",
                          details: Mapping[str, Any] | None = None) -> ValidationVerdict:
        """Record a validation verdict for a version."""

    @abc.abstractmethod
    def validations(self, name: str, version: int) -> list[ValidationVerdict]:
        """Every verdict recorded for a version, oldest first."""

    @abc.abstractmethod
    def approve(self, name: str, version: int, *, by: str, comment: str = "") -> Approval:
        """Record that ``by`` approved a version."""

    @abc.abstractmethod
    def check(self, *, deep: bool = False) -> list[Finding]:
        """Verify integrity: audit replay matches the alias holders; artifacts exist
        with their recorded hashes (``deep`` re-reads and re-hashes their bytes)."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release connections."""
