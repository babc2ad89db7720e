"""``conveyor migrate``: move a project's registry and metadata store onto PostgreSQL.

Light to import (click only): the work is in :mod:`conveyor_postgres.migrate`.
"""

from __future__ import annotations

import json
from typing import Any

import click


@click.command()
@click.argument("url")
@click.option(
    "--schema",
    default="public",
    show_default=True,
    help="The PostgreSQL schema to copy into (created; must be empty).",
)
@click.option(
    "--registry/--no-registry",
    "with_registry",
    default=True,
    show_default=True,
    help="Copy the model registry ([model_registry]).",
)
@click.option(
    "--metadata/--no-metadata",
    "with_metadata",
    default=True,
    show_default=True,
    help="Copy the metadata store ([metadata_store]), model lineage included.",
)
@click.option(
    "--definition-kind",
    "kinds",
    multiple=True,
    help="Definition kinds to copy (default: entity, feature_view).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def migrate(
    state: Any,
    url: str,
    schema: str,
    with_registry: bool,
    with_metadata: bool,
    kinds: tuple[str, ...],
    as_json: bool,
) -> None:
    """Copy this project's registry and metadata store into PostgreSQL at URL.

    Whatever backends the project uses now are read through their interfaces; every
    id, version number, audit record and time is kept.  Then point [model_registry]
    and [metadata_store] at URL (with the same schema).
    """
    from conveyor_postgres.config import PostgresConfig
    from conveyor_postgres.db import Database, redact
    from conveyor_postgres.migrate import DEFINITION_KINDS, copy_metadata, copy_registry

    try:
        config = PostgresConfig(url=url, schema=schema)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="URL") from None
    app = state.app
    target = Database(config.url, schema=config.schema)
    try:
        copied: dict[str, int] = {}
        if with_registry:
            copied.update(copy_registry(app.registry.backend, target))
        if with_metadata:
            copied.update(
                copy_metadata(
                    app.metadata,
                    target,
                    registry=app.registry.backend,
                    kinds=kinds or DEFINITION_KINDS,
                )
            )
    finally:
        target.close()
    if as_json:
        click.echo(
            json.dumps({"url": redact(config.url), "schema": schema, **copied}, sort_keys=True)
        )
        return
    click.echo(
        f"copied into {redact(config.url)} (schema {schema}): "
        + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in copied.items())
    )
    click.echo("now set url (and schema) in [model_registry] and [metadata_store]")
