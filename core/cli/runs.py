"""``conveyor runs list|show`` and ``conveyor lineage``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from conveyor.cli._output import echo_json, echo_table
from conveyor.errors import ConveyorError


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f}s"


def _artifact_dict(record: Any) -> dict[str, Any]:
    return {
        "id": record.id,
        "uri": record.uri,
        "fingerprint": record.fingerprint,
        "kind": record.kind,
        "size": record.size,
    }


def run_dict(run: Any) -> dict[str, Any]:
    """A run (with its steps) as JSON-able data."""
    return {
        "id": run.id,
        "pipeline": run.pipeline,
        "status": run.status,
        "started": run.started.isoformat(),
        "ended": run.ended and run.ended.isoformat(),
        "duration_s": run.duration_s,
        "parameters": run.parameters,
        "trigger_event": run.trigger_event,
        "code_fingerprint": run.code_fingerprint,
        "git_commit": run.git_commit,
        "error": run.error,
        "metrics": run.metrics,
        "steps": [
            {
                "id": s.id,
                "name": s.name,
                "status": s.status,
                "started": s.started.isoformat(),
                "ended": s.ended and s.ended.isoformat(),
                "duration_s": s.duration_s,
                "cache_key": s.cache_key,
                "cache_hit": s.cache_hit,
                "logs_uri": s.logs_uri,
                "error": s.error,
                "metrics": s.metrics,
                "inputs": {k: _artifact_dict(v) for k, v in s.inputs.items()},
                "outputs": {k: _artifact_dict(v) for k, v in s.outputs.items()},
            }
            for s in run.steps
        ],
    }


@click.group()
def runs() -> None:
    """Pipeline runs recorded in the metadata store."""


@runs.command("list")
@click.option("--pipeline", default=None, help="Only runs of this pipeline.")
@click.option("--status", default=None, help="Only runs with this status.")
@click.option("--limit", default=20, show_default=True, help="How many runs.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def list_runs(
    state: Any, pipeline: str | None, status: str | None, limit: int, as_json: bool
) -> None:
    """List runs, newest first."""
    found = state.app.metadata.search_runs(pipeline=pipeline, status=status, limit=limit)
    if as_json:
        echo_json([run_dict(r) for r in found])
        return
    if not found:
        click.echo("No runs recorded yet.")
        return
    echo_table(
        ["ID", "PIPELINE", "STATUS", "STARTED", "DURATION", "TRIGGER"],
        [
            [
                r.id,
                r.pipeline,
                r.status,
                _when(r.started),
                _duration(r.duration_s),
                r.trigger_event or "-",
            ]
            for r in found
        ],
    )


@runs.command("show")
@click.argument("run_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def show_run(state: Any, run_id: str, as_json: bool) -> None:
    """Show one run (a unique id prefix is enough): steps, artifacts, metrics."""
    metadata = state.app.metadata
    run = metadata.get_run(run_id)
    if as_json:
        data = run_dict(run)
        if run.trigger_event:
            event = metadata.get_trigger_event(run.trigger_event)
            data["trigger"] = {
                "id": event.id,
                "trigger": event.trigger,
                "reason": event.reason,
                "details": event.details,
                "created": event.created.isoformat(),
            }
        echo_json(data)
        return
    click.echo(f"run {run.id}  {run.pipeline}  {run.status}")
    click.echo(
        f"  started {_when(run.started)}  ended {_when(run.ended) or '-'}  "
        f"({_duration(run.duration_s)})"
    )
    if run.trigger_event:
        event = metadata.get_trigger_event(run.trigger_event)
        click.echo(f"  trigger {event.trigger}: {event.reason}")
    if run.code_fingerprint or run.git_commit:
        click.echo(f"  code {run.code_fingerprint or '-'}  git {run.git_commit or '-'}")
    if run.error:
        click.secho(f"  error: {run.error}", fg="red")
    if run.parameters:
        click.echo(
            "  parameters: " + ", ".join(f"{k}={v}" for k, v in sorted(run.parameters.items()))
        )
    if run.metrics:
        click.echo(
            "  metrics: " + ", ".join(f"{k}={v:.6g}" for k, v in sorted(run.metrics.items()))
        )
    for step in run.steps:
        cached = " (cache hit)" if step.cache_hit else ""
        click.echo(f"  step {step.name:<20} {step.status:<10} {_duration(step.duration_s)}{cached}")
        if step.metrics:
            click.echo(
                "      metrics: "
                + ", ".join(f"{k}={v:.6g}" for k, v in sorted(step.metrics.items()))
            )
        for label, record in step.inputs.items():
            click.echo(f"      in  {label}: {record.uri} ({record.fingerprint[:12]})")
        for label, record in step.outputs.items():
            click.echo(f"      out {label}: {record.uri} ({record.fingerprint[:12]})")
        if step.error:
            click.secho(f"      error: {step.error}", fg="red")


def _node_for(ref: str) -> str:
    """``churn:3`` -> ``model:churn:3``; typed ids (``run:...``) pass through."""
    from conveyor.interfaces.metadata import NODE_KINDS
    from conveyor.interfaces.registry import parse_model_ref

    kind = ref.split(":", 1)[0]
    if kind in NODE_KINDS and ":" in ref:
        return ref
    try:
        name, version = parse_model_ref(ref)
    except ValueError as exc:
        raise ConveyorError(str(exc), hint="write NAME:VERSION, e.g. churn:3") from None
    if version is None:
        raise ConveyorError(
            f"{ref!r} names no version", hint=f"write {ref}:VERSION, or run:ID / artifact:ID"
        )
    return f"model:{name}:{version}"


def render_tree(graph: Any) -> list[str]:
    """The graph as an indented tree from its root (repeated nodes shown once)."""
    lines: list[str] = []
    seen: set[str] = set()

    def label(node_id: str) -> str:
        node = graph.nodes[node_id]
        extra = ""
        attrs = node.attributes
        if node.kind == "artifact":
            extra = f" ({attrs.get('artifact_kind')}, {str(attrs.get('fingerprint'))[:12]})"
        elif node.kind in ("run", "step"):
            extra = f" [{attrs.get('status')}]" + (" cache hit" if attrs.get("cache_hit") else "")
        elif node.kind == "trigger":
            extra = f": {attrs.get('reason')}"
        elif node.kind == "model":
            extra = f" ({str(attrs.get('sha256'))[:12]})"
        elif node.kind == "feature_view" and attrs.get("fingerprint"):
            extra = f" (definition {str(attrs['fingerprint'])[:12]})"
        return f"{node.kind} {node.label}{extra}"

    def walk(node_id: str, prefix: str, relation: str | None) -> None:
        shown = label(node_id)
        line = f"{prefix}{'<' + relation + '> ' if relation else ''}{shown}"
        if node_id in seen:
            lines.append(line + " (see above)")
            return
        lines.append(line)
        seen.add(node_id)
        for edge, other in graph.neighbours(node_id):
            walk(other, prefix + "  ", edge.relation)

    walk(graph.root, "", None)
    if graph.truncated:
        lines.append("... (truncated: raise --depth)")
    return lines


@click.command()
@click.argument("ref", metavar="NAME:VERSION")
@click.option("--downstream", is_flag=True, help="What was derived from it, not what it came from.")
@click.option("--depth", default=10, show_default=True, help="How many hops to follow.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def lineage(state: Any, ref: str, downstream: bool, depth: int, as_json: bool) -> None:
    """Show where a model version (or run:ID, artifact:ID) came from, as a tree."""
    graph = state.app.metadata.lineage(
        _node_for(ref), direction="downstream" if downstream else "upstream", depth=depth
    )
    if as_json:
        echo_json(graph.to_dict())
        return
    for line in render_tree(graph):
        click.echo(line)


commands = [runs, lineage]
