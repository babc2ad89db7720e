"""The monitoring result value the drift and performance triggers will read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from conveyor.monitoring import MonitoringResult

START = datetime(2024, 3, 1, tzinfo=UTC)


def test_ids_are_stable_per_model_version_kind_and_window():
    end = START + timedelta(days=1)
    one = MonitoringResult.make_id("churn", 3, "drift", START, end)
    assert one == MonitoringResult.make_id("churn", 3, "drift", START, end)
    assert one != MonitoringResult.make_id("churn", 3, "performance", START, end)
    assert one != MonitoringResult.make_id("churn", 4, "drift", START, end)
    result = MonitoringResult(
        id=one,
        model="churn",
        version=3,
        kind="drift",
        window_start=START,
        window_end=end,
        rows=10,
        scores={"psi.tenure": 0.3},
        breached=["psi.tenure"],
        created=end,
    )
    assert result.breached == ("psi.tenure",)


def test_unknown_kinds_are_refused():
    with pytest.raises(ValueError, match="drift, performance"):
        MonitoringResult(
            id="x",
            model="m",
            version=1,
            kind="vibes",
            window_start=START,
            window_end=START,
            created=START,
        )
