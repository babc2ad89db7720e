"""Configuration: ``conveyor.toml`` (or ``[tool.conveyor]`` in pyproject.toml).

Layers, later ones winning: built-in defaults, the file, the active profile's
``[profiles.<name>]`` tables (deep-merged), then ``CONVEYOR_<SECTION>__<KEY>``
environment variables.  Every value remembers which layer it came from, so
``conveyor config`` can say where it was set.  With no file at all the defaults
are SQLite and local files under ``.conveyor/`` in the current directory.

A value ``{ env = "NAME" }`` is read from the environment when used and is
masked whenever config is shown.
"""

from __future__ import annotations

import copy
import os
import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from attrs import define, frozen

from conveyor.errors import ConfigError

CONFIG_FILE = "conveyor.toml"
STATE_DIR = ".conveyor"
BUILTIN_PROFILES = ("dev", "staging", "production")

#: Config section of each backend kind (``BackendKind.value`` -> section name).
BACKEND_SECTIONS = {
    "artifact_store": "artifact_store",
    "metadata_store": "metadata_store",
    "model_registry": "model_registry",
    "feature_store": "feature_store",
    "online_store": "online_store",
    "orchestrator": "orchestrator",
    "server": "server",
}

#: Backend chosen for each section when the config names none.
DEFAULT_BACKENDS = {
    "artifact_store": "local",
    "metadata_store": "sqlite",
    "model_registry": "sqlite",
    "feature_store": "local",
    "online_store": "sqlite",
    "orchestrator": "local",
    "server": "http",
}

#: Top-level tables the core understands.  Components that add a section extend it.
SECTIONS: dict[str, str] = {
    "project": "the project's name and settings",
    "plugins": "which plugins load: disable, load, modules",
    "plugin": "plugin-wide settings, one table per plugin name",
    "profiles": "named overrides: [profiles.<name>.<section>]",
    "triggers": "named retraining triggers: [triggers.<name>] backend = ..., pipeline = ...",
    "pipelines": 'named pipelines: [pipelines.<name>] target = "module:function"',
    "promotion": "the promotion rule of each alias: auto, approval or never",
    "deploy": "pipeline deployment rules of an environment: mode, after, min_runs, approvers",
    **{
        section: f"the {kind.replace('_', ' ')} backend"
        for kind, section in BACKEND_SECTIONS.items()
    },
}


