"""The outcome heads, fitted on their own by full-batch DP gradient descent.

The outcome model is a multinomial logistic regression over the statics and a whole-stay
summary (:func:`clinsynth.generator.features.stay_summary`): a few hundred weights, one label per
patient. Trained jointly inside DP-SGD it gets a small share of the clipping norm and the same
per-coordinate noise as the network's ~10^5 weights, at a batch of ~125 patients; its direction
stays noisy and the synthetic outcome relates only loosely to the synthetic stay. Fitted
separately — every patient in every step (sampling rate 1), per-patient gradients clipped to
:data:`CLIP`, Gaussian noise on the sum — the same privacy cost buys an estimate several times
less noisy. The accountant composes these ``STEPS`` steps with the rest of the training.

Few steps, each less noisy, beat many noisy ones at the same privacy cost: ``k`` Gaussian steps
of noise ``σ`` cost what one step of ``σ/√k`` does, but the iterates of a long run random-walk
along the noise, which inflates the logits (an over-confident outcome model) and blurs their
direction. Measured on PhysioNet 2012 (one trained ε = 4 series model, the heads re-fitted with
4 noise seeds, 2,000 synthetic stays each; ``benchmarks/generate_physionet.md``): 200 steps at
30 per step gave AUROC 0.729 on real held-out stays, a logit calibration slope there of 0.20
(1 = calibrated) and TSTR 0.710; 50 steps at 15 per step (the same cost) 0.758, 0.49 and 0.729.

Closed-form per-patient gradients (``(softmax - one_hot) ⊗ input``) make this a few seconds of
work; it runs after DP-SGD, which leaves the heads untouched.
"""

from __future__ import annotations

import torch

from clinsynth.generator.encoding import Encoding
from clinsynth.generator.model import StayModel

STEPS = 50  # full-batch gradient steps under DP noise
NOISE_FREE_STEPS = 200  # without DP (dp=False) nothing argues for few steps: 50 under-fit there
# (PhysioNet, one ε = 4 series model: noise-free TSTR 0.712-0.735 with 50, 0.742-0.757 with 200)
CLIP = 1.0  # l2 bound of one patient's gradient (all outcome heads together)
LEARNING_RATE = 4.0  # on the mean gradient; inputs are scaled to norm ~2-3
SIGMA_TIMES_EPS = 60.0  # noise multiplier per step 60/ε: 15 at ε = 4, i.e. ~2.1 over the 50
# steps together (15/√50); raises the DP-SGD noise by ~14% (2.52 → 2.87 at ε = 4)
MOMENTUM = 0.8  # heavy ball: plain gradient steps under-fit in so few steps


def outcome_sigma(epsilon: float) -> float:
    """Noise multiplier of each of the :data:`STEPS` full-batch steps for a total budget ε.

    Not capped at ε = 4 like the other releases (``dp.release_epsilon``): the heads decide the
    synthetic outcome, and at ε = 10 their c / ε noise costs DP-SGD little (its noise 1.38
    against 1.21 capped; capped, TSTR fell from 0.770 to 0.751 on one run)."""
    return SIGMA_TIMES_EPS / epsilon


def _inputs(model: StayModel, k: int, cond: torch.Tensor, summary: torch.Tensor) -> torch.Tensor:
    """What head ``k`` reads (as in ``FieldHeads.logits``), plus a 1 for its bias."""
    ones = torch.ones(cond.shape[0], 1, dtype=cond.dtype, device=cond.device)
    return torch.cat([ones, cond[:, : model.fields.offsets[k]], summary, ones], dim=1)


@torch.no_grad()
def fit_outcome_heads(
    model: StayModel,
    encoding: Encoding,
    cond: torch.Tensor,
    codes: torch.Tensor,
    summary: torch.Tensor,
    sigma: float,
    gen: torch.Generator,
) -> None:
    """Gradient descent on the outcome heads' summed cross-entropy, DP when ``sigma > 0``.

    ``cond``, ``codes`` and ``summary`` are the training patients' (earlier outcome fields are
    teacher forced, as in training). Starts from zero weights and the heads' current biases
    (the prior release sets them to the released class rates). The fitted weights are the mean
    of the last half of the iterates.
    """
    fields = range(encoding.n_static, len(encoding.statics))
    heads = [model.fields.heads[k] for k in fields]
    inputs = [_inputs(model, k, cond, summary) for k in fields]
    targets = [torch.nn.functional.one_hot(codes[:, k], h.out_features).to(cond.dtype)
               for k, h in zip(fields, heads, strict=True)]  # fmt: skip
    for h in heads:
        h.weight.zero_()
    n = cond.shape[0]
    steps = STEPS if sigma > 0 else NOISE_FREE_STEPS
    average_from = steps // 2
    sums = [[torch.zeros_like(h.weight), torch.zeros_like(h.bias)] for h in heads]
    velocity = [h.weight.new_zeros(h.out_features, h.in_features + 1) for h in heads]
    for step in range(steps):
        errors = []
        for h, x, y in zip(heads, inputs, targets, strict=True):
            logits = x[:, :-1] @ h.weight.T + h.bias
            errors.append(torch.softmax(logits, dim=1) - y)
        # per-patient gradient of head j is errors_j ⊗ inputs_j: squared norm is the product
        sq = sum(e.pow(2).sum(1) * x.pow(2).sum(1) for e, x in zip(errors, inputs, strict=True))
        factor = (CLIP / (sq.sqrt() + 1e-12)).clamp(max=1.0)
        for h, x, e, vel in zip(heads, inputs, errors, velocity, strict=True):
            grad = (e * factor.unsqueeze(1)).T @ x  # [classes, inputs + 1]
            if sigma > 0:
                noise = torch.normal(0.0, sigma * CLIP, grad.shape, generator=gen)
                grad = grad + noise.to(grad)  # the generator is on the CPU, grad may not be
            vel.mul_(MOMENTUM).add_(grad / n)  # heavy ball: post-processing of the noisy sums
            h.weight -= LEARNING_RATE * vel[:, :-1]
            h.bias -= LEARNING_RATE * vel[:, -1]
        if step >= average_from:
            for (w_sum, b_sum), h in zip(sums, heads, strict=True):
                w_sum += h.weight
                b_sum += h.bias
    for (w_sum, b_sum), h in zip(sums, heads, strict=True):  # iterate averaging: post-processing
        h.weight.copy_(w_sum / (steps - average_from))  # that averages the noise of late steps
        h.bias.copy_(b_sum / (steps - average_from))
