"""Generator internals: schema encoding, causal features, step-wise = parallel, DP grad samplers."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from opacus import GradSampleModule

from clinsynth.generator import severity
from clinsynth.generator.encoding import Encoding
from clinsynth.generator.features import teacher_forced_features
from clinsynth.generator.layers import PerVariableLinear, StrictlyLowerLinear
from clinsynth.generator.model import ModelConfig, StayModel
from clinsynth.schema import load_schema


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small matrices: one CPU thread is much faster on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def encoding() -> Encoding:
    return Encoding.from_schema(load_schema("icu_sim"))


def test_numeric_round_trip_respects_limits_and_precision(encoding: Encoding) -> None:
    schema = load_schema("icu_sim")
    rng = np.random.default_rng(0)
    for var, coding in zip(schema.variables, encoding.variables, strict=True):
        if coding.kind != "gauss":
            continue
        lo, hi = var.hard_limits
        x = np.round(rng.uniform(lo, hi, 200), coding.scale.decimals or 0)
        back = coding.scale.decode(coding.scale.encode(x))
        step = 10.0 ** -(coding.scale.decimals or 0)
        assert np.all(np.abs(back - x) <= step / 2 + 1e-9 * np.abs(x).max()), var.name
        wild = coding.scale.decode(np.array([-1e6, 1e6]))  # far outside: clipped to hard limits
        assert wild[0] >= lo and wild[1] <= hi, var.name


def test_troponin_scale_keeps_icu_values_apart(encoding: Encoding) -> None:
    """A tiny normal range must not squash ordinary ICU troponins onto one clipped value."""
    tnt = encoding.variables[load_schema("icu_sim").variable_names.index("TroponinT")].scale
    z = tnt.encode(np.array([0.05, 0.5, 5.0]))
    assert np.all(np.diff(z) > 1.0)
    assert np.allclose(tnt.decode(z), [0.05, 0.5, 5.0], atol=0.006)


def test_static_codes_round_trip_with_missing(encoding: Encoding) -> None:
    schema = load_schema("icu_sim")
    names = [*schema.static_names, *schema.outcome_names]
    statics = np.array([[45.0, 1.0, 172.0, 2.0, 80.0, 0.0], [88.0, 0.0, np.nan, 0.0, np.nan, 1.0]])
    assert len(names) == statics.shape[1]
    codes = encoding.encode_statics(statics)
    back = encoding.decode_statics(codes, np.random.default_rng(0))
    assert np.array_equal(np.isnan(back), np.isnan(statics))
    ok = ~np.isnan(statics)
    # numeric fields come back within their bin: a few units at most
    assert np.all(np.abs(back[ok] - statics[ok]) < 5.0)
    cond = encoding.static_condition(codes)
    assert cond.shape == (2, encoding.cond_width) and np.isfinite(cond).all()


def test_severity_score_measures_distance_outside_the_normal_ranges(encoding: Encoding) -> None:
    """Public formula: 0 half-widths outside every normal range is the bottom of the scale, two
    outside on every numeric variable is two; binary and categorical variables do not count."""
    numeric = encoding.indices("gauss")
    t_len, v = encoding.n_steps, encoding.n_variables
    m = np.zeros((3, t_len, v), dtype=np.float32)
    m[:, :6, numeric] = 1.0
    x = np.zeros_like(m)
    x[1, :6, numeric] = 3.0  # two half-widths above each normal range
    x[2, :6, numeric] = -3.0
    x[2, :6, numeric[0]] = 50.0  # one wild value counts at most OUTSIDE_CLIP
    other = [i for i in range(v) if i not in numeric]
    m[:, :, other] = 1.0
    x[:, :, other] = 1.0
    scores = severity.score(x, m, numeric) * severity.HALF + severity.CENTRE
    assert scores[0] == pytest.approx(0.0)
    assert scores[1] == pytest.approx(2.0)
    wild = (2.0 * (len(numeric) - 1) + severity.OUTSIDE_CLIP) / len(numeric)
    assert scores[2] == pytest.approx(wild)
    assert np.isnan(severity.score(x, np.zeros_like(m), numeric)).all()  # nothing measured
    codes = encoding.severity_codes(x, m)
    assert codes[0] < codes[1] < encoding.statics[encoding.severity_index].missing_class


def test_severity_is_never_decoded(encoding: Encoding) -> None:
    """The hidden field sits among the statics for the networks but never reaches a cohort."""
    statics = np.array([[45.0, 1.0, 172.0, 2.0, 80.0, 0.0]])
    codes = encoding.encode_statics(statics, np.array([1.0]))
    assert codes.shape[1] == statics.shape[1] + 1
    assert encoding.statics[encoding.severity_index].name == severity.NAME
    assert encoding.decode_statics(codes, np.random.default_rng(0)).shape == statics.shape


def test_features_are_causal(encoding: Encoding) -> None:
    """What the model sees at step t must not change when steps >= t change."""
    gen = torch.Generator().manual_seed(0)
    n, t_len, v = 3, encoding.n_steps, encoding.n_variables
    x = torch.randn(n, t_len, v, generator=gen)
    m = (torch.rand(n, t_len, v, generator=gen) < 0.3).float()
    scale, shift = (torch.tensor(a) for a in encoding.input_maps())
    per_var, glob = teacher_forced_features(x, m, scale, shift)
    t = 10
    x2, m2 = x.clone(), m.clone()
    x2[:, t:] += 5.0
    m2[:, t:] = 1.0 - m2[:, t:]
    per_var2, glob2 = teacher_forced_features(x2, m2, scale, shift)
    assert torch.equal(per_var[:, : t + 1], per_var2[:, : t + 1])
    assert torch.equal(glob[:, : t + 1], glob2[:, : t + 1])
    assert not torch.equal(per_var[:, t + 1 :], per_var2[:, t + 1 :])


def test_stepwise_sampling_path_equals_parallel_training_path(encoding: Encoding) -> None:
    torch.manual_seed(0)
    model = StayModel(encoding, ModelConfig(hidden=16, n_blocks=3, n_mix=2)).eval()
    for p in model.parameters():  # move away from the (partly zero) initialisation
        p.data += 0.1 * torch.randn_like(p)
    n, t_len, v = 4, encoding.n_steps, encoding.n_variables
    x = torch.randn(n, t_len, v)
    m = (torch.rand(n, t_len, v) < 0.4).float()
    scale, shift = (torch.tensor(a) for a in encoding.input_maps())
    per_var, glob = teacher_forced_features(x, m, scale, shift)
    cond = torch.randn(n, encoding.cond_width)
    with torch.no_grad():
        parallel = model.parallel_outputs(per_var, glob, cond)
        cache = model.new_cache(n)
        steps = [model.step(per_var[:, t], glob[:, t], cond, cache, t) for t in range(t_len)]
    assert torch.allclose(parallel, torch.stack(steps, dim=1), atol=1e-5)


@pytest.mark.filterwarnings("ignore:Full backward hook")
@pytest.mark.parametrize(
    "layer", [PerVariableLinear(5, 3, 4), StrictlyLowerLinear(5), StrictlyLowerLinear(5, band=2)]
)
def test_custom_grad_samplers_match_per_sample_autograd(layer: torch.nn.Module) -> None:
    torch.manual_seed(1)
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_()
    shape = (6, 7, 5, 3) if isinstance(layer, PerVariableLinear) else (6, 7, 5)
    x = torch.randn(*shape)
    plain = copy.deepcopy(layer)
    gsm = GradSampleModule(layer, loss_reduction="sum")
    gsm(x).pow(2).sum().backward()
    samples = {name: p.grad_sample.clone() for name, p in layer.named_parameters()}
    for i in range(shape[0]):
        plain.zero_grad()
        plain(x[i : i + 1]).pow(2).sum().backward()
        for name, p in plain.named_parameters():
            assert torch.allclose(samples[name][i], p.grad, atol=1e-4), name


def test_strictly_lower_ignores_itself_and_later_inputs() -> None:
    layer = StrictlyLowerLinear(4)
    with torch.no_grad():
        layer.weight.normal_()
    x = torch.randn(2, 4)
    y = layer(x)
    x2 = x.clone()
    x2[:, 2:] += 10.0  # change inputs 2, 3: outputs 0..2 must not move
    assert torch.allclose(layer(x2)[:, :3], y[:, :3])
    banded = StrictlyLowerLinear(4, band=1)
    with torch.no_grad():
        banded.weight.normal_()
    x3 = x.clone()
    x3[:, 0] += 10.0  # output 2 sees only input 1 with a band of 1
    assert torch.allclose(banded(x3)[:, 2:], banded(x)[:, 2:])
