"""Intervals between measurements: their release and the calibration of the gap features."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from clinsynth.generator import calibration, intervals
from clinsynth.generator.encoding import Encoding
from clinsynth.generator.model import ModelConfig, StayModel
from clinsynth.generator.sampling import sample_raw


def test_bucket_shares_are_each_patients_intervals_over_the_gap_buckets() -> None:
    m = np.zeros((3, 30, 2))
    m[0, [0, 1, 4, 12], 0] = 1  # intervals 1, 3, 8: buckets [1], [3-4], [5-8]
    m[0, [2, 22], 1] = 1  # one interval of 20: the 17+ bucket
    m[1, [5], 0] = 1  # a single measurement: no interval
    m[2, list(range(0, 30, 2)), 0] = 1  # every second hour: all intervals of 2
    shares = intervals.bucket_shares(m)
    assert np.allclose(shares[0, 0], [1 / 3, 0, 1 / 3, 1 / 3, 0, 0])
    assert np.allclose(shares[0, 1], [0, 0, 0, 0, 0, 1])
    assert np.allclose(shares[1], 0)  # weighs nothing, like a patient never measured
    assert np.allclose(shares[2, 0], [0, 1, 0, 0, 0, 0])


def test_release_is_the_mean_share_and_its_noise_sd_is_reported() -> None:
    rng = np.random.default_rng(0)
    m = (rng.random((400, 48, 5)) < np.array([0.9, 0.5, 0.2, 0.1, 0.05])).astype(np.float32)
    exact, sd0 = intervals.release(m, torch.Generator().manual_seed(0), 0.0)
    assert sd0 == 0.0
    assert np.allclose(exact, intervals.bucket_shares(m).mean(axis=0))
    assert np.allclose(exact, intervals.sampled(m))  # same statistic on both sides
    noisy, sd = intervals.release(m, torch.Generator().manual_seed(0), 2.0)
    assert sd == pytest.approx(2.0 * intervals.CLIP / 400)
    assert np.abs(noisy - exact).max() < 5 * sd
    # independent measurement with rate p: the first bucket's hazard is about p
    h = intervals.hazards(exact)
    assert np.allclose(h[:, 0], [0.9, 0.5, 0.2, 0.1, 0.05], atol=0.03)


def test_calibration_step_follows_the_target_and_ignores_what_noise_could_make() -> None:
    target = np.array([[0.1, 0.2, 0.3, 0.2, 0.1, 0.1], [0.6, 0.0, 0.0, 0.0, 0.0, 0.01]])
    got = np.array([[0.3, 0.2, 0.2, 0.1, 0.1, 0.1], [0.6, 0.0, 0.0, 0.0, 0.0, 0.01]])
    step = intervals.calibration_step(target, 0.002, got)
    assert step[0, 0] < 0  # re-measured at 1 h too often: lower that hazard
    assert step[0, 2] > 0  # and too rarely at 3-4 h once that far
    # second variable: only 1% of its intervals last 2 h or more, 5 noise sd: no target there
    assert np.all(step[1, 1:] == 0.0)


def _worst_lab_gap(enc: Encoding, target: np.ndarray, sd: float, m: np.ndarray) -> float:
    labs = [i for i, v in enumerate(enc.variables) if v.name in ("Na", "K", "HCT", "BUN")]
    step = intervals.calibration_step(target, sd, intervals.sampled(m))
    return float(np.abs(step[labs]).max())


def test_calibration_brings_a_bursty_model_to_the_released_intervals(simulated_model_space) -> None:
    """An untrained model re-measures whatever it measured an hour ago (the public prior);
    calibrated to the simulated cohort's intervals, its labs come at their own intervals."""
    enc, _, m, _ = simulated_model_space
    rates = np.clip(m.mean(axis=(0, 1)), 1e-4, 1 - 1e-4)
    target, sd = intervals.release(m, torch.Generator().manual_seed(0), 0.0)
    plain = calibration.Targets(rates, np.full(len(rates), np.nan), 0.0, [])
    with_intervals = replace(plain, intervals=target, interval_noise_sd=sd)

    def calibrated(targets: calibration.Targets) -> StayModel:
        torch.manual_seed(0)
        model = StayModel(enc, ModelConfig(hidden=8, n_blocks=1, n_mix=2)).eval()
        calibration.calibrate(model, enc, targets, seed=3, n=400, rounds=8)
        return model

    rates_only = sample_raw(calibrated(plain), enc, 400, seed=99, measurement_rates=rates).m
    both = sample_raw(calibrated(with_intervals), enc, 400, seed=99, measurement_rates=rates).m
    before, after = (_worst_lab_gap(enc, target, 0.002, s) for s in (rates_only, both))
    assert before > 1.5  # log-odds: hazards several times off
    assert after < before / 2
    # the rates stay near target while the shape of the intervals changes; with the gap
    # hazards held, they settle through the first measurement only, which an untrained model
    # (no patient differences) does slowly: 6.1 pp worst here against 2.2 pp without intervals
    # (the trained model on PhysioNet 2012: within 2 pp, benchmarks/generate_physionet.md)
    assert np.abs(both.mean(axis=(0, 1)) - rates).max() < 0.08
    assert np.abs(both.mean(axis=(0, 1)) - rates).mean() < 0.015
