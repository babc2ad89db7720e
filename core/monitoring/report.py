"""The monitoring report: one self-contained HTML file with inline SVG plots.

Nothing is fetched when the file is opened (no script, font or stylesheet from
elsewhere): the plots are SVG written here.  Drift shows PSI per feature and,
per feature, the reference and current distributions over the PSI bins;
performance shows the realized and estimated metric per window with their
intervals against the validation metric.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conveyor.monitoring.drift import DriftReport, FeatureDrift
    from conveyor.monitoring.performance import PerformanceReport
    from conveyor.monitoring.result import MonitoringResult

REFERENCE_COLOUR, CURRENT_COLOUR, ALERT_COLOUR = "#7a8ca3", "#e07b39", "#c0392b"
ESTIMATE_COLOUR = "#3b7dd8"
_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;
color:#1f2933;max-width:1100px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#52606d;font-size:13px}.verdict{font-weight:600;padding:2px 8px;border-radius:4px}
.bad{background:#fde2e1;color:#8a1c1c}.ok{background:#e3f9e5;color:#1f6f3a}
table{border-collapse:collapse;font-size:13px}
td,th{padding:3px 10px;border-bottom:1px solid #e4e7eb;text-align:right}
th:first-child,td:first-child{text-align:left}
.grid{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #e4e7eb;border-radius:6px;
padding:8px}svg text{font-size:11px;fill:#3e4c59}
"""


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}g}" if abs(value) < 1e-3 and value else f"{value:.{digits}f}"


def psi_chart(features: Sequence[FeatureDrift], threshold: float) -> str:
    """Horizontal bars: PSI per feature, drifted features in the alert colour."""
    rows = [f for f in features if f.psi is not None and math.isfinite(f.psi)]
    width, label_w, bar_h = 560, 150, 18
    height = 30 + bar_h * max(len(rows), 1)
    top = max([threshold * 1.2] + [f.psi for f in rows])
    scale = (width - label_w - 60) / top
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot psi" width="{width}" '
        f'height="{height}" role="img" aria-label="PSI per feature">'
    ]
    for i, f in enumerate(rows):
        y = 10 + i * bar_h
        colour = ALERT_COLOUR if f.drifted else CURRENT_COLOUR
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">'
            f"{escape(f.name[:22])}</text>"
            f'<rect x="{label_w}" y="{y + 2}" width="{max(f.psi * scale, 1):.1f}" '
            f'height="{bar_h - 5}" fill="{colour}"><title>{escape(f.name)}: PSI '
            f"{_fmt(f.psi)}</title></rect>"
            f'<text x="{label_w + f.psi * scale + 4:.1f}" y="{y + 12}">'
            f"{_fmt(f.psi)}</text>"
        )
    x = label_w + threshold * scale
    parts.append(
        f'<line x1="{x:.1f}" x2="{x:.1f}" y1="4" y2="{height - 16}" '
        f'stroke="{ALERT_COLOUR}" stroke-dasharray="4 3"/>'
        f'<text x="{x:.1f}" y="{height - 4}" text-anchor="middle">'
        f"PSI {threshold:g}</text></svg>"
    )
    return "".join(parts)


