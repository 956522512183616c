"""The DP release of how the statics and the severity score move each variable, and its start."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from clinsynth.generator import effects
from clinsynth.generator.encoding import Encoding
from clinsynth.generator.features import teacher_forced_features
from clinsynth.generator.model import ModelConfig, StayModel
from clinsynth.schema import load_schema

N, T = 4000, 6


def _stays(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two correlated inputs (an age-like one and a score-like one, correlation 0.6) and three
    numeric variables: A moves with the age only (+1.0 per unit), B with the score only (-1.5
    per unit), C with neither but is measured mostly in the stays with a high score (a lab
    ordered for sick patients must not get an effect from who has it)."""
    age = rng.normal(0.0, 1.0, N)
    score = 0.6 * age + 0.8 * rng.normal(0.0, 1.0, N)
    z = np.stack([age, score], axis=1)
    x = np.zeros((N, T, 3))
    m = np.ones((N, T, 3))
    x[:, :, 0] = 1.0 * age[:, None] + rng.normal(0, 0.5, (N, T))
    x[:, :, 1] = -1.5 * score[:, None] + rng.normal(0, 0.5, (N, T))
    x[:, :, 2] = 2.0 + rng.normal(0, 0.5, (N, T))
    m[:, :, 2] = (score > 0.8)[:, None]
    return x, m, z


def _measured(m: np.ndarray) -> np.ndarray:
    return (m.sum(axis=1) > 0).sum(axis=0).astype(float)


def test_exact_release_recovers_each_input_effect_without_double_counting() -> None:
    """Correlated inputs: a variable moved by one of them gets no effect from the other (a
    per-input slope would give the age an effect on B through its correlation with the score)."""
    x, m, z = _stays(np.random.default_rng(0))
    released = effects.release_effects(x, m, z, [0, 1, 2], torch.Generator(), sigma=0.0)
    beta = effects.coefficients(released, _measured(m))
    # (a little below the truth: levels are clipped at ±4 units, and the ridge)
    assert beta[:, 0] == pytest.approx([1.0, 0.0], abs=0.15)
    assert beta[:, 1] == pytest.approx([0.0, -1.5], abs=0.15)
    assert np.abs(beta[:, 2]).max() < 0.1  # the rare lab: who has it is not an effect


def test_noisy_effects_are_shrunk_not_invented() -> None:
    """Under noise the real effects are kept (shrunk, not inflated) and the null ones stay near
    0, also for the rare variable whose stays are different from the average."""
    x, m, z = _stays(np.random.default_rng(1))
    betas = []
    for seed in range(10):
        gen = torch.Generator().manual_seed(seed)
        released = effects.release_effects(x, m, z, [0, 1, 2], gen, sigma=2.0)
        betas.append(effects.coefficients(released, _measured(m)))
    betas = np.array(betas)  # [seeds, inputs, variables]
    nulls = np.concatenate([betas[:, 1, 0], betas[:, 0, 1], betas[:, :, 2].ravel()])
    assert np.abs(nulls).mean() < 0.15 and np.abs(nulls).max() < 0.6
    assert np.all((betas[:, 0, 0] > 0.5) & (betas[:, 0, 0] < 1.1))
    assert np.all((betas[:, 1, 1] < -0.75) & (betas[:, 1, 1] > -1.65))


def _first_value_means(encoding: Encoding, model: StayModel, codes: np.ndarray) -> np.ndarray:
    """Expected first value ``[len(codes), V]`` of each variable for stays with these codes."""
    cond = torch.from_numpy(encoding.static_condition(codes))
    nothing = torch.zeros(len(codes), T, encoding.n_variables)
    per_var, glob = teacher_forced_features(
        nothing, nothing, *(torch.tensor(a) for a in encoding.input_maps())
    )
    with torch.no_grad():
        out = model.parallel_outputs(per_var, glob, cond)[:, 0, :, 1:]
        zeros = torch.zeros(len(codes), encoding.n_variables)
        logw, mu, _ = model.mixture(out, per_var[:, 0], zeros)
    return (logw.exp() * mu).sum(-1).numpy()


def test_initialised_model_moves_first_values_by_the_released_effects() -> None:
    """Stays whose statics differ start each numeric variable apart by Σ coefficient × input
    gap (against the same model started with no effects: the network's own part cancels)."""
    encoding = Encoding.from_schema(load_schema("icu_sim"))
    numeric = encoding.indices("gauss")
    statics = np.array([[40.0, 1.0, 170.0, 2.0, 70.0, 0.0], [80.0, 1.0, 170.0, 2.0, 90.0, 0.0]])
    codes = encoding.encode_statics(statics, np.array([-1.0, 3.0]))
    z = effects.regression_inputs(encoding, encoding.static_condition(codes))
    rng = np.random.default_rng(3)
    beta = rng.normal(0.0, 0.5, (z.shape[1], encoding.n_variables))
    n = 100.0
    released = effects.Effects(  # sums of a cohort whose inputs are uncorrelated, unit variance
        products=beta * n / effects.LEVEL_CLIP,
        levels=np.zeros(encoding.n_variables),
        inputs_where=np.zeros_like(beta),
        inputs=np.zeros(z.shape[1]),
        gram=np.eye(z.shape[1]) * n,
        n=int(n),
        noise_sd=0.0,
    )
    measured = np.full(encoding.n_variables, n)
    expected = beta / (1.0 + effects.RIDGE)  # (missing flags have input 0: no effect)
    assert np.allclose(effects.coefficients(released, measured), expected)
    starts = []
    for sums in (released, replace(released, products=np.zeros_like(beta))):
        torch.manual_seed(0)
        model = StayModel(encoding, ModelConfig(hidden=8, n_blocks=1, n_mix=2)).eval()
        effects.initialise(model, encoding, sums, measured)
        starts.append(_first_value_means(encoding, model, codes))
    moved = (starts[0][1] - starts[0][0]) - (starts[1][1] - starts[1][0])
    assert np.allclose(moved[numeric], ((z[1] - z[0]) @ expected)[numeric], atol=1e-4)


def test_inputs_are_scaled_publicly_and_missing_flags_left_out() -> None:
    """Numeric statics back in normal-range units (×3), binary and one-hot columns as they are,
    every "missing" column 0: the scale depends on the schema alone."""
    encoding = Encoding.from_schema(load_schema("icu_sim"))
    scale = effects.input_scale(encoding)
    fields = encoding.statics[: encoding.n_static]
    for off, f in zip(encoding.cond_offsets(), fields, strict=False):
        if f.kind == "categorical":
            assert np.all(scale[off : off + f.missing_class] == 1.0)
            assert scale[off + f.missing_class] == 0.0
        else:
            assert scale[off] == (3.0 if f.kind == "numeric" else 1.0)
            assert scale[off + 1] == 0.0
    assert len(scale) == encoding.static_cond_width
