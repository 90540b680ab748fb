"""Bar charts drawn on the server as SVG (no script): routed by rule, model, hand and fallback, and held,
stacked per period, with the automation rate as a line."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from postbud.stats import PeriodStats

SERIES = (("routed_by_rule", "#0b5cad"), ("routed_by_model", "#4b9be0"), ("routed_by_hand", "#e0a526"),
          ("routed_by_fallback", "#9aa5b1"), ("held", "#c0504d"))
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 640, 260, 36, 34, 12


def stacked_bars(periods: Sequence[PeriodStats], labels: dict[str, str]) -> str:
    """The figures as one SVG; each bar carries a <title> with its numbers for screen readers."""
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - BOTTOM - TOP
    peak = max([sum(getattr(p, name) for name, _ in SERIES) for p in periods] + [1])
    step = plot_w / max(len(periods), 1)
    bar = max(step * 0.7, 1.0)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
             f'height="{HEIGHT}" role="img" aria-label="{escape(labels.get("title", ""))}">',
             f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - 8}" y2="{TOP + plot_h}" stroke="#999"/>',
             f'<text x="{LEFT - 4}" y="{TOP + 8}" font-size="10" text-anchor="end">{peak}</text>',
             f'<text x="{LEFT - 4}" y="{TOP + plot_h}" font-size="10" text-anchor="end">0</text>']
    line: list[str] = []
    every = max(1, -(-len(periods) // 7))  # at most seven period labels under the axis
    for i, p in enumerate(periods):
        x = LEFT + i * step + (step - bar) / 2
        y = TOP + plot_h
        numbers = ", ".join(f"{labels.get(name, name)} {getattr(p, name)}" for name, _ in SERIES)
        parts.append(f'<g class="bar" data-period="{escape(p.period)}"><title>{escape(p.period)}: {escape(numbers)}</title>')
        for name, colour in SERIES:
            value = getattr(p, name)
            if value:
                h = value / peak * plot_h
                y -= h
                parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{colour}"/>')
        parts.append("</g>")
        if p.automation_rate is not None:
            line.append(f"{x + bar / 2:.1f},{TOP + plot_h * (1 - p.automation_rate):.1f}")
        if i % every == 0:
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{HEIGHT - BOTTOM + 14}" font-size="10" '
                         f'text-anchor="middle">{escape(_short(p.period))}</text>')
    if len(line) > 1:
        parts.append(f'<polyline points="{" ".join(line)}" fill="none" stroke="#2a7d2e" stroke-width="2"/>')
    legend_x = LEFT
    for name, colour in SERIES:
        parts.append(f'<rect x="{legend_x}" y="{HEIGHT - 12}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{legend_x + 13}" y="{HEIGHT - 3}" font-size="10">{escape(labels.get(name, name))}</text>')
        legend_x += 110
    parts.append("</svg>")
    return "".join(parts)


def _short(period: str) -> str:
    """A day as MM-DD under the axis (the table beside the chart has the whole date)."""
    return period[5:] if len(period) == 10 else period
