"""The report's charts as PNG images (matplotlib, Agg backend): mail clients show PNG, not SVG."""

from __future__ import annotations

import io
from typing import Any

# Figures are made with matplotlib's object API and drawn by the Agg backend: no pyplot, no
# display, no global figure state shared between worker threads.
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

COMPLETED_COLOUR = "#2e7d32"
ROLLED_BACK_COLOUR = "#c62828"
RATE_COLOUR = "#1565c0"
SIZE = (6.4, 2.6)  # inches; at 100 dpi a 640 px wide image, the email's content width
DPI = 100


def _figure() -> tuple[Figure, Any]:
    figure = Figure(figsize=SIZE, dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.spines[["top", "right"]].set_visible(False)
    axes.tick_params(labelsize=8)
    axes.grid(axis="y", color="#e0e0e0", linewidth=0.6)
    axes.set_axisbelow(True)
    return figure, axes


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def releases_per_week(series: list[dict[str, Any]]) -> bytes:
    """Stacked bars: production releases completed and rolled back, per week."""
    figure, axes = _figure()
    labels = [row["label"] for row in series]
    completed = [row["completed"] for row in series]
    rolled_back = [row["rolled_back"] for row in series]
    axes.bar(labels, completed, color=COMPLETED_COLOUR, label="completed")
    axes.bar(labels, rolled_back, bottom=completed, color=ROLLED_BACK_COLOUR, label="rolled back")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    tallest = max([c + r for c, r in zip(completed, rolled_back, strict=True)] + [1])
    axes.set_ylim(bottom=0, top=tallest * 1.15)
    axes.legend(fontsize=8, frameon=False, loc="upper left", ncols=2)
    axes.set_title("Production releases per week", fontsize=10, loc="left")
    return _png(figure)


def change_failure_rate(series: list[dict[str, Any]]) -> bytes:
    """A line of the weekly change failure rate; weeks without releases are gaps."""
    figure, axes = _figure()
    labels = [row["label"] for row in series]
    rates = [
        float("nan") if row["change_failure_rate"] is None else row["change_failure_rate"]
        for row in series
    ]
    # Numeric positions: with category labels matplotlib would drop the weeks without a rate.
    positions = list(range(len(labels)))
    axes.plot(positions, rates, color=RATE_COLOUR, marker="o", linewidth=1.6)
    axes.set_xticks(positions, labels)
    axes.set_xlim(-0.5, len(labels) - 0.5)
    axes.set_ylim(0, 1.05)
    axes.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=0))
    axes.set_title("Change failure rate per week", fontsize=10, loc="left")
    return _png(figure)


CHARTS = {
    "releases-per-week": ("Production releases per week", releases_per_week),
    "change-failure-rate": ("Change failure rate per week", change_failure_rate),
}


def draw(series: list[dict[str, Any]]) -> list[tuple[str, str, bytes]]:
    """Every chart of a report: (name, title, PNG bytes)."""
    return [(name, title, draw_one(series)) for name, (title, draw_one) in CHARTS.items()]
