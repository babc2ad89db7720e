"""The standard machine-learning components of a Conveyor training pipeline.

Each module is usable alone, on polars tables and LightGBM, with no store:

* :mod:`conveyor.ml.data` -- a seeded synthetic, time-stamped tabular data set with shifts;
* :mod:`conveyor.ml.profile` / :mod:`conveyor.ml.validation` -- schema + statistics
  profile of a reference batch, and the checks of a new batch against it;
* :mod:`conveyor.ml.split` -- leakage-free time-based split;
* :mod:`conveyor.ml.train` -- the LightGBM trainer (the model value, its signature and
  ``predict`` are in :mod:`conveyor.models`);
* :mod:`conveyor.ml.evaluate` -- overall and per-slice metrics;
* :mod:`conveyor.ml.gate` -- the model validator whose verdict is the "blessing".

This package imports nothing heavy itself; its modules import polars, numpy and
LightGBM, so import them only where they are used.
"""
