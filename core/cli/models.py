"""``conveyor models``: list, show, candidates, promote, rollback, history, approve, check."""

from __future__ import annotations

import getpass
from datetime import datetime
from typing import Any

import click

from conveyor.cli._output import echo_json, echo_table
from conveyor.errors import ConveyorError


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (containers): still record something
        return "unknown"


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def version_dict(mv: Any) -> dict[str, Any]:
    """A model version as JSON-able data."""
    from attrs import asdict

    data = asdict(mv)
    data["created"] = mv.created.isoformat()
    return data


def change_dict(change: Any) -> dict[str, Any]:
    """An audit record as JSON-able data."""
    from attrs import asdict

    data = asdict(change)
    data["at"] = change.at.isoformat()
    return data


def _parse_ref(ref: str) -> tuple[str, int | None]:
    from conveyor.interfaces.registry import parse_model_ref

    try:
        return parse_model_ref(ref)
    except ValueError as exc:
        raise ConveyorError(str(exc), hint="write NAME or NAME:VERSION, e.g. churn:3") from None


@click.group()
def models() -> None:
    """The model registry: versions, stages/aliases, approvals and the audit log."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def list_models(state: Any, as_json: bool) -> None:
    """List registered models with their latest version and aliases."""
    rows = state.app.registry.list_models()
    if as_json:
        echo_json(
            [
                {
                    "name": m.name,
                    "latest_version": m.latest_version,
                    "versions": m.versions,
                    "aliases": m.aliases,
                    "updated": m.updated.isoformat(),
                }
                for m in rows
            ]
        )
        return
    if not rows:
        click.echo("No models registered yet.")
        return
    echo_table(
        ["NAME", "LATEST", "VERSIONS", "ALIASES", "UPDATED"],
        [
            [
                m.name,
                m.latest_version,
                m.versions,
                ", ".join(f"{a}=v{v}" for a, v in m.aliases.items()) or "-",
                _when(m.updated),
            ]
            for m in rows
        ],
    )


@models.command("show")
@click.argument("ref", metavar="NAME[:VERSION]")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def show(state: Any, ref: str, as_json: bool) -> None:
    """Show a model's versions, or one version in full."""
    registry = state.app.registry
    name, version = _parse_ref(ref)
    if version is None:
        versions = registry.list_versions(name)
        if as_json:
            echo_json(
                {
                    "name": name,
                    "aliases": registry.aliases(name),
                    "versions": [version_dict(v) for v in versions],
                }
            )
            return
        echo_table(
            ["VERSION", "STAGE", "ALIASES", "CREATED", "SHA256", "RUN", "METRICS"],
            [
                [
                    v.version,
                    v.stage,
                    ", ".join(v.aliases) or "-",
                    _when(v.created),
                    v.sha256[:12],
                    v.run_id or "-",
                    ", ".join(f"{k}={val:.4g}" for k, val in sorted(v.metrics.items())) or "-",
                ]
                for v in versions
            ],
        )
        return
    mv = registry.get(name, version)
    if as_json:
        data = version_dict(mv)
        data["validations"] = [
            {
                "id": v.id,
                "passed": v.passed,
                "at": v.at.isoformat(),
                "actor": v.actor,
                "run_id": v.run_id,
                "summary": v.summary,
                "details": v.details,
            }
            for v in registry.validations(name, mv.version)
        ]
        echo_json(data)
        return
    gov = mv.governance
    lines = [
        ("model", f"{mv.name} v{mv.version}"),
        ("stage", mv.stage),
        ("aliases", ", ".join(mv.aliases) or "-"),
        ("created", f"{_when(mv.created)} by {mv.created_by or '?'}"),
        ("artifact", mv.artifact_uri),
        ("sha256", mv.sha256),
        ("format", mv.model_format),
        ("run", mv.run_id or "-"),
        ("profile", mv.profile_uri or "-"),
        ("owner", gov.owner or "-"),
        ("description", gov.description or "-"),
        ("intended use", gov.intended_use or "-"),
        ("limitations", gov.limitations or "-"),
        ("approvals", ", ".join(f"{a.by} ({_when(a.at)})" for a in gov.approvals) or "-"),
    ]
    for label, value in lines:
        click.echo(f"{label + ':':<14}{value}")
    if mv.metrics:
        click.echo("metrics:")
        for key, value in sorted(mv.metrics.items()):
            click.echo(f"  {key:<20}{value:.6g}")
    if mv.params:
        click.echo("params:")
        for key, value in sorted(mv.params.items()):
            click.echo(f"  {key:<20}{value}")
    if mv.datasets:
        click.echo("datasets:")
        for d in mv.datasets:
            span = f" [{_when(d.start)} .. {_when(d.end)}]" if d.start or d.end else ""
            click.echo(f"  {d.role:<11} {d.uri} ({d.fingerprint[:12]}){span}")
    if mv.signature.features:
        click.echo("signature:")
        for f in mv.signature.features:
            extra = f" categories={list(f.categories)}" if f.categories else ""
            click.echo(f"  {f.name:<20}{f.dtype}{'' if f.nullable else ' not null'}{extra}")
    for verdict in registry.validations(name, mv.version):
        click.echo(
            f"validation #{verdict.id}: {'passed' if verdict.passed else 'FAILED'} "
            f"{_when(verdict.at)} {verdict.summary}"
        )


