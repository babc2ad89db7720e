"""Feature definitions in code: :class:`Entity`, :class:`Feature` and :class:`FeatureView`.

They are frozen attrs values, so a definition is data: it can be compared,
hashed, turned into a JSON-able spec (``to_spec``) that the metadata store
versions, and rebuilt from one (``from_spec``).  This module imports nothing
heavy, so a project's ``features.py`` stays cheap to import.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from attrs import field, frozen

from conveyor.errors import ValidationError
from conveyor.models.dtypes import DTYPES as ALL_DTYPES

#: The value types a feature or entity key can have: the one vocabulary of
#: :mod:`conveyor.models.dtypes` but ``category`` (stores keep categories as strings:
#: declare them ``string``; a model trained on them records the same name).
DTYPES = tuple(d for d in ALL_DTYPES if d != "category")
#: Column names the stores add beside a view's own columns.
INGESTED_AT = "_ingested_at"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def _check_name(what: str, value: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValidationError(
            f"{what} {value!r} is not a valid name",
            hint="use letters, digits and underscores, starting with a letter or underscore "
            "(at most 63 characters)",
        )
    if value.startswith("__") or value == INGESTED_AT:
        raise ValidationError(
            f"{what} {value!r} is reserved for Conveyor's own columns",
            hint="choose a name that does not start with '__'",
        )
    return value


def _check_dtype(what: str, value: str) -> str:
    if value not in DTYPES:
        raise ValidationError(
            f"{what} has the unknown type {value!r}", hint=f"use one of: {', '.join(DTYPES)}"
        )
    return value


def _tuple_of_str(value: str | Iterable[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _to_ttl(value: timedelta | float | int | None) -> timedelta | None:
    if value is None or isinstance(value, timedelta):
        return value
    return timedelta(seconds=float(value))


@frozen(kw_only=True)
class Entity:
    """Something features describe (a customer, a product), identified by join keys.

    Attributes:
        name: the entity's name.
        join_keys: the key column(s) that identify one instance (``"customer_id"``).
        dtype: the type of each key: one type for all keys, or one per key.
        description: one line for people.
    """

    name: str
    join_keys: tuple[str, ...] = field(converter=_tuple_of_str)
    dtype: tuple[str, ...] = field(default=("int64",), converter=_tuple_of_str)
    description: str = ""

    def __attrs_post_init__(self) -> None:
        _check_name("entity name", self.name)
        if not self.join_keys:
            raise ValidationError(
                f"entity {self.name!r} has no join keys", hint='give it join_keys="<column>"'
            )
        for key in self.join_keys:
            _check_name(f"join key of entity {self.name!r}", key)
        if len(self.dtype) == 1 and len(self.join_keys) > 1:
            object.__setattr__(self, "dtype", self.dtype * len(self.join_keys))
        if len(self.dtype) != len(self.join_keys):
            raise ValidationError(
                f"entity {self.name!r} has {len(self.join_keys)} join keys but "
                f"{len(self.dtype)} types",
                hint="give one type, or one per join key",
            )
        for dtype in self.dtype:
            _check_dtype(f"a join key of entity {self.name!r}", dtype)

    @property
    def key_types(self) -> dict[str, str]:
        """Join key -> its type."""
        return dict(zip(self.join_keys, self.dtype, strict=True))

    def to_spec(self) -> dict[str, Any]:
        """A JSON-able description (what the metadata store versions)."""
        return {
            "name": self.name,
            "join_keys": list(self.join_keys),
            "dtype": list(self.dtype),
            "description": self.description,
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Entity:
        """Rebuild an entity from :meth:`to_spec`'s output."""
        return cls(
            name=spec["name"],
            join_keys=spec["join_keys"],
            dtype=spec["dtype"],
            description=spec.get("description", ""),
        )


@frozen(kw_only=True)
class Feature:
    """One feature of a view: a column name and its type.

    Attributes:
        name: the column name in the view's data.
        dtype: one of :data:`DTYPES`.
        description: one line for people.
    """

    name: str
    dtype: str = "float64"
    description: str = ""

    def __attrs_post_init__(self) -> None:
        _check_name("feature name", self.name)
        _check_dtype(f"feature {self.name!r}", self.dtype)

    def to_spec(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "description": self.description}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Feature:
        return cls(name=spec["name"], dtype=spec["dtype"], description=spec.get("description", ""))


