"""The HTML report: self-contained, and its plots render in headless Chromium.

CI installs Debian's ``chromium`` (``.ci/run``); locally the browser test skips only
when chromium is absent and ``CI`` is not set.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from conveyor.monitoring import MonitoringResult, compare
from conveyor.monitoring.estimate import fit_calibration
from conveyor.monitoring.performance import performance_windows
from conveyor.monitoring.report import render_html

from ._data import frame, probability, scores

START = datetime(2024, 3, 1, tzinfo=UTC)
# measured inside the page once it laid out: every plot's size and how many of its
# shapes have a non-empty box, and every error the page raised
PROBE = """<script>
window.addEventListener('load', () => {
  const plots = [...document.querySelectorAll('svg.plot')].map(svg => {
    const box = svg.getBoundingClientRect();
    const drawn = [...svg.querySelectorAll('rect,polyline,polygon,circle,line')]
      .filter(el => { const b = el.getBBox(); return b.width > 0 || b.height > 0; }).length;
    return {cls: svg.getAttribute('class'), width: box.width, height: box.height, drawn};
  });
  const out = document.createElement('pre');
  out.id = 'probe';
  out.textContent = JSON.stringify(plots);
  document.body.appendChild(out);
});
</script>"""


def _result(kind: str, breached: tuple[str, ...]) -> MonitoringResult:
    end = START + timedelta(days=7)
    return MonitoringResult(
        id=MonitoringResult.make_id("churn", 3, kind, START, end),
        model="churn",
        version=3,
        kind=kind,
        window_start=START,
        window_end=end,
        rows=10_000,
        breached=breached,
        created=datetime.now(UTC),
    )


def drift_page() -> tuple[str, int]:
    rng = np.random.default_rng(1)
    report = compare(frame(rng, 10_000), frame(rng, 10_000, shift=0.4, swap=True))
    return render_html(_result("drift", report.breached()), report), len(report.features)


def performance_page() -> str:
    rng = np.random.default_rng(2)
    holdout = frame(rng, 10_000)
    p = probability(holdout)
    calibration = fit_calibration((rng.random(p.size) < p).astype(int), scores(p))
    live = pl.concat(
        [
            frame(rng, 2000, shift=0.1 * day).with_columns(
                pl.lit(START + timedelta(days=day)).alias("time")
            )
            for day in range(7)
        ]
    )
    p = probability(live)
    live = live.with_columns(
        pl.Series("prediction", scores(p)),
        pl.Series("label", (rng.random(p.size) < p).astype(float)),
    )
    report = performance_windows(
        live,
        objective="binary",
        every=timedelta(days=1),
        start=START,
        end=START + timedelta(days=7),
        reference=0.8,
        calibration=calibration,
    )
    return render_html(_result("performance", report.breached()), report)


def test_the_report_is_one_self_contained_file() -> None:
    html, features = drift_page()
    without_namespace = html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert not re.search(r"https?:|src=|href=|url\(|@import|<script", without_namespace)
    assert html.count("<svg") == 1 + features
    assert "Drift of churn v3" in html and "drift found" in html
    perf = performance_page()
    assert perf.count("<svg") == 1 and "<polygon" in perf and "validation 0.800" in perf


@pytest.fixture
def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs it with apt-get")
        pytest.skip("chromium is not installed (apt-get install chromium); CI runs this test")
    return found


def _browse(chromium: str, page: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--enable-logging=stderr",
            "--v=0",
            f"--user-data-dir={page.parent / 'profile'}",
            *extra,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def _console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def _png_is_drawn(path: Path) -> tuple[int, int, int]:
    """(width, height, distinct byte values) of a PNG, from its header and pixel data."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    chunks, at = [], 8
    while at < len(data):
        size = struct.unpack(">I", data[at : at + 4])[0]
        if data[at + 4 : at + 8] == b"IDAT":
            chunks.append(data[at + 8 : at + 8 + size])
        at += 12 + size
    return width, height, len(set(zlib.decompress(b"".join(chunks))))


def test_the_plots_render_in_headless_chromium(chromium: str, tmp_path: Path) -> None:
    html, features = drift_page()
    pages = {"drift": (html, 1 + features), "performance": (performance_page(), 1)}
    for name, (page_html, plots) in pages.items():
        page = tmp_path / f"{name}.html"
        page.write_text(page_html, encoding="utf-8")
        # a copy with the probe measures what was laid out and drawn
        probe = tmp_path / f"{name}-probe.html"
        probe.write_text(page_html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
        dom = _browse(chromium, probe, "--dump-dom").stdout
        assert dom.count("<svg") == plots
        measured = json.loads(
            re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)[1].replace("&quot;", '"')
        )
        assert len(measured) == plots
        for plot in measured:
            assert plot["width"] > 100 and plot["height"] > 100, plot
            assert plot["drawn"] >= 3, plot
        # the report as it is: it loads without any console message or error, and draws
        shot = tmp_path / f"{name}.png"
        plain = _browse(
            chromium, page, f"--screenshot={shot}", "--window-size=1200,1600", "--hide-scrollbars"
        )
        assert _console_errors(plain.stderr) == [], plain.stderr
        width, height, values = _png_is_drawn(shot)
        assert (width, height) == (1200, 1600)
        assert values > 50  # text and coloured plots, not a blank page
        keep = os.environ.get("CONVEYOR_KEEP_SCREENSHOTS")
        if keep:
            shutil.copy(shot, Path(keep) / shot.name)


def test_console_errors_would_be_seen(chromium: str, tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><body><svg></svg>"
        "<script>console.error('plot failed')</script></body></html>"
    )
    assert _console_errors(_browse(chromium, page, "--dump-dom").stderr)
