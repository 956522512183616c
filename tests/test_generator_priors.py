"""The DP statistics release that initialises the generator, and its privacy accounting."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from opacus.accountants import create_accountant

from clinsynth.generator import priors
from clinsynth.generator.encoding import Encoding
from clinsynth.generator.features import teacher_forced_features
from clinsynth.generator.model import ModelConfig, StayModel
from clinsynth.generator.training import noise_multiplier
from clinsynth.grid import to_grid
from clinsynth.simulate import simulate_cohort


@pytest.fixture(scope="module")
def data() -> tuple[Encoding, np.ndarray, np.ndarray, np.ndarray]:
    cohort = simulate_cohort(300, seed=4)
    enc = Encoding.from_schema(cohort.schema)
    grid = to_grid(cohort)
    x, m = enc.encode_series(grid.values)
    return enc, x, m, enc.encode_statics(grid.statics)


def test_exact_release_initialises_first_hour_and_persistence(data) -> None:
    """With exact sums the initial model reproduces the cohort's first-hour measurement rate
    and its rate of re-measurement right after a measurement, variable by variable."""
    enc, x, m, codes = data
    released = priors.release(x, m, codes, enc, torch.Generator().manual_seed(0), sigma=0.0)
    torch.manual_seed(0)
    model = StayModel(enc, ModelConfig(hidden=8, n_blocks=1, n_mix=2))
    priors.initialise(model, released, enc)
    xt, mt = torch.from_numpy(x), torch.from_numpy(m)
    scale, shift = (torch.tensor(a) for a in enc.input_maps())
    per_var, glob = teacher_forced_features(xt, mt, scale, shift)
    cond = torch.from_numpy(enc.static_condition(codes))
    with torch.no_grad():
        p = torch.sigmoid(model.parallel_outputs(per_var, glob, cond)[..., 0]).numpy()
    common = m.mean(axis=(0, 1)) > 0.2
    assert common.sum() >= 5
    # first hour: predicted probability vs observed rate
    assert np.allclose(p[:, 0].mean(0)[common], m[:, 0].mean(0)[common], atol=0.06)
    # after a measurement at t-1 (the init ignores the network's small random part)
    prev = np.zeros_like(m, dtype=bool)
    prev[:, 1:] = m[:, :-1] > 0
    for v in np.flatnonzero(common):
        sel = prev[:, :, v]
        assert abs(p[:, :, v][sel].mean() - m[:, :, v][sel].mean()) < 0.08
    outcome_rate = (codes[:, enc.n_static] == 1).mean()
    head = model.fields.heads[enc.n_static]
    assert torch.softmax(head.bias, 0)[1].item() == pytest.approx(outcome_rate, abs=0.01)


def test_noisy_release_is_noisy_and_seeded(data) -> None:
    enc, x, m, codes = data
    a = priors.release(x, m, codes, enc, torch.Generator().manual_seed(1))
    b = priors.release(x, m, codes, enc, torch.Generator().manual_seed(1))
    exact = priors.release(x, m, codes, enc, torch.Generator().manual_seed(1), sigma=0.0)
    assert np.array_equal(a.mask, b.mask)
    spread = np.std(a.mask - exact.mask)
    assert 0.5 * priors.SIGMA * priors.CLIP < spread < 2 * priors.SIGMA * priors.CLIP


def test_one_patient_moves_the_sums_by_at_most_the_clip(data) -> None:
    enc, x, m, codes = data
    rows = priors.patient_vectors(x, m, codes, enc)
    clipped = rows * np.minimum(1.0, priors.CLIP / np.linalg.norm(rows, axis=1, keepdims=True))
    assert np.linalg.norm(clipped, axis=1).max() <= priors.CLIP + 1e-9


def test_training_noise_is_solved_with_the_release_included() -> None:
    prior = ((priors.SIGMA, 1.0, 1),)
    args = (4.0, 1e-4, 0.1, 300, "rdp")
    alone, both = noise_multiplier(*args), noise_multiplier(*args, prior)
    assert both > alone  # the release costs some budget ...
    acc = create_accountant(mechanism="rdp")
    acc.history = [*prior, (both, 0.1, 300)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eps = acc.get_epsilon(delta=1e-4)
    assert 3.9 < eps <= 4.0  # ... and the composition lands on the target
