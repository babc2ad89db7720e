"""The plugin manager: discovery through entry points, blocking, failures, conflicts."""

from __future__ import annotations

import threading
import tomllib
from importlib.metadata import entry_points

import pytest
from attrs import frozen

from conveyor import hookimpl
from conveyor.backends import BackendKind
from conveyor.errors import PluginConflictError, PluginLoadError, UnknownBackendError
from conveyor.manager import PluginSelection, make_plugin_manager


def bundled_entry_points(repo_root) -> dict[str, str]:
    pyproject = tomllib.loads((repo_root / "pyproject.toml").read_text())
    return pyproject["project"]["entry-points"]["conveyor"]


@frozen(kw_only=True)
class EmptyConfig:
    pass


def test_bundled_plugins_come_through_entry_points(repo_root, plugin_manager):
    declared = bundled_entry_points(repo_root)
    assert declared, "pyproject lists no bundled plugin"
    installed = {
        ep.name: ep.value
        for ep in entry_points(group="conveyor")
        if ep.dist is not None and ep.dist.name == "conveyor"
    }
    assert installed == declared, "installed metadata is stale: run `pip install -e .` again"
    for name, module in declared.items():
        info = plugin_manager.infos[name]
        assert info.status == "loaded", info.error
        assert info.distribution == "conveyor"
        assert info.module == module
        assert plugin_manager.get_plugin(name).__name__ == module


def test_every_bundled_plugin_provides_something(plugin_manager):
    for name in plugin_manager.infos:
        assert plugin_manager.hooks_of(name), f"bundled plugin {name!r} implements no hook"


def _a_bundled_backend(pm):
    spec = next(iter(pm.catalogue()), None)
    assert spec is not None, "no bundled backend to test with"
    return spec


@pytest.mark.parametrize("how", ["config", "env"])
def test_disabling_a_bundled_plugin_removes_its_backends(plugin_manager, monkeypatch, how):
    spec = _a_bundled_backend(plugin_manager)
    if how == "config":
        pm = make_plugin_manager(PluginSelection(disable=(spec.plugin,)), distribution="conveyor")
    else:
        monkeypatch.setenv("CONVEYOR_DISABLE_PLUGINS", f"unrelated, {spec.plugin}")
        pm = make_plugin_manager(distribution="conveyor")
    assert pm.infos[spec.plugin].status == "disabled"
    assert pm.get_plugin(spec.plugin) is None
    assert spec.name not in pm.catalogue().names(spec.kind)
    with pytest.raises(UnknownBackendError, match=rf"{spec.plugin} \(disabled by configuration\)"):
        pm.catalogue().get(spec.kind, spec.name)


def test_load_allow_list_empty_loads_nothing(monkeypatch):
    monkeypatch.setenv("CONVEYOR_LOAD_PLUGINS", "")
    pm = make_plugin_manager(distribution="conveyor")
    assert pm.infos, "the blocked plugins are still listed"
    assert all(info.status == "disabled" for info in pm.infos.values())
    assert list(pm.catalogue()) == []


def test_load_allow_list_keeps_only_named(plugin_manager):
    spec = _a_bundled_backend(plugin_manager)
    pm = make_plugin_manager(PluginSelection(load=(spec.plugin,)), distribution="conveyor")
    assert {n for n, i in pm.infos.items() if i.status == "loaded"} == {spec.plugin}


def test_misspelt_hook_fails_loudly(register_plugin, plugin_manager):
    class Misspelt:
        @hookimpl
        def register_artifact_store(self, register):  # missing the "s"
            pass

    with pytest.raises(AssertionError, match="unknown hook 'register_artifact_store'"):
        register_plugin(Misspelt(), "misspelt")
    assert plugin_manager.get_plugin("misspelt") is None
    with pytest.raises(PluginLoadError, match="misspelt"):
        make_plugin_manager(
            PluginSelection(), distribution="none", plugins=[("misspelt", Misspelt())], strict=True
        )


def test_wrong_hook_arguments_fail_loudly():
    class WrongArgs:
        @hookimpl
        def register_triggers(self, registrar):
            pass

    pm = make_plugin_manager(
        PluginSelection(), distribution="none", plugins=[("wrong", WrongArgs())]
    )
    assert pm.infos["wrong"].status == "failed"
    assert "registrar" in pm.infos["wrong"].error


