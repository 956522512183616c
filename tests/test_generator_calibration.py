"""Calibration targets (three DP releases) and the calibration of a model to them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from clinsynth.generator import calibration, effects, severity
from clinsynth.generator.encoding import Encoding, static_groups
from clinsynth.generator.features import EVER
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
    # spread: the mean over patients of each one's scaled within-stay squares (rows clipped as
    # released); a variable nobody has twice has no target
    idx = enc.indices("gauss")
    unit = calibration.within_stay_scales(enc, idx)
    charted = enc.charted(x, m)  # the values as charted
    expected = calibration._spread(charted, m, idx, targets.rates, unit)[idx]
    some = expected > 0
    assert some.sum() > 30
    assert np.allclose(targets.spread[idx][some], expected[some])
    assert np.isnan(targets.spread[~numeric]).all()
    assert 0.0 < targets.spread[hr] < 1.0


def test_within_stay_statistics_see_values_as_charted_not_as_dequantised() -> None:
    """Training spreads each charted value over its rounding interval; the lag-1 and spread
    releases undo that (and sampled stays are measured as exported), so rounding noise sits on
    both sides alike. The spread release with and without it differs for GCS (whole points)."""
    cohort = simulate_cohort(80, seed=3)
    enc = Encoding.from_schema(cohort.schema)
    values = to_grid(cohort).values
    x, m = enc.encode_series(enc.dequantise(values, np.random.default_rng(1)))
    exact, _ = enc.encode_series(values)
    assert not np.array_equal(x, exact)
    assert np.allclose(enc.charted(x, m), exact, rtol=0, atol=1e-3)  # float32 round trips
    idx = enc.indices("gauss")
    unit = calibration.within_stay_scales(enc, idx)
    gcs = [v.name for v in enc.variables].index("GCS")
    targets = calibration.release_targets(
        x, m, enc.encode_statics(to_grid(cohort).statics), enc, torch.Generator(), 0.0
    )
    expected, dequantised = (
        calibration._spread(v, m, idx, targets.rates, unit)[gcs] for v in (exact, x)
    )
    assert targets.spread[gcs] == pytest.approx(expected)
    assert targets.spread[gcs] != pytest.approx(dequantised)


def test_within_squares_are_deviations_from_the_patients_own_mean_per_expected_measurement():
    x = np.zeros((2, 4, 1))
    m = np.zeros((2, 4, 1))
    x[0, [0, 2], 0], m[0, [0, 2], 0] = [1.0, 3.0], 1.0  # mean 2, squared deviations 1 + 1
    x[1, 1, 0], m[1, 1, 0] = 5.0, 1.0  # one value: no spread
    rates = np.array([0.25])  # one measurement expected per 4-step stay
    assert np.allclose(calibration.within_squares(x, m, rates)[:, 0], [2.0, 0.0])
    assert calibration.within_squares(10 * x, m, rates)[0, 0] == calibration.SPREAD_CAP


def test_lag_sums_keep_a_wide_jump_that_the_spread_clips() -> None:
    """A sedated patient waking up (GCS 3 -> 15, 12 standardised units) is a deviation of ±6
    about their own mean: the lag-1 sums keep it whole, the spread clips it to ±3."""
    steps = 40
    x, m = np.zeros((1, steps, 1)), np.zeros((1, steps, 1))
    x[0, :4, 0], m[0, :4, 0] = [-6.0, -6.0, 6.0, 6.0], 1.0  # mean 0: deviations of ±6
    sums = calibration.lag1_sums(x, m)[0, 0] * (steps - 1)  # undo the division by T - 1
    assert np.allclose(sums, [36.0, 3 * 36.0, 3 * 36.0])  # 36 - 36 + 36: nothing clipped
    rates = np.array([1.0])  # 40 measurements expected
    squares = calibration.within_squares(x, m, rates)[0, 0]
    assert squares == pytest.approx(4 * calibration.SPREAD_Z_CLIP**2 / steps)  # 0.9, not 3.6
    assert squares < calibration.SPREAD_CAP


def test_a_variable_that_barely_moves_within_a_stay_is_released_in_its_own_unit(data) -> None:
    """Weight drifts by a few kg in a stay against a normal range ±25 kg wide: in standardised
    units its lag-1 and spread sums sit far below the noise and it gets no target; measured in
    the schema's ``within_stay_sd`` (3 kg) it gets both, close to the exact values."""
    enc, x, m, _, codes = data
    w = [v.name for v in enc.variables].index("Weight")
    assert enc.within_stay_scales[w] == pytest.approx(3.0 / 25.0)
    rng = np.random.default_rng(1)
    drift = np.zeros(x.shape[:2])
    for t in range(1, x.shape[1]):  # AR(1), φ = 0.9, stationary sd 3 kg (0.12 units)
        drift[:, t] = 0.9 * drift[:, t - 1] + rng.normal(0, 0.12 * np.sqrt(1 - 0.81), len(x))
    x, m = x.copy(), m.copy()
    x[..., w] = rng.normal(0.3, 0.8, (len(x), 1)) + drift  # every patient weighed hourly
    m[..., w] = 1.0
    no_unit = replace(enc, within_stay_scales=())
    exact = _release(enc, x, m, codes, 0.0)
    assert 0.8 < exact.lag1[w] < 0.95
    assert _release(no_unit, x, m, codes, 0.0).lag1[w] == pytest.approx(exact.lag1[w], abs=0.01)
    unscaled = _release(no_unit, x, m, codes, 3.0)
    assert np.isnan(unscaled.lag1[w]) and np.isnan(unscaled.spread[w])
    noisy = _release(enc, x, m, codes, 3.0)
    assert noisy.lag1[w] == pytest.approx(exact.lag1[w], abs=0.05)
    assert noisy.spread[w] == pytest.approx(exact.spread[w], rel=0.25)