def distribution_chart(feature: FeatureDrift) -> str:
    """Grouped bars: the reference's and the current data's share in each bin."""
    bins = len(feature.bins)
    width, height, left, bottom = 320, 170, 34, 40
    group = (width - left - 8) / max(bins, 1)
    top = max([*feature.reference_shares, *feature.current_shares, 0.01])
    scale = (height - bottom - 10) / top
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot dist" width="{width}" '
        f'height="{height}" role="img" aria-label="{escape(feature.name)} distributions">',
        f'<line x1="{left}" x2="{width - 4}" y1="{height - bottom}" y2="{height - bottom}" '
        'stroke="#9aa5b1"/>',
        f'<text x="{left - 4}" y="14" text-anchor="end">{top:.0%}</text>',
    ]
    for i, (label, ref, cur) in enumerate(
        zip(feature.bins, feature.reference_shares, feature.current_shares, strict=True)
    ):
        x = left + i * group
        bar = max(group / 2 - 2, 1)
        for j, (share, colour, who) in enumerate(
            ((ref, REFERENCE_COLOUR, "reference"), (cur, CURRENT_COLOUR, "current"))
        ):
            h = share * scale
            parts.append(
                f'<rect x="{x + 1 + j * bar:.1f}" y="{height - bottom - h:.1f}" '
                f'width="{bar:.1f}" height="{h:.1f}" fill="{colour}"><title>'
                f"{escape(label)} {who}: {share:.1%}</title></rect>"
            )
        parts.append(
            f'<text transform="translate({x + group / 2:.1f},{height - bottom + 10})'
            f' rotate(35)" font-size="9">{escape(label[:14])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def metric_chart(report: PerformanceReport) -> str:
    """Realized and estimated metric per window, each with its interval band."""
    windows = report.windows
    width, height, left, bottom = 720, 260, 50, 46
    values = [
        v
        for w in windows
        for v in (w.low, w.high, w.estimated_low, w.estimated_high)
        if v is not None and math.isfinite(v)
    ]
    if report.reference is not None:
        values.append(report.reference)
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    pad = (high - low) * 0.1 or 0.05
    low, high = low - pad, high + pad
    step = (width - left - 20) / max(len(windows) - 1, 1)

    def y(v: float) -> float:
        return 10 + (high - v) / (high - low) * (height - bottom - 10)

    def x(i: int) -> float:
        return left + i * step

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot metric" width="{width}" '
        f'height="{height}" role="img" aria-label="{escape(report.metric)} over time">',
        f'<line x1="{left}" x2="{left}" y1="10" y2="{height - bottom}" stroke="#9aa5b1"/>',
    ]
    for v in (low + pad, (low + high) / 2, high - pad):
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.3f}</text>')
    for prefix, colour in (("", CURRENT_COLOUR), ("estimated_", ESTIMATE_COLOUR)):
        drawn = [
            (
                i,
                getattr(w, prefix + "low") if prefix else w.low,
                getattr(w, f"{prefix}high") if prefix else w.high,
                w.estimated if prefix else w.value,
            )
            for i, w in enumerate(windows)
        ]
        points: list[tuple[int, float, float, float]] = [
            (i, lo, hi, v)
            for i, lo, hi, v in drawn
            if lo is not None
            and hi is not None
            and v is not None
            and all(map(math.isfinite, (lo, hi, v)))
        ]
        if not points:
            continue
        band = [f"{x(i):.1f},{y(hi):.1f}" for i, _, hi, _ in points] + [
            f"{x(i):.1f},{y(lo):.1f}" for i, lo, _, _ in reversed(points)
        ]
        parts.append(f'<polygon points="{" ".join(band)}" fill="{colour}" opacity="0.18"/>')
        line = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, _, _, v in points)
        parts.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for i, _, _, v in points:
            parts.append(
                f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}">'
                f"<title>{prefix}{escape(report.metric)} {v:.4f}</title></circle>"
            )
    if report.reference is not None:
        ry = y(report.reference)
        parts.append(
            f'<line x1="{left}" x2="{width - 10}" y1="{ry:.1f}" y2="{ry:.1f}" '
            'stroke="#1f2933" stroke-dasharray="5 4"/>'
            f'<text x="{width - 12}" y="{ry - 4:.1f}" text-anchor="end">validation '
            f"{report.reference:.3f}</text>"
        )
    every = max(1, len(windows) // 8)
    for i, w in enumerate(windows):
        if i % every == 0:
            parts.append(
                f'<text x="{x(i):.1f}" y="{height - bottom + 16}" '
                f'text-anchor="middle">{w.start:%m-%d}</text>'
            )
    parts.append(
        f'<text x="{left + 4}" y="{height - 8}"><tspan fill="{CURRENT_COLOUR}">'
        f'&#9632; realized</tspan>  <tspan fill="{ESTIMATE_COLOUR}">&#9632; estimated '
        "(CBPE)</tspan>  bands: 95 % intervals</text></svg>"
    )
    return "".join(parts)


def _drift_section(report: DriftReport) -> str:
    t = report.thresholds
    rows = "".join(
        f"<tr><td>{escape(f.name)}</td><td>{f.kind}</td><td>{f.effect} {_fmt(f.effect_size)}"
        f"</td><td>{_fmt(f.psi)}</td><td>{_fmt(f.p_value, 2)}</td>"
        f"<td>{f.missing_reference:.1%} &rarr; {f.missing_current:.1%}</td>"
        f"<td>{', '.join(f.breached) or '-'}</td></tr>"
        for f in report.features
    )
    badge = ' <span class="verdict bad">drift</span>'
    cards = "".join(
        f'<div class="card"><b>{escape(f.name)}</b>{badge if f.drifted else ""}'
        f"<br>{distribution_chart(f)}</div>"
        for f in report.features
    )
    return (
        f"<h2>PSI per feature</h2>{psi_chart(report.features, t.psi)}"
        f'<p class="meta">A feature drifts when its effect (KS &ge; {t.ks:g} numeric, '
        f"Jensen-Shannon &ge; {t.js:g} categorical, or PSI &ge; {t.psi:g}) is significant "
        f"at {t.alpha:g}, or its missing rate moves by {t.missing:.0%} or more, or "
        f"{t.new_categories:.0%} of rows fall in new categories.</p>"
        "<h2>Features</h2><table><tr><th>feature</th><th>kind</th><th>effect</th>"
        f"<th>PSI</th><th>p</th><th>missing</th><th>breached</th></tr>{rows}</table>"
        '<h2>Reference <span style="color:' + REFERENCE_COLOUR + '">&#9632;</span> vs '
        'current <span style="color:' + CURRENT_COLOUR + '">&#9632;</span></h2>'
        f'<div class="grid">{cards}</div>'
    )


def _performance_section(report: PerformanceReport) -> str:
    rows = "".join(
        f"<tr><td>{w.start:%Y-%m-%d %H:%M}</td><td>{w.rows}</td><td>{w.labelled}</td>"
        f"<td>{_fmt(w.value)} [{_fmt(w.low)}, {_fmt(w.high)}]</td>"
        f"<td>{_fmt(w.estimated)} [{_fmt(w.estimated_low)}, {_fmt(w.estimated_high)}]</td>"
        f"<td>{'decayed' if w.decayed or w.estimated_decayed else '-'}</td></tr>"
        for w in report.windows
    )
    calibration = (
        ""
        if report.calibration_error is None
        else f" Calibration error on the holdout: {report.calibration_error:.3f}."
    )
    return (
        f"<h2>{escape(report.metric)} over time</h2>{metric_chart(report)}"
        f'<p class="meta">Validation {escape(report.metric)}: '
        f"{_fmt(report.reference)}; tolerance {report.thresholds.tolerance:g}.{calibration}"
        "</p><table><tr><th>window</th><th>rows</th><th>labelled</th><th>realized [95 %]"
        f"</th><th>estimated [95 %]</th><th></th></tr>{rows}</table>"
    )


def render_html(result: MonitoringResult, report: DriftReport | PerformanceReport) -> str:
    """The whole report page for one stored result and the report behind it."""
    from conveyor.monitoring.drift import DriftReport

    bad = bool(result.breached)
    verdict = {"drift": "drift", "skew": "skew", "performance": "decay"}[result.kind]
    body = (
        _drift_section(report) if isinstance(report, DriftReport) else _performance_section(report)
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(result.kind)}: {escape(result.model)} v{result.version}</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>{escape(result.kind.capitalize())} of {escape(result.model)} v{result.version} "
        f'<span class="verdict {"bad" if bad else "ok"}">'
        f"{verdict + ' found' if bad else 'no ' + verdict}</span></h1>"
        f'<p class="meta">Window {result.window_start:%Y-%m-%d %H:%M} to '
        f"{result.window_end:%Y-%m-%d %H:%M} UTC &middot; {result.rows} rows &middot; result "
        f"<code>{escape(result.id)}</code></p>{body}</body></html>"
    )
