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
from harness.report.pilot import UNITS

_env = Environment(
    loader=ChoiceLoader(
        [FileSystemLoader(Path(__file__).parent / "templates"), FileSystemLoader(REPORT_TEMPLATES)]
    ),
    autoescape=select_autoescape(["html", "j2"]),
)
WORSE, BETTER, BUILD = "#c0392b", "#1e8449", "#6c3483"


def night_ticks(nights: list[str]) -> list[str]:
    """Tick labels of nights (``2026-12-01T23:42:34Z``): the date, or the date and UTC time
    once two nights share a date (several runs a day would otherwise read as one)."""
    for width in (10, 16, 19):  # date, then minutes, then seconds
        labels = [n[:width].replace("T", " ") for n in nights]
        if len(set(labels)) == len(labels):
            return labels if width == 10 else [f"{label} UTC" for label in labels]
    return [n.replace("T", " ") for n in nights]


def trend_chart(parts: list[Series]) -> str:
    """One KPI over nights: values per night (median, min–max of the repeats), the level
    between change points (dashed), change points as vertical lines (red worse, green better),
    façade builds written where they change, and grey boundaries where a new series starts."""
    fig, ax = plt.subplots(figsize=(10, 3.0))
    nights = [n for p in parts for n in p.nights]
    offset = 0
    for p in parts:
        x = list(range(offset, offset + len(p.nights)))
        low = [p.values[i] - min(r) for i, r in enumerate(p.raw)]
        high = [max(r) - p.values[i] for i, r in enumerate(p.raw)]
        ax.errorbar(
            x, p.values, yerr=[low, high], fmt="o-", ms=3, lw=1, color="#2c3e50", ecolor="#aab7b8"
        )
        cuts = [0, *[p.nights.index(c.first_night) for c in p.changes], len(x)]
        for a, b in itertools.pairwise(cuts):
            ax.hlines(
                p.values[a:b].mean(), offset + a - 0.3, offset + b - 0.7,
                colors="#7f8c8d", linestyles="dashed", lw=1,
            )  # fmt: skip
        for c in p.changes:
            at = offset + p.nights.index(c.first_night) - 0.5
            colour = WORSE if c.kind == "regression" else BETTER
            # A regression a later build undid stays visible, dashed.
            ax.axvline(at, color=colour, lw=2, ls="--" if c.recovered else "-")
            ax.annotate(
                f"{c.relative:+.1%}", (at, 1), xycoords=("data", "axes fraction"),
                xytext=(3, -12), textcoords="offset points", color=colour, fontsize=9,
                weight="bold",
            )  # fmt: skip
        for i, build in enumerate(p.builds):
            # the first build goes in the title; a new one on the line where it starts, beside
            # it on a white ground (written at the night itself, it sat on that night's point)
            if i and build != p.builds[i - 1]:
                ax.axvline(offset + i - 0.5, color=BUILD, lw=0.6, ls=":")
                ax.annotate(
                    build, (offset + i - 0.5, 0), xycoords=("data", "axes fraction"),
                    xytext=(-2, 4), textcoords="offset points", rotation=90, fontsize=7,
                    color=BUILD, ha="right", va="bottom",
                    bbox={"fc": "white", "ec": "none", "alpha": 0.8, "pad": 1},
                )  # fmt: skip
        if offset:
            ax.axvline(offset - 0.5, color="#95a5a6", lw=6, alpha=0.35)
            ax.annotate(
                "new series", (offset - 0.5, 0.5), xycoords=("data", "axes fraction"),
                rotation=90, fontsize=7, color="#566573", ha="center", va="center",
            )  # fmt: skip
        offset += len(p.nights)
    step = max(1, len(nights) // 12)
    ticks = list(range(len(nights)))[::step]
    ax.set_xticks(ticks, night_ticks([nights[i] for i in ticks]), rotation=30, ha="right",
                  fontsize=7)  # fmt: skip
    kpi = parts[0].key["kpi"]
    sense = "higher is better" if kpi_sense(kpi) > 0 else "lower is better"
    unit = UNITS.get(kpi, "ms" if kpi.endswith("_ms") else "")
    ax.set_ylabel(f"{kpi}" + (f" ({unit})" if unit else "") + f"\n{sense}", fontsize=8)
    first = parts[0].builds[0] if parts[0].builds else ""
    ax.set_title(parts[0].label, fontsize=9, loc="left")
    if first:
        ax.set_title(f"façade build {first}", fontsize=8, loc="right", color=BUILD)
    ax.grid(alpha=0.3)
    return _png(fig)


def write_page(analysis: Analysis, out_dir: Path, source: str) -> Path:
    """``out_dir/history.html``: series with a change first; flat series (zero failures
    every night) are counted, not charted."""
    out_dir.mkdir(parents=True, exist_ok=True)
    by_label: dict[str, list[Series]] = {}
    for s in analysis.series:
        by_label.setdefault(s.label, []).append(s)
    charted, flat = [], 0
    for label, parts in sorted(
        by_label.items(), key=lambda kv: (not any(p.changes for p in kv[1]), kv[0])
    ):
        values = {v for p in parts for v in p.values}
        if sum(len(p.nights) for p in parts) < 2 or len(values) == 1:
            flat += 1
            continue
        charted.append({"label": label, "png": trend_chart(parts)})
    nights = sorted({n for s in analysis.series for n in s.nights})
    html = _env.get_template("history.html.j2").render(
        title="History and regressions",
        source=source,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        analysis=analysis,
        charts=charted,
        flat=flat,
        nights=nights,
        # first and last night, with their times when both fall on one date
        span=night_ticks([nights[0], nights[-1]]) if len(nights) > 1 else nights[:1],
    )
    path = out_dir / "history.html"
    path.write_text(html)
    return path
