"""Bundled plugin ``materializers``: how step outputs of the common types are stored.

Tables as Parquet, LightGBM boosters as model text, bytes as they are, JSON-able
values as JSON, and the training pipeline's values (:mod:`conveyor.training`):
a ``TrainedModel`` as its metadata record (signature, categories, parameters, the
text's hash) with the LightGBM text beside it, profiles, evaluations and
gate verdicts as JSON.  Nothing is pickled.  Registering imports nothing heavy:
types are named as ``"module:Class"`` strings and the readers import on use.

Disable it (``CONVEYOR_DISABLE_PLUGINS=materializers``) only to replace every one
of them with another plugin's.
"""

from __future__ import annotations

import json
from typing import Any

from conveyor import hookimpl


def _is_json(value: Any) -> bool:
    if value is None or isinstance(value, str | int | float | bool):
        return True
    if isinstance(value, list | tuple):
        return all(_is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False


def _json_save(store: Any, key: str, value: Any) -> Any:
    from conveyor.materializers import JSON

    data = json.dumps(value, sort_keys=True, allow_nan=False, default=str).encode()
    return store.put_bytes(key, data, media_type=JSON)


def _json_load(store: Any, key: str) -> Any:
    return json.loads(store.get_bytes(key))


def _bytes_save(store: Any, key: str, value: bytes) -> Any:
    from conveyor.artifacts import BINARY

    return store.put_bytes(key, value, media_type=BINARY)


def _table_save(store: Any, key: str, value: Any) -> Any:
    return store.put_table(key, value)


def _arrow_load(store: Any, key: str) -> Any:
    return store.get_table(key)


def _polars_load(store: Any, key: str) -> Any:
    import polars as pl

    return pl.from_arrow(store.get_table(key))


def _booster_save(store: Any, key: str, value: Any) -> Any:
    return store.put_bytes(key, value.model_to_string().encode(), media_type="text/plain")


def _booster_load(store: Any, key: str) -> Any:
    import lightgbm as lgb

    return lgb.Booster(model_str=store.get_bytes(key).decode())


def _model_save(store: Any, key: str, model: Any) -> Any:
    # The record (what the run stores and the cache compares) is the model's metadata:
    # the signature with its category maps, parameters, best iteration and the text's
    # SHA-256.  Its own hash therefore covers everything read back with the model, so
    # two models with one text but different signatures never share an identity.  The
    # LightGBM text is written first, beside it (never pickled).
    from conveyor.materializers import JSON

    store.put_bytes(_text_key(key), model.model_text.encode(), media_type="text/plain")
    return store.put_bytes(key, model.metadata_json().encode(), media_type=JSON)


def _model_load(store: Any, key: str) -> Any:
    from conveyor.models.model import TrainedModel

    # from_parts checks the text against the SHA-256 the record names
    return TrainedModel.from_parts(
        store.get_bytes(_text_key(key)).decode(), store.get_bytes(key).decode()
    )


def _text_key(key: str) -> str:
    return f"{key.removesuffix('.json')}.model.txt"


@hookimpl
def register_materializers(register: Any) -> None:
    """Tables, LightGBM, bytes, JSON and the training pipeline's values."""
    from conveyor.materializers import Materializer, json_value

    register(
        Materializer(
            name="json", matches=_is_json, save=_json_save, load=_json_load, extension="json"
        )
    )
    register(
        Materializer(
            name="bytes",
            matches="builtins:bytes",
            save=_bytes_save,
            load=lambda s, k: s.get_bytes(k),
            extension="bin",
        )
    )
    register(
        Materializer(
            name="arrow",
            matches="pyarrow:Table",
            save=_table_save,
            load=_arrow_load,
            extension="parquet",
        )
    )
    register(
        Materializer(
            name="polars",
            matches="polars:DataFrame",
            save=_table_save,
            load=_polars_load,
            extension="parquet",
        )
    )
    register(
        Materializer(
            name="lightgbm",
            matches="lightgbm:Booster",
            save=_booster_save,
            load=_booster_load,
            extension="txt",
        )
    )
    register(
        Materializer(
            name="conveyor.trained_model",
            matches="conveyor.models.model:TrainedModel",
            save=_model_save,
            load=_model_load,
            extension="json",
        )
    )
    register(json_value("conveyor.ml.profile:DataProfile", "conveyor.data_profile"))
    register(json_value("conveyor.ml.evaluate:Evaluation", "conveyor.evaluation"))
    register(json_value("conveyor.ml.gate:GateVerdict", "conveyor.gate_verdict"))
