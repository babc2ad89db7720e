"""Backend declaration (:class:`BackendSpec`) and the catalogue plugins fill.

A plugin declares a backend with a name, a lazily imported factory and an attrs
config class; core chooses one by name or URL scheme from config.  Both the factory
and the config class may be ``"module:attr"`` strings, imported only when the
backend is configured or built, so listing plugins and ``--help`` stay cheap.
"""

from __future__ import annotations

import enum
import importlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from attrs import field, frozen

from conveyor.convert import to_tuple
from conveyor.errors import PluginConflictError, PluginLoadError, UnknownBackendError


class BackendKind(enum.StrEnum):
    """The kinds of backend; each has a ``register_<kind>s`` hook and an interface."""

    ARTIFACT_STORE = "artifact_store"
    METADATA_STORE = "metadata_store"
    MODEL_REGISTRY = "model_registry"
    FEATURE_STORE = "feature_store"
    ONLINE_STORE = "online_store"
    ORCHESTRATOR = "orchestrator"
    TRIGGER = "trigger"
    SERVER = "server"

    @property
    def hook_name(self) -> str:
        """The collect-all hook through which plugins register backends of this kind."""
        return (
            "register_model_registries"
            if self is BackendKind.MODEL_REGISTRY
            else (f"register_{self.value}s")
        )

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


#: Known providers that are not bundled: shown when a name is missing.
KNOWN_PROVIDERS: dict[tuple[BackendKind, str], str] = {
    (BackendKind.METADATA_STORE, "postgresql"): "conveyor-postgres",
    (BackendKind.MODEL_REGISTRY, "postgresql"): "conveyor-postgres",
    (BackendKind.ONLINE_STORE, "redis"): "conveyor-redis",
    (BackendKind.ORCHESTRATOR, "dask"): "conveyor-dask",
    (BackendKind.ARTIFACT_STORE, "s3"): "conveyor[s3]",
}


def import_object(ref: str) -> Any:
    """The object ``"module:Qual.Name"`` names (the module is imported)."""
    module_name, _, attr = ref.partition(":")
    obj = importlib.import_module(module_name)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


@frozen(kw_only=True)
class BackendSpec:
    """One backend a plugin provides.

    Attributes:
        kind: which interface the backend implements.
        name: short lowercase name that config selects it by.
        factory: ``"module:attr"`` imported on first use (or a callable), called as
            ``factory(app=app, config=config)`` to build the backend.
        config_class: attrs class the backend's config section is structured into, or
            its ``"module:Class"`` name, imported when the backend is configured.
        schemes: URL schemes that select this backend (``url = "sqlite:///..."``).
        extras: pip requirements named when importing the factory fails.
        description: one line for ``conveyor backends``.
        plugin: entry-point name of the plugin that registered it.
    """

    kind: BackendKind = field(converter=BackendKind)
    name: str = field()
    factory: str | Callable[..., Any] = field(eq=False, hash=False)
    config_class: str | type = field()
    schemes: tuple[str, ...] = field(default=(), converter=to_tuple)
    extras: tuple[str, ...] = field(default=(), converter=to_tuple)
    description: str = ""
    plugin: str = ""

    @name.validator
    def _check_name(self, _attribute: Any, value: str) -> None:
        if not value or value != value.strip().lower() or " " in value:
            raise ValueError(f"backend name {value!r} must be a short lowercase word")

    @config_class.validator
    def _check_config_class(self, _attribute: Any, value: str | type) -> None:
        if isinstance(value, type):
            return
        module, _, attr = str(value).partition(":")
        if not (isinstance(value, str) and module and attr):
            raise ValueError(
                f"config_class of backend {self.name!r} must be an attrs class or its "
                f'"module:Class" name, not {value!r}'
            )

    def load_factory(self) -> Callable[..., Any]:
        """Import the factory, turning an ImportError into an actionable error."""
        if callable(self.factory):
            return self.factory
        return self._import(self.factory)

    def load_config_class(self) -> type:
        """Import the config class (when named as a string), as :meth:`load_factory`."""
        if isinstance(self.config_class, type):
            return self.config_class
        loaded = self._import(self.config_class)
        if not isinstance(loaded, type):
            raise PluginLoadError(
                f"the {self.kind.label} backend {self.name!r} (plugin {self.plugin!r}) names "
                f"config_class={self.config_class!r}, which is not a class",
                hint=f"fix the plugin {self.plugin!r} or disable it",
            )
        return loaded

    def _import(self, ref: str) -> Any:
        try:
            return import_object(ref)
        except (ImportError, AttributeError) as exc:
            hint = (
                f"install it with: pip install {' '.join(repr(e) for e in self.extras)}"
                if self.extras
                else f"reinstall the plugin {self.plugin!r} or disable it"
            )
            raise PluginLoadError(
                f"the {self.kind.label} backend {self.name!r} (plugin {self.plugin!r}) "
                f"cannot be imported: {type(exc).__name__}: {exc}",
                hint=hint,
            ) from exc


