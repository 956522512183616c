"""Printable review sheets: one A4 page per patient for a clinician with a pen.

Each page shows the sheet code, the patient's statics, every vital/lab measured for that patient
over time (relative hours only) against its normal range, the automatically flagged issues, and
tick boxes for the verdict. Real and synthetic patients are drawn identically (same horizon, same
rounding) so that nothing but the data itself can tell them apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from clinsynth.schema import BaseField, Schema, VariableType

A4_INCHES = (8.27, 11.69)
VERDICTS = ("plausible", "implausible", "unsure")
GUESSES = ("real", "synthetic")
MAX_FLAG_LINES = 9
BAND = "#cfe8cf"
LINE = "#1f4e79"


@dataclass
class SheetPage:
    """What one page shows; built from either cohort the same way."""

    code: str
    statics: pd.Series
    observations: pd.DataFrame  # hours, variable, value (within the grid horizon)
    flags: list[str] = field(default_factory=list)


def format_value(spec: BaseField, value: float) -> str:
    """A static's value as a clinician would read it (category label, yes/no, unit)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "not recorded"
    if spec.type is VariableType.categorical and spec.categories:
        idx = int(value)
        return str(spec.categories[idx]) if 0 <= idx < len(spec.categories) else "?"
    if spec.type is VariableType.binary:
        return str(int(value))
    text = f"{value:.{spec.precision}f}" if spec.precision is not None else f"{value:g}"
    return f"{text} {spec.unit}".strip()


def statics_line(schema: Schema, statics: pd.Series) -> str:
    parts = []
    for spec in [*schema.statics, *schema.outcomes]:
        value = statics.get(spec.name, float("nan"))
        if spec in schema.outcomes and spec.type is VariableType.binary and not pd.isna(value):
            parts.append(f"{spec.name}: {'yes' if int(value) else 'no'}")
        else:
            parts.append(f"{spec.name}: {format_value(spec, float(value))}")
    return "    ".join(parts)


def coding_note(schema: Schema) -> str:
    """First sentence of each coded static's description, so '1' means something on paper."""
    notes = []
    for spec in schema.statics:
        if spec.is_numeric_code and spec.description:
            notes.append(f"{spec.name}: {spec.description.split('. ')[0].rstrip('.')}")
    return "Coding — " + "; ".join(notes) if notes else ""


def _y_limits(spec: BaseField, values: np.ndarray) -> tuple[float, float]:
    if spec.type is VariableType.binary:
        return -0.2, 1.2
    lo, hi = float(np.min(values)), float(np.max(values))
    if spec.normal_range is not None:
        lo, hi = min(lo, spec.normal_range[0]), max(hi, spec.normal_range[1])
    pad = 0.08 * (hi - lo) if hi > lo else max(abs(hi) * 0.1, 1.0)
    return lo - pad, hi + pad


def _draw_panel(
    fig: Figure,
    rect: tuple[float, float, float, float],
    spec: BaseField,
    obs: pd.DataFrame,
    horizon: float,
    x_labels: bool,
) -> None:
    """One small multiple drawn straight in figure coordinates.

    Forty full matplotlib Axes per page cost about a second to lay out (ticks dominate); plain
    lines and a handful of labels placed with matplotlib's own tick locator cost a fraction.
    """
    x0, y0, w, h = rect
    lo, hi = _y_limits(spec, obs["value"].to_numpy(dtype=float))

    def fx(hours: np.ndarray) -> np.ndarray:
        return x0 + w * np.clip(np.asarray(hours, dtype=float) / horizon, 0.0, 1.0)

    def fy(values: np.ndarray) -> np.ndarray:
        return y0 + h * (np.asarray(values, dtype=float) - lo) / (hi - lo)

    tf = fig.transFigure
    if spec.normal_range is not None:
        b0, b1 = fy(np.array(spec.normal_range))
        fig.add_artist(Rectangle((x0, b0), w, b1 - b0, transform=tf, color=BAND, lw=0))
    fig.add_artist(Rectangle((x0, y0), w, h, transform=tf, fill=False, lw=0.5, color="0.25"))
    xs, ys = fx(obs["hours"]), fy(obs["value"])
    if spec.type is VariableType.binary:
        xs = np.append(np.repeat(xs, 2)[1:], fx(np.array([horizon])))
        ys = np.repeat(ys, 2)
        fig.add_artist(Line2D(xs, ys, transform=tf, color=LINE, lw=0.8))
        yticks = np.array([0.0, 1.0])
    else:
        fig.add_artist(Line2D(xs, ys, transform=tf, color=LINE, lw=0.6, marker="o", ms=1.6))
        yticks = MaxNLocator(3).tick_values(lo, hi)
        yticks = yticks[(yticks >= lo) & (yticks <= hi)]
    # time gridlines in every panel (one path), hour labels only under the bottom panel of a column
    hours = np.linspace(0, horizon, 5)
    gx = np.repeat(fx(hours[1:-1]), 3)
    gy = np.tile([y0, y0 + h, np.nan], len(hours) - 2)
    fig.add_artist(Line2D(gx, gy, transform=tf, lw=0.3, color="0.6"))
    if x_labels:
        for t in hours:
            fig.text(fx(t), y0 - 0.004, f"{t:g}", fontsize=5, ha="center", va="top")
    ty = np.repeat(fy(yticks), 3)
    tx = np.tile([x0 - 0.003, x0, np.nan], len(yticks))
    fig.add_artist(Line2D(tx, ty, transform=tf, lw=0.5, color="0.25"))
    for v in yticks:
        fig.text(x0 - 0.005, float(fy(v)), f"{v:g}", fontsize=5, ha="right", va="center")
    title = spec.name + (f" ({spec.unit})" if spec.unit else "")
    fig.text(x0 + w / 2, y0 + h + 0.003, title, fontsize=6, ha="center", va="bottom")


