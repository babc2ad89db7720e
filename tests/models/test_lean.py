"""LightGBM imported for prediction only: its optional integrations stay unloaded, and
importable afterwards."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_lightgbm_imports_without_its_integrations_and_they_still_import_later():
    script = textwrap.dedent(
        """
        import importlib.util, json, sys
        from conveyor.models.lean import NOT_NEEDED, import_lightgbm_for_prediction

        installed = [n for n in NOT_NEEDED if importlib.util.find_spec(n) is not None]
        import_lightgbm_for_prediction()
        import lightgbm, numpy as np
        loaded = [n for n in NOT_NEEDED if n in sys.modules]
        x = np.random.default_rng(0).normal(size=(200, 3))
        booster = lightgbm.train({"verbose": -1}, lightgbm.Dataset(x, x[:, 0]), 5)
        later = []
        for name in installed:
            __import__(name)
            later.append(name)
        print(json.dumps({"loaded": loaded, "later": later, "installed": installed,
                          "rows": len(booster.predict(x))}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    import json

    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["loaded"] == []
    assert report["later"] == report["installed"]
    assert report["rows"] == 200
