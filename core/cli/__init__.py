"""The ``conveyor`` command line: one small click group whose commands import lazily.

``main()`` reads only the ``[plugins]`` table of the config, builds a fresh plugin
manager, builds the group with :func:`make_cli` and lets plugins add commands.
Core commands live in the modules of this package: each exports ``commands``.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from conveyor import __version__
from conveyor.errors import ConfigError, ConveyorError, PluginConflictError
from conveyor.hooks import HookFailure, call_each

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.config import Config
    from conveyor.manager import ConveyorPluginManager


class CliState:
    """What every command can reach through ``ctx.obj``; the app is built on first use."""

    def __init__(
        self,
        pm: ConveyorPluginManager,
        *,
        config_path: str | None = None,
        profile: str | None = None,
        traceback: bool = False,
    ) -> None:
        self.pm = pm
        self.config_path = config_path
        self.profile = profile
        self.traceback = traceback
        self._config: Config | None = None
        self._app: Conveyor | None = None
        self._others: dict[str, Conveyor] = {}

    @property
    def config(self) -> Config:
        if self._config is None:
            from conveyor.config import Config

            self._config = Config.load(self.config_path, profile=self.profile)
        return self._config

    @property
    def app(self) -> Conveyor:
        if self._app is None:
            from conveyor.app import Conveyor, add_to_path

            add_to_path(self.config.root)
            self._app = Conveyor(config=self.config, pm=self.pm)
        return self._app

    def app_for(self, profile: str | None) -> Conveyor:
        """The app of another profile (an environment), built once; the own one for None."""
        if profile is None or profile == self.profile:
            return self.app
        if profile not in self._others:
            from conveyor.app import Conveyor, add_to_path
            from conveyor.config import Config

            config = Config.load(self.config_path, profile=profile)
            add_to_path(config.root)
            self._others[profile] = Conveyor(config=config, pm=self.pm)
        return self._others[profile]

    def close(self) -> None:
        for app in [self._app, *self._others.values()]:
            if app is not None:
                app.close()


class ConveyorGroup(click.Group):
    """A group that prints ConveyorErrors as one line plus a hint, and refuses clashes."""

    sealed = False

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        name = name or cmd.name
        if self.sealed and name in self.commands:
            raise PluginConflictError(
                f"a plugin tries to add the command 'conveyor {name}', which already exists",
                hint="rename the plugin's command, or disable the plugin",
            )
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConveyorError as exc:
            state = ctx.obj if isinstance(ctx.obj, CliState) else None
            if (state is not None and state.traceback) or os.environ.get("CONVEYOR_DEBUG"):
                raise
            report_error(exc)
            ctx.exit(1)
        finally:
            if isinstance(ctx.obj, CliState):
                ctx.obj.close()


def report_error(exc: ConveyorError) -> None:
    click.secho(f"Error: {exc.message}", fg="red", err=True)
    if exc.hint:
        click.echo(f"Hint: {exc.hint}", err=True)
    click.echo("(run with --traceback or CONVEYOR_DEBUG=1 for details)", err=True)


def core_commands() -> list[click.Command]:
    """Every core command, from the modules of this package, in module-name order."""
    found: list[click.Command] = []
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module.name.startswith("_"):
            continue
        found.extend(importlib.import_module(f"{__name__}.{module.name}").commands)
    return found


def make_cli(pm: ConveyorPluginManager, *, strict: bool = False) -> ConveyorGroup:
    """Build the ``conveyor`` group for ``pm``, plugin commands included.

    A plugin whose ``register_commands`` fails or clashes is reported on stderr and
    skipped (``strict=True`` raises instead); the rest of the CLI keeps working.
    """

    @click.group(cls=ConveyorGroup, context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, "-V", "--version", prog_name="conveyor")
    @click.option(
        "--config",
        "config_path",
        metavar="FILE",
        envvar="CONVEYOR_CONFIG",
        help="Config file (default: conveyor.toml here or in a parent folder).",
    )
    @click.option(
        "--profile",
        envvar="CONVEYOR_PROFILE",
        help="Config profile: dev, staging, production or your own.",
    )
    @click.option("--traceback", is_flag=True, help="Show the full traceback on errors.")
    @click.pass_context
    def cli(
        ctx: click.Context, config_path: str | None, profile: str | None, traceback: bool
    ) -> None:
        """Conveyor: a LightGBM model as a self-maintaining production loop.

        Every backend is a plugin; `conveyor plugins` lists them.
        """
        ctx.obj = CliState(pm, config_path=config_path, profile=profile, traceback=traceback)

    assert isinstance(cli, ConveyorGroup)
    for command in core_commands():
        cli.add_command(command)
    cli.sealed = True
    for _plugin, result in call_each(pm, "register_commands", {"cli": cli}):
        if strict and isinstance(result, HookFailure):
            raise result.error
    return cli


def _pre_scan(argv: Sequence[str]) -> tuple[str | None, str | None]:
    """``--config``/``--profile`` from argv, read before click parses it."""
    config = os.environ.get("CONVEYOR_CONFIG")
    profile = os.environ.get("CONVEYOR_PROFILE")
    args = list(argv)
    for i, arg in enumerate(args):
        if arg == "--":
            break
        for option in ("--config", "--profile"):
            value = None
            if arg == option and i + 1 < len(args):
                value = args[i + 1]
            elif arg.startswith(option + "="):
                value = arg.split("=", 1)[1]
            if value is not None:
                config, profile = (value, profile) if option == "--config" else (config, value)
    return config, profile


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``conveyor`` command."""
    from conveyor.config import Config
    from conveyor.manager import PluginSelection, make_plugin_manager

    args = list(sys.argv[1:] if argv is None else argv)
    config_path, profile = _pre_scan(args)
    try:
        config = Config.load(config_path, profile=profile)
        selection = config.plugin_selection()
        from conveyor.config import add_to_path

        add_to_path(config.root)
    except ConfigError:
        selection = PluginSelection.from_env()  # the command reports the error itself
    pm = make_plugin_manager(selection)
    for info in pm.failures():
        click.secho(f"warning: {info.error}", fg="yellow", err=True)
    cli = make_cli(pm)
    cli.main(args=args, prog_name="conveyor")
