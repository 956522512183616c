"""``clinsynth collapse``: show what iterative retraining on synthetic output does to a cohort.

``run_collapse(real, CollapseConfig(...))`` runs the experiment (``experiment``), measuring each
generation against real held-out stays (``measures``); ``write_results`` writes the table and
plot (``report``).
"""

from clinsynth.collapse.experiment import (
    ARMS,
    CollapseConfig,
    CollapseResult,
    combine,
    run_collapse,
    split_real,
)
from clinsynth.collapse.measures import tail_coverage, variance_ratio
from clinsynth.collapse.report import write_results

__all__ = [
    "ARMS",
    "CollapseConfig",
    "CollapseResult",
    "combine",
    "run_collapse",
    "split_real",
    "tail_coverage",
    "variance_ratio",
    "write_results",
]
