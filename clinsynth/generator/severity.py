"""A stay's overall severity: a hidden field the series is generated from.

Why: in a real ICU cohort a sick patient is abnormal on many variables at once — low GCS, high
BUN and lactate, low bicarbonate go together — and that shared severity is what predicts death
(on PhysioNet 2012 the score below alone has AUROC 0.74 for in-hospital death). A series model
that draws each variable's level on its own given the statics loses it: its synthetic stays
had pairwise correlations of abnormality near 0 (real 0.08) and a score with AUROC 0.56.

So every stay gets a score computed by a public formula from its own values — the mean, over the
numeric variables it has, of how far the stay's values lie outside the schema's normal range
(in half-widths, each value clipped at ``OUTSIDE_CLIP``) — binned on public edges. The model
learns its distribution given the statics (one more autoregressive field head, under DP-SGD),
and the series given statics and score (started from a DP release of how the score and the
statics move each variable: module :mod:`effects`); sampling draws the score first, then the
series. The outcome model reads the score of the stay actually drawn. The score is never
exported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:  # both import this module
    from clinsynth.generator.encoding import Encoding
    from clinsynth.generator.model import StayModel

NAME = "__severity__"  # not a schema field: never decoded or written
OUTSIDE_CLIP = 4.0  # a value counts at most 4 half-widths outside its normal range
CENTRE, HALF = 0.5, 0.25  # the score enters the networks as (score - CENTRE) / HALF
EDGES = np.linspace(-2.0, 6.0, 17)  # 16 bins: scores 0 to 2 in steps of 0.125 (beyond: the ends)


def score(x: np.ndarray, m: np.ndarray, numeric: list[int]) -> np.ndarray:
    """``[N]`` standardised severity of stays ``x, m [N, T, V]`` (model space; NaN when a stay
    has no numeric value)."""
    xs, ms = x[..., numeric].astype(np.float64), m[..., numeric] > 0
    outside = np.where(ms, np.clip(np.abs(xs) - 1.0, 0.0, OUTSIDE_CLIP), 0.0)
    count = ms.sum(axis=1)
    has = count > 0
    per_variable = outside.sum(axis=1) / np.maximum(count, 1)
    raw = np.where(has, per_variable, 0.0).sum(axis=1) / has.sum(axis=1).clip(min=1)
    return np.where(has.any(axis=1), (raw - CENTRE) / HALF, np.nan)


@torch.no_grad()
def initialise_head(model: StayModel, encoding: Encoding, rates: np.ndarray) -> None:
    """Start the score's head at the released class ``rates`` (the calibration release); how
    the score moves each variable is released with the statics' effects (module effects)."""
    head = model.fields.heads[encoding.severity_index][-1]
    head.bias.copy_(torch.as_tensor(np.log(rates), dtype=head.bias.dtype))
