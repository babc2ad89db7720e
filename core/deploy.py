"""Pipeline deployment: which pipeline version each environment (config profile) runs.

A pipeline version is the code fingerprint of its graph plus the project's git commit,
exactly what every run records.  ``conveyor pipelines deploy NAME --profile ENV``
records a version for one environment, under the rules of that profile's ``[deploy]``
table::

    [profiles.test.deploy]
    mode = "auto"                 # anyone, any time (a CI job)

    [profiles.preprod.deploy]
    mode = "review"               # needs --reviewed-by NAME
    after = "test"                # the version must be deployed in test first

    [profiles.production.deploy]
    mode = "approval"             # needs --approved-by NAME, NAME in approvers
    approvers = ["alice"]
    after = "preprod"
    min_runs = 3                  # successful runs of this version in preprod

Every attempt, allowed or refused, is appended to the environment's audit log in its
metadata store (the ``pipeline_deployment`` definitions: one version per attempt, never
rewritten).  ``watch`` in an environment with a ``[deploy]`` table runs only the
deployed version and refuses when the code on disk is another.
"""

from __future__ import annotations

import getpass
import uuid
from datetime import UTC, datetime
from typing import Any

from attrs import field, frozen

from conveyor.convert import to_tuple
from conveyor.errors import ConfigError, ConveyorError

#: The definitions kind holding the audit log; one name per ``pipeline@environment``.
KIND = "pipeline_deployment"
MODES = ("auto", "review", "approval")


class DeploymentRefused(ConveyorError):
    """A deployment the environment's rules do not allow, or code that is not deployed."""


@frozen(kw_only=True)
class DeployRule:
    """The ``[deploy]`` table of one environment.

    Attributes:
        mode: ``auto``, ``review`` (a reviewer is named) or ``approval`` (one of
            ``approvers`` approves).
        after: the environment the version must be deployed in first.
        min_runs: successful runs of the version in ``after`` since it was deployed
            there.
        approvers: who may approve (``approval`` mode).
    """

    mode: str = "auto"
    after: str | None = None
    min_runs: int = 0
    approvers: tuple[str, ...] = field(default=(), converter=to_tuple)

    @classmethod
    def from_config(cls, config: Any) -> DeployRule | None:
        """The active profile's rule, or ``None`` when it has no ``[deploy]`` table."""
        table = config.section("deploy")
        if not table:
            return None
        where = f"{config.where} [deploy] of profile {config.profile or '(none)'}"
        unknown = set(table) - {"mode", "after", "min_runs", "approvers"}
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(sorted(unknown))}",
                hint="allowed: mode, after, min_runs, approvers",
            )
        rule = cls(**table)
        if rule.mode not in MODES:
            raise ConfigError(
                f"{where}: mode = {rule.mode!r} is not one of {', '.join(MODES)}",
                hint='e.g. mode = "approval" with approvers = ["alice"]',
            )
        if rule.mode == "approval" and not rule.approvers:
            raise ConfigError(
                f"{where}: mode = 'approval' names no approvers",
                hint='add approvers = ["name", ...]',
            )
        if not isinstance(rule.min_runs, int) or rule.min_runs < 0:
            raise ConfigError(f"{where}: min_runs must be a whole number >= 0")
        if rule.min_runs and not rule.after:
            raise ConfigError(
                f"{where}: min_runs counts runs in the environment named by 'after', "
                "which is missing",
                hint='add after = "preprod" (the environment the runs happen in)',
            )
        return rule


@frozen(kw_only=True)
class PipelineVersion:
    """What runs: the graph's code fingerprint and the project's git commit."""

    fingerprint: str
    git_commit: str | None = None

    @property
    def short(self) -> str:
        commit = f" @ {self.git_commit[:10]}" if self.git_commit else ""
        return f"{self.fingerprint[:12]}{commit}"


