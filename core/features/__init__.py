"""Feature definitions and the point-in-time engine.

``from conveyor.features import Entity, Feature, FeatureView`` in a project's
``features.py``; ``conveyor features apply`` registers them.  Importing this
package is cheap: the polars-based engine (:mod:`conveyor.features.pit`) and the
parity check (:mod:`conveyor.features.parity`) load only when used.
"""

from conveyor.features.definitions import (
    DTYPES,
    Entity,
    Feature,
    FeatureRef,
    FeatureView,
    collect_definitions,
    parse_refs,
)

__all__ = [
    "DTYPES",
    "Entity",
    "Feature",
    "FeatureRef",
    "FeatureView",
    "collect_definitions",
    "parse_refs",
]