def _metrics_text(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items())) or "-"


@models.command()
@click.option("--pipeline", default=None, help="Only candidates of this pipeline's runs.")
@click.option("--refused", is_flag=True, help="Only candidates the gate refused.")
@click.option("--limit", default=20, show_default=True, help="How many recent runs to read.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (full reports).")
@click.pass_obj
def candidates(state: Any, pipeline: str | None, refused: bool, limit: int, as_json: bool) -> None:
    """Every model a run put before the gate: metrics, verdict and why; newest first.

    A refused candidate is never registered nor promoted; its model and verdict stay
    stored with its run.
    """
    from conveyor.candidates import list_candidates

    found = list_candidates(state.app, pipeline=pipeline, refused=refused, limit=limit)
    if as_json:
        echo_json([c.to_dict() for c in found])
        return
    if not found:
        click.echo("No run has put a candidate before a gate yet.")
        return
    echo_table(
        ["RUN", "STARTED", "MODEL", "VERDICT", "VERSION", "METRICS", "WHY"],
        [
            [
                c.run_id,
                _when(c.started),
                c.model or "-",
                "passed" if c.passed else "REFUSED",
                "-" if c.version is None else f"v{c.version}",
                _metrics_text(c.metrics),
                "; ".join(c.reasons) or "-",
            ]
            for c in found
        ],
    )


@models.command()
@click.argument("name")
@click.argument("version", type=int)
@click.option(
    "--to",
    "alias",
    required=True,
    help="staging, production, archived, or any alias (e.g. champion).",
)
@click.option("--reason", default="", help="Why (recorded in the audit log).")
@click.option(
    "--force",
    is_flag=True,
    help="Promote without a passing validation verdict (needs --reason; audited).",
)
@click.option("--by", "actor", default=None, help="Who promotes (default: your login).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def promote(
    state: Any,
    name: str,
    version: int,
    alias: str,
    reason: str,
    force: bool,
    actor: str | None,
    as_json: bool,
) -> None:
    """Move an alias or stage to VERSION in one atomic, audited step."""
    registry = state.app.registry
    actor = actor or _user()
    if alias == "archived":
        change = registry.archive(name, version, actor=actor, reason=reason)
    else:
        change = registry.set_alias(name, alias, version, actor=actor, reason=reason, force=force)
    if as_json:
        echo_json(change_dict(change))
        return
    forced = " (FORCED)" if change.forced else ""
    click.echo(
        f"{name}: {alias} -> v{version} (was "
        f"{'v' + str(change.from_version) if change.from_version else 'unset'}){forced}"
    )


