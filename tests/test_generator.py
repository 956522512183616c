"""SequenceSynthesizer on a small simulated cohort with a tiny model (a few epochs, seconds)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from clinsynth.cohort import Cohort
from clinsynth.errors import ClinsynthError
from clinsynth.generator import SequenceSynthesizer, stratified
from clinsynth.grid import to_grid
from clinsynth.io import sha256_file
from clinsynth.schema import VariableType
from clinsynth.simulate import simulate_cohort
from clinsynth.writer import write_cohort

TINY = {"epochs": 3, "batch_size": 40, "hidden": 16, "n_blocks": 2, "n_mix": 2, "accountant": "rdp"}
N_SAMPLE = 60


@pytest.fixture(scope="module")
def cohort() -> Cohort:
    return simulate_cohort(120, seed=3)


@pytest.fixture(scope="module")
def fitted(cohort: Cohort) -> SequenceSynthesizer:
    return SequenceSynthesizer(cohort.schema, epsilon=4.0, seed=7, **TINY).fit(cohort)


@pytest.fixture(scope="module")
def sample(fitted: SequenceSynthesizer) -> Cohort:
    return fitted.sample(N_SAMPLE, seed=11)


def test_sample_shapes_ids_and_columns(sample: Cohort, cohort: Cohort) -> None:
    schema = cohort.schema
    assert sample.n_patients == N_SAMPLE
    assert sample.patient_ids[:2] == ["S00001", "S00002"]
    assert not set(sample.patient_ids) & set(cohort.patient_ids)
    assert list(sample.statics.columns) == [*schema.static_names, *schema.outcome_names]
    obs = sample.observations
    assert set(obs["variable"]) <= set(schema.variable_names)
    assert set(obs["patient_id"]) <= set(sample.patient_ids)
    assert obs["value"].notna().all()
    assert sample.provenance["synthetic"] is True


def test_values_within_limits_and_precision(sample: Cohort) -> None:
    schema = sample.schema
    obs = sample.observations
    for var in schema.variables:
        values = obs.loc[obs["variable"] == var.name, "value"].to_numpy()
        if len(values) == 0:
            continue
        if var.hard_limits is not None:
            lo, hi = var.hard_limits
            assert values.min() >= lo and values.max() <= hi, var.name
        if var.type is VariableType.binary:
            assert set(np.unique(values)) <= {0.0, 1.0}, var.name
        decimals = 0 if var.type is VariableType.integer else var.precision
        if decimals is not None:
            assert np.allclose(values, np.round(values, decimals)), var.name
    for field in [*schema.statics, *schema.outcomes]:
        col = sample.statics[field.name].dropna().to_numpy()
        if field.type is VariableType.categorical:
            assert set(np.unique(col)) <= set(range(len(field.categories))), field.name
        elif field.type is VariableType.binary:
            assert set(np.unique(col)) <= {0.0, 1.0}, field.name
        elif field.hard_limits is not None:
            assert col.min() >= field.hard_limits[0] and col.max() <= field.hard_limits[1]


def test_times_are_jittered_within_grid_steps(sample: Cohort) -> None:
    hours = sample.observations["hours"].to_numpy()
    assert hours.min() >= 0 and hours.max() < sample.schema.grid.horizon_hours
    assert np.mean(np.isclose(hours % 1.0, 0.0)) < 0.2  # not everything at HH:00
    minutes = hours * 60
    assert np.allclose(minutes, np.round(minutes))  # whole minutes, like a chart


def test_missingness_and_statics_present(sample: Cohort) -> None:
    rates = to_grid(sample).mask.mean(axis=(0, 1))
    assert 0.0 < rates.mean() < 0.9  # measured sometimes, not always
    assert (rates < 0.5).sum() >= 5  # sparse labs stay sparse
    assert (rates > 0.0).sum() >= 10
    statics = sample.statics
    for name in [*sample.schema.static_names, *sample.schema.outcome_names]:
        # the tiny model's rarest is Height: 22% present over 600 stays (real 58%)
        assert statics[name].notna().mean() > 0.1, name


def test_privacy_report_within_target(fitted: SequenceSynthesizer, cohort: Cohort) -> None:
    report = fitted.privacy_report()
    assert report["dp"] is True
    assert 0 < report["epsilon"] <= 4.0 + 1e-6
    assert report["delta"] == pytest.approx(1 / (10 * cohort.n_patients))
    assert report["noise_multiplier"] > 0 and report["steps"] > 0
    assert report["max_grad_norm"] == fitted.max_grad_norm
    assert report["epochs"] == TINY["epochs"]


def _csv_hash(cohort: Cohort, folder: Path) -> str:
    paths = write_cohort(cohort, folder)
    return "".join(sha256_file(p) for p in sorted(paths))


def test_same_seed_same_bytes_other_seed_differs(
    cohort: Cohort, fitted: SequenceSynthesizer, sample: Cohort, tmp_path: Path
) -> None:
    again = SequenceSynthesizer(cohort.schema, epsilon=4.0, seed=7, **TINY).fit(cohort)
    first = _csv_hash(sample, tmp_path / "a")
    assert _csv_hash(again.sample(N_SAMPLE, seed=11), tmp_path / "b") == first
    assert _csv_hash(fitted.sample(N_SAMPLE, seed=12), tmp_path / "c") != first


def test_save_load_round_trip_gives_identical_samples(
    fitted: SequenceSynthesizer, sample: Cohort, tmp_path: Path
) -> None:
    path = fitted.save(tmp_path / "model.pt")
    loaded = SequenceSynthesizer.load(path)
    assert loaded.privacy_report() == fitted.privacy_report()
    assert loaded.get_params() == fitted.get_params()
    assert _csv_hash(loaded.sample(N_SAMPLE, seed=11), tmp_path / "b") == _csv_hash(
        sample, tmp_path / "a"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epsilon": 0}, "epsilon must be a positive"),
        ({"epsilon": -1.0}, "epsilon must be a positive"),
        ({"epsilon": math.inf}, "epsilon must be finite"),
        ({"delta": 0.0}, "delta must be in (0, 1)"),
        ({"delta": 1.5}, "delta must be in (0, 1)"),
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"batch_size": -3}, "batch_size must be a positive integer"),
        ({"seed": 1.5}, "seed must be an integer"),
        ({"accountant": "gdp?"}, "accountant must be"),
    ],
)
def test_bad_parameters_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ClinsynthError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SequenceSynthesizer("icu_sim", **kwargs)


def test_unknown_schema_and_bad_n_refused(fitted: SequenceSynthesizer) -> None:
    with pytest.raises(ClinsynthError, match="Unknown schema"):
        SequenceSynthesizer("no_such_schema")
    for n in (0, -5, 2.5):
        with pytest.raises(ClinsynthError, match="n must be a positive integer"):
            fitted.sample(n)
    with pytest.raises(ClinsynthError, match="not trained yet"):
        SequenceSynthesizer("icu_sim").sample(5)


def test_schema_mismatch_and_bad_model_file_refused(cohort: Cohort, tmp_path: Path) -> None:
    with pytest.raises(ClinsynthError, match="uses schema"):
        SequenceSynthesizer("physionet2012", **TINY).fit(cohort)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(ClinsynthError, match="not a clinsynth model file"):
        SequenceSynthesizer.load(junk)
    old = tmp_path / "old.pt"
    torch.save({"format_version": 1, "state_dict": {}}, old)
    with pytest.raises(ClinsynthError, match="another version of clinsynth"):
        SequenceSynthesizer.load(old)


def test_a_model_saved_in_the_previous_format_still_loads_and_samples_alike(
    fitted: SequenceSynthesizer, tmp_path: Path
) -> None:
    """Format 3 files differ only in their schema lacking ``within_stay_sd``, which sampling
    never reads: they load, and sample what the model they hold samples."""
    path = fitted.save(tmp_path / "model.pt")
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 3
    for variable in payload["schema"]["variables"]:
        variable.pop("within_stay_sd", None)
    torch.save(payload, tmp_path / "v3.pt")
    old = SequenceSynthesizer.load(tmp_path / "v3.pt")
    a, b = old.sample(20, seed=2), fitted.sample(20, seed=2)
    assert a.observations.equals(b.observations) and a.statics.equals(b.statics)


def test_no_dp_is_loud_and_recorded_as_infinite(cohort: Cohort) -> None:
    small = cohort.subset(cohort.patient_ids[:40])
    with pytest.warns(UserWarning, match="WITHOUT differential privacy"):
        synth = SequenceSynthesizer(cohort.schema, dp=False, seed=1, **TINY).fit(small)
    report = synth.privacy_report()
    assert report["dp"] is False and math.isinf(report["epsilon"])
    assert synth.sample(5).n_patients == 5


def test_more_budget_never_means_more_dp_sgd_noise() -> None:
    """The releases' noise is c / ε up to ε = 4 and stays there: composed as c / ε at every ε
    they took 9.66 of ε = 10 and DP-SGD's noise rose with ε (3.55 at 4, 4.03 at 10)."""
    from clinsynth.generator.synthesizer import release_mechanisms
    from clinsynth.generator.training import noise_multiplier

    delta, steps = 1 / 20000, 60 * 16  # 2,000 patients, batches of 125, 60 epochs
    sigmas = [
        noise_multiplier(eps, delta, 1 / 16, steps, "rdp", release_mechanisms(eps))
        for eps in (1.0, 4.0, 10.0)
    ]
    assert sigmas[0] > sigmas[1] > 2 * sigmas[2]
    # all but the outcome heads (the last entry) keep their ε = 4 noise above ε = 4
    assert release_mechanisms(10.0)[:-1] == release_mechanisms(4.0)[:-1]
    assert release_mechanisms(1.0)[0][0] == pytest.approx(4 * release_mechanisms(4.0)[0][0])


def test_cohort_rates_vary_less_from_sample_to_sample_than_with_independent_draws(
    fitted: SequenceSynthesizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sampler's measurement decisions and statics come from stratified uniforms (module
    stratified): between samples, the cohort's observation rates move less than they do when
    the same model draws them independently. Sixteen samples a side: with six the ratio
    measured 0.80 on a model whose 20-sample ratio is 0.63."""

    def rate_spread() -> float:
        rates = [to_grid(fitted.sample(300, seed=s)).mask.mean(axis=(0, 1)) for s in range(16)]
        return float(np.std(rates, axis=0, ddof=1).mean())

    stratified_spread = rate_spread()
    monkeypatch.setattr(
        stratified, "uniforms", lambda r, c, gen, device: torch.rand(r, c, generator=gen)
    )
    monkeypatch.setattr(
        stratified, "categorical",
        lambda probs, gen: torch.multinomial(probs, 1, generator=gen).squeeze(1),
    )  # fmt: skip
    assert stratified_spread < 0.8 * rate_spread()