def _n_columns(n: int) -> int:
    return 5 if n > 20 else 4


def _panel_rects(n: int, top: float, bottom: float) -> list[tuple[float, float, float, float]]:
    """Row-major grid of panel rectangles (x0, y0, w, h) in figure fractions."""
    ncols = _n_columns(n)
    nrows = math.ceil(n / ncols)
    left, right, hgap, vgap = 0.07, 0.97, 0.035, 0.022
    w = (right - left - (ncols - 1) * hgap) / ncols
    h = (top - bottom - (nrows - 1) * vgap) / max(nrows, 4)
    return [
        (left + (i % ncols) * (w + hgap), top - (i // ncols + 1) * h - (i // ncols) * vgap, w, h)
        for i in range(n)
    ]


def _tick_boxes(fig: Figure, y: float, label: str, options: tuple[str, ...]) -> None:
    fig.text(0.06, y, label, fontsize=9, va="center")
    x = 0.33
    for option in options:
        fig.add_artist(
            Rectangle((x, y - 0.006), 0.014, 0.0099, transform=fig.transFigure, fill=False, lw=0.9)
        )
        fig.text(x + 0.02, y, option, fontsize=9, va="center")
        x += 0.2


def draw_page(page: SheetPage, schema: Schema, blinded: bool) -> Figure:
    """One sheet as a matplotlib Figure (A4 portrait)."""
    fig = Figure(figsize=A4_INCHES)
    horizon = schema.grid.horizon_hours
    fig.text(0.06, 0.972, f"Sheet {page.code}", fontsize=18, weight="bold", va="center")
    fig.text(
        0.94,
        0.972,
        f"Plausibility review · schema {schema.name}",
        fontsize=8,
        ha="right",
        va="center",
        color="0.35",
    )
    fig.text(0.06, 0.948, statics_line(schema, page.statics), fontsize=7, va="center", wrap=True)
    fig.text(
        0.06,
        0.932,
        f"Time axis: hours since ICU admission (0–{horizon:g} h). Green band: normal range. "
        "Only variables measured for this patient are shown.",
        fontsize=6.5,
        color="0.3",
        va="center",
    )

    measured = set(page.observations["variable"])
    specs = [v for v in schema.variables if v.name in measured]
    if specs:
        by_var = dict(tuple(page.observations.groupby("variable", sort=False)))
        rects = _panel_rects(len(specs), 0.9, 0.315)
        ncols = _n_columns(len(specs))
        for i, (rect, spec) in enumerate(zip(rects, specs, strict=True)):
            lowest = i + ncols >= len(specs)
            _draw_panel(fig, rect, spec, by_var[spec.name], horizon, x_labels=lowest)
    else:
        fig.text(0.5, 0.6, "No measurements recorded.", ha="center", fontsize=10)

    fig.text(0.06, 0.275, "Automatically flagged issues", fontsize=9, weight="bold")
    lines = page.flags[:MAX_FLAG_LINES] or ["none found"]
    if len(page.flags) > MAX_FLAG_LINES:
        lines = [*lines[:-1], f"... and {len(page.flags) - MAX_FLAG_LINES + 1} more"]
    for i, line in enumerate(lines):
        fig.text(0.07, 0.258 - i * 0.0125, f"• {line}"[:150], fontsize=6.5, va="center")

    fig.text(0.06, 0.13, "Your assessment", fontsize=9, weight="bold")
    _tick_boxes(fig, 0.11, "This stay is clinically", VERDICTS)
    y = 0.11
    if blinded:
        y = 0.088
        _tick_boxes(fig, y, "I think this patient is", GUESSES)
    fig.text(0.06, y - 0.024, "Comment:", fontsize=9, va="center")
    for k in range(3):
        yy = y - 0.028 - k * 0.02
        fig.add_artist(
            Line2D([0.16, 0.94], [yy, yy], transform=fig.transFigure, lw=0.5, color="0.3")
        )
    note = coding_note(schema)
    if note:
        fig.text(0.06, 0.012, note[:220], fontsize=5, color="0.4")
    return fig


def write_pdf(
    pages: list[SheetPage],
    schema: Schema,
    path: Path,
    blinded: bool,
    advance: Callable[[], None] | None = None,
) -> int:
    """Write every page to one PDF (no creation date, so same input gives the same bytes)."""
    with PdfPages(path, metadata={"Creator": "clinsynth", "CreationDate": None}) as pdf:
        for page in pages:
            pdf.savefig(draw_page(page, schema, blinded))
            if advance is not None:
                advance()
        count = pdf.get_pagecount()
    return count
