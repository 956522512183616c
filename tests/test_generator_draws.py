"""Blood draws: labs of different panels measured in the same rounds, to the released degree."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from clinsynth.generator import calibration, draws
from clinsynth.generator.model import ModelConfig, StayModel
from clinsynth.generator.sampling import sample_raw


def test_coupling_ties_the_blood_columns_and_keeps_each_uniform() -> None:
    gen = torch.Generator().manual_seed(0)
    u = torch.rand(20000, 4, generator=gen)
    blood = torch.tensor([False, True, True, True])
    assert torch.equal(draws.couple(u, blood, 0.0, gen), u)
    tied = draws.couple(u, blood, 0.9, gen)
    assert torch.equal(tied[:, 0], u[:, 0])
    corr = np.corrcoef(tied.numpy().T)
    assert corr[1, 2] > 0.8 and abs(corr[0, 1]) < 0.03
    # still uniform per column: each variable keeps its own measurement probability
    for j in (1, 2, 3):
        assert (
            np.abs(np.quantile(tied[:, j].numpy(), [0.1, 0.5, 0.9]) - [0.1, 0.5, 0.9]).max() < 0.02
        )


def test_draw_share_is_the_share_of_steps_with_any_blood_variable() -> None:
    m = np.zeros((2, 10, 3))
    m[0, [1, 2], 1] = 1
    m[0, [2, 5], 2] = 1
    m[1, :, 0] = 1  # only a non-blood variable
    share = draws.draw_share(m, np.array([False, True, True]))
    assert np.allclose(share, [0.3, 0.0])


def test_calibration_step_raises_the_coupling_when_draws_are_too_many() -> None:
    assert draws.calibration_step(0.0, 0.2, 0.6, 1.0) == pytest.approx(draws.MAX_COUPLING)
    assert draws.calibration_step(0.5, 0.2, 0.22, 1.0) == pytest.approx(0.5 + 0.1 * draws.GAIN)
    assert draws.calibration_step(0.5, 0.2, 0.1, 1.0) == pytest.approx(0.5 - 0.5 * draws.GAIN)
    assert draws.calibration_step(0.1, 0.2, 0.02, 1.0) == 0.0


def test_release_carries_the_draw_share_and_calibration_reaches_it(simulated_model_space) -> None:
    """The simulator draws all its labs at shared times: calibrated to its released draw share,
    an untrained model (independent panels: far too many separate draws) couples its labs."""
    enc, x, m, codes = simulated_model_space
    blood = np.array(enc.drawn_from_blood)
    targets = calibration.release_targets(x, m, codes, enc, torch.Generator().manual_seed(0), 0.0)
    assert targets.draw_share == pytest.approx(draws.draw_share(m, blood).mean())
    torch.manual_seed(0)
    model = StayModel(enc, ModelConfig(hidden=8, n_blocks=1, n_mix=2)).eval()
    rates_only = calibration.Targets(targets.rates, targets.lag1, 0.0, [])
    calibration.calibrate(model, enc, rates_only, seed=3, n=400, rounds=6)
    assert float(model.draw_coupling) == 0.0

    def sampled_share() -> float:  # sampled as the synthesizer samples: panels follow a lead
        raw = sample_raw(model, enc, 400, seed=9, measurement_rates=targets.rates)
        return float(draws.draw_share(raw.m, blood).mean())

    apart = sampled_share()
    gaps = calibration.calibrate(  # as many rounds as the synthesizer's calibration
        model, enc, replace(rates_only, draw_share=targets.draw_share), seed=3, n=400, rounds=8
    )
    together = sampled_share()
    assert apart > 1.3 * targets.draw_share  # independent panels: too many draws
    assert abs(together / targets.draw_share - 1) < 0.1
    assert float(model.draw_coupling) > 0.3
    assert abs(gaps["draw_share_ratio"][-1] - 1) < 0.1
