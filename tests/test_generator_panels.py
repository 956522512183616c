"""Schema panels: variables one reading or one blood sample yields are measured together."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from clinsynth.generator import calibration, panels
from clinsynth.generator.encoding import Encoding
from clinsynth.generator.model import ModelConfig, StayModel
from clinsynth.generator.sampling import sample_raw
from clinsynth.schema import load_schema


@pytest.fixture(scope="module")
def untrained():
    """An untrained model measuring each variable in about one step in eight, independently of
    the others: only the panels can make their variables co-measured."""
    schema = load_schema("physionet2012")
    enc = Encoding.from_schema(schema)
    torch.manual_seed(0)
    model = StayModel(enc, ModelConfig(hidden=8, n_blocks=1, n_mix=2)).eval()
    with torch.no_grad():
        model.mask_head.bias.fill_(-4.0)
    return schema, enc, model


def test_each_variable_takes_the_uniform_of_its_panels_first_member() -> None:
    schema = load_schema("physionet2012")
    source = Encoding.from_schema(schema).mask_source
    names = schema.variable_names
    first = {v: p.variables[0] for p in schema.panels for v in p.variables}
    for j, name in enumerate(names):
        assert names[source[j]] == first.get(name, name)
    assert names[source[names.index("pH")]] == "SaO2" and source[names.index("HR")] == 0
    assert source[names.index("Mg")] == names.index("Mg")  # ordered on its own


def test_panel_variables_are_measured_together_at_their_own_rates(untrained) -> None:
    schema, enc, model = untrained
    apart = sample_raw(model, dataclasses.replace(enc, mask_source=None), 200, seed=3).m
    together = sample_raw(model, enc, 200, seed=3).m
    names = schema.variable_names

    def given(m, a, b):  # P(b measured | a measured), pooled over stays and steps
        ma, mb = m[..., names.index(a)] > 0.5, m[..., names.index(b)] > 0.5
        return (ma & mb).sum() / ma.sum()

    for a, b in (("SysABP", "DiasABP"), ("Na", "Creatinine"), ("AST", "ALP"), ("pH", "PaO2")):
        assert given(apart, a, b) < 0.7  # independent: about the rate of b
        assert given(together, a, b) > 0.8
    assert given(together, "Na", "HR") < 0.7  # across panels nothing changes
    # each variable's own rate stays where the model puts it (200 stays x 48 h: ~1 pp noise)
    assert np.abs(apart.mean(axis=(0, 1)) - together.mean(axis=(0, 1))).max() < 0.05


def test_a_panels_lead_is_its_most_measured_member_and_the_others_follow_at_their_share():
    # variables 0 and 3 alone; 1, 2 and 4 one panel (id 1): 4 is measured most
    plan = panels.plan((0, 1, 1, 3, 1), np.array([0.5, 0.2, 0.1, 0.3, 0.4]))
    assert plan.lead == (0, 4, 4, 3, 4)
    assert plan.follow == pytest.approx((1.0, 0.5, 0.25, 1.0, 1.0))
    assert plan.followers == [1, 2]
    tie = panels.plan((0, 0), np.array([0.2, 0.2]))
    assert tie.lead == (0, 0) and tie.follow == (1.0, 1.0)
    unknown = panels.plan((0, 0, 0), np.array([np.nan, 0.3, 0.1]))  # an unknown rate never leads
    assert unknown.lead == (1, 1, 1) and unknown.follow == pytest.approx((0.0, 1.0, 1 / 3))


def test_followers_are_measured_only_with_their_lead_and_at_their_share_of_it() -> None:
    # lead 0; 2 ties with it, 1 half its rate, 4 a quarter; 3 alone
    plan = panels.plan((0, 0, 0, 3, 0), np.array([0.4, 0.2, 0.4, 0.1, 0.1]))
    gen = torch.Generator().manual_seed(0)
    m = (torch.rand(20000, 5, generator=gen) < 0.3).float()
    out = panels.follow(m, plan, torch.rand(20000, 5, generator=gen))
    assert torch.equal(out[:, [0, 3]], m[:, [0, 3]])  # leads and loners as drawn
    assert torch.equal(out[:, 2], m[:, 0])
    assert not (out[:, 1] > out[:, 0]).any()
    assert out[:, 1].sum() / out[:, 0].sum() == pytest.approx(0.5, abs=0.03)
    assert out[:, 4].sum() / out[:, 0].sum() == pytest.approx(0.25, abs=0.03)
    assert not (out[:, 4] > out[:, 1]).any()  # nested: the rarer one only with the commoner


def test_panels_stay_together_when_their_members_own_probabilities_drift_apart(untrained):
    """A trained model's member heads differ (own history, own noise, own calibration): a
    shared uniform then co-measures them only as often as the smaller probability allows."""
    schema, enc, model = untrained
    names = schema.variable_names
    bias = model.mask_head.bias.detach().clone()
    with torch.no_grad():
        for name, b in (("SysABP", -1.5), ("DiasABP", -3.5), ("pH", -4.0), ("PaO2", -2.0)):
            model.mask_head.bias[names.index(name)] = b
    try:
        shared = sample_raw(model, enc, 300, seed=5).m
        # released rates equal within each panel: the followers come with every lead's step
        planned = sample_raw(model, enc, 300, seed=5, measurement_rates=np.full(37, 0.1)).m
    finally:
        with torch.no_grad():
            model.mask_head.bias.copy_(bias)

    def all_of(m, members):  # share of the steps with any member that have every member
        cols = m[..., [names.index(v) for v in members]] > 0.5
        return cols.all(-1).sum() / cols.any(-1).sum()

    for members in (("SysABP", "DiasABP"), ("pH", "PaO2")):
        assert all_of(shared, members) < 0.4
        assert all_of(planned, members) == 1.0
    # the lead (first in schema order on a tie) keeps the probability its head gives it
    rates = [m.mean(axis=(0, 1)) for m in (shared, planned)]
    for lead in ("SysABP", "SaO2", "HR"):
        assert rates[1][names.index(lead)] == pytest.approx(rates[0][names.index(lead)], abs=0.01)


def test_a_followers_own_measurement_weights_do_not_act(untrained) -> None:
    schema, enc, model = untrained
    rates = np.linspace(0.05, 0.4, enc.n_variables)
    followers = panels.plan(enc.mask_source, rates).followers
    assert schema.variable_names.index("DiasABP") in followers
    before = sample_raw(model, enc, 50, seed=2, measurement_rates=rates)
    bias = model.mask_head.bias.detach().clone()
    with torch.no_grad():
        model.mask_head.bias[followers] += 3.0
    try:
        after = sample_raw(model, enc, 50, seed=2, measurement_rates=rates)
    finally:
        with torch.no_grad():
            model.mask_head.bias.copy_(bias)
    assert np.array_equal(before.m, after.m) and np.array_equal(before.x, after.x)


def test_calibration_brings_followers_to_their_rates_through_their_lead() -> None:
    schema = load_schema("physionet2012")
    enc = dataclasses.replace(Encoding.from_schema(schema), bounds=())
    torch.manual_seed(1)
    model = StayModel(enc, ModelConfig(hidden=8, n_blocks=1, n_mix=2)).eval()
    rates = np.linspace(0.05, 0.4, enc.n_variables)
    targets = calibration.Targets(rates, np.full(enc.n_variables, np.nan), 0.0, [])  # no lag-1
    followers = panels.plan(enc.mask_source, rates).followers
    bias = model.mask_head.bias.detach().clone()
    calibration.calibrate(model, enc, targets, seed=3, n=300, rounds=6)
    moved = (model.mask_head.bias.detach() != bias).numpy()
    assert not moved[followers].any()  # their weights do not act: calibration leaves them be
    assert moved[[schema.variable_names.index(v) for v in ("HR", "MAP", "PaO2")]].all()
    got = sample_raw(model, enc, 300, seed=99, measurement_rates=rates).m.mean(axis=(0, 1))
    assert np.abs(got - rates).max() < 0.05
    assert np.abs(got - rates)[followers].mean() < 0.02
