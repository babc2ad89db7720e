"""Importing LightGBM for prediction only, without the integrations it loads eagerly.

``import lightgbm`` imports scikit-learn, pandas, Dask (and more: :data:`NOT_NEEDED`)
when they are installed, for its estimator, DataFrame, Arrow and distributed APIs:
scikit-learn alone was 1.6 of its 1.9 s on this project's machine, paid again by every
serving process at start-up.  A process that only loads
boosters and predicts (the model server, its workers) imports it with those packages
hidden for the length of the import: LightGBM then records them as not installed.
Afterwards they import normally; only LightGBM's own integrations with them
(``lightgbm.sklearn``, ``lightgbm.dask``, Datasets from Arrow) stay unavailable in that
process, which never trains.
"""

from __future__ import annotations

import sys

#: packages LightGBM imports if installed, which a predicting process does not need
NOT_NEEDED = (
    "sklearn",
    "pandas",
    "dask",
    "distributed",
    "matplotlib",
    "graphviz",
    "datatable",
    "pyarrow",
    "polars",
)


def import_lightgbm_for_prediction() -> None:
    """Import LightGBM without :data:`NOT_NEEDED` (a no-op once it is imported)."""
    if "lightgbm" in sys.modules:
        return
    hidden = [name for name in NOT_NEEDED if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # import raises ImportError
    try:
        import lightgbm  # noqa: F401
    finally:
        for name in hidden:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]
