"""How step outputs are stored in the artifact store and read back.

A materializer is chosen by the output's type from an explicit allow-list; the
name is stored with the artifact and only a registered name is ever used to read
it back.  Nothing is pickled: tables are Parquet, models LightGBM text, values JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from attrs import frozen

from conveyor.artifacts import BINARY, ArtifactInfo, ArtifactStore
from conveyor.errors import ConveyorError

JSON = "application/json"


@frozen(kw_only=True)
class Materializer:
    """Stores values of one type.

    Attributes:
        name: stored with the artifact; selects the reader.
        matches: whether a value is of this materializer's type.
        save: ``save(store, key, value) -> ArtifactInfo``.
        load: ``load(store, key) -> value``.
        extension: file-name suffix of the stored key.
        refusal: for values that can stop a run (a gate's verdict):
            ``refusal(value)`` returns the error that ends the run ``refused``, or
            ``None``.  The value is stored either way, so a rerun on the same inputs
            reuses the verdict (and is refused again) without recomputing it.
    """

    name: str
    matches: Callable[[Any], bool]
    save: Callable[[ArtifactStore, str, Any], ArtifactInfo]
    load: Callable[[ArtifactStore, str], Any]
    extension: str
    refusal: Callable[[Any], Exception | None] | None = None


_REGISTRY: dict[str, Materializer] = {}


def register_materializer(materializer: Materializer) -> None:
    """Add a materializer; later registrations are tried first."""
    _REGISTRY[materializer.name] = materializer


def materializer_for(value: Any) -> Materializer:
    for materializer in reversed(list(_REGISTRY.values())):
        if materializer.matches(value):
            return materializer
    raise ConveyorError(
        f"a step returned a {type(value).__module__}.{type(value).__qualname__}, which "
        "Conveyor cannot store",
        hint="return a polars DataFrame, an Arrow table, a LightGBM Booster, bytes or a "
        "JSON-able value, or register a materializer (conveyor.materializers)",
    )


def materializer_named(name: str) -> Materializer:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConveyorError(f"no materializer named {name!r} to read a stored output",
                            hint="install the plugin or package that wrote it") from None


def _module_is(value: Any, prefix: str, cls: str) -> bool:
    kind = type(value)
    return kind.__module__.split(".")[0] == prefix and kind.__name__ == cls


def _json_save(store: ArtifactStore, key: str, value: Any) -> ArtifactInfo:
    data = json.dumps(value, sort_keys=True, allow_nan=False, default=str).encode()
    return store.put_bytes(key, data, media_type=JSON)


def _is_json(value: Any) -> bool:
    if value is None or isinstance(value, str | int | float | bool):
        return True
    if isinstance(value, list | tuple):
        return all(_is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False


def _polars_load(store: ArtifactStore, key: str) -> Any:
    import polars as pl

    return pl.from_arrow(store.get_table(key))


def _booster_save(store: ArtifactStore, key: str, value: Any) -> ArtifactInfo:
    return store.put_bytes(key, value.model_to_string().encode(), media_type="text/plain")


def _booster_load(store: ArtifactStore, key: str) -> Any:
    import lightgbm as lgb

    return lgb.Booster(model_str=store.get_bytes(key).decode())


for _m in (
    Materializer(name="json", matches=_is_json, save=_json_save,
                 load=lambda s, k: json.loads(s.get_bytes(k)), extension="json"),
    Materializer(name="bytes", matches=lambda v: isinstance(v, bytes),
                 save=lambda s, k, v: s.put_bytes(k, v, media_type=BINARY),
                 load=lambda s, k: s.get_bytes(k), extension="bin"),
    Materializer(name="arrow", matches=lambda v: _module_is(v, "pyarrow", "Table"),
                 save=lambda s, k, v: s.put_table(k, v),
                 load=lambda s, k: s.get_table(k), extension="parquet"),
    Materializer(name="polars", matches=lambda v: _module_is(v, "polars", "DataFrame"),
                 save=lambda s, k, v: s.put_table(k, v), load=_polars_load,
                 extension="parquet"),
    Materializer(name="lightgbm", matches=lambda v: _module_is(v, "lightgbm", "Booster"),
                 save=_booster_save, load=_booster_load, extension="txt"),
):
    register_materializer(_m)


def register_json_value(cls: type, name: str, *, to_dict: Callable[[Any], Any] | None = None,
                        from_dict: Callable[[Any], Any] | None = None,
                        refusal: Callable[[Any], Exception | None] | None = None) -> None:
    """Store values of ``cls`` as JSON through ``to_dict``/``from_dict`` (default: methods)."""
    dump = to_dict or (lambda v: v.to_dict())
    build = from_dict or cls.from_dict  # type: ignore[attr-defined]
    register_materializer(Materializer(
        name=name,
        matches=lambda v: isinstance(v, cls),
        save=lambda s, k, v: s.put_bytes(
            k, json.dumps(dump(v), sort_keys=True, allow_nan=False).encode(), media_type=JSON),
        load=lambda s, k: build(json.loads(s.get_bytes(k))),
        extension="json",
        refusal=refusal,
    ))
