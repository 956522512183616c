"""Calibration targets (two DP releases) and the calibration of a model to them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clinsynth.generator import calibration
from clinsynth.generator.encoding import Encoding
from clinsynth.generator.model import ModelConfig, StayModel
from clinsynth.generator.sampling import sample_raw
from clinsynth.grid import to_grid
from clinsynth.simulate import simulate_cohort


@pytest.fixture(scope="module")
def data() -> tuple[Encoding, np.ndarray, np.ndarray, np.ndarray, list]:
    cohort = simulate_cohort(300, seed=5)
    enc = Encoding.from_schema(cohort.schema)
    x, m = enc.encode_series(enc.dequantise(to_grid(cohort).values, np.random.default_rng(0)))
    numeric = np.array([v.kind == "gauss" for v in enc.variables])
    return enc, x, m, numeric, enc.encode_statics(to_grid(cohort).statics)


def _release(enc, x, m, codes, sigma: float) -> calibration.Targets:
    return calibration.release_targets(x, m, codes, enc, torch.Generator().manual_seed(0), sigma)


def test_exact_release_is_the_cohorts_rates_and_autocorrelation(data) -> None:
    enc, x, m, numeric, codes = data
    targets = _release(enc, x, m, codes, 0.0)
    assert np.allclose(targets.rates, np.clip(m.mean(axis=(0, 1)), 1e-4, 1 - 1e-4))
    # a frequently measured vital has a strong, defined lag-1 autocorrelation; no binary does
    hr = [v.name for v in enc.variables].index("HR")
    assert 0.3 < targets.lag1[hr] < 1.0
    assert np.isnan(targets.lag1[~numeric]).all()
    assert targets.rate_noise_sd == 0.0
    death = (codes[:, enc.n_static] == 1).mean()
    assert targets.outcome_rates[0][1] == pytest.approx(death, abs=1e-3)  # floor on classes


def test_noisy_release_is_close_and_drops_unreliable_lag_targets(data) -> None:
    enc, x, m, _, codes = data
    exact = _release(enc, x, m, codes, 0.0)
    noisy = _release(enc, x, m, codes, 3.0)
    assert noisy.rate_noise_sd == pytest.approx(3.0 * calibration.RATES_CLIP / len(x))
    assert np.abs(noisy.rates - exact.rates).max() < 6 * noisy.rate_noise_sd
    assert not np.array_equal(noisy.rates, exact.rates)
    # with 300 patients and σ = 3 some sparse variables lose their lag-1 target
    assert np.isnan(noisy.lag1).sum() > np.isnan(exact.lag1).sum()
    round_trip = calibration.Targets.from_dict(noisy.to_dict())
    assert np.array_equal(round_trip.rates, noisy.rates)
    assert np.array_equal(np.isnan(round_trip.lag1), np.isnan(noisy.lag1))


def test_calibration_moves_an_untrained_model_onto_the_targets(data) -> None:
    """An untrained model measures almost nothing; calibration must bring every variable's rate
    to its target and move lag-1 autocorrelation towards an (artificial) target of 0.9."""
    enc, _, _, numeric, _ = data
    torch.manual_seed(0)
    model = StayModel(enc, ModelConfig(hidden=8, n_blocks=1, n_mix=2)).eval()
    rates = np.linspace(0.05, 0.6, enc.n_variables)
    lag1 = np.where(numeric, 0.9, np.nan)
    targets = calibration.Targets(rates, lag1, 0.0, [])
    before = sample_raw(model, enc, 400, seed=1).m.mean(axis=(0, 1))
    gaps = calibration.calibrate(model, enc, targets, seed=3, n=400, rounds=8)
    after = np.abs(sample_raw(model, enc, 400, seed=99).m.mean(axis=(0, 1)) - rates)
    assert np.abs(before - rates).max() > 0.3
    # from this far away (and with bursty measurement: 400 stays leave ~2 pp of Monte Carlo
    # noise per variable) the worst variable is within a few points, the typical one within 1
    assert after.max() < 0.06
    assert after.mean() < 0.015
    assert gaps["rate_pp"][-1] < gaps["rate_pp"][0] / 5
    assert gaps["lag1"][-1] < gaps["lag1"][0]
    # deterministic: the same seeds give the same calibrated model
    torch.manual_seed(0)
    twin = StayModel(enc, ModelConfig(hidden=8, n_blocks=1, n_mix=2)).eval()
    calibration.calibrate(twin, enc, targets, seed=3, n=400, rounds=8)
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)
