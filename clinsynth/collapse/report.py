"""Results folder of a collapse experiment: tables (CSV + markdown), plot, settings.

Written through ``clinsynth.io.new_directory``: an existing folder is never overwritten and a
crash leaves no half-written results. Only aggregate measures are written — no patient ids, no
synthetic records.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from clinsynth.collapse.experiment import ARMS, CollapseResult
from clinsynth.io import new_directory, write_json_atomic, write_text_atomic
from clinsynth.provenance import package_versions, utc_now

MEASURES = {
    "tail_coverage": "tail coverage (1 = real tails fully represented)",
    "variance_ratio": "variance ratio synthetic / real (1 = same spread)",
    "autocorrelation_error": "autocorrelation |diff| (lower is better)",
    "cross_correlation_error": "cross-correlation |diff| (lower is better)",
    "temporal_failing_share": "share of temporal checks failing",
    "tstr_auroc": "TSTR AUROC on real held-out stays",
    "outcome_rate": "synthetic rate of the binary outcome(s)",
}
TABLE_CSV, VARIABLES_CSV, TABLE_MD, PLOT_PNG, SETTINGS_JSON = (
    "collapse.csv",
    "collapse_variables.csv",
    "collapse.md",
    "collapse.png",
    "settings.json",
)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def markdown_table(table: pd.DataFrame) -> str:
    columns = ["arm", "generation", "depth", "train_synthetic_fraction", *MEASURES]
    header = "| " + " | ".join(columns) + " |"
    lines = [header, "|" + "---|" * len(columns)]
    for row in table[columns].itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines)


def markdown(result: CollapseResult, command: str) -> str:
    trtr = result.table["trtr_auroc"].dropna()
    reference = f"{trtr.iloc[0]:.3f}" if len(trtr) else "n/a"
    config = result.config
    return "\n".join(
        [
            "# Model-collapse experiment",
            "",
            f"Command: `{command}`",
            "",
            f"Generations: {config.generations}; fresh real fraction in the mixed arm: "
            f"{config.real_fraction:.0%}; sizes: {result.sizes}.",
            f"Model: epochs {config.epochs}, hidden {config.hidden}, blocks {config.n_blocks}, "
            f"mixtures {config.n_mix}, batch {config.batch_size}, "
            + (f"DP ε = {config.epsilon:g}" if config.dp else "no DP")
            + f"; seed {config.seed}.",
            f"TRTR reference AUROC (real training stays → real held-out): {reference}.",
            "",
            markdown_table(result.table),
            "",
            "Depth = generation depth of the sample (1 = model trained on real data only).",
            "",
        ]
    )


def plot(table: pd.DataFrame, real_fraction: float, path: Path) -> None:
    """One panel per measure against generation, both arms (from ``collapse.csv``'s table)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(17, 7), constrained_layout=True)
    for ax in axes.ravel()[len(MEASURES) :]:
        ax.set_visible(False)
    for ax, (measure, title) in zip(axes.ravel(), MEASURES.items(), strict=False):
        for arm in ARMS:
            rows = table[table["arm"] == arm]
            ax.plot(rows["generation"], rows[measure], marker="o", label=f"{arm} arm")
        if measure == "tstr_auroc" and table["trtr_auroc"].notna().any():
            ax.axhline(table["trtr_auroc"].dropna().iloc[0], ls="--", c="grey", label="TRTR")
        if measure in ("tail_coverage", "variance_ratio"):
            ax.axhline(1.0, ls=":", c="grey")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("generation")
        ax.set_xticks(sorted(table["generation"].unique()))
        ax.legend(fontsize=8)
    fig.suptitle(f"Iterative retraining: purely synthetic vs {real_fraction:.0%} fresh real")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_results(result: CollapseResult, out_dir: str | Path, command: str) -> Path:
    """Write the results folder (refuses an existing non-empty ``out_dir``)."""
    out_dir = Path(out_dir)
    with new_directory(out_dir) as staging:
        result.table.to_csv(staging / TABLE_CSV, index=False)
        result.variables.to_csv(staging / VARIABLES_CSV, index=False)
        write_text_atomic(staging / TABLE_MD, markdown(result, command))
        plot(result.table, result.config.real_fraction, staging / PLOT_PNG)
        write_json_atomic(
            staging / SETTINGS_JSON,
            {"created": utc_now(), "command": command, **result.to_dict(),
             "versions": package_versions()},
        )  # fmt: skip
    return out_dir
