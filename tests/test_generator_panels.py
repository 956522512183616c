"""Schema panels: variables one reading or one blood sample yields are measured together."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

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
