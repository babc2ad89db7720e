"""Core's model registry: every rule, over whichever backend config selects.

The backend (:class:`~conveyor.interfaces.RegistryBackend`) stores; this class
decides.  It checks names and reserved aliases, confines artifact URIs to the
artifact store and checks their hashes, asks :class:`PromotionPolicy` for the
evidence a move needs, records lineage in the metadata store and fires
``on_model_registered``/``on_alias_changed``, always after the backend
committed.  ``app.registry`` is one of these; so is anything a test builds over
a backend of its own.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from attrs import evolve

from conveyor.checks import Finding, Severity
from conveyor.errors import ConveyorError, NotFoundError
from conveyor.interfaces.lineage import FeatureViewUse
from conveyor.interfaces.registry import (
    ALIAS_ACTIONS,
    MODEL_FORMATS,
    AliasChange,
    Approval,
    DatasetRef,
    FeatureSpec,
    Governance,
    ModelSummary,
    ModelVersion,
    NewVersion,
    RegistryBackend,
    Signature,
    ValidationVerdict,
)
from conveyor.registry.aliases import AliasMoves
from conveyor.registry.artifacts import verify_artifact
from conveyor.registry.audit import check_audit_log
from conveyor.registry.policy import (
    PromotionPolicy,
    check_name,
    check_sha256,
)

log = logging.getLogger("conveyor.registry")
_NO_GOVERNANCE = Governance()
_NO_SIGNATURE = Signature()


def _now() -> datetime:
    return datetime.now(UTC)


class ModelRegistry(AliasMoves):
    """Model versions, aliases/stages, approvals and the audit log, with core's rules.

    Moving aliases (set, remove, rollback, archive, the ``[promotion]`` rules) is
    :class:`~conveyor.registry.aliases.AliasMoves`.

    Attributes:
        backend: where the registry's state is stored.
    """

    def __init__(
        self,
        backend: RegistryBackend,
        *,
        app: Any = None,
        artifacts: Any = None,
        metadata: Any = None,
        policy: PromotionPolicy | None = None,
        emit: Callable[[str, Any], None] | None = None,
    ) -> None:
        self.backend = backend
        self.app = app
        self._artifacts = artifacts
        self._metadata = metadata
        self._policy = policy
        self._emit_hook = emit if emit is not None else app.emit if app is not None else None

    def close(self) -> None:
        self.backend.close()

    def _checkpoint(self, name: str) -> None:
        """A no-op seam after commits; crash tests replace it to kill the process here."""

    # -- collaborators ----------------------------------------------------------------

    @property
    def policy(self) -> PromotionPolicy:
        """The ``[promotion]`` rules (the defaults without an app)."""
        if self._policy is None:
            self._policy = (
                PromotionPolicy()
                if self.app is None
                else PromotionPolicy.from_config(
                    self.app.config.section("promotion"), where=self.app.config.where
                )
            )
        return self._policy

    @property
    def artifacts(self) -> Any:
        """The artifact store registered URIs must lie in (``None``: built without one)."""
        if self._artifacts is None and self.app is not None:
            self._artifacts = self.app.artifacts
        return self._artifacts

    @property
    def metadata(self) -> Any:
        """The metadata store that records model lineage (``None``: not recorded)."""
        if self._metadata is None and self.app is not None:
            self._metadata = self.app.metadata
        return self._metadata

    def _emit(self, hook: str, event: Any) -> None:
        if self._emit_hook is not None:
            self._emit_hook(hook, event)

    def _emit_changes(self, changes: Sequence[AliasChange]) -> None:
        if self._emit_hook is None:
            return
        from conveyor.events import AliasChanged

        for change in changes:
            self._emit(
                "on_alias_changed",
                AliasChanged(
                    model=change.model,
                    alias=change.alias,
                    from_version=change.from_version,
                    to_version=change.to_version,
                    actor=change.actor,
                    reason=change.reason,
                    at=change.at,
                ),
            )

    # -- registration -----------------------------------------------------------------

    def register(
        self,
        name: str,
        *,
        artifact_uri: str,
        sha256: str,
        model_format: str = "lightgbm-text",
        run_id: str | None = None,
        datasets: Sequence[DatasetRef | Mapping[str, Any]] = (),
        metrics: Mapping[str, float] | None = None,
        params: Mapping[str, Any] | None = None,
        governance: Governance | Mapping[str, Any] | None = None,
        signature: Signature | Sequence[FeatureSpec | Mapping[str, Any]] | None = None,
        profile_uri: str | None = None,
        actor: str = "",
        features: Sequence[FeatureViewUse] = (),
    ) -> ModelVersion:
        """Register the next version of model ``name`` and return it.

        The artifact must be a committed object of the artifact store with this
        SHA-256 (a key of the store is recorded as the store's own URI).  Its
        lineage goes to the metadata store and ``on_model_registered`` fires,
        both after the version committed.  ``features``: the feature views (and
        their definition versions) that fed the training set, recorded in lineage.
        """
        check_name(name, "model name")
        sha256 = check_sha256(sha256)
        if model_format not in MODEL_FORMATS:
            raise ConveyorError(
                f"model format {model_format!r} is not accepted",
                hint=f"register LightGBM text or JSON models ({', '.join(MODEL_FORMATS)}); "
                "nothing is ever unpickled",
            )
        store = self.artifacts
        if store is not None:
            artifact_uri = verify_artifact(store, artifact_uri, sha256)
        gov = (
            governance
            if isinstance(governance, Governance)
            else _NO_GOVERNANCE
            if governance is None
            else Governance(**dict(governance))
        )
        sig = (
            signature
            if isinstance(signature, Signature)
            else _NO_SIGNATURE
            if signature is None
            else Signature(features=signature)
        )
        new = NewVersion(
            name=name,
            created=_now(),
            artifact_uri=artifact_uri,
            sha256=sha256,
            model_format=model_format,
            datasets=tuple(d if isinstance(d, DatasetRef) else DatasetRef(**d) for d in datasets),
            metrics={k: float(v) for k, v in metrics.items()} if metrics else {},
            params=dict(params) if params else {},
            governance=evolve(gov, approvals=()) if gov.approvals else gov,
            signature=sig,
            profile_uri=profile_uri,
            run_id=run_id,
            created_by=actor,
        )
        registered = self.backend.insert_version(new)
        self._record_lineage(registered, features)
        if self._emit_hook is not None:
            from conveyor.events import ModelRegistered

            self._emit(
                "on_model_registered",
                ModelRegistered(
                    model=name,
                    version=registered.version,
                    artifact_uri=artifact_uri,
                    sha256=sha256,
                    run_id=run_id,
                    at=registered.created,
                ),
            )
        return registered

    def _record_lineage(
        self, version: ModelVersion, features: Sequence[FeatureViewUse] = ()
    ) -> None:
        """Record the version's lineage; a failure is reported, never undoes the version."""
        store = self.metadata
        if store is None:
            return
        from conveyor.interfaces.lineage import ModelRecord

        try:
            store.record_model(
                ModelRecord(
                    model=version.name,
                    version=version.version,
                    artifact_uri=version.artifact_uri,
                    sha256=version.sha256,
                    run_id=version.run_id,
                    created=version.created,
                    datasets=version.datasets,
                    features=features,
                )
            )
        except Exception as exc:  # the version is committed: report, and let check() find it
            log.warning("lineage of %s v%s not recorded: %s", version.name, version.version, exc)
            print(
                f"warning: lineage of {version.name} v{version.version} was not recorded "
                f"in the metadata store: {type(exc).__name__}: {exc}",
                file=sys.stderr,
            )

    # -- reading ----------------------------------------------------------------------

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        """A version (the latest when ``version`` is None)."""
        return self.backend.get_version(name, version)

    def list_models(self) -> list[ModelSummary]:
        """Every registered model, by name."""
        return self.backend.list_models()

    def list_versions(self, name: str) -> list[ModelVersion]:
        """Every version of a model, oldest first."""
        return self.backend.list_versions(name)

    def resolve(self, name: str, alias: str) -> ModelVersion | None:
        """The version ``alias`` points at now (``latest``: the newest), or None."""
        if alias == "latest":
            try:
                return self.backend.get_version(name)
            except NotFoundError:
                return None
        return self.backend.resolve(name, alias)

    def aliases(self, name: str) -> dict[str, int]:
        """Every alias of a model and the version holding it."""
        return self.backend.aliases(name)

    def history(self, name: str, *, alias: str | None = None) -> list[AliasChange]:
        """The audit log of a model (optionally one alias), oldest first."""
        return self.backend.history(name, alias=alias)

    def alias_at(self, name: str, alias: str, at: datetime) -> int | None:
        """Which version held ``alias`` at time ``at`` (None: nobody)."""
        holder = None
        for change in self.backend.history(name, alias=alias):
            if change.action in ALIAS_ACTIONS:
                if change.at > at:
                    break
                holder = change.to_version
        return holder

    def changes_since(
        self, audit_id: int = 0, *, model: str | None = None, limit: int = 1000
    ) -> list[AliasChange]:
        """Alias moves committed after audit record ``audit_id``, oldest first.

        A server or watcher keeps the last id it saw and polls with it: one
        indexed query per poll, whichever process moved the alias.
        """
        return self.backend.changes_since(int(audit_id), model=model, limit=int(limit))

    def validations(self, name: str, version: int) -> list[ValidationVerdict]:
        """Every verdict recorded for a version, oldest first."""
        return self.backend.validations(name, version)

    # -- validation and approval ------------------------------------------------------

    def record_validation(
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
        """Record a validation verdict for a version."""
        return self.backend.add_validation(
            name,
            version,
            passed=bool(passed),
            actor=actor,
            run_id=run_id,
            summary=summary,
            details=dict(details or {}),
        )

    def approve(self, name: str, version: int, *, by: str, comment: str = "") -> Approval:
        """Record that ``by`` approved a version."""
        if not by or not by.strip():
            raise ConveyorError("an approval needs the approver's name", hint="pass --by WHO")
        return self.backend.add_approval(name, version, by=by, comment=comment)

    # -- integrity --------------------------------------------------------------------

    def check(self, *, deep: bool = False) -> list[Finding]:
        """Storage integrity, audit replay against the holders, and artifact hashes.

        ``deep`` re-reads every model file and re-hashes it.
        """
        findings = list(self.backend.check_storage())
        snapshot = self.backend.audit_snapshot()
        findings.extend(check_audit_log(snapshot))
        try:
            store = self.artifacts
        except ConveyorError as exc:
            return [
                *findings,
                Finding(
                    check="registry.artifacts",
                    severity=Severity.WARNING,
                    message=f"artifact hashes not checked: {exc.message}",
                ),
            ]
        if store is None:
            return [
                *findings,
                Finding(
                    check="registry.artifacts",
                    severity=Severity.INFO,
                    message="artifact hashes not checked: no artifact "
                    "store is configured for the registry",
                ),
            ]
        for name, version, uri, sha in snapshot.artifacts:
            try:
                verify_artifact(store, uri, sha, deep=deep)
            except ConveyorError as exc:
                findings.append(
                    Finding(
                        check="registry.artifacts",
                        subject=f"{name}:{version}",
                        message=f"{name} v{version}: {exc.message}",
                        details={"artifact_uri": uri, "sha256": sha},
                    )
                )
        return findings