def test_binned_statics_are_released_as_shares_of_groups_of_bins(data) -> None:
    """Age, height and weight (not the severity score, not the binary and categorical fields)
    get the exact shares of their groups of bins without noise; with noise, groups nobody is
    in keep almost nothing, so sampling cannot fill them."""
    enc, x, m, _, codes = data
    fields = calibration.binned_statics(enc)
    assert [enc.statics[k].name for k in fields] == ["Age", "Height", "Weight"]
    exact = _release(enc, x, m, codes, 0.0).static_rates
    assert all(r is None for k, r in enumerate(exact) if k not in fields)
    for k in fields:
        groups = static_groups(enc.statics[k].n_classes)
        expected = np.bincount(groups[codes[:, k]], minlength=groups.max() + 1) / len(codes)
        expected = np.clip(expected, calibration.MIN_RATE, None)
        assert np.allclose(exact[k], expected / expected.sum())
    noisy = _release(enc, x, m, codes, 3.0).static_rates
    for k in fields:
        groups = static_groups(enc.statics[k].n_classes)
        empty = np.bincount(groups[codes[:, k]], minlength=groups.max() + 1) == 0
        assert empty.any() and noisy[k][empty].sum() < 0.1
        assert noisy[k].sum() == pytest.approx(1.0)
    round_trip = calibration.Targets.from_dict(_release(enc, x, m, codes, 3.0).to_dict())
    assert all(np.array_equal(a, b) for a, b in zip(round_trip.static_rates, noisy, strict=True)
               if a is not None)  # fmt: skip
    old = _release(enc, x, m, codes, 3.0).to_dict()
    del old["static_rates"]  # a model saved before this release
    assert calibration.Targets.from_dict(old).static_rates is None


def test_static_groups_put_four_bins_together_and_missing_apart() -> None:
    groups = static_groups(41)
    assert groups[:8].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert groups[39] == 9 and groups[40] == 10  # the last bin's group; missing alone


