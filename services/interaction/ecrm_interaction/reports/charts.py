"""A report's chart as a PNG image (matplotlib, drawn off-screen: no display, no network), for
the emails of report subscriptions."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # before pyplot: draw to memory only

import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, MaxNLocator

from ecrm_interaction.reports.base import Chart

PALETTE = ("#2150c8", "#b3261e", "#1e7a34", "#8a5a00", "#6b2fb3", "#00758f")
"""The console's colours (console.js)."""


def chart_png(chart: Chart, title: str, width_in: float = 8.0, height_in: float = 3.2) -> bytes:
    """``chart`` drawn as the console draws it: lines over the periods, or bars for one series."""
    figure, axes = plt.subplots(figsize=(width_in, height_in), dpi=100)
    try:
        positions = list(range(len(chart.x)))
        for i, series in enumerate(chart.series):
            values = [float("nan") if v is None else v for v in series.values]
            colour = PALETTE[i % len(PALETTE)]
            if chart.kind == "bar" and len(chart.series) == 1:
                axes.bar(positions, values, color=colour, label=series.label)
            else:
                axes.plot(positions, values, color=colour, linewidth=2, marker="o" if len(positions) < 20 else None,
                          markersize=3, label=series.label)  # fmt: skip
        step = max(1, len(positions) // 10)
        axes.set_xticks(positions[::step], [chart.x[i] for i in positions[::step]], rotation=30, ha="right",
                        fontsize=8)  # fmt: skip
        axes.yaxis.set_major_locator(MaxNLocator(nbins=5))
        if chart.y == "rate":
            axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v * 100:.0f} %"))
        axes.set_title(title, fontsize=10, loc="left")
        axes.grid(axis="y", alpha=0.3)
        axes.spines[["top", "right"]].set_visible(False)
        if len(chart.series) > 1:
            axes.legend(fontsize=7, frameon=False, ncols=min(4, len(chart.series)))
        figure.tight_layout()
        out = io.BytesIO()
        figure.savefig(out, format="png")
        return out.getvalue()
    finally:
        plt.close(figure)
