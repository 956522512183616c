"""The schema's cross-variable rules kept while sampling (module constraints)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy import stats

from audits.plausibility import scan
from clinsynth.generator.constraints import compile_rules, natural_bound, truncated_mixture
from clinsynth.generator.encoding import Encoding, NumericScale
from clinsynth.generator.model import ModelConfig, StayModel
from clinsynth.generator.sampling import sample_raw, to_cohort
from clinsynth.schema import Rule, load_schema


def _names(schema, bounds):
    names = schema.variable_names
    return {
        (names[b.target], b.lower, names[b.source] if b.source is not None else b.constant)
        for b in bounds
    }


def test_each_rule_bounds_the_variable_drawn_later_in_schema_order() -> None:
    schema = load_schema("physionet2012")
    bounds, skipped = compile_rules(schema)
    assert skipped == []
    assert _names(schema, bounds) == {
        ("DiasABP", False, "SysABP"),  # SysABP is drawn first: DiasABP < it
        ("MAP", True, "DiasABP"),
        ("MAP", False, "SysABP"),
        ("NIDiasABP", False, "NISysABP"),
        ("NIMAP", True, "NIDiasABP"),
        ("NIMAP", False, "NISysABP"),
        ("FiO2", True, 0.25),  # when MechVent = 1
        ("FiO2", False, 1.0),
    }
    assert all(b.strict for b in bounds if b.rule.startswith("Invasive diastolic"))
    fio2 = [b for b in bounds if schema.variable_names[b.target] == "FiO2"]
    assert {schema.variable_names[b.when] for b in fio2} == {"MechVent"} and fio2[0].equals == 1


def test_a_rule_that_cannot_be_kept_in_drawing_order_is_listed_not_dropped_silently() -> None:
    schema = load_schema("physionet2012")
    backwards = Rule(kind="implies", when="FiO2", equals=1.0, then="HR", range=(0, 300),
                     description="backwards")  # fmt: skip
    on_binary = Rule(kind="less_than", left="HR", right="MechVent", description="binary")
    odd = schema.model_copy(update={"rules": [backwards, on_binary]})
    bounds, skipped = compile_rules(odd)
    assert bounds == ()
    assert skipped == ["backwards", "binary (on MechVent)"]


@pytest.mark.parametrize("decimals", [None, 0, 1, 2])
@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("strict", [True, False])
def test_natural_bound_is_the_tightest_raw_value_that_rounds_onto_the_rule(
    decimals, lower, strict
) -> None:
    """Every raw value beyond the bound, rounded to the target's precision as exported, keeps
    the rule against the (already rounded) source value; values just inside it do not."""
    scale = NumericScale("none", 0.0, 0.0, 1.0, None, None, decimals)
    rng = np.random.default_rng(0)
    source = np.round(rng.uniform(-50, 50, 500), 1)  # a source with a finer precision
    bound = natural_bound(scale, source, lower, strict)
    unit = 1e-6 if decimals is None else 10.0**-decimals
    sign = 1 if lower else -1
    beyond = bound + sign * rng.uniform(0, 5 * unit, 500)
    rounded = beyond if decimals is None else np.round(beyond, decimals)
    ok = {(True, True): rounded > source, (True, False): rounded >= source,
          (False, True): rounded < source, (False, False): rounded <= source}  # fmt: skip
    assert ok[(lower, strict)].all()
    if decimals is not None:  # tight: half a unit further in breaks the rule somewhere
        inside = bound - sign * 0.5 * unit
        r_in = np.round(inside, decimals)
        kept = {(True, True): r_in > source, (True, False): r_in >= source,
                (False, True): r_in < source, (False, False): r_in <= source}  # fmt: skip
        assert not kept[(lower, strict)].any()


def test_truncated_mixture_is_the_mixture_restricted_to_the_interval() -> None:
    n = 20000
    gen = torch.Generator().manual_seed(0)
    logw = torch.log(torch.tensor([[0.7, 0.3]])).expand(n, 2)
    mean = torch.tensor([[0.0, 3.0]]).expand(n, 2)
    sd = torch.tensor([[1.0, 0.5]]).expand(n, 2)
    lo, hi = torch.full((n,), 0.5), torch.full((n,), 3.2)
    u = torch.rand(2, n, generator=gen)
    x = truncated_mixture(logw, mean, sd, lo, hi, u[0], u[1]).numpy()
    assert x.min() >= 0.5 and x.max() <= 3.2
    a = [stats.truncnorm(0.5, 3.2), stats.truncnorm(-5.0, 0.4, 3.0, 0.5)]
    mass = np.array([0.7 * (stats.norm.cdf(3.2) - stats.norm.cdf(0.5)),
                     0.3 * (stats.norm.cdf(0.4) - stats.norm.cdf(-5.0))])  # fmt: skip
    w = mass / mass.sum()
    grid = np.linspace(0.5, 3.2, 50)
    cdf = w[0] * a[0].cdf(grid) + w[1] * a[1].cdf(grid)
    empirical = (x[:, None] <= grid).mean(axis=0)
    assert np.abs(empirical - cdf).max() < 0.015  # KS-style: 1.36/sqrt(n) ~ 0.01


def test_truncated_mixture_far_in_a_tail_stays_finite_and_inside() -> None:
    logw = torch.zeros(3, 1)
    mean, sd = torch.zeros(3, 1), torch.ones(3, 1)
    lo = torch.tensor([9.0, -np.inf, 60.0])  # 9 sd up; 9 sd down; no mass at all
    hi = torch.tensor([np.inf, -9.0, 61.0])
    u = torch.full((2, 3), 0.5)
    x = truncated_mixture(logw, mean, sd, lo, hi, u[0], u[1]).numpy()
    assert np.isfinite(x).all()
    assert 9.0 <= x[0] < 9.5 and -9.5 < x[1] <= -9.0
    assert x[2] == 60.0  # the nearer bound


@pytest.fixture(scope="module")
def untrained():
    """An untrained model that measures nearly everything every hour: its value draws ignore
    each other, so the rules are broken often unless sampling keeps them."""
    schema = load_schema("physionet2012")
    enc = Encoding.from_schema(schema)
    torch.manual_seed(0)
    model = StayModel(enc, ModelConfig(hidden=8, n_blocks=1, n_mix=2)).eval()
    with torch.no_grad():
        model.mask_head.bias.fill_(3.0)
    return schema, enc, model


def _rule_breaks(schema, enc, raw) -> tuple[int, int]:
    cohort = to_cohort(raw, enc, schema, seed=0, provenance={"synthetic": True})
    found = scan(cohort)
    return found.count("rule"), sum(found.rule_evaluations.values())


def test_sampled_stays_keep_every_rule_that_the_model_alone_breaks(untrained) -> None:
    schema, enc, model = untrained
    free = sample_raw(model, dataclasses.replace(enc, bounds=()), 60, seed=4)
    kept = sample_raw(model, enc, 60, seed=4)
    broken, evaluated = _rule_breaks(schema, enc, free)
    assert evaluated > 5000 and broken > 0.1 * evaluated  # the check can fail...
    assert _rule_breaks(schema, enc, kept)[0] == 0
    # ...and the sample says how much it repaired, per bounded variable
    tally = kept.rules["variables"]
    assert set(tally) == {"DiasABP", "MAP", "NIDiasABP", "NIMAP", "FiO2"}
    assert all(0 < t["redrawn"] < t["cells_bounded"] for t in tally.values())
    assert free.rules["variables"] == {}


def test_rules_leave_every_other_draw_as_the_model_made_it(untrained) -> None:
    """In the first hour (no history yet) the unbounded variables, the mask and the bounded
    values drawn inside their bounds are identical with and without the rules."""
    schema, enc, model = untrained
    free = sample_raw(model, dataclasses.replace(enc, bounds=()), 60, seed=4)
    kept = sample_raw(model, enc, 60, seed=4)
    assert np.array_equal(free.m[:, 0], kept.m[:, 0])
    bounded = [schema.variable_names.index(v) for v in kept.rules["variables"]]
    others = [j for j in range(enc.n_variables) if j not in bounded]
    assert np.array_equal(free.x[:, 0, others], kept.x[:, 0, others])
    same = free.x[:, 0, bounded] == kept.x[:, 0, bounded]
    assert 0.3 < same.mean() < 1.0  # most inside draws kept, the outside ones redrawn