def test_sampled_statics_follow_their_released_group_shares(data) -> None:
    """An untrained model spreads a static over all its bins; given group shares, its draws
    follow them group by group, and keep the model's shape within a group."""
    enc = replace(data[0], bounds=(), mask_source=None)
    torch.manual_seed(0)
    model = StayModel(enc, ModelConfig(hidden=8, n_blocks=1, n_mix=2)).eval()
    k = [f.name for f in enc.statics].index("Height")
    groups = static_groups(enc.statics[k].n_classes)
    target = np.full(groups.max() + 1, 1e-4)
    target[[4, 5]] = [0.7, 0.3]
    target /= target.sum()
    rates: list = [None] * enc.n_static
    rates[k] = target
    plain = sample_raw(model, enc, 2000, seed=4).codes[:, k]
    drawn = sample_raw(model, enc, 2000, seed=4, static_rates=rates).codes[:, k]
    share = np.bincount(groups[drawn], minlength=len(target)) / len(drawn)
    assert np.abs(share - target).max() < 0.03
    assert np.bincount(groups[plain], minlength=len(target))[[4, 5]].sum() < 0.7 * len(plain)
    in_four = drawn[groups[drawn] == 4]
    assert len(np.unique(in_four)) > 1  # the model's shape inside the group, not one bin


def test_noisy_release_is_close_and_drops_unreliable_lag_targets(data) -> None:
    enc, x, m, _, codes = data
    exact = _release(enc, x, m, codes, 0.0)
    noisy = _release(enc, x, m, codes, 3.0)
    assert noisy.rate_noise_sd == pytest.approx(3.0 * calibration.RATES_CLIP / len(x))
    assert np.abs(noisy.rates - exact.rates).max() < 6 * noisy.rate_noise_sd
    assert not np.array_equal(noisy.rates, exact.rates)
    # with 300 patients and σ = 3 some sparse variables lose their lag-1 target
    assert np.isnan(noisy.lag1).sum() > np.isnan(exact.lag1).sum()
    kept = ~np.isnan(noisy.spread)
    assert kept.any() and np.isnan(noisy.spread).sum() >= np.isnan(exact.spread).sum()
    spread_sd = calibration.SPREAD_NOISE * 3.0 * calibration.SPREAD_CLIP / len(x)
    assert np.abs(noisy.spread[kept] - exact.spread[kept]).max() < 6 * spread_sd
    round_trip = calibration.Targets.from_dict(noisy.to_dict())
    assert np.array_equal(round_trip.rates, noisy.rates)
    assert np.array_equal(np.isnan(round_trip.lag1), np.isnan(noisy.lag1))
    assert np.array_equal(round_trip.spread[kept], noisy.spread[kept])
    # a model saved before the spread release loads without a spread target
    old = noisy.to_dict()
    del old["spread"]
    assert calibration.Targets.from_dict(old).spread is None


def _spread(enc: Encoding, raw, rates: np.ndarray) -> np.ndarray:
    """Sampled stays' spread per numeric variable, as exported (charted) and with rows clipped
    as the release clips them: what calibration measures."""
    idx = enc.indices("gauss")
    unit = calibration.within_stay_scales(enc, idx)
    return calibration._spread(enc.charted(raw.x, raw.m), raw.m, idx, rates, unit)[idx]


