"""Latin-hypercube draws across the stays of one sample: each stay keeps its distribution, the
cohort's counts vary less.

Why: a cohort-level figure such as a variable's observation rate is a sum over stays, and with
independent draws it carries the sampling noise of the cohort's size on top of the model's
error. For variables measured in some stays and absent from others (an arterial line or not) that
noise is large: on PhysioNet 2012 (ε = 4) eight 2,000-stay samples of one model put MAP's rate
0.96 pp (sd) about the model's own, and one in eight samples had a rate gap above 2 pp somewhere.
Stratifying the uniforms behind the discrete decisions (each column of one step's uniforms is a
random permutation of the ``n`` strata ``[i/n, (i+1)/n)`` with a uniform offset in each) keeps
every single draw uniform, so a stay's distribution is unchanged, while across the stays every
probability band is hit as often as its width says. What it removes is the part of a count's
noise that the stays share: n stays of one probability p give n·p to within one; stays whose
probabilities differ keep the noise of their own differences.
"""

from __future__ import annotations

import torch


def uniforms(
    rows: int, cols: int, gen: torch.Generator, device: torch.device | str
) -> torch.Tensor:
    """``[rows, cols]`` uniforms on [0, 1); each column holds one value in each of ``rows``
    equal strata, in random order."""
    jitter = torch.rand(rows, cols, generator=gen, device=device)
    keys = torch.rand(rows, cols, generator=gen, device=device)
    rank = keys.argsort(dim=0).argsort(dim=0)  # a random permutation of 0..rows-1 per column
    return (rank + jitter) / rows


def categorical(probs: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One class per row of ``probs [rows, classes]`` by inverse CDF at stratified uniforms:
    the class counts follow the summed probabilities more closely than independent draws."""
    u = uniforms(probs.shape[0], 1, gen, probs.device)
    cdf = probs.cumsum(dim=1)
    cdf = cdf / cdf[:, -1:].clamp(min=1e-12)
    return (cdf < u).sum(dim=1).clamp(max=probs.shape[1] - 1)