@frozen(kw_only=True)
class DeploymentEntry:
    """One line of an environment's deployment audit log.

    Attributes:
        id: a unique id.
        pipeline: the ``[pipelines]`` name.
        environment: the profile deployed to.
        action: ``deployed`` or ``refused``.
        version: the pipeline version concerned.
        by: the user who ran the command.
        reviewed_by: the reviewer named, if any.
        approved_by: the approver named, if any.
        reason: why it was refused (or what allowed it).
        at: when.
    """

    id: str
    pipeline: str
    environment: str
    action: str
    version: PipelineVersion
    by: str
    reviewed_by: str | None = None
    approved_by: str | None = None
    reason: str = ""
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pipeline": self.pipeline,
            "environment": self.environment,
            "action": self.action,
            "fingerprint": self.version.fingerprint,
            "git_commit": self.version.git_commit,
            "by": self.by,
            "reviewed_by": self.reviewed_by,
            "approved_by": self.approved_by,
            "reason": self.reason,
            "at": self.at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeploymentEntry:
        return cls(
            id=data["id"],
            pipeline=data["pipeline"],
            environment=data["environment"],
            action=data["action"],
            version=PipelineVersion(
                fingerprint=data["fingerprint"], git_commit=data.get("git_commit")
            ),
            by=data["by"],
            reviewed_by=data.get("reviewed_by"),
            approved_by=data.get("approved_by"),
            reason=data.get("reason", ""),
            at=datetime.fromisoformat(data["at"]),
        )


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def version_on_disk(app: Any, pipeline: str) -> PipelineVersion:
    """The version of ``pipeline`` the project's code would run now."""
    from conveyor.pipeline import load_pipeline
    from conveyor.runs.resolve import resolve_pipeline
    from conveyor.runs.runner import _git_commit

    _, target, parameters = resolve_pipeline(app.config, pipeline)
    graph = load_pipeline(target).build(**parameters)
    return PipelineVersion(fingerprint=graph.fingerprint, git_commit=_git_commit(app.root))


def history(app: Any, pipeline: str | None = None) -> list[DeploymentEntry]:
    """The audit log of ``app``'s environment (every pipeline, or one), oldest first."""
    environment = app.config.profile or ""
    entries = []
    for latest in app.metadata.list_definitions(KIND):
        name, _, env = latest.name.rpartition("@")
        if env != environment or (pipeline is not None and name != pipeline):
            continue
        for d in app.metadata.definition_history(KIND, latest.name):
            entries.append(DeploymentEntry.from_dict(d.spec))
    return sorted(entries, key=lambda e: e.at)


def deployed(app: Any, pipeline: str) -> DeploymentEntry | None:
    """The deployment ``pipeline`` currently has in ``app``'s environment, if any."""
    done = [e for e in history(app, pipeline) if e.action == "deployed"]
    return done[-1] if done else None


def successful_runs_since(app: Any, pipeline: str, entry: DeploymentEntry) -> int:
    """Succeeded runs of ``entry``'s version in ``entry``'s environment since ``entry``.

    A run's environment is the profile its trigger event recorded (``conveyor run``
    and every trigger record it), so runs of another profile on a shared store do
    not count.
    """
    runs = app.metadata.search_runs(
        pipeline=pipeline, status="succeeded", started_after=entry.at, limit=10_000
    )
    count = 0
    for run in runs:
        if run.code_fingerprint != entry.version.fingerprint or run.trigger_event is None:
            continue
        event = app.metadata.get_trigger_event(run.trigger_event)
        meta = event.details.get("conveyor")
        if isinstance(meta, dict) and meta.get("profile") == entry.environment:
            count += 1
    return count


