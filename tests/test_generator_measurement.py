"""The DP release of how the statics move measurement intensity, and the calibration to it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from clinsynth.generator import calibration, effects, measurement, severity
from clinsynth.generator.encoding import Encoding
from clinsynth.generator.model import ModelConfig, StayModel
from clinsynth.generator.sampling import sample_raw
from clinsynth.grid import to_grid
from clinsynth.simulate import simulate_cohort


def test_log_intensity_is_measurements_against_the_expected_count() -> None:
    m = np.zeros((3, 10, 1))
    m[1, :3, 0] = 1.0  # 3 measurements where 1 is expected: log((3 + 1) / (1 + 1))
    m[2, :, 0] = 1.0  # 10 where 1 is expected: log(11 / 2) = 1.7, under the clip
    q = measurement.log_intensity(m, np.array([0.1]))[:, 0] * measurement.INTENSITY_CLIP
    assert np.allclose(q, np.log([1 / 2, 4 / 2, 11 / 2]))
    rare = measurement.log_intensity(m, np.array([0.001]))[2, 0]  # log(11 / 1.01) > 2: clipped
    assert rare == 1.0


@pytest.fixture(scope="module")
def data() -> tuple[Encoding, np.ndarray, np.ndarray, np.ndarray, int, np.ndarray]:
    """A simulated cohort in which one lab is charted only for the older half of the stays: a
    strong dependence of measurement on a static for the calibration to reproduce."""
    cohort = simulate_cohort(300, seed=5)
    # creatinine alone, without the rest of its panel: sampled without panels (a panel's
    # followers take their lead's dependence on the statics: module panels)
    enc = replace(Encoding.from_schema(cohort.schema), mask_source=None)
    grid = to_grid(cohort)
    x, m = enc.encode_series(enc.dequantise(grid.values, np.random.default_rng(0)))
    scores = severity.score(x, m, enc.indices("gauss"))
    codes = enc.encode_statics(grid.statics, scores)
    z = effects.regression_inputs(enc, enc.static_condition(codes))
    age = 0  # the first conditioning column: the binned age
    lab = [v.name for v in enc.variables].index("Creatinine")
    m[z[:, age] < np.median(z[:, age]), :, lab] = 0.0
    k = enc.statics[enc.severity_index].n_classes
    score_rates = np.bincount(codes[:, enc.severity_index], minlength=k) + 1.0
    return (
        enc,
        m,
        z,
        np.clip(m.mean(axis=(0, 1)), 1e-4, 1 - 1e-4),
        lab,
        score_rates / sum(score_rates),
    )


def test_exact_release_is_the_clipped_mean_of_the_products_and_noise_shrinks(data) -> None:
    _, m, z, rates, lab, _ = data
    centre = z.mean(axis=0)
    exact = measurement.release(z, m, centre, rates, torch.Generator().manual_seed(0), 0.0)
    rows = measurement.products(z, centre, m, rates)
    expected = calibration.clip_rows(rows, measurement.CLIP).mean(axis=0).reshape(z.shape[1], -1)
    assert np.allclose(exact, expected)
    assert exact[0, lab] > 0.05  # older stays have the lab, younger ones do not
    assert np.allclose(exact, measurement.sampled(z, m, centre, rates))
    noisy = measurement.release(z, m, centre, rates, torch.Generator().manual_seed(0), 1.0)
    sd = 1.0 * measurement.CLIP / len(z)
    assert np.abs(noisy - exact).max() < 6 * sd
    kept = noisy != 0
    assert kept[0, lab] and not kept.all()  # the strong entry survives, weak ones go to 0
    assert np.abs(exact[~kept]).max() < 6 * sd


def test_calibration_reproduces_who_is_measured(data) -> None:
    """An untrained model measures the lab as often in young as in old stays; calibrated to the
    released products, the old ones get it far more often, and the rates stay on target."""
    enc, m, z, rates, lab, score_rates = data
    centre = z.mean(axis=0)
    target = measurement.release(z, m, centre, rates, torch.Generator().manual_seed(0), 0.0)
    no_lag = np.full(len(rates), np.nan)
    plain = calibration.Targets(rates, no_lag, 0.0, [], severity_rates=score_rates)
    targets = replace(plain, intensity=target, intensity_centre=centre)

    def calibrated() -> StayModel:  # on target rates first, as training leaves a model
        torch.manual_seed(0)
        model = StayModel(enc, ModelConfig(hidden=8, n_blocks=1, n_mix=2)).eval()
        severity.initialise_head(model, enc, score_rates)
        calibration.calibrate(model, enc, plain, seed=3, n=400, rounds=8)
        return model

    model = calibrated()
    gaps = calibration.calibrate(model, enc, targets, seed=3, n=400, rounds=8)
    assert len(gaps["intensity"]) == len(gaps["rate_pp"]) == calibration.INTENSITY_ROUNDS + 9
    # each round's gap is measured on 400 sampled stays (Monte Carlo noise ~0.02): on average
    # over the last rounds it is half the gap the calibration started from
    assert np.mean(gaps["intensity"][-3:]) < gaps["intensity"][0] / 2
    raw = sample_raw(model, enc, 400, seed=99, severity_rates=score_rates)
    zs = effects.regression_inputs(enc, enc.static_condition(raw.drawn))
    old = zs[:, 0] > np.median(zs[:, 0])
    has = raw.m[:, :, lab].sum(axis=1) > 0
    assert has[old].mean() > 2 * has[~old].mean()
    assert np.abs(raw.m.mean(axis=(0, 1)) - rates).max() < 0.06
    # deterministic: the same seeds give the same calibrated model
    twin = calibrated()
    calibration.calibrate(twin, enc, targets, seed=3, n=400, rounds=8)
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)


def test_targets_round_trip_and_older_models_have_no_intensity_target(data) -> None:
    _, m, z, rates, _, _ = data
    centre = z.mean(axis=0)
    target = measurement.release(z, m, centre, rates, torch.Generator().manual_seed(0), 3.0)
    targets = calibration.Targets(
        rates, np.full(len(rates), np.nan), 0.0, [], intensity=target, intensity_centre=centre
    )
    back = calibration.Targets.from_dict(targets.to_dict())
    assert np.array_equal(back.intensity, target)
    assert np.array_equal(back.intensity_centre, centre)
    old = targets.to_dict()
    del old["intensity"], old["intensity_centre"]
    assert calibration.Targets.from_dict(old).intensity is None