def test_broken_plugin_is_reported_and_can_be_disabled(fake_distribution, monkeypatch):
    fake_distribution(
        "conveyor-broken",
        "0.3",
        entry_points={"broken": "fake_broken"},
        modules={"fake_broken": "raise RuntimeError('boom at import')"},
    )
    pm = make_plugin_manager(PluginSelection())
    info = pm.infos["broken"]
    assert info.status == "failed"
    assert info.distribution == "conveyor-broken" and info.version == "0.3"
    assert "boom at import" in info.error and "conveyor-broken" in info.error
    assert "CONVEYOR_DISABLE_PLUGINS=broken" in info.error
    with pytest.raises(PluginLoadError, match="boom at import"):
        make_plugin_manager(PluginSelection(), strict=True)
    monkeypatch.setenv("CONVEYOR_DISABLE_PLUGINS", "broken")
    pm = make_plugin_manager()
    assert pm.infos["broken"].status == "disabled"
    assert not pm.failures()


def test_entry_point_name_claimed_twice_is_an_error(fake_distribution):
    source = "from conveyor import hookimpl\n"
    fake_distribution(
        "conveyor-one", entry_points={"twin": "fake_one"}, modules={"fake_one": source}
    )
    fake_distribution(
        "conveyor-two", entry_points={"twin": "fake_two"}, modules={"fake_two": source}
    )
    pm = make_plugin_manager(PluginSelection())
    assert pm.infos["twin"].status == "failed"
    assert "conveyor-one and conveyor-two" in pm.infos["twin"].error
    with pytest.raises(PluginConflictError, match="conveyor-one and conveyor-two"):
        make_plugin_manager(PluginSelection(), strict=True)


def _registering(name, schemes=()):
    class Plugin:
        @hookimpl
        def register_orchestrators(self, register):
            register(
                name,
                factory=lambda app, config: object(),
                config_class=EmptyConfig,
                schemes=schemes,
            )

    return Plugin()


def test_two_plugins_claiming_one_backend_name_conflict(register_plugin, plugin_manager):
    register_plugin(_registering("twin"), "first-plugin")
    register_plugin(_registering("twin"), "second-plugin")
    with pytest.raises(PluginConflictError, match="'first-plugin' and 'second-plugin'"):
        plugin_manager.catalogue()


def test_two_plugins_claiming_one_scheme_conflict(register_plugin, plugin_manager):
    register_plugin(_registering("a", schemes=("dup",)), "plugin-a")
    register_plugin(_registering("b", schemes=("dup",)), "plugin-b")
    with pytest.raises(PluginConflictError, match="dup://"):
        plugin_manager.catalogue()


def test_same_name_for_different_kinds_is_fine(register_plugin, plugin_manager):
    class Two:
        @hookimpl
        def register_orchestrators(self, register):
            register("same", factory=object, config_class=EmptyConfig)

        @hookimpl
        def register_triggers(self, register):
            register("same", factory=object, config_class=EmptyConfig)

    register_plugin(Two(), "two-kinds")
    catalogue = plugin_manager.catalogue()
    assert "same" in catalogue.names(BackendKind.ORCHESTRATOR)
    assert "same" in catalogue.names(BackendKind.TRIGGER)


def test_every_hook_spec_is_callable_without_implementations():
    pm = make_plugin_manager(PluginSelection(load=()))
    for name in dir(pm.hook):
        caller = getattr(pm.hook, name)
        if name.startswith("_") or not hasattr(caller, "spec") or caller.spec is None:
            continue
        kwargs = {arg: None for arg in caller.spec.argnames}
        assert caller(**kwargs) == [], name


def test_catalogue_is_built_once_across_threads(plugin_manager):
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(plugin_manager.catalogue()))
        for _ in range(16)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(c) for c in results}) == 1


def test_loading_order_is_deterministic(plugin_manager):
    again = make_plugin_manager(PluginSelection(), distribution="conveyor")
    assert list(plugin_manager.infos) == list(again.infos) == sorted(again.infos)


def test_project_hook_modules_load_from_config(tmp_path, monkeypatch):
    (tmp_path / "my_project_hooks.py").write_text(
        "from conveyor import hookimpl\n"
        "seen = []\n"
        "@hookimpl\n"
        "def on_trigger_fired(app, event):\n"
        "    seen.append(event)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    pm = make_plugin_manager(PluginSelection(modules=("my_project_hooks",)), distribution="none")
    assert pm.infos["my_project_hooks"].source == "config"
    assert pm.hooks_of("my_project_hooks") == ["on_trigger_fired"]
