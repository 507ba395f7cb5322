"""The history page: one trend chart per KPI series over nights, change points marked, builds
annotated, the verdicts on top (jinja2 + matplotlib, one self-contained HTML file)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path

import matplotlib.pyplot as plt
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape

from harness.history.analysis import Analysis, Series
from harness.history.records import kpi_sense
from harness.report.html import TEMPLATES as REPORT_TEMPLATES
from harness.report.html import _png

_env = Environment(
    loader=ChoiceLoader(
        [FileSystemLoader(Path(__file__).parent / "templates"), FileSystemLoader(REPORT_TEMPLATES)]
    ),
    autoescape=select_autoescape(["html", "j2"]),
)
WORSE, BETTER = "#c0392b", "#1e8449"


def trend_chart(s: Series) -> str:
    """Values per night (median, min–max of the repeats), segment means, change points as
    vertical lines (red worse, green better), façade builds written where they change."""
    fig, ax = plt.subplots(figsize=(10, 3.2))
    x = list(range(len(s.nights)))
    low = [s.values[i] - min(r) for i, r in enumerate(s.raw)]
    high = [max(r) - s.values[i] for i, r in enumerate(s.raw)]
    ax.errorbar(
        x, s.values, yerr=[low, high], fmt="o-", ms=3, lw=1, color="#2c3e50", ecolor="#aab7b8"
    )
    bounds = [0, *[s.nights.index(c.first_night) for c in s.changes], len(x)]
    for a, b in itertools.pairwise(bounds):
        ax.hlines(
            s.values[a:b].mean(), a - 0.3, b - 0.7, colors="#7f8c8d", linestyles="dashed", lw=1
        )
    for c in s.changes:
        i = s.nights.index(c.first_night)
        colour = WORSE if c.kind == "regression" else BETTER
        ax.axvline(i - 0.5, color=colour, lw=2)
        ax.annotate(
            f"{c.relative:+.1%}",
            (i - 0.5, 1),
            xycoords=("data", "axes fraction"),
            xytext=(3, -12),
            textcoords="offset points",
            color=colour,
            fontsize=9,
            weight="bold",
        )
    for i, build in enumerate(s.builds):
        if i == 0 or build != s.builds[i - 1]:
            ax.annotate(
                build,
                (i, 0),
                xycoords=("data", "axes fraction"),
                xytext=(2, 4),
                textcoords="offset points",
                rotation=90,
                fontsize=7,
                color="#6c3483",
            )
            if i:
                ax.axvline(i - 0.5, color="#6c3483", lw=0.6, ls=":")
    step = max(1, len(x) // 12)
    ax.set_xticks(
        x[::step], [n[:10] for n in s.nights[::step]], rotation=30, ha="right", fontsize=7
    )
    sense = "higher is better" if kpi_sense(s.key["kpi"]) > 0 else "lower is better"
    ax.set_ylabel(f"{s.key['kpi']}\n({sense})", fontsize=8)
    ax.set_title(s.label, fontsize=9, loc="left")
    ax.grid(alpha=0.3)
    return _png(fig)


def write_page(analysis: Analysis, out_dir: Path, source: str) -> Path:
    """``out_dir/history.html``; series with a change come first."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ordered = sorted(analysis.series, key=lambda s: (not s.changes, s.label))
    charts = [{"series": s, "png": trend_chart(s)} for s in ordered if len(s.nights) > 1]
    html = _env.get_template("history.html.j2").render(
        title="History and regressions",
        source=source,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        analysis=analysis,
        charts=charts,
        nights=sorted({n for s in analysis.series for n in s.nights}),
    )
    path = out_dir / "history.html"
    path.write_text(html)
    return path
