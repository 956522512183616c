"""``write_html(result, path)``: one self-contained audit.html a person can read.

Plain-language verdict first (which required checks failed and why), then one section per family
with its figures (matplotlib, embedded as base64 PNG: no external files, works offline) and
per-variable tables with failing variables highlighted. Everything shown is aggregate or
synthetic: the real cohort appears only as histograms, correlation curves and percentile bands.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from audits.result import AuditResult, Check
from clinsynth.io import write_text_atomic

REAL, SYN = "#1f77b4", "#d62728"
SAMPLE_COLORS = ("#d62728", "#ff7f0e", "#8c564b", "#e377c2", "#bcbd22")
MAX_PANELS = 12

FAMILY_TEXT = {
    "membership": (
        "Membership inference",
        "Could someone holding the synthetic data tell whether a given patient was in the "
        "training data? Two attacks are tried on equal numbers of training patients and "
        "held-out patients; an AUROC of 0.5 means the attack does no better than a coin.",
    ),
    "memorisation": (
        "Memorisation",
        "Does any synthetic record copy, or nearly copy, a training patient? Distances are "
        "compared with how close genuinely new (held-out) patients come to the training data. "
        "Records that sit too close are listed and dropped at export.",
    ),
    "fidelity": (
        "Distributions (time ignored)",
        "Does each variable take the same range of values as in the real training data?",
    ),
    "temporal": (
        "Temporal structure",
        "Do the trajectories behave like real ones over time: values per period of the stay, "
        "correlation over time and between variables, how individual patients vary and trend, "
        "and how often and together variables are measured?",
    ),
    "plausibility": (
        "Clinical plausibility",
        "Values outside the schema's hard limits, changes faster than physiologically possible, "
        "broken cross-variable rules (e.g. diastolic above systolic) and impossible sequences.",
    ),
    "utility": (
        "Utility",
        "Is the synthetic data useful? A model trained on it should predict outcomes for real "
        "held-out patients nearly as well as a model trained on real data; and a classifier "
        "should find it hard to tell synthetic stays from real ones.",
    ),
}

SHORT_METRIC = {
    "mean KS over time windows": "time-window KS",
    "autocorrelation |diff| (lags 1,2,4,8)": "autocorr. diff",
    "cross-correlation |diff| (lag 0, 1)": "cross-corr. diff",
    "KS of per-patient variability (std)": "variability KS",
    "KS of per-patient trend (slope)": "trend KS",
    "KS of per-patient shape (roughness)": "shape KS",
    "observation rate |diff| (percentage points)": "obs. rate diff (pp)",
    "KS of intervals between measurements": "interval KS",
    "co-measurement |diff| (mean over variables)": "co-measured diff",
    "distribution distance (time ignored)": "distance",
    "distribution distance (static)": "distance",
}

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:.2em} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
.verdict{padding:1em 1.2em;border-radius:8px;font-size:1.1em;margin:1em 0}
.pass{background:#e8f6ea;border:2px solid #2e7d32}
.fail{background:#fdecea;border:2px solid #c62828}
table{border-collapse:collapse;margin:.8em 0;font-size:.88em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:right;vertical-align:top}
th{background:#f3f3f3} td.l,th.l{text-align:left}
td.bad{background:#f8c9c4;font-weight:600} td.ok{background:#e3f2e5} td.na{color:#888}
.muted{color:#666;font-size:.9em} img{max-width:100%;height:auto}
"""


def _fmt(x: Any) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, bool | np.bool_):
        return "yes" if x else "no"
    if isinstance(x, int | np.integer):
        return f"{int(x):,}"
    if isinstance(x, float | np.floating):
        x = float(x)
        if math.isnan(x):
            return "n/a"
        if math.isinf(x):
            return "none"
        return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"
    return html.escape(str(x))


