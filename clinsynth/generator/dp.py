"""DP-SGD plumbing: opacus' per-sample gradients, Poisson sampler, noise and accountant, with
per-patient clipping done *per group of parameters*.

Why groups: one patient's gradient has parts of very different natural size — the value
likelihood (dozens of measured cells) dwarfs the statics heads and the measurement-pattern heads
(the outcome heads are not trained here: see ``outcome_head``). A single flat clip would let the
value part decide every patient's scaling and leave the others' signal far below the noise;
clipping each part to its own norm ``C_g`` protects them. This is the standard Gaussian
mechanism on the concatenated clipped gradient: its l2 sensitivity is ``sqrt(sum_g C_g^2)`` and
the noise is calibrated to exactly that, so opacus' accountant applies unchanged (as for its
own per-layer clipping, of which this is a coarser variant).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from opacus.accountants import create_accountant
from opacus.data_loader import DPDataLoader
from opacus.grad_sample import GradSampleModule
from opacus.optimizers.optimizer import DPOptimizer, _check_processed_flag, _mark_as_processed
from torch import nn
from torch.utils.data import DataLoader

# Clipping norm of each parameter group, as shares of the total per-patient sensitivity. Public
# modelling choices (fixed before seeing any data): a summed-over-cells value gradient is
# several times larger than the rest, so values get the largest share.
GROUP_SHARES = {"statics": 1.0, "mask": 0.5, "network": 1.0, "values": 2.0}
# Step-size multipliers. DP-SGD affords a few hundred steps; Adam moves every weight by about
# the step size per step, in a random direction where noise dominates. Large shared matrices
# therefore take small steps (their noise walk would otherwise add random functions to every
# output) while the few-parameter parts that carry most of the signal and must travel far —
# the statics heads — take larger ones.
LR_SCALE = {"local": 1.0, "statics": 3.0, "bias": 1.0}


class GroupClippingOptimizer(DPOptimizer):
    """A DPOptimizer that clips each parameter group's per-sample gradient to its own norm."""

    def __init__(self, optimizer, *, groups: list[str], group_norms: dict[str, float], **kwargs):
        total = math.sqrt(sum(c**2 for c in group_norms.values()))
        super().__init__(optimizer, max_grad_norm=total, **kwargs)
        if len(groups) != len(self.params):
            raise ValueError("one group name per optimised parameter is needed")
        self.groups = groups
        self.group_norms = group_norms

    def clip_and_accumulate(self) -> None:
        samples = [self._get_flat_grad_sample(p) for p in self.params]
        n = len(samples[0])
        device = samples[0].device
        sq = {g: torch.zeros(n, device=device) for g in self.group_norms}
        for g, s in zip(self.groups, samples, strict=True):
            if n:
                sq[g] = sq[g] + s.reshape(n, -1).pow(2).sum(dim=1)
        factor = {g: (self.group_norms[g] / (sq[g].sqrt() + 1e-6)).clamp(max=1.0) for g in sq}
        for p, g, s in zip(self.params, self.groups, samples, strict=True):
            _check_processed_flag(p.grad_sample)
            grad = torch.einsum("i,i...", factor[g].to(p.dtype), s.to(p.dtype))
            p.summed_grad = grad if p.summed_grad is None else p.summed_grad + grad
            _mark_as_processed(p.grad_sample)


@dataclass
class PrivateTraining:
    """What :func:`make_private` returns: wrapped model, DP optimizer, Poisson loader, account."""

    module: GradSampleModule
    optimizer: GroupClippingOptimizer
    loader: DPDataLoader
    accountant: object
    sample_rate: float

    def epsilon(self, delta: float) -> float:
        with warnings.catch_warnings():  # PRV's log(1 - q) warns for the q = 1 release
            warnings.simplefilter("ignore")
            return float(self.accountant.get_epsilon(delta=delta))