def core_keys(kind: str) -> frozenset[str]:
    """Keys of a backend kind's section that core reads itself, not the backend.

    ``[server]`` shares :class:`~conveyor.server.ServerSettings` between every
    server; each ``[triggers.<name>]`` holds a :class:`~conveyor.triggers.TriggerBinding`.
    ``Conveyor.backend_spec`` leaves these keys out of the backend's config class.
    """
    import attrs

    cls: type[Any]
    if kind == "server":
        from conveyor.server import ServerSettings as cls
    elif kind == "trigger":
        from conveyor.triggers import TriggerBinding as cls
    else:
        return frozenset()
    return frozenset(a.name for a in attrs.fields(cls))


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> timedelta:
    """A duration from config: seconds, or ``"90s"``, ``"30m"``, ``"1h30m"``, ``"2d"``."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"a duration must be seconds or a string like '30m', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip().replace(" ", "").lower()
        parts = _DURATION.findall(text)
        if "".join(n + u for n, u in parts) != text:
            raise ValueError(f"{value!r} is not a duration; write e.g. '90s', '30m', '1h30m'")
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    else:
        raise ValueError(f"a duration must be seconds or a string like '30m', got {value!r}")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    return timedelta(seconds=seconds)


_SECRET_KEY = re.compile(
    r"(password|passwd|secret|token|credential|private_key|access_key)", re.IGNORECASE
)
_ENV_PREFIX = "CONVEYOR_"
MASK = "********"


@frozen
class EnvRef:
    """A value to be read from the environment variable ``name`` when used."""

    name: str

    def resolve(self, where: str) -> str:
        try:
            return os.environ[self.name]
        except KeyError:
            raise ConfigError(
                f"{where} reads the environment variable {self.name}, which is not set",
                hint=f"export {self.name}=...",
            ) from None


@define
class Config:
    """The effective configuration of one project.

    Attributes:
        root: the project directory (where the config file is, else the cwd).
        file: the config file read, or ``None``.
        profile: the active profile, or ``None``.
        data: the merged tables (``EnvRef`` where a value comes from the environment).
        sources: dotted key -> the layer that set it (``default``, a file, a profile,
            an environment variable).
    """

    root: Path
    file: Path | None
    profile: str | None
    data: dict[str, Any]
    sources: dict[str, str]

    # -- loading ------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        profile: str | None = None,
        environ: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> Config:
        """Find and read the config (``path``, ``$CONVEYOR_CONFIG`` or a search upward)."""
        env = os.environ if environ is None else environ
        start = Path(cwd) if cwd is not None else Path.cwd()
        file, table = _find(path if path is not None else env.get("CONVEYOR_CONFIG"), start)
        root = file.parent.resolve() if file is not None else start.resolve()
        where = str(file) if file is not None else "defaults"

        data: dict[str, Any] = {}
        sources: dict[str, str] = {}
        _merge(data, sources, {"project": {"name": root.name}}, "default")
        _merge(data, sources, {s: {"backend": b} for s, b in DEFAULT_BACKENDS.items()}, "default")

        profiles = table.pop("profiles", {}) if table else {}
        if table:
            _check_sections(table, where, "")
            _merge(data, sources, _with_env_refs(table, where), _rel(file, root))

        profile = profile or env.get("CONVEYOR_PROFILE") or None
        if profile:
            if not isinstance(profiles, dict):
                raise ConfigError(f"{where}: [profiles] must be a table of profiles")
            if profile not in profiles and profile not in BUILTIN_PROFILES:
                known = sorted({*profiles, *BUILTIN_PROFILES})
                raise ConfigError(
                    f"unknown profile {profile!r} (from --profile or CONVEYOR_PROFILE)",
                    hint=f"use one of: {', '.join(known)}, or add [profiles.{profile}] to {where}",
                )
            overrides = profiles.get(profile, {})
            _check_sections(overrides, where, f"profiles.{profile}.")
            label = f"{_rel(file, root)} [profiles.{profile}]"
            _merge(data, sources, _with_env_refs(overrides, where), label)

        _merge(data, sources, _from_environment(env), None)
        config = cls(root=root, file=file, profile=profile, data=data, sources=sources)
        config.plugin_selection()  # validates [plugins] early: it decides what loads
        return config

    # -- reading ------------------------------------------------------------------------

    def section(self, name: str) -> dict[str, Any]:
        """A copy of the table ``name`` (dotted for nested tables), env refs resolved."""
        table: Any = self.data
        for part in name.split("."):
            table = table.get(part, {}) if isinstance(table, dict) else {}
        return _resolve(copy.deepcopy(table), name)

    def plugin_config(self, plugin: str) -> dict[str, Any]:
        """The ``[plugin.<name>]`` table: plugin-wide settings."""
        return _resolve(
            copy.deepcopy(self.data.get("plugin", {}).get(plugin, {})), f"plugin.{plugin}"
        )

    def plugin_selection(self) -> Any:
        """The ``[plugins]`` table as a :class:`~conveyor.manager.PluginSelection`."""
        from conveyor.manager import PluginSelection

        table = self.data.get("plugins", {})
        allowed = {"disable", "load", "modules"}
        if unknown := sorted(set(table) - allowed):
            raise ConfigError(
                f"{self.where}: unknown key '$.plugins.{unknown[0]}'",
                hint=f"[plugins] allows: {', '.join(sorted(allowed))}",
            )
        values: dict[str, Any] = {}
        for key in allowed & set(table):
            value = table[key]
            if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise ConfigError(
                    f"{self.where}: '$.plugins.{key}' must be a list of plugin names, "
                    f"got {value!r}",
                    hint=f'for example: {key} = ["cron"]',
                )
            values[key] = tuple(value)
        return PluginSelection.from_env(base=PluginSelection(**values))

    @property
    def where(self) -> str:
        return str(self.file) if self.file is not None else "the default config"

    @property
    def state_dir(self) -> Path:
        """``.conveyor/`` under the project root: default home of local state."""
        return self.root / STATE_DIR

    def resolve_path(self, value: str | os.PathLike[str]) -> Path:
        """A path from config, relative to the project root."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.root / path

    def masked(self) -> dict[str, Any]:
        """The merged config with secrets and environment references masked."""
        return _mask(copy.deepcopy(self.data))

    def flat(self) -> list[tuple[str, Any, str]]:
        """``(dotted key, masked value, source)`` for every leaf value, sorted."""
        rows: list[tuple[str, Any, str]] = []

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict):
                for key in sorted(value):
                    walk(f"{prefix}.{key}" if prefix else key, value[key])
            else:
                rows.append((prefix, value, self.sources.get(prefix, "default")))

        walk("", self.masked())
        return rows


def add_to_path(root: Path) -> None:
    """Put the project root on ``sys.path`` so its own modules (hooks, pipelines) import."""
    import sys

    folder = str(root)
    if folder not in sys.path:
        sys.path.insert(0, folder)


def structure(cls: type, data: Mapping[str, Any], *, section: str, where: str) -> Any:
    """Build the attrs ``cls`` from a config table, or raise a ConfigError with paths.

    Unknown keys are errors; the message names the file, each bad key as a
    ``$.section.key`` path, and the keys that are allowed.
    """
    import attrs
    import cattrs

    converter = _converter()
    try:
        return converter.structure(dict(data), cls)
    except Exception as exc:
        if isinstance(exc, cattrs.BaseValidationError):
            messages = cattrs.transform_error(
                exc, path=f"$.{section}", format_exception=_format_exception
            )
        else:
            messages = [f"$.{section}: {exc}"]
        names = [a.alias or a.name for a in attrs.fields(cls) if a.init] if attrs.has(cls) else []
        # a backend section also holds the keys core reads itself (server settings, bindings)
        kind = (
            "server"
            if section == "server"
            else ("trigger" if section.startswith("triggers.") else "")
        )
        allowed = ", ".join(dict.fromkeys([*names, *sorted(core_keys(kind) - set(names))]))
        raise ConfigError(
            f"invalid config in {where}: " + "; ".join(messages),
            hint=f"[{section}] allows: {allowed}" if allowed else None,
        ) from None


