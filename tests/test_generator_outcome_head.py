"""The outcome heads' own DP fit (full-batch, clipped, noised gradient descent)."""

from __future__ import annotations

import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from clinsynth.generator import outcome_head
from clinsynth.generator.model import ModelConfig, StayModel
from clinsynth.generator.synthesizer import SequenceSynthesizer
from clinsynth.generator.training import TrainingConfig, train
from clinsynth.simulate import simulate_cohort


@pytest.fixture(scope="module")
def setup():
    cohort = simulate_cohort(600, seed=8)
    synth = SequenceSynthesizer(cohort.schema, hidden=8, n_blocks=1, n_mix=2)
    return synth, synth._tensors(cohort)


def _death_auroc(model: StayModel, synth: SequenceSynthesizer, tensors) -> float:
    k = synth.encoding.n_static  # the first outcome field: in-hospital death
    logits = model.fields.logits(k, tensors[2], tensors[6])
    return roc_auc_score(tensors[3][:, k].numpy() == 1, logits[:, 1].detach().numpy())


@pytest.mark.parametrize("sigma", [0.0, outcome_head.outcome_sigma(4.0)])
def test_fitted_head_ranks_deaths(setup, sigma: float) -> None:
    """Simulated deaths follow the trajectory; the fitted head must rank them (noise-free and
    at the default budget's noise on 600 patients), where the untrained head is at chance."""
    synth, tensors = setup
    torch.manual_seed(0)
    model = StayModel(synth.encoding, ModelConfig(hidden=8, n_blocks=1, n_mix=2))
    gen = torch.Generator().manual_seed(1)
    outcome_head.fit_outcome_heads(
        model, synth.encoding, tensors[2], tensors[3], tensors[6], sigma, gen
    )
    assert _death_auroc(model, synth, tensors) > (0.75 if sigma == 0 else 0.6)


def test_dp_fit_is_not_wildly_over_confident(setup) -> None:
    """At the default budget's noise, the logits on other simulated stays must keep a
    calibration slope (real outcome on logit; 1 = calibrated) well above what a long noisy run
    gives: 200 steps at the same cost were measured at 0.05-0.07 here, 50 steps at 0.14-0.24."""
    synth, tensors = setup
    other = synth._tensors(simulate_cohort(600, seed=9))
    torch.manual_seed(0)
    model = StayModel(synth.encoding, ModelConfig(hidden=8, n_blocks=1, n_mix=2))
    sigma = outcome_head.outcome_sigma(4.0)
    gen = torch.Generator().manual_seed(1)
    outcome_head.fit_outcome_heads(
        model, synth.encoding, tensors[2], tensors[3], tensors[6], sigma, gen
    )
    k = synth.encoding.n_static
    with torch.no_grad():
        logits = model.fields.logits(k, other[2], other[6])
    logit = (logits[:, 1] - logits[:, 0]).numpy().reshape(-1, 1)
    died = other[3][:, k].numpy() == 1
    slope = LogisticRegression(C=1e6).fit(logit, died).coef_[0, 0]
    assert slope > 0.12


def test_noise_changes_the_fit_and_is_seeded(setup) -> None:
    synth, tensors = setup
    sigma = outcome_head.outcome_sigma(4.0)
    weights = []
    for noise_seed in (1, 1, 2):
        torch.manual_seed(0)
        model = StayModel(synth.encoding, ModelConfig(hidden=8, n_blocks=1, n_mix=2))
        outcome_head.fit_outcome_heads(
            model, synth.encoding, tensors[2], tensors[3], tensors[6], sigma,
            torch.Generator().manual_seed(noise_seed),
        )  # fmt: skip
        weights.append(model.fields.heads[synth.encoding.n_static].weight.clone())
    assert torch.equal(weights[0], weights[1])
    assert not torch.equal(weights[0], weights[2])


def test_dp_sgd_leaves_the_outcome_heads_alone(setup) -> None:
    """The heads are paid for by their own mechanism: DP-SGD must not also train them."""
    synth, tensors = setup
    torch.manual_seed(0)
    model = StayModel(synth.encoding, ModelConfig(hidden=8, n_blocks=1, n_mix=2))
    head = model.fields.heads[synth.encoding.n_static]
    before = [p.clone() for p in head.parameters()]
    other = model.mask_head.bias.clone()
    config = TrainingConfig(
        epochs=1, batch_size=100, learning_rate=3e-3, max_grad_norm=1.0, epsilon=4.0,
        delta=1e-4, dp=True, accountant="rdp", seed=0,
    )  # fmt: skip
    train(model, tensors, config)
    assert all(torch.equal(a, b) for a, b in zip(before, head.parameters(), strict=True))
    assert not torch.equal(other, model.mask_head.bias)
    assert torch.isfinite(model.mask_head.bias).all()