@models.command()
@click.argument("name")
@click.option("--alias", required=True, help="The alias or stage to move back.")
@click.option("--reason", default="", help="Why (recorded in the audit log).")
@click.option("--by", "actor", default=None, help="Who rolls back (default: your login).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def rollback(
    state: Any, name: str, alias: str, reason: str, actor: str | None, as_json: bool
) -> None:
    """Move ALIAS back to the version that held it before, audited."""
    change = state.app.registry.rollback(name, alias, actor=actor or _user(), reason=reason)
    if as_json:
        echo_json(change_dict(change))
        return
    target = f"v{change.to_version}" if change.to_version is not None else "unset"
    click.echo(f"{name}: {alias} rolled back from v{change.from_version} to {target}")


@models.command()
@click.argument("name")
@click.option("--alias", default=None, help="Only this alias or stage.")
@click.option(
    "--at",
    "at",
    default=None,
    metavar="TIME",
    help="Instead: which version held --alias at this ISO time.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def history(state: Any, name: str, alias: str | None, at: str | None, as_json: bool) -> None:
    """The audit log of a model: every alias move, who, when and why."""
    registry = state.app.registry
    if at is not None:
        if alias is None:
            raise ConveyorError("--at needs --alias", hint="e.g. --alias production --at ...")
        when = _parse_time(at)
        version = registry.alias_at(name, alias, when)
        if as_json:
            echo_json({"model": name, "alias": alias, "at": when.isoformat(), "version": version})
        else:
            click.echo(
                f"{name}: {alias} at {when.isoformat()} -> "
                f"{'v' + str(version) if version is not None else 'nobody'}"
            )
        return
    changes = registry.history(name, alias=alias)
    if as_json:
        echo_json([change_dict(c) for c in changes])
        return
    if not changes:
        click.echo(f"No alias of {name!r} has moved yet.")
        return
    echo_table(
        ["#", "WHEN", "ALIAS", "ACTION", "FROM", "TO", "BY", "REASON"],
        [
            [
                c.id,
                _when(c.at),
                c.alias,
                c.action + (" (forced)" if c.forced else ""),
                _v(c.from_version),
                _v(c.to_version),
                c.actor,
                c.reason,
            ]
            for c in changes
        ],
    )


def _v(version: int | None) -> str:
    return "-" if version is None else f"v{version}"


def _parse_time(text: str) -> datetime:
    from datetime import UTC

    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConveyorError(
            f"{text!r} is not an ISO date/time", hint="e.g. 2024-05-01T12:00:00+00:00"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@models.command()
@click.argument("name")
@click.argument("version", type=int)
@click.option("--by", "by", required=True, help="Who approves.")
@click.option("--comment", default="", help="What they say.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def approve(state: Any, name: str, version: int, by: str, comment: str, as_json: bool) -> None:
    """Record that someone approved VERSION."""
    approval = state.app.registry.approve(name, version, by=by, comment=comment)
    if as_json:
        echo_json(
            {
                "model": approval.model,
                "version": approval.version,
                "by": approval.by,
                "at": approval.at.isoformat(),
                "comment": approval.comment,
            }
        )
        return
    click.echo(f"{name} v{version} approved by {by}")


@models.command()
@click.option("--deep", is_flag=True, help="Also re-read every model file and re-hash it.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def check(state: Any, deep: bool, as_json: bool) -> None:
    """Verify the registry: audit log replay, version numbering, artifact hashes."""
    findings = state.app.registry.check(deep=deep)
    if as_json:
        echo_json(
            [
                {
                    "check": f.check,
                    "subject": f.subject,
                    "severity": f.severity.value,
                    "message": f.message,
                    "details": f.details,
                }
                for f in findings
            ]
        )
    else:
        for f in findings:
            click.secho(
                f"{f.severity.value}: [{f.subject or '-'}] {f.message}",
                fg="red" if f.blocking else "yellow",
            )
        if not any(f.blocking for f in findings):
            click.echo(
                "Registry OK: the audit log replays to the current aliases"
                + (
                    ""
                    if any(f.check == "registry.artifacts" for f in findings)
                    else " and every artifact matches its hash"
                )
                + "."
            )
    if any(f.blocking for f in findings):
        raise SystemExit(1)


commands = [models]
