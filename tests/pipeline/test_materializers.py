"""Materializers come from plugins: listed, disableable, conflicts refused, clear errors."""

from __future__ import annotations

import json

import pytest

from conveyor import hookimpl
from conveyor.errors import ConveyorError, PluginConflictError, PluginLoadError
from conveyor.manager import PluginSelection, make_plugin_manager
from conveyor.materializers import JSON, Materializer, json_value
from conveyor.pipeline import pipeline, step
from conveyor.runs import load_run_output, run_pipeline


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def to_dict(self) -> dict:
        return {"x": self.x, "y": self.y}

    @classmethod
    def from_dict(cls, data: dict) -> Point:
        return cls(data["x"], data["y"])


POINT = f"{Point.__module__}:Point"


class PointPlugin:
    @hookimpl
    def register_materializers(self, register):
        register(json_value(POINT, "test.point"))


@step
def make_point(x: int = 1) -> Point:
    return Point(x, 2)


@pipeline
def points(x: int = 1):
    make_point(x)


def test_the_bundled_plugin_registers_the_built_in_materializers(plugin_manager):
    names = {m.name: m.plugin for m in plugin_manager.materializers()}
    assert names == dict.fromkeys(
        [
            "arrow",
            "bytes",
            "conveyor.data_profile",
            "conveyor.evaluation",
            "conveyor.gate_verdict",
            "conveyor.trained_model",
            "json",
            "lightgbm",
            "polars",
        ],
        "materializers",
    )


def test_conveyor_plugins_lists_materializers(cli):
    rows = json.loads(cli.invoke("plugins", "--json").output)
    row = next(r for r in rows if r["name"] == "materializers")
    assert "conveyor.gate_verdict" in row["materializers"]
    assert row["hooks"] == ["register_materializers"]
    table = cli.invoke("plugins").output
    assert "materializer: arrow, bytes" in table


def test_a_plugin_materializer_stores_and_reads_its_type(conveyor_app, register_plugin):
    register_plugin(PointPlugin(), "points")
    result = run_pipeline(conveyor_app, points, parameters={"x": 5})
    assert result.ok, result.error
    record = result.steps["make_point"].outputs["output"]
    assert record.metadata["materializer"] == "test.point"
    assert record.metadata["materializer_plugin"] == "points"
    assert conveyor_app.artifacts.get_bytes(record.metadata["key"]) == b'{"x": 5, "y": 2}'
    assert load_run_output(conveyor_app, result.run_id, "make_point").to_dict() == {"x": 5, "y": 2}


def test_an_unregistered_type_names_the_hook(conveyor_app):
    result = run_pipeline(conveyor_app, points)
    assert result.status == "failed"
    assert "no registered materializer can store" in result.error
    assert "register_materializers" in result.hint


def test_two_plugins_claiming_a_name_or_a_type_conflict(register_plugin, plugin_manager):
    register_plugin(PointPlugin(), "points")

    class SameName:
        @hookimpl
        def register_materializers(self, register):
            register(
                Materializer(
                    name="test.point",
                    matches=lambda v: False,
                    save=lambda s, k, v: None,
                    load=lambda s, k: None,
                    extension="bin",
                )
            )

    register_plugin(SameName(), "same-name")
    with pytest.raises(PluginConflictError, match="'points' and 'same-name' both register"):
        plugin_manager.materializers()
    plugin_manager.unregister(name="same-name")

    class SameType:
        @hookimpl
        def register_materializers(self, register):
            register(json_value(POINT, "other.point"))

    register_plugin(SameType(), "same-type")
    with pytest.raises(PluginConflictError, match="both store") as caught:
        plugin_manager.materializers()
    assert "CONVEYOR_DISABLE_PLUGINS=same-type" in caught.value.hint


def test_a_wrapper_implementation_is_refused(register_plugin, plugin_manager):
    class Wrapping:
        @hookimpl(wrapper=True)
        def register_materializers(self, register):
            return (yield)

    # refused when the plugin loads, by the same rule as every dispatched hook
    with pytest.raises(AssertionError, match="register_materializers as a wrapper"):
        register_plugin(Wrapping(), "wrapping")
    assert plugin_manager.get_plugin("wrapping") is None
    with pytest.raises(PluginLoadError, match="as a wrapper"):
        make_plugin_manager(
            PluginSelection(), distribution="none", plugins=[("wrapping", Wrapping())], strict=True
        )


def test_an_output_of_a_disabled_plugin_names_the_plugin_to_enable(conveyor_app):
    @step
    def note() -> dict:
        return {"a": 1}

    @pipeline
    def notes():
        note()

    result = run_pipeline(conveyor_app, notes)
    assert result.ok, result.error
    conveyor_app.pm = make_plugin_manager(
        PluginSelection(disable=("materializers",)), distribution="conveyor"
    )
    with pytest.raises(ConveyorError) as caught:
        load_run_output(conveyor_app, result.run_id, "note")
    assert "no materializer named 'json'" in caught.value.message
    assert "written by plugin 'materializers'" in caught.value.message
    assert "enable the plugin 'materializers'" in caught.value.hint
    assert "disabled by configuration" in caught.value.hint


def test_json_is_stored_as_json(conveyor_app):
    catalogue = conveyor_app.pm.materializers()
    assert catalogue.for_value({"a": [1, None]}).name == "json"
    assert catalogue.for_value(b"raw").name == "bytes"
    info = catalogue.named("json").save(conveyor_app.artifacts, "k.json", {"b": 1, "a": 2})
    assert info.media_type == JSON
    assert conveyor_app.artifacts.get_bytes("k.json") == b'{"a": 2, "b": 1}'


def test_a_plugin_failing_in_register_materializers_loses_only_its_own(
    register_plugin, plugin_manager, capsys
):
    class Failing:
        @hookimpl
        def register_materializers(self, register):
            register(json_value(POINT, "failing.point"))
            raise RuntimeError("half-way")

    register_plugin(Failing(), "failing")
    catalogue = plugin_manager.materializers()
    names = [m.name for m in catalogue]
    assert "failing.point" not in names and names, names
    with pytest.raises(ConveyorError, match="failing.point") as caught:
        catalogue.named("failing.point", plugin="failing")
    assert "half-way" in caught.value.hint
    assert "plugin 'failing' failed in register_materializers" in capsys.readouterr().err