def test_calibration_moves_an_untrained_model_onto_the_targets(data) -> None:
    """An untrained model measures almost nothing; calibration must bring every variable's rate
    to its target and move lag-1 autocorrelation towards an (artificial) target of 0.9 and the
    within-stay spread towards (artificial) targets from 0.05 to 0.5.

    The targets are set per variable without regard to the schema's rules and panels (cuff
    diastolic pressure is given more spread than systolic, partners of one panel different
    rates), so the sampler here ignores them: the rules would make some targets unreachable.
    The calibration of the full sampler is measured on real data in the generator benchmark."""
    enc, _, _, numeric, _ = data
    # the artificial spread targets are in standardised units for every variable
    enc = replace(enc, bounds=(), mask_source=None, within_stay_scales=())
    torch.manual_seed(0)
    model = StayModel(enc, ModelConfig(hidden=8, n_blocks=1, n_mix=2)).eval()
    rates = np.linspace(0.05, 0.6, enc.n_variables)
    lag1 = np.where(numeric, 0.9, np.nan)
    spread = np.where(numeric, np.linspace(0.05, 0.5, enc.n_variables), np.nan)
    targets = calibration.Targets(rates, lag1, 0.0, [], spread=spread)
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
    # spread: from ~20 times the target variance to within a factor 1.8 (sd 1.35) everywhere;
    # half-log-ratio steps under-shoot, and the rates move the measure in the first rounds
    assert gaps["spread_log_ratio"][0] > 2.0
    assert gaps["spread_log_ratio"][-1] < gaps["spread_log_ratio"][0] / 4
    after_spread = _spread(enc, sample_raw(model, enc, 400, seed=98), rates)
    idx = enc.indices("gauss")
    assert np.abs(np.log(after_spread / spread[idx])).max() < 0.6
    # deterministic: the same seeds give the same calibrated model
    torch.manual_seed(0)
    twin = StayModel(enc, ModelConfig(hidden=8, n_blocks=1, n_mix=2)).eval()
    calibration.calibrate(twin, enc, targets, seed=3, n=400, rounds=8)
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)


def test_calibration_measures_sampled_stays_in_the_release_unit(data) -> None:
    """Targets taken from the very stays the first round samples (same seed), as exported,
    leave no gap: the sampled side uses the schema's within-stay unit too (measured in
    standardised units, this untrained model's Weight is 0.92 off in log spread ratio and 0.15
    in lag-1: the clips keep it from the unit squared), and values clipped to the hard limits
    and rounded (measured as drawn, the gap is not zero: this model draws GCS above 15)."""
    enc = replace(data[0], bounds=(), mask_source=None)
    torch.manual_seed(0)
    model = StayModel(enc, ModelConfig(hidden=8, n_blocks=1, n_mix=2)).eval()
    raw = sample_raw(model, enc, 300, seed=3)
    raw = replace(raw, x=enc.charted(raw.x, raw.m))  # as calibration measures them: exported
    rates = np.clip(raw.m.mean(axis=(0, 1)), calibration.MIN_RATE, 1 - calibration.MIN_RATE)
    idx = enc.indices("gauss")
    unit = calibration.within_stay_scales(enc, idx)
    assert unit.min() < 1.0
    spread = np.full(enc.n_variables, np.nan)
    spread[idx] = _spread(enc, raw, rates)
    spread[spread <= 0] = np.nan
    lag1 = calibration._lag1(raw.x, raw.m, idx, unit)
    weight = [v.name for v in enc.variables].index("Weight")
    assert np.isfinite(spread[weight]) and np.isfinite(lag1[weight])  # the gaps include it
    targets = calibration.Targets(rates, lag1, 0.0, [], spread=spread)
    gaps = calibration.calibrate(model, enc, targets, seed=3, n=300, rounds=0)
    assert gaps["spread_log_ratio"][0] < 1e-6
    assert gaps["lag1"][0] < 1e-6


def test_a_lab_without_a_spread_target_takes_the_median_shift_of_the_labs_with_one(
    data,
) -> None:
    """A blood-drawn variable whose spread release was too noisy (NaN target) moves its later
    values' log-sd by the median of what the calibrated labs moved; a variable of another kind
    without a target is left alone."""
    enc, _, _, numeric, _ = data
    enc = replace(enc, bounds=(), mask_source=None)
    blood = np.array(enc.drawn_from_blood, dtype=bool)
    labs = np.flatnonzero(blood & numeric)
    others = np.flatnonzero(~blood & numeric)
    assert len(labs) > calibration.MIN_SPREAD_SHARERS and len(others) > 0
    torch.manual_seed(0)
    model = StayModel(enc, ModelConfig(hidden=8, n_blocks=1, n_mix=2)).eval()
    k = model.config.n_mix
    before = model.value_local.weight[:, 2 * k, EVER].clone()
    spread = np.where(numeric, 0.05, np.nan)  # far below an untrained model's: all shrink
    borrower, untouched = labs[0], others[0]
    spread[[borrower, untouched]] = np.nan
    lag1 = np.full(enc.n_variables, np.nan)
    targets = calibration.Targets(np.full(enc.n_variables, 0.3), lag1, 0.0, [], spread=spread)
    calibration.calibrate(model, enc, targets, seed=3, n=200, rounds=3)
    shift = (model.value_local.weight[:, 2 * k, EVER] - before).detach().numpy()
    sharers = labs[1:]
    assert np.all(shift[sharers] < 0)
    assert shift[borrower] == pytest.approx(float(np.median(shift[sharers])), abs=1e-5)
    assert shift[untouched] == 0.0


