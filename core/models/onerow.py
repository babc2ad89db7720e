"""One-row prediction through LightGBM's own single-row fast path.

``Booster.predict`` spends most of a one-row call in its Python wrapper and in
re-reading its parameters (argument checks, a predictor object per call, the
``num_threads`` setting parsed each time): tens of microseconds where the trees take
a few.  LightGBM's C API has a path made for this case,
``LGBM_BoosterPredictForMatSingleRowFast``: the settings are prepared once
(``...FastInit``) and each call passes one row.  :class:`OneRowPredictor` wraps it:
the same numbers as ``booster.predict(x, num_threads=1)`` (the same iterations: the
best one when training stopped early), computed by the library's own code.
"""

from __future__ import annotations

import ctypes
import threading
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import lightgbm as lgb
    import numpy as np

_PREDICT_NORMAL = 0  # C_API_PREDICT_NORMAL: probabilities / values, as predict()
_FLOAT64 = 1  # C_API_DTYPE_FLOAT64


class OneRowPredictor:
    """Predicts one float64 row of a booster at a time (thread-safe: one call at once).

    Attributes:
        outputs: values per row (1, or the number of classes).
    """

    def __init__(self, booster: lgb.Booster) -> None:
        import numpy as np
        from lightgbm.basic import _LIB, _safe_call

        self._booster = booster  # the handle lives as long as this predictor
        self._call = _LIB.LGBM_BoosterPredictForMatSingleRowFast
        self._check = _safe_call
        self._lock = threading.Lock()
        self.outputs = booster.num_model_per_iteration()  # classes, or 1
        self._width = booster.num_feature()
        self._out = np.empty(self.outputs, dtype=np.float64)
        self._out_ptr = self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        self._out_len = ctypes.byref(ctypes.c_int64(0))
        self._in = np.empty(self._width, dtype=np.float64)  # the row is copied in here
        self._in_ptr = self._in.ctypes.data_as(ctypes.c_void_p)
        config = ctypes.c_void_p()
        _safe_call(
            _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,
                ctypes.c_int(_PREDICT_NORMAL),
                ctypes.c_int(0),  # start iteration
                ctypes.c_int(booster.best_iteration),  # as predict(num_iteration=None); 0: all
                ctypes.c_int(_FLOAT64),
                ctypes.c_int32(self._width),
                b"num_threads=1",
                ctypes.byref(config),
            )
        )
        self._config = config
        weakref.finalize(self, _free, config)

    def predict(self, row: np.ndarray) -> np.ndarray:
        """``booster.predict(row, num_threads=1)`` for one row of float64 values:
        shape ``(1,)``, or ``(1, classes)`` for a multiclass model."""
        if row.size != self._width:
            raise ValueError(f"one row of {self._width} values expected, got shape {row.shape}")
        with self._lock:  # the buffers are this predictor's: one call at a time
            # copied into a buffer whose pointer was made once: making one costs more
            # than the prediction
            self._in[:] = row.reshape(-1)
            self._check(self._call(self._config, self._in_ptr, self._out_len, self._out_ptr))
            result = self._out.copy()
        return result if self.outputs == 1 else result.reshape(1, -1)


def _free(config: Any) -> None:
    from lightgbm.basic import _LIB

    _LIB.LGBM_FastConfigFree(config)