def _png(fig: plt.Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="figure" src="data:image/png;base64,{data}">'


def _grid(
    n: int, title: str, width: float = 3.0, height: float = 2.2
) -> tuple[plt.Figure, np.ndarray]:
    """Small multiples with room for a figure title (no tight_layout: it is slow on 40 panels)."""
    cols = min(4, max(n, 1))
    rows = math.ceil(max(n, 1) / cols)
    total = height * rows + 0.8
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, total), squeeze=False)
    fig.subplots_adjust(
        left=0.05, right=0.98, bottom=0.45 / total, top=1 - 0.75 / total, hspace=0.6, wspace=0.25
    )
    fig.suptitle(title, fontsize=10, y=1 - 0.15 / total)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    return fig, axes.ravel()


def _frame_html(frame: pd.DataFrame, bad: pd.DataFrame | None = None, left: int = 1) -> str:
    if frame.empty:
        return '<p class="muted">(nothing to show)</p>'
    head = "".join(
        f'<th class="{"l" if i < left else ""}">{html.escape(str(c))}</th>'
        for i, c in enumerate(frame.columns)
    )
    body = []
    for r in range(len(frame)):
        cells = []
        for i, col in enumerate(frame.columns):
            cls = "l" if i < left else ""
            if bad is not None and col in bad.columns:
                flag = bad.iloc[r][col]
                cls += " bad" if flag is True else (" na" if flag is None else "")
            cells.append(f'<td class="{cls.strip()}">{_fmt(frame.iloc[r][col])}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _verdict(result: AuditResult) -> str:
    required = [c for c in result.checks if c.required]
    n_ok = sum(c.passed is not False for c in required)
    sizes = result.meta.get("n_patients", {})
    who = (
        f"{_fmt(sizes.get('synthetic'))} synthetic stays against {_fmt(sizes.get('training'))} "
        f"training and {_fmt(sizes.get('holdout'))} held-out real stays"
    )
    if result.passed:
        text = (
            f"<b>PASSED.</b> This synthetic cohort met all {len(required)} required checks of "
            f"the '{html.escape(result.policy_name)}' audit policy ({who}). It may be exported; "
            f"{len(result.flagged_synthetic_ids)} synthetic records that sit too close to a real "
            "patient will be dropped on export."
        )
        return f'<div class="verdict pass">{text}</div>'
    failed = result.failed_required
    items = "".join(f"<li>{_explain(c)}</li>" for c in failed)
    text = (
        f"<b>FAILED.</b> {len(failed)} of {len(required)} required checks of the "
        f"'{html.escape(result.policy_name)}' audit policy failed ({who}; {n_ok} passed). "
        f"This cohort must not be shared. What went wrong:<ul>{items}</ul>"
    )
    return f'<div class="verdict fail">{text}</div>'


def _explain(c: Check) -> str:
    op = "at most" if c.direction == "max" else "at least"
    return (
        f"<b>{html.escape(c.name)}</b>: {html.escape(c.description)} Measured "
        f"<b>{_fmt(c.value)}</b>, allowed {op} {_fmt(c.threshold)}. "
        f'<span class="muted">{html.escape(c.details)}</span>'
    )


def _checks_table(checks: list[Check]) -> str:
    rows = []
    for c in checks:
        cls = {"pass": "ok", "FAIL": "bad", "n/a": "na"}[c.status]
        op = "≤" if c.direction == "max" else "≥"
        thr = f"{op} {_fmt(c.threshold)}" if c.threshold is not None else "—"
        rows.append(
            f'<tr><td class="l">{html.escape(c.name)}</td><td>{_fmt(c.value)}</td><td>{thr}</td>'
            f'<td class="{cls}">{c.status}</td><td>{"yes" if c.required else "no"}</td>'
            f'<td class="l muted">{html.escape(c.details)}</td></tr>'
        )
    head = (
        '<tr><th class="l">check</th><th>value</th><th>threshold</th><th>result</th>'
        '<th>required</th><th class="l">details</th></tr>'
    )
    return f"<table>{head}{''.join(rows)}</table>"


# ------------------------------------------------------------------------------------ figures


def _roc_figure(plots: dict) -> str:
    curves = {k[4:]: v for k, v in plots.items() if k.startswith("roc_")}
    if not curves:
        return ""
    fig, ax = plt.subplots(figsize=(4.2, 3.6), layout="tight")
    for name, c in curves.items():
        ax.plot(c["fpr"], c["tpr"], label=name.upper())
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="chance")
    ax.set(
        xlabel="false positive rate (non-members accused)",
        ylabel="true positive rate",
        title="Membership attacks (ROC)",
    )
    ax.legend(loc="lower right")
    return _png(fig)