def _features(value: Iterable[Feature | tuple[str, str] | str]) -> tuple[Feature, ...]:
    out = []
    for item in value:
        if isinstance(item, Feature):
            out.append(item)
        elif isinstance(item, str):
            out.append(Feature(name=item))
        else:
            name, dtype = item
            out.append(Feature(name=name, dtype=dtype))
    return tuple(out)


def _entities(value: Entity | Iterable[Entity]) -> tuple[Entity, ...]:
    return (value,) if isinstance(value, Entity) else tuple(value)


@frozen(kw_only=True)
class FeatureView:
    """A group of features of the same entities, with one event time per row.

    Point-in-time rule (see ``docs/features.md``): for an entity row at time ``t``
    the view contributes the row with the greatest event time ``e`` such that
    ``e <= t`` and ``t - e <= ttl``; among rows with the same event time, the
    greatest created time wins, then the row ingested last.

    A *static* view (``timestamp_field=None``: attributes that do not change with
    time, such as an aircraft's model per tail number) has no event time: every
    entity row gets the key's latest row (greatest created time, then ingested
    last), whatever its timestamp; TTL does not apply.

    Attributes:
        name: the view's name (``"customer_stats"``); features are addressed as
            ``"customer_stats:feature"``.
        entities: the entities whose join keys identify a row.
        features: the feature columns and their types.
        timestamp_field: the event-time column (when the value became true);
            ``None`` for a static view.
        created_timestamp_field: optional column saying when the row was produced
            (breaks ties between equal event times; the "as known at" cutoff).
        source: where the data comes from (free text or a URI, for people and lineage).
        ttl: how old a value may be and still count (``None``: no limit).
        description: one line for people.
        tags: free key/value labels.
    """

    name: str
    entities: tuple[Entity, ...] = field(converter=_entities)
    features: tuple[Feature, ...] = field(converter=_features)
    timestamp_field: str | None = "event_timestamp"
    created_timestamp_field: str | None = None
    source: str | None = None
    ttl: timedelta | None = field(default=None, converter=_to_ttl)
    description: str = ""
    tags: tuple[tuple[str, str], ...] = field(
        default=(), converter=lambda v: tuple(sorted(dict(v).items()))
    )

    def __attrs_post_init__(self) -> None:
        _check_name("feature view name", self.name)
        if not self.entities:
            raise ValidationError(
                f"feature view {self.name!r} has no entities", hint="give it entities=[Entity(...)]"
            )
        if not self.features:
            raise ValidationError(
                f"feature view {self.name!r} has no features",
                hint="give it features=[Feature(name=..., dtype=...)]",
            )
        if self.timestamp_field is not None:
            _check_name(f"timestamp field of view {self.name!r}", self.timestamp_field)
        elif self.ttl is not None:
            raise ValidationError(
                f"feature view {self.name!r} is static (no timestamp field) but has a TTL",
                hint="drop the ttl, or give the view a timestamp_field",
            )
        if self.created_timestamp_field is not None:
            _check_name(
                f"created timestamp field of view {self.name!r}", self.created_timestamp_field
            )
        if self.ttl is not None and self.ttl <= timedelta(0):
            raise ValidationError(
                f"feature view {self.name!r} has a TTL <= 0 ({self.ttl})",
                hint="use a positive TTL, or ttl=None for no limit",
            )
        seen: dict[str, str] = {}
        for role, name in self._roles():
            if name in seen:
                raise ValidationError(
                    f"feature view {self.name!r} uses the column {name!r} twice "
                    f"(as {seen[name]} and as {role})",
                    hint="give each column one role",
                )
            seen[name] = role

    def _roles(self) -> list[tuple[str, str]]:
        roles = [("join key", k) for k in self.join_keys]
        if self.timestamp_field is not None:
            roles.append(("timestamp field", self.timestamp_field))
        if self.created_timestamp_field:
            roles.append(("created timestamp field", self.created_timestamp_field))
        roles += [("feature", f.name) for f in self.features]
        return roles

    @property
    def join_keys(self) -> tuple[str, ...]:
        """Every entity's join keys, in order, without repeats."""
        keys: dict[str, None] = {}
        for entity in self.entities:
            keys.update(dict.fromkeys(entity.join_keys))
        return tuple(keys)

    @property
    def key_types(self) -> dict[str, str]:
        types: dict[str, str] = {}
        for entity in self.entities:
            for key, dtype in entity.key_types.items():
                if types.setdefault(key, dtype) != dtype:
                    raise ValidationError(
                        f"feature view {self.name!r}: join key {key!r} has two types "
                        f"({types[key]} and {dtype})",
                        hint="give the entities one key type",
                    )
        return types

    @property
    def static(self) -> bool:
        """Whether the view has no event time (attributes that do not vary with time)."""
        return self.timestamp_field is None

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def feature(self, name: str) -> Feature:
        """The feature called ``name``; NotFoundError lists the view's features."""
        from conveyor.errors import NotFoundError

        for feature in self.features:
            if feature.name == name:
                return feature
        raise NotFoundError(
            f"feature view {self.name!r} has no feature {name!r}",
            hint=f"its features: {', '.join(self.feature_names)}",
        )

    def schema(self) -> dict[str, str]:
        """Column -> type of the view's data (keys, timestamps, features)."""
        columns = dict(self.key_types)
        if self.timestamp_field is not None:
            columns[self.timestamp_field] = "datetime"
        if self.created_timestamp_field:
            columns[self.created_timestamp_field] = "datetime"
        columns.update({f.name: f.dtype for f in self.features})
        return columns

    def to_spec(self) -> dict[str, Any]:
        """A JSON-able description (what the metadata store versions)."""
        return {
            "name": self.name,
            "entities": [e.to_spec() for e in self.entities],
            "features": [f.to_spec() for f in self.features],
            "timestamp_field": self.timestamp_field,
            "created_timestamp_field": self.created_timestamp_field,
            "source": self.source,
            "ttl_seconds": None if self.ttl is None else self.ttl.total_seconds(),
            "description": self.description,
            "tags": dict(self.tags),
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> FeatureView:
        """Rebuild a view from :meth:`to_spec`'s output."""
        return cls(
            name=spec["name"],
            entities=[Entity.from_spec(e) for e in spec["entities"]],
            features=[Feature.from_spec(f) for f in spec["features"]],
            timestamp_field=spec.get("timestamp_field"),
            created_timestamp_field=spec.get("created_timestamp_field"),
            source=spec.get("source"),
            ttl=spec.get("ttl_seconds"),
            description=spec.get("description", ""),
            tags=spec.get("tags", {}),
        )


@frozen
class FeatureRef:
    """A reference ``"view:feature"`` (``"view:*"`` means every feature of the view)."""

    view: str
    feature: str

    @classmethod
    def parse(cls, ref: str) -> FeatureRef:
        """Parse ``"view:feature"``; a malformed reference is a ValidationError."""
        view, sep, feature = ref.partition(":") if isinstance(ref, str) else ("", "", "")
        if not sep or not view or not feature:
            raise ValidationError(
                f"{ref!r} is not a feature reference",
                hint='write "view:feature" (or "view:*" for all features)',
            )
        return cls(view, feature)

    def __str__(self) -> str:
        return f"{self.view}:{self.feature}"


def parse_refs(refs: Sequence[str | FeatureView]) -> dict[str, list[str] | None]:
    """Group references by view, in first-seen order; ``None`` means every feature."""
    grouped: dict[str, list[str] | None] = {}
    for ref in refs:
        if isinstance(ref, FeatureView):
            grouped[ref.name] = None
            continue
        parsed = FeatureRef.parse(ref)
        if parsed.feature == "*":
            grouped[parsed.view] = None
        else:
            current = grouped.setdefault(parsed.view, [])
            if current is not None and parsed.feature not in current:
                current.append(parsed.feature)
    return grouped


def collect_definitions(namespace: Mapping[str, Any]) -> list[Entity | FeatureView]:
    """The entities and feature views among a module's globals (entities first)."""
    values = list(namespace.values())
    found: list[Entity | FeatureView] = []
    for value in values:
        if isinstance(value, FeatureView):
            for entity in value.entities:
                if entity not in found:
                    found.append(entity)
    for value in values:
        if isinstance(value, Entity | FeatureView) and value not in found:
            found.append(value)
    return sorted(found, key=lambda d: (isinstance(d, FeatureView), d.name))
