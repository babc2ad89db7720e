"""How step outputs are stored in the artifact store and read back.

Materializers come from plugins through the collect-all hook
``register_materializers(register)``; each plugin manager has its own catalogue
(:meth:`conveyor.manager.ConveyorPluginManager.materializers`), so a disabled
plugin's materializers are gone like its backends.  The bundled ones (tables,
LightGBM, bytes, JSON and the training pipeline's values) come from the bundled
plugin ``materializers``.

A materializer is chosen by the output's type; its name (and the plugin that
registered it) is stored with the artifact, and only that registered name is ever
used to read it back.  Nothing is pickled: tables are Parquet, models LightGBM
text, values JSON.
"""

from __future__ import annotations

import json
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from attrs import evolve, frozen

from conveyor.backends import import_object
from conveyor.errors import ConveyorError, PluginConflictError

JSON = "application/json"
HOOK = "register_materializers"


@frozen(kw_only=True)
class Materializer:
    """Stores values of one type.

    Attributes:
        name: stored with the artifact; selects the reader.
        matches: the type it stores, as ``"module:Class"`` (checked with
            ``isinstance`` once that module is imported, so registering costs no
            import), or a predicate ``matches(value) -> bool``.
        save: ``save(store, key, value) -> ArtifactInfo``.
        load: ``load(store, key) -> value``.
        extension: file-name suffix of the stored key.
        plugin: the plugin that registered it (set by the catalogue).
    """

    name: str
    matches: str | Callable[[Any], bool]
    save: Callable[[Any, str, Any], Any]
    load: Callable[[Any, str], Any]
    extension: str
    plugin: str = ""


def json_value(type_ref: str, name: str) -> Materializer:
    """A materializer storing instances of ``type_ref`` as JSON.

    The class must have ``to_dict()`` and a ``from_dict(data)`` classmethod; it is
    imported only when a stored value is read back.
    """

    def save(store: Any, key: str, value: Any) -> Any:
        data = json.dumps(value.to_dict(), sort_keys=True, allow_nan=False).encode()
        return store.put_bytes(key, data, media_type=JSON)

    def load(store: Any, key: str) -> Any:
        return import_object(type_ref).from_dict(json.loads(store.get_bytes(key)))

    return Materializer(name=name, matches=type_ref, save=save, load=load, extension="json")


def _loaded_type(type_ref: str) -> type | None:
    """The class ``type_ref`` names if its module is imported already, else ``None``."""
    module_name, _, qualname = type_ref.partition(":")
    obj: Any = sys.modules.get(module_name)
    if obj is None:
        return None
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj if isinstance(obj, type) else None