def test_a_variable_whose_last_value_weighs_nothing_lowers_its_level_weight_instead(
    data, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lag-1 target below what is sampled lowers the last-value weight; once that weight is
    spent (log-odds at most the floor) the running level's weight moves instead, and the
    last-value weight stays where it is. A variable without a lag-1 target keeps both. (That
    the level lowers a real variable's lag-1 is measured on PhysioNet 2012 in the generator
    benchmark: NIMAP, ε = 4; an untrained model has no persistence to take away.)"""
    enc, _, _, _, _ = data
    enc = replace(enc, bounds=(), mask_source=None)
    torch.manual_seed(0)
    model = StayModel(enc, ModelConfig(hidden=8, n_blocks=1, n_mix=2)).eval()
    k = model.config.n_mix
    bias = model.value_head.bias.view(model.n_vars, model.n_params)
    spent, live, untouched = enc.indices("gauss")[:3]
    floor = calibration.LAST_WEIGHT_FLOOR
    with torch.no_grad():
        bias[[spent, untouched], 3 * k] = floor - 2.0
    before = bias.detach().clone()
    lag1 = np.full(enc.n_variables, np.nan)
    lag1[[spent, live]] = -0.9  # below anything sampled: every round's step lowers
    targets = calibration.Targets(np.full(enc.n_variables, 0.5), lag1, 0.0, [])
    monkeypatch.setattr(calibration, "POLISH_ROUNDS", 0)  # their half steps would spend `live`
    calibration.calibrate(model, enc, targets, seed=3, n=200, rounds=1)  # one step, ≤ 3
    moved = (bias - before).detach().numpy()
    last, level = 3 * k, 3 * k + 1
    assert moved[spent, last] == 0.0 and moved[spent, level] < -1.0
    assert moved[live, last] < -1.0 and moved[live, level] == 0.0
    assert moved[untouched, last] == 0.0 and moved[untouched, level] == 0.0


def test_score_spread_is_measured_alike_on_released_rates_and_on_drawn_classes() -> None:
    centres = (severity.EDGES[:-1] + severity.EDGES[1:]) / 2
    rates = np.zeros(len(severity.EDGES))  # 16 bins and the missing class
    rates[[0, 2]] = 0.4
    rates[-1] = 0.2  # stays without a score do not count
    assert severity.class_spread(rates) == pytest.approx((centres[2] - centres[0]) / 2)
    codes = np.array([0, 0, 2, 2, len(rates) - 1])
    assert severity.codes_spread(codes) == pytest.approx(severity.class_spread(rates))


def test_calibration_restores_how_strongly_the_series_follow_the_score(data) -> None:
    """A model whose series follow the hidden score only weakly (its released effects cut to
    a fifth) draws stays whose own scores spread too little; the calibration scales the
    score's effects back up until they spread as the released real scores do."""
    enc, x, m, _, _ = data
    scores = severity.score(x, m, enc.indices("gauss"))
    codes = enc.encode_statics(to_grid(simulate_cohort(300, seed=5)).statics, scores)
    z = effects.regression_inputs(enc, enc.static_condition(codes))
    released = effects.release_effects(x, m, z, enc.indices("gauss"), torch.Generator(), 0.0)
    k = enc.statics[enc.severity_index].n_classes
    score_rates = np.bincount(codes[:, enc.severity_index], minlength=k) / len(codes)
    score_rates = np.clip(score_rates, 1e-4, None)  # as released: no class is impossible
    targets = calibration.Targets(
        np.clip(m.mean(axis=(0, 1)), 1e-4, 1 - 1e-4), np.full(enc.n_variables, np.nan), 0.0,
        [], severity_rates=score_rates,
    )  # fmt: skip
    torch.manual_seed(0)
    model = StayModel(enc, ModelConfig(hidden=8, n_blocks=1, n_mix=2)).eval()
    effects.initialise(model, enc, released, (m.sum(axis=1) > 0).sum(axis=0).astype(float))
    severity.initialise_head(model, enc, score_rates)
    off = enc.cond_offsets()[enc.severity_index]
    on_score = model.value_cond.weight.view(model.n_vars, model.n_params, -1)[:, :, off]
    with torch.no_grad():
        on_score *= 0.2
    weak = on_score.abs().sum().item()
    gaps = calibration.calibrate(model, enc, targets, seed=3, n=400, rounds=6)
    score_gaps = gaps["severity_spread_log_ratio"]
    assert score_gaps[0] > 0.1  # drawn stays' scores spread too little ...
    assert score_gaps[-1] < score_gaps[0] / 3  # ... and after calibration about as much
    assert on_score.abs().sum().item() > 1.5 * weak  # by following the score more strongly


def test_polish_rounds_close_the_rate_and_lag_gaps_the_joint_rounds_leave(
    data, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the joint rounds (here one, so a gap is left), the polish rounds move only the
    measurement biases and the last-value and level weights' biases: the rates and lag-1 end
    closer to their targets than without them, and nothing else moves."""
    enc, _, _, numeric, _ = data
    enc = replace(enc, bounds=(), mask_source=None)
    rates = np.linspace(0.05, 0.6, enc.n_variables)
    spread = np.where(numeric, 0.5, np.nan)  # measured in the polish rounds, not moved there
    targets = calibration.Targets(rates, np.where(numeric, 0.5, np.nan), 0.0, [], spread=spread)

    def calibrated(polish: int) -> tuple[StayModel, dict]:
        monkeypatch.setattr(calibration, "POLISH_ROUNDS", polish)
        torch.manual_seed(0)
        model = StayModel(enc, ModelConfig(hidden=8, n_blocks=1, n_mix=2)).eval()
        return model, calibration.calibrate(model, enc, targets, seed=3, n=400, rounds=1)

    rounds = calibration.POLISH_ROUNDS
    plain, plain_gaps = calibrated(0)
    polished, gaps = calibrated(rounds)
    polish = ("rate_polish_pp", "lag1_polish", "spread_polish_log_ratio")
    assert all(plain_gaps[key] == [] for key in polish)
    assert all(len(gaps[key]) == rounds for key in polish)
    assert all(0 < g < 10 for g in gaps["spread_polish_log_ratio"])
    gap, lag_gap = {}, {}
    idx = enc.indices("gauss")
    for name, model in (("plain", plain), ("polished", polished)):
        raw = sample_raw(model, enc, 400, seed=99)
        gap[name] = np.abs(raw.m.mean(axis=(0, 1)) - rates).max()
        lag1 = calibration._lag1(raw.x, raw.m, idx, calibration.within_stay_scales(enc, idx))
        lag_gap[name] = np.nanmean(np.abs(lag1[idx] - 0.5))
    assert gap["polished"] < 0.6 * gap["plain"]
    assert lag_gap["polished"] < 0.8 * lag_gap["plain"]
    moved = {k for k, v in polished.state_dict().items()
             if not torch.equal(v, plain.state_dict()[k])}  # fmt: skip
    assert moved == {"mask_head.bias", "value_head.bias"}
    k = plain.config.n_mix
    change = (polished.value_head.bias - plain.value_head.bias).view(plain.n_vars, -1)
    lag_columns = [3 * k, 3 * k + 1]  # last-value and level weights
    assert change[:, lag_columns].abs().sum() > 0
    assert change[:, [c for c in range(change.shape[1]) if c not in lag_columns]].abs().sum() == 0
