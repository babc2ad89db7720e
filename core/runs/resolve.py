"""Which pipeline a name means: ``[pipelines.<name>]`` or a ``module:function`` target.

Shared by ``conveyor run``, the trigger bindings and ``conveyor watch``.
"""

from __future__ import annotations

from typing import Any

from conveyor.errors import ConfigError


def resolve_pipeline(config: Any, name: str | None) -> tuple[str, str, dict[str, Any]]:
    """``(name, "module:function", parameters)`` for a configured name or a target.

    ``None`` picks the only configured pipeline, else the one named ``training``.
    """
    table = config.section("pipelines")
    if name is not None and ":" in name:
        return name.split(":", 1)[1], name, {}
    if name is None:
        if len(table) == 1:
            name = next(iter(table))
        elif "training" in table:
            name = "training"
        else:
            raise ConfigError(
                "which pipeline? "
                + (
                    f"configured: {', '.join(sorted(table))}"
                    if table
                    else f"no [pipelines] in {config.where}"
                ),
                hint="conveyor run NAME, or conveyor run module:function",
            )
    if name not in table:
        raise ConfigError(
            f"no pipeline named {name!r} in {config.where}",
            hint=f"configured: {', '.join(sorted(table)) or 'none'}; add "
            f'[pipelines.{name}] target = "module:function", or pass module:function',
        )
    entry = table[name]
    unknown = set(entry) - {"target", "parameters"}
    if unknown or "target" not in entry:
        raise ConfigError(
            f'{config.where}: [pipelines.{name}] needs target = "module:function" and may '
            f"have a [pipelines.{name}.parameters] table"
            + (f"; unknown key(s): {', '.join(sorted(unknown))}" if unknown else "")
        )
    return name, entry["target"], dict(entry.get("parameters", {}))


__all__ = ["resolve_pipeline"]
