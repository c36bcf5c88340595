"""The `/stats` chart: members' messages per hour or day as bars, rendered to PNG with matplotlib's Agg
canvas (no display, no pyplot state shared between threads)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from io import BytesIO

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from models.analytics import Bucket
from sinks.clickhouse.stats import GuildStats

WIDTH_IN, HEIGHT_IN, DPI = 8.0, 3.0, 100


@dataclass(frozen=True)
class Chart:
    png: bytes
    labels: list[str]
    # The bars' heights as drawn, read back from the plot.
    bars: list[int]


def bucket_label(start: datetime, bucket: Bucket) -> str:
    return start.strftime("%H:00") if bucket is Bucket.hour else start.strftime("%b %d")


def render_chart(stats: GuildStats, color: int) -> Chart:
    labels = [bucket_label(start, stats.span.bucket) for start, _ in stats.series]
    counts = [count for _, count in stats.series]
    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    drawn = axes.bar(range(len(counts)), counts, color=f"#{color:06x}")
    # At most about 12 labels fit under the bars.
    step = max(len(labels) // 12, 1)
    axes.set_xticks(range(0, len(labels), step), labels[::step], rotation=45, ha="right", fontsize=8)
    axes.set_ylabel("messages")
    axes.set_title(f"Messages per {stats.span.bucket.value} (UTC)")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    figure.tight_layout()
    buffer = BytesIO()
    figure.savefig(buffer, format="png")
    return Chart(buffer.getvalue(), labels, [round(bar.get_height()) for bar in drawn])