def deploy(
    app: Any,
    pipeline: str,
    *,
    open_environment: Any,
    reviewed_by: str | None = None,
    approved_by: str | None = None,
    by: str | None = None,
) -> DeploymentEntry:
    """Deploy the code on disk of ``pipeline`` to ``app``'s environment, by its rules.

    ``open_environment(profile)`` returns the app of another environment (for the
    ``after`` rule).  The attempt is audited either way; a refusal raises
    :class:`DeploymentRefused` after it is recorded.
    """
    environment = app.config.profile
    if not environment:
        raise ConfigError(
            "deploy to which environment? no profile is active",
            hint="conveyor pipelines deploy NAME --profile staging",
        )
    rule = DeployRule.from_config(app.config) or DeployRule()
    version = version_on_disk(app, pipeline)
    refusal = _refusal(rule, version, pipeline, reviewed_by, approved_by, open_environment)
    entry = DeploymentEntry(
        id=uuid.uuid4().hex,
        pipeline=pipeline,
        environment=environment,
        action="refused" if refusal else "deployed",
        version=version,
        by=by or current_user(),
        reviewed_by=reviewed_by,
        approved_by=approved_by,
        reason=refusal[0] if refusal else f"mode {rule.mode}",
        at=datetime.now(UTC),
    )
    app.metadata.put_definition(KIND, f"{pipeline}@{environment}", entry.to_dict())
    if refusal:
        raise DeploymentRefused(
            f"deployment of {pipeline} {version.short} to {environment} refused: {refusal[0]}",
            hint=refusal[1],
        )
    return entry


def _refusal(
    rule: DeployRule,
    version: PipelineVersion,
    pipeline: str,
    reviewed_by: str | None,
    approved_by: str | None,
    open_environment: Any,
) -> tuple[str, str] | None:
    """``(reason, hint)`` when ``rule`` forbids deploying ``version``, else ``None``."""
    if rule.mode == "review" and not reviewed_by:
        return "this environment deploys after review, and no reviewer is named", (
            "pass --reviewed-by NAME"
        )
    if rule.mode == "approval":
        if not approved_by:
            return "this environment deploys only with a named approver's approval", (
                f"pass --approved-by NAME, one of: {', '.join(rule.approvers)}"
            )
        if approved_by not in rule.approvers:
            return f"{approved_by!r} is not an approver of this environment", (
                f"approvers: {', '.join(rule.approvers)}"
            )
    if rule.after:
        upstream = open_environment(rule.after)
        there = deployed(upstream, pipeline)
        if there is None or there.version.fingerprint != version.fingerprint:
            return f"version {version.short} is not the one deployed in {rule.after}", (
                f"deploy it to {rule.after} first: "
                f"conveyor pipelines deploy {pipeline} --profile {rule.after}"
            )
        runs = successful_runs_since(upstream, pipeline, there)
        if runs < rule.min_runs:
            return (
                f"{runs} of the {rule.min_runs} successful run(s) of this version in "
                f"{rule.after} that it needs"
            ), f"let it run in {rule.after} (conveyor --profile {rule.after} watch)"
    return None


def require_deployed(app: Any, pipeline: str, fingerprint: str) -> None:
    """Refuse to run ``pipeline`` code other than the deployed version, where it matters.

    Environments without a ``[deploy]`` table run whatever is on disk.
    """
    if DeployRule.from_config(app.config) is None:
        return
    environment = app.config.profile or "(no profile)"
    entry = deployed(app, pipeline)
    if entry is None:
        raise DeploymentRefused(
            f"pipeline {pipeline} has no deployed version in {environment}",
            hint=f"conveyor pipelines deploy {pipeline} --profile {environment}",
        )
    if entry.version.fingerprint != fingerprint:
        raise DeploymentRefused(
            f"the code on disk of pipeline {pipeline} ({fingerprint[:12]}) is not the version "
            f"deployed in {environment} ({entry.version.short})",
            hint=f"check out the deployed commit, or deploy this code: "
            f"conveyor pipelines deploy {pipeline} --profile {environment}",
        )


__all__ = [
    "DeployRule",
    "DeploymentEntry",
    "DeploymentRefused",
    "PipelineVersion",
    "deploy",
    "deployed",
    "history",
    "require_deployed",
    "version_on_disk",
]
