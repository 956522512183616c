"""Latin-hypercube draws (module stratified): one stay's draw keeps its distribution, the
cohort's counts follow the probabilities closely."""

from __future__ import annotations

import numpy as np
import torch

from clinsynth.generator import stratified


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_each_column_of_uniforms_hits_every_stratum_once() -> None:
    u = stratified.uniforms(500, 7, _gen(0), "cpu")
    assert u.shape == (500, 7)
    assert float(u.min()) >= 0.0 and float(u.max()) < 1.0
    strata = torch.floor(u * 500).long()
    for col in strata.T:
        assert sorted(col.tolist()) == list(range(500))
    assert torch.equal(u, stratified.uniforms(500, 7, _gen(0), "cpu"))  # seeded
    assert not torch.equal(u[:, 0], u[:, 1])  # columns are permuted independently


def test_one_row_keeps_its_distribution() -> None:
    """Over many samples a given stay's uniform is uniform and its class follows its own
    probabilities, whatever the other rows' are."""
    probs = torch.tensor([[0.2, 0.5, 0.3], [0.9, 0.05, 0.05], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]])
    first_row = np.array([int(stratified.categorical(probs, _gen(s))[0]) for s in range(3000)])
    shares = np.bincount(first_row, minlength=3) / first_row.size
    np.testing.assert_allclose(shares, [0.2, 0.5, 0.3], atol=0.03)
    first_u = np.array(
        [float(stratified.uniforms(4, 1, _gen(s), "cpu")[0, 0]) for s in range(3000)]
    )
    assert abs(first_u.mean() - 0.5) < 0.02 and abs((first_u < 0.25).mean() - 0.25) < 0.03


def test_class_counts_follow_the_summed_probabilities() -> None:
    """Independent draws of 1,000 stays at p = 0.5 miss n·p by ~16 (sd); stratified ones by at
    most one per class boundary. Stays with probabilities of their own (two clusters, like
    patients with and without an arterial line) keep part of it, far less than independent."""
    same = torch.tensor([[0.2, 0.5, 0.3]]).repeat(1000, 1)
    counts = torch.bincount(stratified.categorical(same, _gen(1)), minlength=3).numpy()
    assert np.all(np.abs(counts - [200, 500, 300]) <= 1)
    rng = np.random.default_rng(2)
    high = rng.random(1000) < 0.55
    p = np.where(high, rng.uniform(0.8, 0.95, 1000), rng.uniform(0.02, 0.15, 1000))
    clustered = torch.from_numpy(np.stack([p, 1 - p], axis=1))
    expected = clustered[:, 0].sum().item()

    def gap(classes: torch.Tensor) -> float:
        return abs(float((classes == 0).sum()) - expected)

    lhs = [gap(stratified.categorical(clustered, _gen(s))) for s in range(40)]
    iid = [gap(torch.multinomial(clustered, 1, generator=_gen(s)).squeeze(1)) for s in range(40)]
    assert np.mean(lhs) < 0.6 * np.mean(iid)