def _dcr_figure(plots: dict) -> str:
    syn, hold = plots.get("dcr_synthetic"), plots.get("dcr_holdout")
    if syn is None or hold is None:
        return ""
    fig, ax = plt.subplots(figsize=(5.5, 3.4), layout="tight")
    hi = float(np.quantile(np.concatenate([syn, hold]), 0.99)) or 1.0
    bins = np.linspace(0, hi, 40)
    ax.hist(
        np.clip(hold, 0, hi),
        bins,
        alpha=0.55,
        density=True,
        color=REAL,
        label="held-out real -> training",
    )
    ax.hist(
        np.clip(syn, 0, hi),
        bins,
        alpha=0.55,
        density=True,
        color=SYN,
        label="synthetic -> training",
    )
    ax.axvline(plots.get("dcr_cutoff", 0), c="k", ls=":", label="near-copy cut-off")
    ax.set(
        xlabel="distance to closest training record",
        ylabel="density",
        title="Distance to closest record (DCR)",
    )
    ax.legend(fontsize=8)
    return _png(fig)


def _hist_figure(hists: dict, failing: set[str]) -> str:
    names = sorted(hists, key=lambda v: (v not in failing, list(hists).index(v)))
    if not names:
        return ""
    title = "Value distributions: real training (filled blue) vs synthetic (red line)"
    fig, axes = _grid(len(names), title, 2.6, 1.9)
    for ax, name in zip(axes, names, strict=False):
        h = hists[name]
        edges = h["edges"]
        for key, color in (("real", REAL), ("synthetic", SYN)):
            if h[key] is not None:
                ax.stairs(
                    h[key],
                    edges,
                    color=color,
                    fill=key == "real",
                    alpha=0.45 if key == "real" else 1,
                )
        ax.set_title(
            name + ("  (FAIL)" if name in failing else ""),
            fontsize=9,
            color="#c62828" if name in failing else "black",
        )
        ax.tick_params(labelsize=7)
        ax.set_yticks([])
    return _png(fig)


def _acf_figure(acf: dict, failing: set[str], rates: dict[str, float]) -> str:
    if not acf:
        return ""
    variables = acf["variables"]
    order = sorted(
        range(len(variables)),
        key=lambda j: (variables[j] not in failing, -rates.get(variables[j], 0)),
    )
    picks = [j for j in order if not np.all(np.isnan(acf["real"][:, j]))][:MAX_PANELS]
    if not picks:
        return ""
    fig, axes = _grid(len(picks), "Within-patient autocorrelation by lag (steps)", 2.6, 1.9)
    for ax, j in zip(axes, picks, strict=False):
        ax.plot(acf["lags"], acf["real"][:, j], "o-", ms=3, c=REAL, label="real")
        ax.plot(acf["lags"], acf["synthetic"][:, j], "s--", ms=3, c=SYN, label="synthetic")
        ax.axhline(0, c="grey", lw=0.6)
        ax.set_ylim(-1, 1)
        name = variables[j]
        ax.set_title(
            name + ("  (FAIL)" if name in failing else ""),
            fontsize=9,
            color="#c62828" if name in failing else "black",
        )
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)  # FAIL here = the variable fails the covariance structure
    return _png(fig)


