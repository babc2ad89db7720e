"""The one hook dispatcher: argument subsets, tracing, wrappers refused, failures isolated."""

from __future__ import annotations

import pytest
from attrs import frozen

from conveyor import hookimpl
from conveyor.backends import BackendKind
from conveyor.checks import DataCheckContext
from conveyor.errors import PluginLoadError, UnknownBackendError
from conveyor.events import TriggerFired
from conveyor.hooks import HookFailure, call_each, dispatched_hooks
from conveyor.manager import PluginSelection, make_plugin_manager


@frozen
class NoConfig:
    pass


def _manager(*plugins, **kwargs):
    return make_plugin_manager(PluginSelection(), distribution="none", plugins=plugins, **kwargs)


def test_every_core_hook_is_dispatched():
    assert {
        "register_orchestrators",
        "register_commands",
        "on_run_started",
        "check_model",
    } <= dispatched_hooks()


def test_an_implementation_may_take_no_arguments_at_all():
    calls = []

    class NoArgs:
        @hookimpl
        def register_orchestrators(self):
            calls.append("called")

    class Registers:
        @hookimpl
        def register_orchestrators(self, register):
            register("memo", factory=dict, config_class=NoConfig)

    pm = _manager(("no-args", NoArgs()), ("registers", Registers()))
    assert [s.name for s in pm.catalogue()] == ["memo"]
    assert calls == ["called"]
    assert pm.infos["no-args"].status == "loaded"


def test_a_plugin_failing_in_a_register_hook_loses_only_its_own_backends(capsys):
    class HalfWay:
        @hookimpl
        def register_orchestrators(self, register):
            register("half", factory=dict, config_class=NoConfig)
            raise RuntimeError("registry offline")

    class Fine:
        @hookimpl
        def register_orchestrators(self, register):
            register("fine", factory=dict, config_class=NoConfig)

    pm = _manager(("half-way", HalfWay()), ("fine", Fine()))
    catalogue = pm.catalogue()
    assert catalogue.names(BackendKind.ORCHESTRATOR) == ["fine"]
    assert pm.infos["half-way"].status == "failed"
    assert "registry offline" in pm.infos["half-way"].error
    with pytest.raises(
        UnknownBackendError,
        match=r"half-way \(failed: failed in "
        r"register_orchestrators: RuntimeError: registry offline\)",
    ):
        catalogue.get(BackendKind.ORCHESTRATOR, "half")
    err = capsys.readouterr().err
    assert err.count("warning: plugin 'half-way' failed in register_orchestrators") == 1


@pytest.mark.parametrize("marker", [{"wrapper": True}, {"hookwrapper": True}])
def test_a_wrapper_on_a_dispatched_hook_is_refused(marker):
    class Wrapping:
        @hookimpl(**marker)
        def on_run_started(self, event):
            return (yield)

    pm = _manager(("wrapping", Wrapping()))
    assert pm.infos["wrapping"].status == "failed"
    assert "on_run_started as a wrapper" in pm.infos["wrapping"].error
    assert "drop wrapper=True" in pm.infos["wrapping"].error
    assert pm.get_plugin("wrapping") is None
    with pytest.raises(PluginLoadError, match="once per plugin"):
        _manager(("wrapping", Wrapping()), strict=True)


def test_a_wrapper_registered_behind_the_managers_back_is_still_refused(capsys):
    class Wrapping:
        @hookimpl(wrapper=True)
        def check_data(self, context):
            return (yield)

    pm = _manager()
    pm.register(Wrapping(), name="sneaky")  # pluggy's own door, not add_plugin
    results = list(call_each(pm, "check_data", {"app": None, "context": None}))
    assert [plugin for plugin, _ in results] == ["sneaky"]
    assert isinstance(results[0][1], HookFailure)
    assert "sneaky" in capsys.readouterr().err


def test_tracing_prints_a_line_for_every_call_and_result(monkeypatch, capsys):
    class Listener:
        @hookimpl
        def on_trigger_fired(self, event):
            return None

    class Checker:
        @hookimpl
        def check_data(self, context):
            return []

    monkeypatch.setenv("CONVEYOR_TRACE_HOOKS", "1")
    pm = _manager(("listener", Listener()), ("checker", Checker()))
    list(
        call_each(
            pm, "on_trigger_fired", {"app": None, "event": TriggerFired(trigger="t", reason="r")}
        )
    )
    list(call_each(pm, "check_data", {"app": None, "context": None}))
    pm.catalogue()
    list(call_each(pm, "on_run_started", {"app": None, "event": None}))
    lines = capsys.readouterr().err.splitlines()
    assert "[conveyor hook] on_trigger_fired(app, event) -> [listener]" in lines
    assert "[conveyor hook] on_trigger_fired <- listener returned None" in lines
    assert "[conveyor hook] check_data(app, context) -> [checker]" in lines
    assert "[conveyor hook] check_data <- checker returned []" in lines
    # a call no plugin implements is traced too
    assert "[conveyor hook] on_run_started(app, event) -> []" in lines
    assert "[conveyor hook] register_orchestrators(register) -> []" in lines


def test_a_listener_failing_on_every_event_is_reported_once(conveyor_app, register_plugin, capsys):
    class Broken:
        @hookimpl
        def on_trigger_fired(self, event):
            raise RuntimeError("listener down")

    register_plugin(Broken(), "broken")
    for _ in range(3):
        conveyor_app.emit("on_trigger_fired", TriggerFired(trigger="t", reason="r"))
    err = capsys.readouterr().err
    assert (
        err.count(
            "warning: plugin 'broken' failed in on_trigger_fired: RuntimeError: listener down"
        )
        == 1
    )
    assert len([f for f in conveyor_app.pm.hook_failures if f.plugin == "broken"]) == 3


def test_a_check_returning_something_else_than_findings_blocks(conveyor_app, register_plugin):
    class Sloppy:
        @hookimpl
        def check_data(self, context):
            return ["looks fine to me"]

    register_plugin(Sloppy(), "sloppy")
    findings = conveyor_app.run_checks(
        "check_data", DataCheckContext(dataset="training", table=None)
    )
    assert [f.check for f in findings] == ["sloppy.crashed"]
    assert findings[0].blocking
    assert "not a Finding" in findings[0].message