class MaterializerCatalogue:
    """The materializers one plugin manager's plugins registered, by name.

    Choosing one for a value: the registered type nearest in the value's class
    hierarchy wins; predicates are tried after types, in registration order.
    """

    def __init__(self, unavailable: dict[str, str] | None = None) -> None:
        self._by_name: dict[str, Materializer] = {}
        self._types: dict[str, Materializer] = {}
        self._resolved: dict[type, Materializer] = {}
        self._predicates: list[Materializer] = []
        #: plugin name -> why it is not loaded (for "enable plugin X" errors)
        self.unavailable: dict[str, str] = dict(unavailable or {})

    def add(self, materializer: Materializer) -> None:
        if (other := self._by_name.get(materializer.name)) is not None:
            raise PluginConflictError(
                f"plugins {other.plugin!r} and {materializer.plugin!r} both register the "
                f"materializer {materializer.name!r}",
                hint=f"disable one of them: CONVEYOR_DISABLE_PLUGINS={materializer.plugin}",
            )
        if isinstance(materializer.matches, str):
            if (other := self._types.get(materializer.matches)) is not None:
                raise PluginConflictError(
                    f"plugins {other.plugin!r} and {materializer.plugin!r} both store "
                    f"{materializer.matches} (materializers {other.name!r} and "
                    f"{materializer.name!r})",
                    hint=f"disable one of them: CONVEYOR_DISABLE_PLUGINS={materializer.plugin}",
                )
            self._types[materializer.matches] = materializer
        else:
            self._predicates.append(materializer)
        self._by_name[materializer.name] = materializer

    def __iter__(self) -> Iterator[Materializer]:
        return iter(sorted(self._by_name.values(), key=lambda m: m.name))

    def for_value(self, value: Any) -> Materializer:
        """The materializer that stores ``value``, or an error saying what to do."""
        if len(self._resolved) < len(self._types):
            for ref, materializer in self._types.items():
                cls = _loaded_type(ref)
                if cls is not None:
                    self._resolved.setdefault(cls, materializer)
        for cls in type(value).__mro__:
            found = self._resolved.get(cls)
            if found is not None:
                return found
        for materializer in self._predicates:
            if materializer.matches(value):  # type: ignore[operator]
                return materializer
        raise ConveyorError(
            f"a step returned a {type(value).__module__}.{type(value).__qualname__}, which "
            "no registered materializer can store",
            hint="return a polars DataFrame, an Arrow table, a LightGBM Booster, bytes or a "
            "JSON-able value, or add a materializer with the register_materializers hook",
        )

    def named(self, name: str, *, plugin: str | None = None) -> Materializer:
        """The materializer stored as ``name``; ``plugin`` is the one that wrote it."""
        try:
            return self._by_name[name]
        except KeyError:
            pass
        if plugin and plugin in self.unavailable:
            hint = (
                f"enable the plugin {plugin!r} (it is {self.unavailable[plugin]}): remove "
                "it from CONVEYOR_DISABLE_PLUGINS and [plugins] disable"
            )
        elif plugin:
            hint = f"install the distribution that provides the plugin {plugin!r}"
        else:
            hint = "install and enable the plugin that registers it (`conveyor plugins`)"
        raise ConveyorError(
            f"no materializer named {name!r} to read a stored output"
            + (f" (it was written by plugin {plugin!r})" if plugin else ""),
            hint=hint,
        )


class _Register:
    """The ``register`` callback handed to one plugin's ``register_materializers``.

    It only collects: the catalogue takes a plugin's materializers after its hook
    returned, so a plugin that fails half-way contributes none.
    """

    def __init__(self, plugin: str) -> None:
        self._plugin = plugin
        self.registered: list[Materializer] = []

    def __call__(self, materializer: Materializer) -> None:
        if not isinstance(materializer, Materializer):
            raise TypeError("register() takes a conveyor.materializers.Materializer")
        self.registered.append(evolve(materializer, plugin=self._plugin))


_CACHE: weakref.WeakKeyDictionary[Any, tuple[tuple[int, ...], MaterializerCatalogue]] = (
    weakref.WeakKeyDictionary()
)
_LOCK = threading.Lock()


def catalogue_of(pm: Any) -> MaterializerCatalogue:
    """Build (once per set of implementations) the materializers ``pm``'s plugins register.

    The hook goes through core's one dispatcher (:func:`conveyor.hooks.call_each`):
    each plugin gets a ``register`` bound to it; a plugin that fails is reported
    once and contributes nothing.
    """
    from conveyor.hooks import HookFailure, call_each

    impls = getattr(pm.hook, HOOK).get_hookimpls()
    signature = tuple(id(impl.function) for impl in impls)
    with _LOCK:
        cached = _CACHE.get(pm)
        if cached is not None and cached[0] == signature:
            return cached[1]
        registers: dict[str, _Register] = {}

        def bind(plugin: str) -> dict[str, Any]:
            registers[plugin] = _Register(plugin)
            return {"register": registers[plugin]}

        failed: dict[str, str] = {}
        succeeded: list[str] = []
        for plugin, result in call_each(pm, HOOK, {}, per_plugin=bind):
            if isinstance(result, HookFailure):
                failed[plugin] = f"failed in {HOOK}: {result.message}"
            else:
                succeeded.append(plugin)
        infos = getattr(pm, "infos", {})
        catalogue = MaterializerCatalogue(
            {
                **{i.name: i.error or i.status for i in infos.values() if i.status != "loaded"},
                **failed,
            }
        )
        for plugin in reversed(succeeded):  # loading order: a conflict names the first first
            for materializer in registers[plugin].registered:
                catalogue.add(materializer)
        _CACHE[pm] = (signature, catalogue)
        return catalogue


__all__ = [
    "JSON",
    "Materializer",
    "MaterializerCatalogue",
    "catalogue_of",
    "json_value",
]
