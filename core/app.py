"""The application object: config + plugin manager + the backends they select."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attrs import Factory, define, field

from conveyor.backends import BackendKind, BackendSpec
from conveyor.checks import Finding, Severity
from conveyor.config import BACKEND_SECTIONS, Config, add_to_path, core_keys, structure
from conveyor.errors import ConfigError, ConveyorError, UnknownBackendError
from conveyor.hooks import HookFailure, call_each
from conveyor.manager import ConveyorPluginManager, make_plugin_manager

if TYPE_CHECKING:
    from conveyor.artifacts import ArtifactStore
    from conveyor.interfaces import (
        FeatureStore,
        MetadataStore,
        OnlineStore,
        Orchestrator,
        Server,
        Trigger,
    )
    from conveyor.registry import ModelRegistry


@define
class Conveyor:
    """One project's configured Conveyor: hands out the backends config selects.

    Backends are built on first use and cached, so creating an app is cheap and
    commands that need no store never open one.

    Attributes:
        config: the effective configuration.
        pm: the plugin manager whose catalogue provides the backends.
    """

    config: Config
    pm: ConveyorPluginManager
    _backends: dict[str, Any] = Factory(dict)
    _lock: threading.RLock = field(factory=threading.RLock, repr=False)

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        *,
        profile: str | None = None,
        pm: ConveyorPluginManager | None = None,
        cwd: str | Path | None = None,
    ) -> Conveyor:
        """Read the config and load the plugins it allows."""
        config = Config.load(path, profile=profile, cwd=cwd)
        if pm is None:
            add_to_path(config.root)
            pm = make_plugin_manager(config.plugin_selection())
        return cls(config=config, pm=pm)

    @property
    def root(self) -> Path:
        return self.config.root

    @property
    def state_dir(self) -> Path:
        return self.config.state_dir

    # -- backends ------------------------------------------------------------------------

    def backend_spec(
        self, kind: BackendKind | str, section: str | None = None
    ) -> tuple[BackendSpec, Any]:
        """The backend a config section selects, and its structured config."""
        kind = BackendKind(kind)
        section = section or BACKEND_SECTIONS[kind.value]
        table = self.config.section(section)
        for key in core_keys(kind.value):  # read by core itself (server settings, bindings)
            table.pop(key, None)
        catalogue = self.pm.catalogue()
        name = table.pop("backend", None)
        if table.get("url"):
            # the URL's scheme selects the backend; an explicit, different name is an error
            spec = catalogue.for_url(kind, table["url"])
            source = self.config.sources.get(f"{section}.backend", "default")
            if name is not None and name != spec.name and source != "default":
                raise ConfigError(
                    f"{self.config.where}: [{section}] says backend = {name!r} but its url "
                    f"{table['url']!r} selects {spec.name!r}",
                    hint="remove one of the two keys",
                )
        elif name is not None:
            spec = catalogue.get(kind, name)
        else:
            raise ConfigError(
                f"{self.config.where}: [{section}] names no backend",
                hint=f'add backend = "NAME" (installed: '
                f'{", ".join(catalogue.names(kind)) or "none"}) or url = "scheme://..."',
            )
        config_class = spec.load_config_class()
        config = structure(config_class, table, section=section, where=self.config.where)
        return spec, config

    def backend(self, kind: BackendKind | str, section: str | None = None) -> Any:
        """The backend instance for ``kind`` (built once, then cached)."""
        kind = BackendKind(kind)
        key = section or BACKEND_SECTIONS[kind.value]
        with self._lock:
            if key not in self._backends:
                spec, config = self.backend_spec(kind, section)
                factory = spec.load_factory()
                self._backends[key] = factory(app=self, config=config)
            return self._backends[key]

    @property
    def artifacts(self) -> ArtifactStore:
        return self.backend(BackendKind.ARTIFACT_STORE)

    @property
    def metadata(self) -> MetadataStore:
        return self.backend(BackendKind.METADATA_STORE)

    @property
    def registry(self) -> ModelRegistry:
        """Core's registry (every rule) over the backend ``[model_registry]`` selects."""
        with self._lock:
            if "conveyor.registry" not in self._backends:
                from conveyor.registry import ModelRegistry

                backend = self.backend(BackendKind.MODEL_REGISTRY)
                self._backends["conveyor.registry"] = ModelRegistry(backend, app=self)
            return self._backends["conveyor.registry"]

    @property
    def features(self) -> FeatureStore:
        return self.backend(BackendKind.FEATURE_STORE)

    @property
    def online_store(self) -> OnlineStore:
        return self.backend(BackendKind.ONLINE_STORE)

    @property
    def orchestrator(self) -> Orchestrator:
        return self.backend(BackendKind.ORCHESTRATOR)

    @property
    def server(self) -> Server:
        """The ``[server]`` backend; the shared settings are checked (bind policy) first."""
        from conveyor.server import server_settings

        server_settings(self.config)
        return self.backend(BackendKind.SERVER)

    def trigger(self, name: str) -> Trigger:
        """The trigger configured as ``[triggers.<name>]`` (its binding checked first)."""
        from conveyor.triggers import binding

        binding(self, name)
        return self.backend(BackendKind.TRIGGER, section=f"triggers.{name}")

    def plugin_config(self, plugin: str) -> dict[str, Any]:
        """Plugin-wide settings from ``[plugin.<name>]``."""
        return self.config.plugin_config(plugin)

    def close(self) -> None:
        """Close every backend that was opened (those with a ``close`` method)."""
        with self._lock:
            for backend in self._backends.values():
                close = getattr(backend, "close", None)
                if callable(close):
                    close()
            self._backends.clear()

    # -- events and checks ---------------------------------------------------------------

    def emit(self, hook_name: str, event: Any) -> None:
        """Call the lifecycle hook ``hook_name`` with ``event``.

        A failing listener must not undo what already happened (a registered model
        stays registered), so its failure is reported once, naming the plugin, and
        the other listeners still run.
        """
        for _plugin, _result in call_each(self.pm, hook_name, {"app": self, "event": event}):
            pass

    def run_checks(self, hook_name: str, context: Any) -> list[Finding]:
        """Run the collect-all ``check_*`` hook; a check that crashes is a blocking finding.

        A crash must never read as a pass: the plugin's failure becomes an
        ``error`` finding named ``<plugin>.crashed``, and so does a result that is
        not a list of findings.
        """
        findings: list[Finding] = []
        for plugin, result in call_each(self.pm, hook_name, {"app": self, "context": context}):
            if isinstance(result, HookFailure):
                findings.append(
                    _crashed(plugin, f"the check from plugin {plugin!r} crashed: {result.message}")
                )
                continue
            try:
                items = list(result or ())
            except TypeError:
                items = [result]
            for item in items:
                if isinstance(item, Finding):
                    findings.append(item)
                else:
                    findings.append(
                        _crashed(
                            plugin,
                            f"the check from plugin {plugin!r} returned {item!r}, not a Finding",
                        )
                    )
        return findings

    def _configured(self, section: str) -> bool:
        """Whether any key of ``section`` was set by a file, profile or the environment."""
        prefix = f"{section}."
        return any(
            key.startswith(prefix) and source != "default"
            for key, source in self.config.sources.items()
        )

    def preflight(self) -> list[Finding]:
        """Check that every configured backend exists and its config is valid."""
        findings: list[Finding] = []
        for kind_value, section in BACKEND_SECTIONS.items():
            try:
                spec, _ = self.backend_spec(BackendKind(kind_value))
                spec.load_factory()
            except UnknownBackendError as exc:
                # a default nobody configured and nobody provides breaks nothing until a
                # command needs that kind: information, not an error
                chosen = self._configured(section)
                findings.append(
                    Finding(
                        check="config.backend",
                        subject=section,
                        severity=Severity.ERROR if chosen else Severity.INFO,
                        message=exc.message
                        if chosen
                        else f"{exc.message} (the default; only commands that use a "
                        f"{kind_value.replace('_', ' ')} need one)",
                        details={"hint": exc.hint},
                    )
                )
            except ConveyorError as exc:
                findings.append(
                    Finding(
                        check="config.backend",
                        subject=section,
                        message=exc.message,
                        details={"hint": exc.hint},
                    )
                )
        for name in self.config.data.get("triggers", {}):
            try:
                self.backend_spec(BackendKind.TRIGGER, section=f"triggers.{name}")
            except ConveyorError as exc:
                findings.append(
                    Finding(
                        check="config.trigger",
                        subject=name,
                        message=exc.message,
                        details={"hint": exc.hint},
                    )
                )
        for info in self.pm.failures():
            findings.append(
                Finding(
                    check="plugins.failed",
                    subject=info.name,
                    severity=Severity.WARNING,
                    message=info.error or "",
                )
            )
        return findings


def _crashed(plugin: str, message: str) -> Finding:
    return Finding(check=f"{plugin}.crashed", message=message)


__all__ = ["Conveyor", "add_to_path"]