def _format_exception(exc: BaseException, type_: Any) -> str:
    """cattrs' wording, but keeping the message a validator wrote for the user."""
    from cattrs.v import format_exception

    if type(exc) is ValueError and str(exc):
        return f"invalid value: {exc}"
    return format_exception(exc, type_)


_CONVERTER: Any = None


def _strict_bool(value: Any, _type: Any) -> bool:
    # cattrs would call bool(): "false" and "no" would be true
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


def _converter() -> Any:
    global _CONVERTER
    if _CONVERTER is None:
        import cattrs

        converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
        converter.register_structure_hook(Path, lambda v, _t: Path(v))
        converter.register_structure_hook(timedelta, lambda v, _t: parse_duration(v))
        converter.register_structure_hook(bool, _strict_bool)
        _CONVERTER = converter
    return _CONVERTER


# -- helpers ------------------------------------------------------------------------------


def _find(path: str | os.PathLike[str] | None, start: Path) -> tuple[Path | None, dict]:
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(
                f"config file {file} does not exist", hint="check --config / CONVEYOR_CONFIG"
            )
        return file, _read(file)
    for folder in (start, *start.resolve().parents):
        candidate = folder / CONFIG_FILE
        if candidate.is_file():
            return candidate, _read(candidate)
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            table = _read(pyproject).get("tool", {}).get("conveyor")
            if table is not None:
                return pyproject, table
    return None, {}


def _read(file: Path) -> dict[str, Any]:
    try:
        with file.open("rb") as handle:
            table = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{file} is not valid TOML: {exc}", hint="fix the syntax at the line named"
        ) from None
    return table


def _rel(file: Path | None, root: Path) -> str:
    if file is None:
        return "default"
    try:
        return str(file.resolve().relative_to(root))
    except ValueError:
        return str(file)


def _check_sections(table: Mapping[str, Any], where: str, prefix: str) -> None:
    for key, value in table.items():
        if key not in SECTIONS or (key == "profiles" and prefix):
            raise ConfigError(
                f"{where}: unknown section '$.{prefix}{key}'",
                hint=f"allowed sections: {', '.join(sorted(SECTIONS))}",
            )
        if not isinstance(value, dict):
            raise ConfigError(
                f"{where}: '$.{prefix}{key}' must be a table, got {value!r}",
                hint=f"write it as [{prefix}{key}] followed by key = value lines",
            )


def _with_env_refs(table: Any, where: str, path: str = "$") -> Any:
    if isinstance(table, dict):
        if set(table) == {"env"}:
            if not isinstance(table["env"], str):
                raise ConfigError(f"{where}: '{path}.env' must name an environment variable")
            return EnvRef(table["env"])
        return {k: _with_env_refs(v, where, f"{path}.{k}") for k, v in table.items()}
    return table


def _merge(
    into: dict, sources: dict, layer: Mapping[str, Any], label: str | None, prefix: str = ""
) -> None:
    for key, value in layer.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and not isinstance(value, EnvRef):
            target = into.get(key)
            if not isinstance(target, dict):
                target = into[key] = {}
            _merge(target, sources, value, label, f"{dotted}.")
        else:
            into[key] = value
            if label is None:
                sources[dotted] = f"env {_ENV_PREFIX}{dotted.replace('.', '__').upper()}"
            else:
                sources[dotted] = label


def _from_environment(env: Mapping[str, str]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    for name, raw in env.items():
        if not name.startswith(_ENV_PREFIX) or "__" not in name:
            continue
        parts = [p.lower() for p in name[len(_ENV_PREFIX) :].split("__")]
        if parts[0] not in SECTIONS or parts[0] == "profiles" or not all(parts):
            raise ConfigError(
                f"environment variable {name} does not name a config key",
                hint="use CONVEYOR_<SECTION>__<KEY>, e.g. CONVEYOR_METADATA_STORE__URL; "
                f"sections: {', '.join(sorted(SECTIONS))}",
            )
        target = layer
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = _parse_env_value(raw)
    return layer


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _resolve(value: Any, where: str) -> Any:
    if isinstance(value, EnvRef):
        return value.resolve(where)
    if isinstance(value, dict):
        return {k: _resolve(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, where) for v in value]
    return value


def _mask(value: Any, key: str = "") -> Any:
    if isinstance(value, EnvRef):
        return f"{MASK} (from ${value.name})"
    if isinstance(value, dict):
        return {k: _mask(v, k) for k, v in value.items()}
    if isinstance(value, str) and _SECRET_KEY.search(key):
        return MASK
    if isinstance(value, str) and "://" in value:
        return re.sub(r"(://[^/@:]*:)[^/@]*@", rf"\g<1>{MASK}@", value)
    return value
