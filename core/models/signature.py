"""The model signature: what a model reads, stored with it and checked on every predict.

One :class:`Signature` is shared by training (it is built from the training
table), the registry (stored with each version) and prediction (input is
validated against it).  Types are spelled in the one vocabulary of
:mod:`conveyor.models.dtypes`.  This module imports nothing heavier than attrs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from attrs import field, frozen

from conveyor.errors import ValidationError
from conveyor.models.dtypes import STRINGS, normalize

#: Format of :meth:`Signature.to_dict`; 1 was the trainer's own ``ModelSignature``.
SIGNATURE_VERSION = 2
NUMERIC_KIND, CATEGORICAL_KIND = "numeric", "categorical"


def _tuple_or_none(value: Sequence[Any] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(str(v) for v in value)


@frozen(kw_only=True)
class FeatureSpec:
    """One input of a model.

    Attributes:
        name: the column name.
        dtype: its type, one of :data:`conveyor.models.dtypes.DTYPES` (a stored
            polars repr such as ``"Float64"`` is read as its vocabulary name).
        nullable: whether a missing value (null, or NaN in a float column) is allowed.
        categories: for a categorical feature, the category map's keys in code
            order (code ``i`` is ``categories[i]``; sorted at training).  ``None``
            for a numeric feature.  A categorical input is matched by its string
            value; an unseen category is a missing value.
    """

    name: str
    dtype: str = field(converter=lambda v: normalize(v, what="a feature"))
    nullable: bool = True
    categories: tuple[str, ...] | None = field(default=None, converter=_tuple_or_none)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValidationError(
                f"a feature name must be a non-empty string, not {self.name!r}",
                hint="name every feature",
            )
        if self.categories is None and self.dtype == "category":
            raise ValidationError(
                f"feature {self.name!r} has type category but no categories",
                hint="give its categories in code order",
            )
        if self.categories is not None and len(set(self.categories)) != len(self.categories):
            raise ValidationError(
                f"feature {self.name!r} lists a category twice",
                hint="list each category once, in code order",
            )

    @property
    def kind(self) -> str:
        """``categorical`` when the feature has a category map, else ``numeric``."""
        return NUMERIC_KIND if self.categories is None else CATEGORICAL_KIND

    @property
    def is_string(self) -> bool:
        """Whether the training column held strings (``string`` or ``category``)."""
        return self.dtype in STRINGS

    def category_map(self) -> dict[str, int]:
        """Category string -> integer code (empty for numeric features)."""
        return {c: i for i, c in enumerate(self.categories or ())}

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "nullable": self.nullable,
            "categories": None if self.categories is None else list(self.categories),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        """Rebuild from :meth:`to_dict` output, or from a stored legacy form: the
        trainer's old spec with ``kind`` and a polars dtype, or the registry's old
        spec with ``dtype="category"``."""
        data = dict(data)
        kind = data.pop("kind", None)
        if kind == CATEGORICAL_KIND and data.get("categories") is None:
            data["categories"] = ()
        elif kind == NUMERIC_KIND:
            data["categories"] = None
        return cls(**data)


def _feature_specs(values: Any) -> tuple[FeatureSpec, ...]:
    return tuple(v if isinstance(v, FeatureSpec) else FeatureSpec.from_dict(v) for v in values)


@frozen(kw_only=True)
class Signature:
    """What a model reads: its features in the order the booster expects them.

    ``features`` also accepts mappings with :class:`FeatureSpec`'s fields.

    Attributes:
        features: the inputs, in booster order.
        label: the label column it was trained on (``""``: not recorded).
        objective: ``binary`` or ``regression`` (``""``: read from the model text).
        version: format version of :meth:`to_dict`.
    """

    features: tuple[FeatureSpec, ...] = field(default=(), converter=_feature_specs)
    label: str = ""
    objective: str = ""
    version: int = SIGNATURE_VERSION

    def __attrs_post_init__(self) -> None:
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise ValidationError(
                f"the signature lists feature(s) {twice} twice", hint="list each feature once"
            )

    @property
    def names(self) -> tuple[str, ...]:
        """Feature names in booster order."""
        return tuple(f.name for f in self.features)

    @property
    def category_maps(self) -> dict[str, dict[str, int]]:
        """Feature -> category map, for the categorical features."""
        return {f.name: f.category_map() for f in self.features if f.categories is not None}

    def feature(self, name: str) -> FeatureSpec:
        """The feature called ``name`` (NotFoundError lists the features)."""
        from conveyor.errors import NotFoundError

        for spec in self.features:
            if spec.name == name:
                return spec
        raise NotFoundError(
            f"the signature has no feature {name!r}", hint=f"its features: {', '.join(self.names)}"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (what is stored beside a model and in the registry)."""
        return {
            "version": SIGNATURE_VERSION,
            "label": self.label,
            "objective": self.objective,
            "features": [f.to_dict() for f in self.features],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> Signature:
        """Rebuild from :meth:`to_dict` output or any stored legacy form (a bare list of
        feature dicts, version 1 with ``kind`` and polars dtypes such as ``"Float64"``).

        A malformed signature raises :class:`~conveyor.models.errors.ModelLoadError`.
        """
        from conveyor.models.errors import ModelLoadError

        try:
            if isinstance(data, Sequence) and not isinstance(data, str | bytes):
                data = {"features": data}
            version = data.get("version", SIGNATURE_VERSION)
            if version not in (1, SIGNATURE_VERSION):
                raise ValueError(f"unsupported signature version {version!r}")
            return cls(
                features=data["features"],
                label=data.get("label") or "",
                objective=data.get("objective") or "",
            )
        except (KeyError, TypeError, ValueError, AttributeError, ValidationError) as exc:
            reason = exc.message if isinstance(exc, ValidationError) else str(exc)
            raise ModelLoadError(
                f"not a valid model signature: {reason}",
                hint="signatures are written by Signature.to_dict()",
            ) from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Signature:
        from conveyor.models.errors import ModelLoadError

        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ModelLoadError(f"model signature is not valid JSON: {exc}") from None
        return cls.from_dict(data)
