"""DP-SGD training of a :class:`StayModel` with opacus (per-patient clipping, Poisson sampling).

One patient is one training example: its whole stay (statics, outcome, series) contributes one
loss term, so per-sample clipping bounds each patient's influence and the accountant's (ε, δ) is
patient-level. The noise multiplier is solved by opacus for the target ε given δ, the sampling rate
and the number of epochs; the achieved ε is read back from the same accountant afterwards.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, TensorDataset

from clinsynth.generator.dp import LR_SCALE, make_private
from clinsynth.generator.model import StayModel

ProgressFn = Callable[[int, int, float, float | None], None]
"""``progress(epoch_done, n_epochs, mean_loss, epsilon_spent_or_None)``."""


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int
    batch_size: int
    learning_rate: float
    max_grad_norm: float
    epsilon: float
    delta: float
    dp: bool = True
    accountant: str = "prv"
    seed: int = 0
    # Gaussian mechanisms run before training on the same data, as opacus accountant history
    # entries (noise_multiplier, sample_rate, steps); the training noise is solved with them in
    prior_mechanisms: tuple[tuple[float, float, int], ...] = ()


@dataclass
class TrainingResult:
    """Privacy accounting and loss curve of one training run (goes into the manifest)."""

    epsilon: float
    delta: float
    noise_multiplier: float | None
    sample_rate: float
    steps: int
    epochs: int
    losses: list[float]

    def to_dict(self) -> dict:
        return {
            "epsilon": self.epsilon,
            "delta": self.delta,
            "noise_multiplier": self.noise_multiplier,
            "sample_rate": self.sample_rate,
            "steps": self.steps,
            "epochs": self.epochs,
            "final_loss": self.losses[-1] if self.losses else None,
        }


def train(
    model: StayModel,
    tensors: tuple[torch.Tensor, ...],
    config: TrainingConfig,
    progress: ProgressFn | None = None,
) -> TrainingResult:
    """Fit ``model`` on the per-patient ``tensors`` (first dim = patients); returns the account."""
    data_gen = torch.Generator().manual_seed(config.seed)
    noise_gen = torch.Generator(device=tensors[0].device).manual_seed(config.seed + 1)
    loader = DataLoader(
        TensorDataset(*tensors), batch_size=config.batch_size, shuffle=True, generator=data_gen
    )
    for group, param in zip(model.clipping_groups(), model.parameters(), strict=True):
        if group == "outcomes":  # fitted on their own afterwards (module outcome_head)
            param.requires_grad_(False)
    optimizer, groups = _adam(model, config.learning_rate)
    private = None
    if config.dp:
        sigma = noise_multiplier(
            config.epsilon, config.delta, 1.0 / len(loader), config.epochs * len(loader),
            config.accountant, config.prior_mechanisms,
        )  # fmt: skip
        private = make_private(
            model,
            groups,
            optimizer,
            loader,
            noise_multiplier=sigma,
            max_grad_norm=config.max_grad_norm,
            accountant=config.accountant,
            data_generator=data_gen,
            noise_generator=noise_gen,
        )
        private.accountant.history.extend(config.prior_mechanisms)
        model, optimizer, loader = private.module, private.optimizer, private.loader
    steps_per_epoch = len(loader)
    total = config.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s / total, 1.0)))
    )
    losses: list[float] = []
    model.train()
    for epoch in range(config.epochs):
        epoch_loss, seen = 0.0, 0
        for batch in loader:
            optimizer.zero_grad(set_to_none=True)
            per_patient = model(*batch)
            # Poisson sampling can draw an empty batch: it still is a step of the mechanism
            # (noise is added and the accountant counts it), so it is taken, with a zero loss
            loss = per_patient.mean() if len(per_patient) else per_patient.sum()
            with warnings.catch_warnings():  # inputs need no gradient: opacus' hook says so
                warnings.simplefilter("ignore")
                loss.backward()
            optimizer.step()
            scheduler.step()
            epoch_loss += float(per_patient.detach().sum())
            seen += batch[0].shape[0]
        losses.append(epoch_loss / max(seen, 1))
        if progress is not None:
            eps = private.epsilon(config.delta) if private is not None else None
            progress(epoch + 1, config.epochs, losses[-1], eps)

    if private is None:
        return TrainingResult(
            math.inf, 0.0, None, 1.0 / steps_per_epoch, total, config.epochs, losses
        )
    return TrainingResult(
        epsilon=private.epsilon(config.delta),
        delta=config.delta,
        noise_multiplier=float(optimizer.noise_multiplier),
        sample_rate=1.0 / steps_per_epoch,
        steps=total,
        epochs=config.epochs,
        losses=losses,
    )


def _adam(model: StayModel, lr: float) -> tuple[torch.optim.Adam, list[str]]:
    """Adam with one parameter group per learning-rate scale; clipping group of each parameter
    in the optimiser's own order (which the DP optimiser iterates in).

    DP-SGD affords only a few hundred steps, so the few-parameter parts that must travel far
    from their initial values (the statics heads) take larger steps.
    """
    pairs = zip(model.named_parameters(), model.clipping_groups(), strict=True)
    named = [
        (group, _lr_tag(name, group), param)
        for (name, param), group in pairs
        if param.requires_grad  # frozen parts (the outcome heads) are not optimised here
    ]
    scales = sorted({LR_SCALE.get(tag, 1.0) for _, tag, _ in named})
    param_groups, order = [], []
    for scale in scales:
        members = [(g, p) for g, tag, p in named if LR_SCALE.get(tag, 1.0) == scale]
        param_groups.append({"params": [p for _, p in members], "lr": lr * scale})
        order += [g for g, _ in members]
    return torch.optim.Adam(param_groups), order


def _lr_tag(name: str, group: str) -> str:
    if "_local." in name:
        return "local"
    if group == "statics":
        return group
    return "bias" if name.endswith(".bias") else group


@functools.lru_cache(maxsize=64)
def noise_multiplier(
    epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    accountant: str,
    prior: tuple[tuple[float, float, int], ...] = (),
) -> float:
    """Smallest σ (within 0.5%) with ε(prior mechanisms + ``steps`` DP-SGD steps) <= ε.

    A bisection on the opacus accountant itself (as ``make_private_with_epsilon`` does), but
    with the earlier mechanisms in its history. Memoised: it takes seconds, and a refit with the
    same settings (determinism checks, benchmarks) needs the same σ.
    """
    from opacus.accountants import create_accountant

    def spent(sigma: float) -> float:
        acc = create_accountant(mechanism=accountant)
        acc.history = [*prior, (sigma, sample_rate, steps)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(acc.get_epsilon(delta=delta))

    low, high = 0.3, 2.0
    while spent(high) > epsilon:
        low, high = high, high * 2
        if high > 1e4:
            raise ValueError(f"cannot reach epsilon={epsilon} with delta={delta}")
    while high / low > 1.005:
        mid = (low + high) / 2
        low, high = (mid, high) if spent(mid) > epsilon else (low, mid)
    return high
