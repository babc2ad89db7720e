"""Requests by entity key: the server reads the model's features from the online store.

A model registered with the feature references its training set was built from
(``register_model(features=...)``, read back by ``app.metadata.model_features``)
can be asked by entity: ``POST /predict`` with ``{"entities": [{"customer_id": 42},
...]}``.  The server reads those features with the training set's names
(``full_names=False``) through ``FeatureStore.get_online_rows``, so training and
serving read one definition.  Any other field of an entity object is a request-time
feature, passed as sent; the model's signature then checks every column, as for
``records``.  A view whose definition changed since the model was trained is not read
(the values online would no longer be the ones the model learned from).
"""

from __future__ import annotations

import json
from typing import Any

from attrs import field, frozen

from conveyor.errors import ConveyorError, NotFoundError, ValidationError
from conveyor.plugins.http.codecs import BadRequest, invalid


@frozen(kw_only=True)
class EntityFeatures:
    """What an entity request of one model version reads from the online store.

    Attributes:
        refs: the feature references (``"view:feature"``) the model trained on.
        keys: the join keys of those views and their types, in order: what each
            entity object holds.
        fetched: the feature names read (the training set's column names).
        refused: why entity requests are refused for this version, or ``""``.
    """

    refs: tuple[str, ...] = ()
    keys: dict[str, str] = field(factory=dict)
    fetched: frozenset[str] = frozenset()
    refused: str = ""

    def describe(self) -> dict[str, Any]:
        """What ``GET /model`` tells a client about entity requests."""
        if self.refused:
            return {"available": False, "reason": self.refused}
        return {"available": True, "keys": list(self.keys), "features": list(self.refs)}


def entity_features(app: Any, name: str, version: int) -> EntityFeatures | None:
    """The online features version ``version`` of ``name`` reads by entity key;
    ``None`` for a model registered without feature references."""
    try:
        uses = app.metadata.model_features(name, version)
    except NotFoundError:  # registered without a run's lineage
        return None
    if not uses:
        return None
    try:
        views = []
        for use in uses:
            view = app.features.get_view(use.view)
            current = app.metadata.get_definition("feature_view", use.view).version
            if current != use.version:
                return EntityFeatures(
                    refused=f"feature view {use.view!r} changed since v{version} was trained "
                    f"(definition v{use.version} then, v{current} now)"
                )
            views.append((view, use))
    except ConveyorError as exc:
        return EntityFeatures(refused=f"its feature views cannot be read: {exc.message}")
    return EntityFeatures(
        refs=tuple(ref for _view, use in views for ref in use.refs),
        keys={k: t for view, _use in views for k, t in view.key_types.items()},
        fetched=frozenset(f for _view, use in views for f in use.features),
    )


def entity_columns(
    app: Any, lookup: EntityFeatures | None, entities: Any, names: tuple[str, ...], max_rows: int
) -> tuple[dict[str, list[Any]], list[str]]:
    """``(columns of the signature's features, one entity key per row)`` for the
    entity objects of a request: features read online, request-time fields as sent."""
    if lookup is None or lookup.refused:
        raise invalid(
            "this model version cannot be asked by entity: "
            + (lookup.refused if lookup else "it was registered without feature references"),
            field="entities",
            hint='send the features themselves: {"records": [...]}'
            + ("" if lookup else ", or register the model with register_model(features=...)"),
        )
    if not isinstance(entities, list) or not entities:
        raise invalid(
            "entities must be a non-empty list of objects",
            field="entities",
            hint="e.g. " + json.dumps({"entities": [dict.fromkeys(lookup.keys, 1)]}),
        )
    if len(entities) > max_rows:
        raise invalid(
            f"{len(entities)} entities, more than the {max_rows} rows a request may hold",
            field="entities",
            hint="split the request, or raise max_rows in [server]",
        )
    for i, entity in enumerate(entities):
        if not isinstance(entity, dict):
            raise invalid(
                f"entities[{i}] must be an object",
                field=f"entities[{i}]",
                hint="e.g. " + json.dumps(dict.fromkeys(lookup.keys, 1)),
            )
        missing = [k for k in lookup.keys if entity.get(k) is None]
        if missing:
            raise invalid(
                f"entities[{i}] lacks the join key(s) {', '.join(map(repr, missing))}",
                field=f"entities[{i}].{missing[0]}",
                hint=f"each entity names {', '.join(lookup.keys)}",
            )
        for key, dtype in lookup.keys.items():
            if not _is_a(entity[key], dtype):
                raise invalid(
                    f"entities[{i}].{key} is {entity[key]!r}, not a value of the key's "
                    f"type {dtype}",
                    field=f"entities[{i}].{key}",
                    hint=f"send {key} as a JSON "
                    + ("number" if dtype.startswith(("int", "uint", "float")) else "string"),
                )
        clash = lookup.fetched.intersection(entity)
        if clash:
            field = sorted(clash)[0]
            raise invalid(
                f"entities[{i}] sends {field!r}, a feature the server reads from the online store",
                field=f"entities[{i}].{field}",
                hint="send only the join keys and request-time features",
            )
    keys = [{k: entity[k] for k in lookup.keys} for entity in entities]
    try:
        rows = app.features.get_online_rows(list(lookup.refs), keys)
    except ValidationError as exc:
        raise invalid(exc.message, field="entities", hint=exc.hint or "") from None
    except ConveyorError as exc:
        raise BadRequest(
            503,
            "feature_store_unavailable",
            f"the online store did not answer: {exc.message}",
            hint=exc.hint or "retry later",
            headers=[(b"retry-after", b"1")],
        ) from None
    for i, row in enumerate(rows):
        if all(row.get(f) is None for f in lookup.fetched):
            raise BadRequest(
                404,
                "unknown_entity",
                f"no online feature values for entities[{i}] "
                f"({', '.join(f'{k}={v!r}' for k, v in keys[i].items())}): the key is "
                "unknown, or its values are older than the views' TTL",
                fields=[f"entities[{i}]"],
                hint="check the key, or materialize the views: conveyor features materialize",
            )
    columns: dict[str, list[Any]] = {}
    for name in names:
        if name in lookup.fetched:
            columns[name] = [row.get(name) for row in rows]
        elif any(name in entity for entity in entities):
            columns[name] = [entity.get(name) for entity in entities]
    return columns, [entity_key(key) for key in keys]


def entity_key(key: dict[str, Any]) -> str:
    """The prediction log's ``entity_key`` of a key: the value of a single join key
    as text (what a label view joins on), or the keys as a sorted JSON object."""
    if len(key) == 1:
        return str(next(iter(key.values())))
    return json.dumps(key, sort_keys=True, default=str)


def _is_a(value: Any, dtype: str) -> bool:
    """Whether a JSON value is a key of ``dtype`` (a store may otherwise coerce it or
    answer "unknown")."""
    if isinstance(value, bool):
        return dtype == "bool"
    if dtype.startswith(("int", "uint")):
        return isinstance(value, int)
    if dtype.startswith("float"):
        return isinstance(value, int | float)
    if dtype in ("string", "category"):
        return isinstance(value, str)
    return True
