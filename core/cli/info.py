"""``conveyor plugins``, ``conveyor backends`` and ``conveyor config``."""

from __future__ import annotations

import click

from conveyor.cli._output import echo_json, echo_table


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--hook", metavar="NAME", help="Only plugins that implement this hook.")
@click.pass_obj
def plugins(state, as_json: bool, hook: str | None) -> None:
    """List plugins: origin, status, hooks, and the backends and materializers they add."""
    pm = state.pm
    backends: dict[str, dict[str, list[str]]] = {}
    for spec in pm.catalogue():
        backends.setdefault(spec.plugin, {}).setdefault(spec.kind.value, []).append(spec.name)
    materializers: dict[str, list[str]] = {}
    for materializer in pm.materializers():
        materializers.setdefault(materializer.plugin, []).append(materializer.name)
    rows = []
    for name in sorted(pm.infos):
        info = pm.infos[name]
        hooks = pm.hooks_of(name)
        if hook and hook not in hooks:
            continue
        rows.append(
            {
                "name": name,
                "distribution": info.distribution,
                "version": info.version,
                "module": info.module,
                "source": info.source,
                "status": info.status,
                "error": info.error,
                "hooks": hooks,
                "backends": backends.get(name, {}),
                "materializers": materializers.get(name, []),
            }
        )
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("No plugins loaded." if not hook else f"No plugin implements {hook!r}.")
        return
    echo_table(
        ["NAME", "DISTRIBUTION", "STATUS", "BACKENDS", "HOOKS"],
        [
            [
                r["name"],
                f"{r['distribution'] or r['source']} {r['version'] or ''}".strip(),
                r["status"],
                "; ".join(
                    f"{k}: {', '.join(v)}"
                    for k, v in sorted(
                        {
                            **r["backends"],
                            **({"materializer": r["materializers"]} if r["materializers"] else {}),
                        }.items()
                    )
                )
                or "-",
                ", ".join(r["hooks"]) or "-",
            ]
            for r in rows
        ],
    )
    for r in rows:
        if r["error"] and r["status"] == "failed":
            click.secho(f"{r['name']}: {r['error']}", fg="yellow", err=True)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--kind", help="Only backends of this kind (e.g. artifact_store).")
@click.pass_obj
def backends(state, as_json: bool, kind: str | None) -> None:
    """List the backend catalogue: kind, name, URL schemes and providing plugin."""
    rows = [
        {
            "kind": s.kind.value,
            "name": s.name,
            "schemes": list(s.schemes),
            "plugin": s.plugin,
            "description": s.description,
        }
        for s in state.pm.catalogue()
        if kind is None or s.kind.value == kind
    ]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("No backends installed.")
        return
    echo_table(
        ["KIND", "NAME", "SCHEMES", "PLUGIN", "DESCRIPTION"],
        [
            [
                r["kind"],
                r["name"],
                ", ".join(f"{s}://" for s in r["schemes"]) or "-",
                r["plugin"],
                r["description"],
            ]
            for r in rows
        ],
    )


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def config(ctx: click.Context, as_json: bool) -> None:
    """Show the effective config and where each value came from (secrets masked)."""
    if ctx.invoked_subcommand is not None:
        return
    cfg = ctx.obj.config
    if as_json:
        echo_json(
            {
                "file": str(cfg.file) if cfg.file else None,
                "root": str(cfg.root),
                "profile": cfg.profile,
                "values": [{"key": k, "value": v, "source": s} for k, v, s in cfg.flat()],
            }
        )
        return
    click.echo(f"# file: {cfg.file or '(none: built-in defaults)'}")
    click.echo(f"# root: {cfg.root}")
    click.echo(f"# profile: {cfg.profile or '(none)'}")
    echo_table(
        ["KEY", "VALUE", "SOURCE"],
        [[k, repr(v) if isinstance(v, str) else v, s] for k, v, s in cfg.flat()],
    )


@config.command("check")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def config_check(state, as_json: bool) -> None:
    """Check that every configured backend is installed and its settings are valid."""
    findings = state.app.preflight()
    if as_json:
        echo_json(
            [
                {
                    "check": f.check,
                    "subject": f.subject,
                    "severity": f.severity.value,
                    "message": f.message,
                    **f.details,
                }
                for f in findings
            ]
        )
    else:
        for f in findings:
            colour = "red" if f.blocking else "yellow"
            click.secho(f"{f.severity.value}: [{f.subject}] {f.message}", fg=colour)
            if f.details.get("hint"):
                click.echo(f"  hint: {f.details['hint']}")
        if not findings:
            click.echo("Config OK: every backend is installed and configured correctly.")
    if any(f.blocking for f in findings):
        raise SystemExit(1)


commands = [plugins, backends, config]