def _trajectory_figure(traj: dict) -> str:
    if not traj:
        return ""
    title = "Sample synthetic trajectories over the real cohort's 10-90% percentile band"
    fig, axes = _grid(len(traj), title, 3.4, 2.3)
    for ax, (name, t) in zip(axes, traj.items(), strict=False):
        band, hours = t["band"], t["hours"]
        ax.fill_between(hours, band[0], band[2], color=REAL, alpha=0.2, label="real 10-90%")
        ax.plot(hours, band[1], c=REAL, lw=1.2, label="real median")
        for k, series in enumerate(t["samples"]):
            seen = ~np.isnan(series)
            ax.plot(
                hours[seen],
                series[seen],
                ".-",
                lw=0.8,
                ms=2.5,
                alpha=0.85,
                c=SAMPLE_COLORS[k % len(SAMPLE_COLORS)],
                label="synthetic patients" if k == 0 else None,
            )
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("hours since admission", fontsize=7)
    axes[0].legend(fontsize=7)
    return _png(fig)


# ------------------------------------------------------------------------------------ tables


def _pivot(table: pd.DataFrame, structures: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Variables x metrics, cells "value (<= threshold)"; and a matching frame of pass flags."""
    rows = table[table["structure"].isin(structures)]
    if rows.empty:
        return pd.DataFrame(), pd.DataFrame()
    rows = rows.assign(metric=rows["metric"].map(lambda m: SHORT_METRIC.get(m, m)))
    variables = list(dict.fromkeys(rows["variable"]))
    metrics = list(dict.fromkeys(rows["metric"]))
    text = pd.DataFrame(index=variables, columns=metrics, dtype=object)
    bad = pd.DataFrame(index=variables, columns=metrics, dtype=object)
    for r in rows.itertuples():
        if r.passed is None or (isinstance(r.value, float) and math.isnan(r.value)):
            text.loc[r.variable, r.metric], bad.loc[r.variable, r.metric] = "n/a", None
        else:
            text.loc[r.variable, r.metric] = f"{_fmt(r.value)} (≤ {_fmt(r.threshold)})"
            bad.loc[r.variable, r.metric] = not r.passed
    text = text.fillna("")
    failing = bad.apply(lambda col: col.map(lambda x: x is True)).any(axis=1)
    order = sorted(range(len(variables)), key=lambda i: not failing.iloc[i])
    text, bad = text.iloc[order], bad.iloc[order]
    text.insert(0, "variable", text.index)
    bad.insert(0, "variable", False)
    return text.reset_index(drop=True), bad.reset_index(drop=True)


def _failing_variables(table: pd.DataFrame | None) -> set[str]:
    if table is None or table.empty:
        return set()
    return {str(v) for v, p in zip(table["variable"], table["passed"], strict=True) if p is False}


def _section(family: str, result: AuditResult, body: str) -> str:
    title, text = FAMILY_TEXT[family]
    checks = [c for c in result.checks if c.family == family]
    return f"<h2>{html.escape(title)}</h2><p>{html.escape(text)}</p>{_checks_table(checks)}{body}"


def render_html(result: AuditResult) -> str:
    """The whole report as one HTML string."""
    plots, tables = result.plots, result.tables
    temporal = tables.get("temporal", pd.DataFrame())
    marginal = tables.get("marginal", pd.DataFrame())
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>clinsynth audit</title>"
        f"<style>{CSS}</style></head><body>",
        "<h1>Synthetic cohort audit</h1>",
        f'<p class="muted">schema {html.escape(str(result.meta.get("schema")))} · policy '
        f"{html.escape(result.policy_name)} · seed {_fmt(result.meta.get('seed'))}</p>",
        _verdict(result),
    ]
    optional_failed = [c for c in result.failed_checks if not c.required]
    if optional_failed:
        parts.append(
            "<p><b>Warnings</b> (checks the policy does not require):</p><ul>"
            + "".join(f"<li>{_explain(c)}</li>" for c in optional_failed)
            + "</ul>"
        )
    parts.append(
        '<p class="muted">How to read the thresholds: each check has a tolerance from the '
        "policy; on small cohorts the audit never judges more strictly than sampling noise "
        "allows (at the policy's noise level), so the threshold shown can be looser than the "
        "policy's. Real held-out patients pass these checks by design.</p>"
    )
    mem = plots.get("membership", {})
    vul = result.summary.get("membership", {}).get("vulnerable", {})
    vul_text = ""
    if vul:
        vul_text = (
            f"<p>Most vulnerable records: the {vul.get('n')} most outlying scored patients "
            f"({vul.get('members')} members, {vul.get('non_members')} non-members). Attack AUROC "
            "on them: "
            + ", ".join(f"{k} {_fmt(v.get('auroc'))}" for k, v in vul.get("attacks", {}).items())
            + ".</p>"
        )
    parts.append(_section("membership", result, _roc_figure(mem) + vul_text))
    memo = plots.get("memorisation", {})
    traj_copies = tables.get("trajectory_copies", pd.DataFrame())
    if not traj_copies.empty:
        traj_copies = traj_copies[
            (traj_copies["synthetic_copies"] > 0) | (traj_copies["holdout_copies"] > 0)
        ]
    parts.append(
        _section(
            "memorisation",
            result,
            _dcr_figure(memo)
            + f"<p>{len(result.flagged_synthetic_ids)} synthetic records flagged (dropped at "
            "export).</p><p>Variables with copied one-variable trajectories:</p>"
            + _frame_html(traj_copies),
        )
    )
    failing_marginal = _failing_variables(marginal)
    text, bad = _pivot(marginal, ["marginal"])
    fid = plots.get("fidelity", {})
    parts.append(
        _section(
            "fidelity",
            result,
            _hist_figure(fid.get("histograms", {}), failing_marginal) + _frame_html(text, bad),
        )
    )
    covariance = temporal[temporal["structure"] == "covariance"] if not temporal.empty else None
    failing_temporal = _failing_variables(covariance)
    rates = {}
    if not temporal.empty:
        obs = temporal[temporal["metric"].str.startswith("observation rate")]
        rates = dict(zip(obs["variable"], obs["real"], strict=True))
    body = [
        _acf_figure(plots.get("temporal", {}).get("acf", {}), failing_temporal, rates),
        _trajectory_figure(fid.get("trajectories", {})),
    ]
    for structure, label in (
        ("marginal_over_time", "Values over time"),
        ("covariance", "Correlation structure"),
        ("individual", "Individual trajectories"),
        ("measurement", "Measurement pattern"),
    ):
        text, bad = _pivot(temporal, [structure])
        body.append(f"<h3>{label}</h3>" + _frame_html(text, bad))
    parts.append(_section("temporal", result, "".join(body)))
    plaus = result.summary.get("plausibility", {})
    examples = "".join(f"<li>{html.escape(m)}</li>" for m in plaus.get("examples", [])[:15])
    var_table = tables.get("plausibility_variables", pd.DataFrame())
    if not var_table.empty:
        cols = [c for c in var_table.columns if not c.endswith("_rate")]
        var_table = var_table[cols]
    parts.append(
        _section(
            "plausibility",
            result,
            _frame_html(var_table)
            + _frame_html(tables.get("plausibility_rules", pd.DataFrame()))
            + (
                f"<p>Examples of issues in synthetic records:</p><ul>{examples}</ul>"
                if examples
                else ""
            ),
        )
    )
    parts.append(
        _section("utility", result, _frame_html(tables.get("utility_outcomes", pd.DataFrame())))
    )
    parts.append(
        '<p class="muted">Generated by clinsynth. This report contains aggregate figures of the '
        "real cohort (distributions, correlations, percentile bands) and synthetic records only; "
        "it names no real patient. Keep it with the data custodian.</p></body></html>"
    )
    return "\n".join(parts)


def write_html(result: AuditResult, path: str | Path) -> Path:
    """Write the self-contained report atomically; returns the path."""
    path = Path(path)
    write_text_atomic(path, render_html(result))
    return path
