"""``conveyor serve`` (the configured ``[server]``) and ``conveyor loadtest URL``."""

from __future__ import annotations

import json
import os
import signal
import threading
from typing import Any

import click

from conveyor.cli._output import echo_json


@click.command()
@click.option(
    "--model",
    default=None,
    help="Model to serve (default: [server] model, or the registry's only model).",
)
@click.option(
    "--alias",
    default=None,
    help="Alias whose version is served and followed (default: [server] alias, production).",
)
@click.option(
    "--host",
    default=None,
    help="Address to bind (default 127.0.0.1; any other needs a [server] token).",
)
@click.option("--port", type=int, default=None, help="TCP port (default 8080; 0: any free).")
@click.option(
    "--workers",
    type=int,
    default=None,
    help="Processes sharing the port, each following the alias (the http backend's key).",
)
@click.option(
    "--drain",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds requests in flight may take to finish on Ctrl-C / SIGTERM.",
)
@click.pass_obj
def serve(
    state: Any,
    model: str | None,
    alias: str | None,
    host: str | None,
    port: int | None,
    workers: int | None,
    drain: float,
) -> None:
    """Serve the model an alias points at, swapping versions as the alias moves."""
    for key, value in (
        ("model", model),
        ("alias", alias),
        ("host", host),
        ("port", port),
        ("workers", workers),
    ):
        if value is not None:  # the config's environment layer: worker processes see it too
            os.environ[f"CONVEYOR_SERVER__{key.upper()}"] = json.dumps(value)
    server = state.app.server
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    from conveyor.server import freeze_startup_objects

    freeze_startup_objects()
    try:
        settings = server.settings
        click.echo(
            f"serving {settings.model or 'the only model'} (alias {settings.alias}) "
            f"at {server.address}",
            err=False,
        )
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        click.echo("draining requests in flight ...", err=True)
        server.stop(timeout=drain)


@click.command()
@click.argument("url")
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(1, 1024),
    default=8,
    show_default=True,
    help="Requests in flight at once (one connection each).",
)
@click.option(
    "--duration",
    type=click.FloatRange(0.1, 3600),
    default=10.0,
    show_default=True,
    help="Seconds to run (the bound when --requests is not met).",
)
@click.option(
    "--requests",
    "count",
    type=click.IntRange(1),
    default=None,
    help="Stop after this many requests.",
)
@click.option(
    "--rows",
    type=click.IntRange(1, 1_000_000),
    default=1,
    show_default=True,
    help="Rows per request.",
)
@click.option(
    "--protocol",
    type=click.Choice(["predict", "invocations", "v2"]),
    default="predict",
    show_default=True,
    help="Route and body format.",
)
@click.option(
    "--token",
    envvar="CONVEYOR_SERVER_TOKEN",
    default=None,
    help="Bearer token (default: $CONVEYOR_SERVER_TOKEN).",
)
@click.option(
    "--max-latency",
    "latency",
    multiple=True,
    metavar="pNN=MS",
    help="Fail when a latency percentile exceeds MS milliseconds, e.g. p99=5 "
    "(repeatable: p50, p95, p99).",
)
@click.option(
    "--max-error-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Fail above this share of failed requests.",
)
@click.option("--min-rps", type=float, default=None, help="Fail below this throughput.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def loadtest(
    ctx: click.Context,
    url: str,
    concurrency: int,
    duration: float,
    count: int | None,
    rows: int,
    protocol: str,
    token: str | None,
    latency: tuple[str, ...],
    max_error_rate: float,
    min_rps: float | None,
    as_json: bool,
) -> None:
    """Load-test a running server with payloads built from its model's signature; exit 1
    when a latency, error or throughput budget is missed."""
    from conveyor.cli._loadtest import Budget, build_request, fetch_signature, run_load

    budget = Budget.parse(latency, error_rate=max_error_rate, min_rps=min_rps)
    signature, name = fetch_signature(url, token)
    request = build_request(url, protocol, name, signature, rows, token)
    result = run_load(url, request, concurrency=concurrency, duration=duration, count=count)
    missed = budget.missed(result)
    if as_json:
        echo_json({**result.to_dict(), "missed": missed})
    else:
        click.echo(result.summary())
        for line in missed:
            click.secho(f"budget missed: {line}", fg="red", err=True)
    if missed:
        ctx.exit(1)


commands = [serve, loadtest]