class Catalogue:
    """Every backend the loaded plugins registered, keyed by kind and name.

    Built once from the collect-all ``register_<kind>s`` hooks, then read-only.
    Two plugins claiming one name or scheme for a kind raise PluginConflictError.
    """

    def __init__(self, blocked: dict[str, str] | None = None) -> None:
        self._by_name: dict[tuple[BackendKind, str], BackendSpec] = {}
        self._by_scheme: dict[tuple[BackendKind, str], BackendSpec] = {}
        #: plugin name -> why it is not loaded ("disabled", "failed: ...")
        self.unavailable: dict[str, str] = dict(blocked or {})

    def add(self, spec: BackendSpec) -> None:
        key = (spec.kind, spec.name)
        if (other := self._by_name.get(key)) is not None:
            raise PluginConflictError(
                f"plugins {other.plugin!r} and {spec.plugin!r} both provide the "
                f"{spec.kind.label} backend {spec.name!r}",
                hint=f"disable one of them: CONVEYOR_DISABLE_PLUGINS={spec.plugin}",
            )
        for scheme in spec.schemes:
            if (other := self._by_scheme.get((spec.kind, scheme))) is not None:
                raise PluginConflictError(
                    f"plugins {other.plugin!r} and {spec.plugin!r} both claim the URL "
                    f"scheme '{scheme}://' for the {spec.kind.label}",
                    hint=f"disable one of them: CONVEYOR_DISABLE_PLUGINS={spec.plugin}",
                )
        self._by_name[key] = spec
        for scheme in spec.schemes:
            self._by_scheme[(spec.kind, scheme)] = spec

    def __iter__(self) -> Iterator[BackendSpec]:
        return iter(sorted(self._by_name.values(), key=lambda s: (s.kind.value, s.name)))

    def names(self, kind: BackendKind) -> list[str]:
        return sorted(name for k, name in self._by_name if k == kind)

    def get(self, kind: BackendKind, name: str) -> BackendSpec:
        """The backend called ``name``, or an UnknownBackendError that says what to do."""
        try:
            return self._by_name[(kind, name)]
        except KeyError:
            raise self._unknown(kind, f"no {kind.label} backend named {name!r}", name) from None

    def for_url(self, kind: BackendKind, url: str) -> BackendSpec:
        """The backend whose scheme matches ``url`` (a plain path counts as ``file``)."""
        scheme = url_scheme(url)
        try:
            return self._by_scheme[(kind, scheme)]
        except KeyError:
            raise self._unknown(
                kind, f"no {kind.label} backend handles '{scheme}://' URLs ({url!r})", scheme
            ) from None

    def _unknown(self, kind: BackendKind, message: str, name: str) -> UnknownBackendError:
        installed = self.names(kind)
        parts = [f"installed: {', '.join(installed)}" if installed else "none is installed"]
        if self.unavailable:
            parts.append(
                "not loaded: "
                + ", ".join(f"{p} ({why})" for p, why in sorted(self.unavailable.items()))
            )
        provider = KNOWN_PROVIDERS.get((kind, name))
        hint = (
            f"pip install {provider}"
            if provider
            else f"choose one of the installed {kind.label} backends, or install a plugin "
            "that provides it (`conveyor backends` lists them)"
        )
        return UnknownBackendError(f"{message}; {'; '.join(parts)}", hint=hint)


def url_scheme(url: str) -> str:
    """The scheme of ``url``; plain paths (and Windows drive letters) are ``file``."""
    scheme, sep, _ = url.partition("://")
    if not sep:
        scheme, sep, _ = url.partition(":")
        if not sep or len(scheme) == 1 or "/" in scheme:
            return "file"
    return scheme.lower()


class Register(Protocol):
    """The ``register`` callback a ``register_<kind>s`` hook receives.

    Call it once per backend the plugin provides; it validates the declaration
    (a bad name raises ``ValueError``) and returns the :class:`BackendSpec`.
    """

    def __call__(
        self,
        name: str,
        *,
        factory: str | Callable[..., Any],
        config_class: str | type,
        schemes: tuple[str, ...] | list[str] = (),
        extras: tuple[str, ...] | list[str] = (),
        description: str = "",
    ) -> BackendSpec: ...


class Registrar:
    """The :class:`Register` callback bound to one plugin and one kind.

    It only collects: core adds the specs to the catalogue after the plugin's hook
    returned, so a plugin that fails half-way contributes nothing.
    """

    def __init__(self, kind: BackendKind, plugin: str) -> None:
        self._kind = kind
        self._plugin = plugin
        self._lock = threading.Lock()
        self.specs: list[BackendSpec] = []

    def __call__(
        self,
        name: str,
        *,
        factory: str | Callable[..., Any],
        config_class: str | type,
        schemes: tuple[str, ...] | list[str] = (),
        extras: tuple[str, ...] | list[str] = (),
        description: str = "",
    ) -> BackendSpec:
        spec = BackendSpec(
            kind=self._kind,
            name=name,
            factory=factory,
            config_class=config_class,
            schemes=schemes,
            extras=extras,
            description=description,
            plugin=self._plugin,
        )
        with self._lock:
            self.specs.append(spec)
        return spec
