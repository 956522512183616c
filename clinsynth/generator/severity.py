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

How strongly the series follow the score they were drawn for is calibrated after training
(module :mod:`calibration`). The released effects are shrunk by their noise, and many are
shrunk to 0, so stays drawn for a score came out much milder. On PhysioNet 2012 (ε = 4) the
drawn stays' own scores had sd 0.66 against 0.80 real, and they rose only 0.32 per unit of the
score drawn. One factor on all the score's effects, set so that the drawn stays' scores
spread as the released real ones do, brings back what the score stands for: the drawn stays'
scores then rise 0.67 per unit of the score drawn, the score alone predicts death with AUROC
0.77 (0.71 before, 0.77 real), and creatinine's tie to it goes 0.26 → 0.57 (real 0.52).
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


def _centres() -> np.ndarray:
    return (EDGES[:-1] + EDGES[1:]) / 2


def class_spread(rates: np.ndarray) -> float:
    """Standard deviation of the score (bin centres) under class probabilities ``rates`` (the
    missing class, last, left out): the released spread of real stays' scores."""
    p = np.asarray(rates[: len(EDGES) - 1], dtype=np.float64)
    p = p / max(p.sum(), 1e-12)
    centres = _centres()
    return float(np.sqrt(p @ (centres - p @ centres) ** 2))


def codes_spread(codes: np.ndarray) -> float:
    """The same for the score classes ``codes [N]`` of some stays (missing ones left out)."""
    present = codes[codes < len(EDGES) - 1]
    return float(_centres()[present].std()) if len(present) else 0.0


@torch.no_grad()
def scale_expression(
    model: StayModel, encoding: Encoding, factor: float, codes: np.ndarray
) -> None:
    """Multiply how strongly the score moves every numeric variable's value targets by
    ``factor``, keeping the average target over the stays drawn with statics ``codes`` in
    place."""
    off = encoding.cond_offsets()[encoding.severity_index]
    mean = float(encoding.static_condition(codes)[:, off].mean())
    k, p = model.config.n_mix, model.n_params
    weight = model.value_cond.weight.view(model.n_vars, p, -1)
    bias = model.value_head.bias.view(model.n_vars, p)
    for v in encoding.indices("gauss"):
        old = weight[v, k : 2 * k, off].clone()
        weight[v, k : 2 * k, off] = old * factor
        bias[v, k : 2 * k] -= (factor - 1.0) * old * mean
