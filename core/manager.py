"""The plugin manager: loads plugins from the ``conveyor`` entry-point group.

Bundled plugins are listed in Conveyor's own pyproject under that group, so they
arrive through the same door as third-party ones and can be blocked the same way.

Loading order is deterministic: entry points sorted by name, then the project's
own hook modules in the order the config lists them.  pluggy calls the most
recently registered implementation first, so hook order is the reverse of that.
Backends do not depend on hook order: they are collected into a catalogue and
chosen by name.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

import pluggy
from attrs import evolve, field, frozen

from conveyor import hookspecs
from conveyor.convert import to_tuple
from conveyor.errors import ConveyorError, PluginConflictError, PluginLoadError
from conveyor.hooks import HookFailure, call_each, refuse_wrappers, report_to_stderr

if TYPE_CHECKING:
    from conveyor.backends import Catalogue

ENTRY_POINT_GROUP = "conveyor"
PROJECT_NAME = "conveyor"

Status = Literal["loaded", "disabled", "failed"]


@frozen(kw_only=True)
class PluginInfo:
    """What is known about one plugin, loaded or not.

    Attributes:
        name: the entry-point name (or module name for the project's own hooks).
        module: the import path the entry point names.
        distribution: the installed distribution providing it, if any.
        version: that distribution's version.
        source: ``entry-point``, ``config`` (the project's hook modules) or ``manual``.
        status: ``loaded``, ``disabled`` (blocked by config/env) or ``failed``.
        error: why it failed, for ``failed``.
    """

    name: str
    module: str = ""
    distribution: str | None = None
    version: str | None = None
    source: str = "entry-point"
    status: Status = "loaded"
    error: str | None = None

    @property
    def origin(self) -> str:
        if self.distribution:
            return f"{self.distribution} {self.version or ''}".strip()
        return self.source


@frozen(kw_only=True)
class PluginSelection:
    """Which plugins load.

    Attributes:
        load: allow-list of plugin names; ``None`` loads all, ``()`` loads none.
        disable: plugin names never loaded, bundled ones included.
        modules: the project's own hook modules (imported: trusted like code).
    """

    load: tuple[str, ...] | None = field(default=None)
    disable: tuple[str, ...] = field(default=(), converter=to_tuple)
    modules: tuple[str, ...] = field(default=(), converter=to_tuple)

    @classmethod
    def from_env(
        cls, environ: dict[str, str] | None = None, *, base: PluginSelection | None = None
    ) -> PluginSelection:
        """``base`` (from config) with ``CONVEYOR_LOAD_PLUGINS``/``_DISABLE_PLUGINS``."""
        env = os.environ if environ is None else environ
        selection = base or cls()
        if "CONVEYOR_LOAD_PLUGINS" in env:
            selection = evolve(selection, load=_split(env["CONVEYOR_LOAD_PLUGINS"]))
        if env.get("CONVEYOR_DISABLE_PLUGINS"):
            extra = _split(env["CONVEYOR_DISABLE_PLUGINS"])
            selection = evolve(selection, disable=(*selection.disable, *extra))
        return selection

    def allows(self, name: str) -> str | None:
        """``None`` when ``name`` may load, else why not."""
        if name in self.disable:
            return "disabled by configuration"
        if self.load is not None and name not in self.load:
            return "not in CONVEYOR_LOAD_PLUGINS"
        return None


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


class ConveyorPluginManager(pluggy.PluginManager):
    """A pluggy manager that also knows each plugin's origin and status.

    Build one with :func:`make_plugin_manager`; there is no global instance.
    """

    def __init__(self) -> None:
        super().__init__(PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        #: trace every dispatched hook call to stderr (``CONVEYOR_TRACE_HOOKS``)
        self.tracing = False
        #: every implementation failure in a dispatched hook call, in order
        self.hook_failures: list[HookFailure] = []
        self.reporter: Callable[[HookFailure], None] = report_to_stderr
        self._reported: set[tuple[str, str, str]] = set()
        self._catalogue: Catalogue | None = None
        self._lock = threading.RLock()

    # -- registration ---------------------------------------------------------------

    def add_plugin(self, plugin: Any, info: PluginInfo) -> bool:
        """Register ``plugin`` and check its hooks against the specs.

        A plugin whose hooks do not validate (a misspelt hook name or argument) is
        unregistered and recorded as failed.  Returns whether it loaded.
        """
        with self._lock:
            try:
                self.register(plugin, name=info.name)
                self._check_pending(info.name)
                refuse_wrappers(self, plugin, info.name)
            except (pluggy.PluginValidationError, PluginLoadError) as exc:
                if self.get_plugin(info.name) is not None:
                    self.unregister(name=info.name)
                error = (
                    _validation_message(exc)
                    if isinstance(exc, pluggy.PluginValidationError)
                    else f"{exc.message}; {exc.hint}"
                )
                self._record(evolve(info, status="failed", error=error))
                return False
            self._record(evolve(info, status="loaded", error=None))
            return True

    def _check_pending(self, name: str) -> None:
        plugin = self.get_plugin(name)
        for caller in self.get_hookcallers(plugin) or ():
            if caller.spec is not None:
                continue
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin and not impl.optionalhook:
                    raise pluggy.PluginValidationError(
                        plugin,
                        f"unknown hook {caller.name!r} in plugin {name!r}: no such hook "
                        "spec (is it misspelt?)",
                    )

    def unregister(self, plugin: Any = None, name: str | None = None) -> Any:
        with self._lock:
            if name is None:
                name = self.get_name(plugin)
            result = super().unregister(plugin=plugin, name=name)
            self.infos.pop(name or "", None)
            self._catalogue = None
            return result

    def _record(self, info: PluginInfo) -> None:
        self.infos[info.name] = info
        self._catalogue = None

    # -- introspection ----------------------------------------------------------------

    def hooks_of(self, name: str) -> list[str]:
        """The hooks the plugin called ``name`` implements, sorted."""
        plugin = self.get_plugin(name)
        if plugin is None:
            return []
        return sorted(caller.name for caller in self.get_hookcallers(plugin) or ())

    def catalogue(self) -> Catalogue:
        """Every backend the loaded plugins register, built once and then cached.

        A plugin whose ``register_<kind>s`` raises contributes nothing to the
        catalogue: it is reported once and recorded as failed, and a config that
        selects one of its backends gets an UnknownBackendError that says why.
        """
        from conveyor.backends import BackendKind, Catalogue, Registrar

        with self._lock:
            if self._catalogue is None:
                catalogue = Catalogue()
                for kind in BackendKind:
                    registrars: dict[str, Registrar] = {}

                    def bind(
                        plugin: str,
                        kind: BackendKind = kind,
                        registrars: dict[str, Registrar] = registrars,
                    ) -> dict[str, Any]:
                        registrars[plugin] = Registrar(kind, plugin)
                        return {"register": registrars[plugin]}

                    succeeded: list[str] = []
                    for plugin, result in call_each(self, kind.hook_name, {}, per_plugin=bind):
                        if isinstance(result, HookFailure):
                            info = self.infos.get(plugin, PluginInfo(name=plugin))
                            self.infos[plugin] = evolve(
                                info,
                                status="failed",
                                error=f"failed in {result.hook}: {result.message}",
                            )
                        else:
                            succeeded.append(plugin)
                    # in loading order, so a conflict names the plugin loaded first first
                    for plugin in reversed(succeeded):
                        for spec in registrars[plugin].specs:
                            catalogue.add(spec)
                catalogue.unavailable.update(
                    {
                        i.name: str(i.error) if i.status == "disabled" else f"failed: {i.error}"
                        for i in self.infos.values()
                        if i.status != "loaded"
                    }
                )
                self._catalogue = catalogue
            return self._catalogue

    def report(self, failure: HookFailure) -> None:
        """Record a hook failure and report it, once per plugin, hook and message."""
        with self._lock:
            self.hook_failures.append(failure)
            key = (failure.plugin, failure.hook, failure.message)
            if key in self._reported:
                return
            self._reported.add(key)
        import logging  # only on a failure: logging costs start-up time

        logging.getLogger("conveyor").debug(
            "plugin %r failed in %s", failure.plugin, failure.hook, exc_info=failure.error
        )
        self.reporter(failure)

    def materializers(self) -> Any:
        """Every materializer the loaded plugins register (see :mod:`conveyor.materializers`)."""
        from conveyor.materializers import catalogue_of

        return catalogue_of(self)

    def failures(self) -> list[PluginInfo]:
        return [info for info in self.infos.values() if info.status == "failed"]


def _validation_message(exc: pluggy.PluginValidationError) -> str:
    return str(exc).replace("\n", " ")


def _entry_points(
    distribution: str | None,
) -> list[tuple[importlib.metadata.EntryPoint, str, str | None]]:
    """``(entry point, distribution name, version)``, sorted by name."""
    # Reading a distribution's name reads its METADATA file: do it once per
    # distribution, not once per entry point and use (it dominates start-up).
    seen: dict[int, tuple[str, str | None]] = {}
    unique: dict[tuple[str, str], tuple[importlib.metadata.EntryPoint, str, str | None]] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.dist is None:
            name, version = "", None
        else:
            if id(ep.dist) not in seen:
                seen[id(ep.dist)] = _name_and_version(ep.dist)
            name, version = seen[id(ep.dist)]
        if distribution is not None and _normalise(name) != _normalise(distribution):
            continue
        unique.setdefault((ep.name, _normalise(name)), (ep, name, version))
    return sorted(unique.values(), key=lambda f: (f[0].name, _normalise(f[1])))


def _name_and_version(dist: importlib.metadata.Distribution) -> tuple[str, str | None]:
    """A distribution's ``Name`` and ``Version``, read from its metadata's header lines.

    Both are required single-line fields of the core metadata, so the header block
    is enough; ``dist.metadata`` would import the email parser and parse the whole
    long description (a few milliseconds of every start).  Anything unusual falls
    back to it.
    """
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line:
            break  # the end of the headers
        key, sep, value = line.partition(":")
        if sep and key in ("Name", "Version"):
            fields.setdefault(key, value.strip())
    if "Name" not in fields or "Version" not in fields:
        meta = dist.metadata
        return meta["Name"] or "", meta["Version"]
    return fields["Name"], fields["Version"]


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def make_plugin_manager(
    selection: PluginSelection | None = None,
    *,
    distribution: str | None = None,
    plugins: Iterable[tuple[str, Any]] = (),
    strict: bool = False,
) -> ConveyorPluginManager:
    """Build a fresh plugin manager.

    Args:
        selection: which plugins load (default: all, minus the environment's blocks).
        distribution: load only the entry points of this distribution (tests use
            ``"conveyor"`` to get exactly the bundled plugins).
        plugins: extra ``(name, object)`` pairs registered after the entry points.
        strict: raise the first :class:`PluginLoadError` instead of recording it.
    """
    selection = PluginSelection.from_env() if selection is None else selection
    pm = ConveyorPluginManager()
    if os.environ.get("CONVEYOR_TRACE_HOOKS"):
        pm.tracing = True
        _trace_to_stderr(pm)

    found = _entry_points(distribution)
    dists_by_name: dict[str, list[str]] = {}
    for ep, dist, _ in found:
        dists_by_name.setdefault(ep.name, []).append(dist or "?")

    error: ConveyorError
    for ep, dist, version in found:
        info = PluginInfo(name=ep.name, module=ep.value, distribution=dist or None, version=version)
        if len(dists_by_name[ep.name]) > 1:
            owners = " and ".join(sorted(dists_by_name[ep.name]))
            error = PluginConflictError(
                f"the plugin name {ep.name!r} is claimed by {owners}",
                hint="pip uninstall one of them",
            )
            _fail(pm, info, error, strict)
            continue
        if (why := selection.allows(ep.name)) is not None:
            pm.set_blocked(ep.name)
            pm._record(evolve(info, status="disabled", error=why))
            continue
        try:
            module = ep.load()
        except Exception as exc:
            error = PluginLoadError(
                f"plugin {ep.name!r} ({info.origin}) failed to import: {type(exc).__name__}: {exc}",
                hint=f"set CONVEYOR_DISABLE_PLUGINS={ep.name}"
                + (f" or pip uninstall {info.distribution}" if info.distribution else ""),
            )
            _fail(pm, info, error, strict)
            continue
        _add(pm, module, info, strict)

    for module_name in selection.modules:
        info = PluginInfo(name=module_name, module=module_name, source="config")
        if (why := selection.allows(module_name)) is not None:
            pm._record(evolve(info, status="disabled", error=why))
            continue
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            error = PluginLoadError(
                f"the project hook module {module_name!r} failed to import: "
                f"{type(exc).__name__}: {exc}",
                hint="fix the module, or remove it from [plugins] modules in the config",
            )
            _fail(pm, info, error, strict)
            continue
        _add(pm, module, info, strict)

    for name, plugin in plugins:
        _add(pm, plugin, PluginInfo(name=name, module=_module_of(plugin), source="manual"), strict)
    return pm


def _add(pm: ConveyorPluginManager, plugin: Any, info: PluginInfo, strict: bool) -> None:
    if not pm.add_plugin(plugin, info) and strict:
        failed = pm.infos[info.name]
        raise PluginLoadError(
            f"plugin {info.name!r} ({info.origin}) is invalid: {failed.error}",
            hint=f"fix the plugin, or set CONVEYOR_DISABLE_PLUGINS={info.name}",
        )


def _fail(pm: ConveyorPluginManager, info: PluginInfo, error: Exception, strict: bool) -> None:
    if strict:
        raise error
    message = str(error).splitlines()[0]
    if isinstance(error, ConveyorError) and error.hint:
        message = f"{error.message}; {error.hint}"
    pm._record(evolve(info, status="failed", error=message))


def _module_of(plugin: Any) -> str:
    if isinstance(plugin, ModuleType):
        return plugin.__name__
    return getattr(plugin, "__module__", "") or type(plugin).__module__


def _trace_to_stderr(pm: pluggy.PluginManager) -> None:
    def before(hook_name: str, impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]) -> None:
        names = ", ".join(impl.plugin_name for impl in impls)
        print(f"[conveyor hook] {hook_name}({', '.join(kwargs)}) -> [{names}]", file=sys.stderr)

    def after(
        outcome: pluggy.Result[Any],
        hook_name: str,
        impls: Sequence[pluggy.HookImpl],
        kwargs: Mapping[str, Any],
    ) -> None:
        exc = outcome.exception
        result = f"raised {exc!r}" if exc is not None else repr(outcome.get_result())[:200]
        print(f"[conveyor hook] {hook_name} returned {result}", file=sys.stderr)

    pm.add_hookcall_monitoring(before, after)


__all__ = [
    "ENTRY_POINT_GROUP",
    "ConveyorPluginManager",
    "PluginInfo",
    "PluginSelection",
    "make_plugin_manager",
]
