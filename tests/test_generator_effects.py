"""The hidden severity score: its DP release of per-variable slopes and the start it gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clinsynth.generator import severity
from clinsynth.generator.encoding import Encoding
from clinsynth.generator.features import teacher_forced_features
from clinsynth.generator.model import ModelConfig, StayModel
from clinsynth.schema import load_schema

N, T = 2000, 6


def _stays(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two numeric variables whose stay level moves with a known score: A by +1.5 per unit and
    measured in every stay; B not at all, but measured mostly in the sickest stays (a rare lab
    ordered for sick patients must not get a slope from who has it)."""
    scores = rng.normal(0.0, 1.0, N)
    x = np.zeros((N, T, 2))
    m = np.zeros((N, T, 2))
    x[:, :, 0] = 1.5 * scores[:, None] + rng.normal(0, 0.5, (N, T))
    m[:, :, 0] = 1.0
    x[:, :, 1] = 2.0 + rng.normal(0, 0.5, (N, T))
    m[:, :, 1] = (scores > 0.8)[:, None]
    return x, m, scores


def test_slopes_from_an_exact_release_recover_the_dependence() -> None:
    x, m, scores = _stays(np.random.default_rng(0))
    effects = severity.release_effects(x, m, scores, [0, 1], torch.Generator(), sigma=0.0)
    measured = (m.sum(axis=1) > 0).sum(axis=0).astype(float)
    beta = severity.slopes(effects, measured)
    assert beta[0] == pytest.approx(1.5, abs=0.15)
    assert abs(beta[1]) < 0.15


def test_noisy_slopes_are_shrunk_not_invented() -> None:
    """Under noise a real slope is kept (shrunk, not inflated) and a null one stays near 0 —
    also for the rare variable, whose stays are sicker than average."""
    x, m, scores = _stays(np.random.default_rng(1))
    measured = (m.sum(axis=1) > 0).sum(axis=0).astype(float)
    betas = []
    for seed in range(20):
        gen = torch.Generator().manual_seed(seed)
        effects = severity.release_effects(x, m, scores, [0, 1], gen, sigma=10.0)
        betas.append(severity.slopes(effects, measured))
    betas = np.array(betas)
    assert np.abs(betas[:, 1]).mean() < 0.15 and np.abs(betas[:, 1]).max() < 0.6
    assert np.all((betas[:, 0] > 0.75) & (betas[:, 0] < 1.65))


def _first_value_means(encoding: Encoding, beta: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Expected first value ``[len(scores), V]`` of each variable, for stays drawn at the given
    (standardised) scores, from a fresh model initialised with released slopes ``beta``."""
    n_var = encoding.n_variables
    effects = severity.Effects(
        products=beta * severity.PRODUCT_WEIGHT * 100.0 * severity.SCORE_CLIP / severity.LEVEL_CLIP,
        levels=np.zeros(n_var),
        scores=np.zeros(n_var),
        score=0.0,
        score_sq=100.0 * severity.SQUARE_WEIGHT,  # unit variance over n = 100 stays
        n=100,
        noise_sd=0.0,
    )
    measured = np.full(n_var, 100.0)
    assert np.allclose(severity.slopes(effects, measured), beta)
    torch.manual_seed(0)
    model = StayModel(encoding, ModelConfig(hidden=8, n_blocks=1, n_mix=2)).eval()
    rates = np.full(len(severity.EDGES), 1.0 / len(severity.EDGES))
    severity.initialise(model, encoding, effects, measured, rates)
    statics = np.array([[60.0, 1.0, 170.0, 2.0, 80.0, 0.0]] * len(scores))
    cond = torch.from_numpy(encoding.static_condition(encoding.encode_statics(statics, scores)))
    nothing = torch.zeros(len(scores), T, n_var)
    per_var, glob = teacher_forced_features(
        nothing, nothing, *(torch.tensor(a) for a in encoding.input_maps())
    )
    with torch.no_grad():
        out = model.parallel_outputs(per_var, glob, cond)[:, 0, :, 1:]
        logw, mu, _ = model.mixture(out, per_var[:, 0], torch.zeros(len(scores), n_var))
    return (logw.exp() * mu).sum(-1).numpy()


def test_initialised_model_moves_first_values_with_the_score() -> None:
    """A stay drawn for a higher score starts each variable higher by slope × score gap (net of
    what the untrained network does with the score anyway)."""
    encoding = Encoding.from_schema(load_schema("icu_sim"))
    numeric = encoding.indices("gauss")
    beta = np.linspace(-1.0, 1.0, encoding.n_variables)
    scores = np.array([-1.0, 3.0])  # bins 2 and 10
    with_slopes = _first_value_means(encoding, beta, scores)
    without = _first_value_means(encoding, np.zeros_like(beta), scores)
    mids = (severity.EDGES[[2, 10]] + severity.EDGES[[3, 11]]) / 2
    moved = (with_slopes[1] - with_slopes[0]) - (without[1] - without[0])
    assert np.allclose(moved[numeric], beta[numeric] * (mids[1] - mids[0]), atol=1e-4)