def group_norms(groups: list[str], total: float) -> dict[str, float]:
    """Per-group clipping norms, ``GROUP_SHARES`` scaled so their l2 norm is ``total``."""
    names = sorted(set(groups))
    shares = {g: GROUP_SHARES.get(g, 1.0) for g in names}
    scale = total / math.sqrt(sum(s**2 for s in shares.values()))
    return {g: s * scale for g, s in shares.items()}


def make_private(
    model: nn.Module,
    groups: list[str],
    optimizer: torch.optim.Optimizer,
    loader: DataLoader,
    *,
    noise_multiplier: float,
    max_grad_norm: float,
    accountant: str,
    data_generator: torch.Generator,
    noise_generator: torch.Generator,
) -> PrivateTraining:
    """What ``PrivacyEngine.make_private`` does, with group clipping (see module docstring)."""
    module = GradSampleModule(model, batch_first=True, loss_reduction="mean")
    module.forbid_grad_accumulation()
    dp_loader = DPDataLoader.from_data_loader(loader, generator=data_generator)
    sample_rate = 1.0 / len(dp_loader)
    dp_optimizer = GroupClippingOptimizer(
        optimizer,
        groups=groups,
        group_norms=group_norms(groups, max_grad_norm),
        noise_multiplier=noise_multiplier,
        expected_batch_size=int(len(loader.dataset) * sample_rate),
        loss_reduction="mean",
        generator=noise_generator,
    )
    account = create_accountant(mechanism=accountant)
    dp_optimizer.attach_step_hook(account.get_optimizer_hook_fn(sample_rate=sample_rate))
    return PrivateTraining(module, dp_optimizer, dp_loader, account, sample_rate)


RELEASE_EPSILON_CAP = 4.0  # the releases' noise is set as for ε = min(ε, 4): see release_epsilon


def release_epsilon(epsilon: float) -> float:
    """The budget the small releases' noise multipliers (c / ε) are scaled for.

    Why capped: eight Gaussian mechanisms at c / ε compose, by the PRV accountant, to ε 0.68 of 1,
    3.21 of 4 and 9.66 of 10 (2,000 patients): their zCDP cost grows as ε², so above ε = 4 they
    took nearly all of the budget and DP-SGD's noise *rose* with ε (3.55 at ε = 4, 4.03 at 10).
    At ε = 4 they are already precise; above it the rest of the budget goes to DP-SGD. The
    outcome heads are the exception (``outcome_head.outcome_sigma``).
    """
    return min(epsilon, RELEASE_EPSILON_CAP)


def clip_rows(rows: np.ndarray, clip: float) -> np.ndarray:
    """Each per-patient row scaled down to l2 norm at most ``clip``."""
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows * np.minimum(1.0, clip / np.maximum(norms, 1e-12))


def gaussian_sum(rows: np.ndarray, clip: float, sigma: float, gen: torch.Generator) -> np.ndarray:
    """The Gaussian mechanism on per-patient rows: Σ rows (each scaled to l2 norm at most
    ``clip``) plus N(0, (sigma·clip)²) noise per entry; its cost is one accountant step of
    noise multiplier ``sigma`` at sampling rate 1. ``sigma = 0``: the exact sum."""
    rows = clip_rows(rows, clip)
    noise = torch.normal(0.0, max(sigma * clip, 1e-30), size=(rows.shape[1],), generator=gen)
    return rows.sum(axis=0) + noise.double().numpy()


def shrink_to_noise(estimate: np.ndarray, sd: np.ndarray | float) -> np.ndarray:
    """``estimate`` of a released quantity, each entry shrunk towards 0 by its noise ``sd``
    (factor ``1 - (2 sd / estimate)²``, at least 0): entries the noise could have made are
    dropped instead of acted on; ``sd = 0`` keeps the estimate."""
    floor = 1e-24  # an exact 0 stays 0
    return estimate * np.clip(1.0 - (2.0 * sd) ** 2 / np.maximum(estimate**2, floor), 0.0, 1.0)
