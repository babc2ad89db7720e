"""Authoring pipelines: graphs are built from plain function calls; steps work alone."""

from __future__ import annotations

import pytest

from conveyor.errors import ConfigError, ConveyorError
from conveyor.pipeline import (
    External,
    Output,
    PipelineDefinitionError,
    cache_key,
    code_fingerprint,
    files,
    load_pipeline,
    pipeline,
    step,
)


@step
def load(n: int = 3) -> list[int]:
    return list(range(n))


@step(outputs=("evens", "odds"))
def split(values: list[int]) -> tuple[list[int], list[int]]:
    return [v for v in values if v % 2 == 0], [v for v in values if v % 2]


@step(retries=2, timeout_s=5)
def total(ctx, values: list[int], scale: float = 1.0) -> float:
    ctx.log_metrics({"n": len(values)})
    return sum(values) * scale


@pipeline
def numbers(n: int = 4, scale: float = 2.0):
    evens, odds = split(load(n))
    total(evens, scale=scale)
    total(odds, scale=scale)


def test_steps_are_plain_functions_outside_a_pipeline():
    assert load(2) == [0, 1]
    assert split([1, 2, 3]) == ([2], [1, 3])


def test_building_records_nodes_inputs_and_params():
    graph = numbers.build(n=5)
    assert [n.id for n in graph.nodes] == ["load", "split", "total", "total_2"]
    assert graph.parameters == {"n": 5, "scale": 2.0}
    assert graph.node("load").params == {"n": 5}
    assert graph.node("split").inputs == {"values": Output("load")}
    assert graph.node("total").inputs == {"values": Output("split", "evens")}
    assert graph.node("total_2").inputs == {"values": Output("split", "odds")}
    assert graph.node("total_2").params == {"scale": 2.0}
    assert graph.node("total").step.wants_context
    assert graph.node("total").step.options.retries == 2


def test_graph_fingerprint_depends_on_code_not_parameters():
    assert numbers.build(n=1).fingerprint == numbers.build(n=2).fingerprint

    @pipeline
    def other(n: int = 4):
        load(n)

    assert other.build().fingerprint != numbers.build().fingerprint


def test_code_fingerprint_ignores_comments_and_formatting(tmp_path, monkeypatch):
    import importlib

    sources = {
        "fp_a": "def f(x):\n    return x + 1  # a comment\n",
        "fp_b": "def f(x):\n    # another comment\n    return (x +\n            1)\n",
        "fp_c": "def f(x):\n    return x + 2\n",
    }
    for module, source in sources.items():
        (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    a, b, c = (importlib.import_module(m).f for m in sources)
    assert code_fingerprint(a) == code_fingerprint(b)
    assert code_fingerprint(a) != code_fingerprint(c)


def test_unknown_pipeline_parameter_names_the_known_ones():
    with pytest.raises(PipelineDefinitionError) as info:
        numbers.build(rounds=3)
    assert "n, scale" in info.value.hint


def test_non_json_parameter_is_refused():
    @pipeline
    def bad():
        load(object())

    with pytest.raises(PipelineDefinitionError, match="not JSON-able"):
        bad.build()


def test_missing_step_argument_is_refused():
    @pipeline
    def bad():
        split()

    with pytest.raises(PipelineDefinitionError, match="missing argument"):
        bad.build()


def test_empty_pipeline_is_refused():
    @pipeline
    def empty():
        pass

    with pytest.raises(PipelineDefinitionError, match="calls no step"):
        empty.build()


def test_cache_key_changes_with_params_inputs_and_externals():
    graph = numbers.build()
    node = graph.node("total")
    base = cache_key(node, {"values": "a"}, {})
    assert base == cache_key(node, {"values": "a"}, {})
    assert base != cache_key(node, {"values": "b"}, {})
    assert base != cache_key(numbers.build(scale=3.0).node("total"), {"values": "a"}, {})
    assert base != cache_key(node, {"values": "a"}, {"data": "x"})


def test_external_files_are_fingerprinted_by_content(tmp_path):
    class App:
        root = tmp_path

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("1\n")
    ext = files("data/*.csv")
    assert isinstance(ext, External)
    first = ext.fingerprint(App)
    assert ext.resolve(App) == [tmp_path / "data" / "a.csv"]
    (tmp_path / "data" / "a.csv").write_text("2\n")
    second = ext.fingerprint(App)
    (tmp_path / "data" / "b.csv").write_text("2\n")
    assert len({first, second, ext.fingerprint(App)}) == 3
    with pytest.raises(ConveyorError, match="no files match"):
        files("nothing/*.csv").resolve(App)


def test_load_pipeline_errors(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "my_pipes.py").write_text("def not_a_pipeline():\n    pass\n")
    with pytest.raises(ConfigError, match="module:function"):
        load_pipeline("my_pipes")
    with pytest.raises(ConfigError, match="cannot import"):
        load_pipeline("no_such_module_xyz:p")
    with pytest.raises(ConfigError, match="is not a @pipeline"):
        load_pipeline("my_pipes:not_a_pipeline")
