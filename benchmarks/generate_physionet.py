"""Benchmark of the DP sequence generator on PhysioNet 2012 set-a (never run by the tests).

4,000 set-a stays are loaded (window not enforced), split with a fixed seed into 2,000 training
members and 2,000 real non-members (the test set). The generator is trained on the members only
(holdout 0 inside: the non-members ARE the holdout) at ε = 1, 4 and 10, samples 2,000 stays,
and the quality figures are computed with the audits package's own functions:

- training time, sampling time for 2,000 stays, peak memory (ru_maxrss), achieved ε;
- observation-rate gap per variable (percentage points, synthetic vs members; worst and mean);
- lag-1 within-patient autocorrelation gap for the vitals (worst and mean);
- within-stay spread: synthetic over real pooled within-patient sd per variable (median, and
  the variable furthest from 1 either way);
- between-stay ties: the mean |real - synthetic| over variable pairs of the correlation across
  stays of their stay means (how variables move together from one patient to the next);
- marginal fidelity: mean KS over variables (time ignored) and share of variables failing;
- discriminator AUROC real-vs-synthetic (0.5 ideal) on the whole-stay representation;
- TSTR vs TRTR AUROC for In-hospital_death, tested on the non-members, and the calibration
  slope of the TSTR classifier on them (logistic regression of the real outcome on its logit:
  1 = calibrated, below 1 = over-confident on real patients); then the TSTR mean and sd over
  ``--tstr-draws`` more synthetic samples of the same size (one draw varies by about ±0.012),
  and optionally with larger synthetic training sets (``--tstr-n``).

Usage::

    .venv/bin/python benchmarks/generate_physionet.py            # ε = 1, 4, 10
    .venv/bin/python benchmarks/generate_physionet.py --epsilon 4 --epochs 30
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audits.correlation import auto_sums, correlation_from_sums, demeaned  # noqa: E402
from audits.features import StayFeatures, stay_features  # noqa: E402
from audits.fidelity import marginal_audit  # noqa: E402
from audits.policy import load_policy  # noqa: E402
from audits.utility import (  # noqa: E402
    _informative_columns,
    classifier,
    discriminator_auroc,
    tstr_table,
)
from clinsynth.cohort import Cohort  # noqa: E402
from clinsynth.generator import SequenceSynthesizer  # noqa: E402
from clinsynth.grid import GridCohort, to_grid  # noqa: E402
from clinsynth.loader import load_cohort  # noqa: E402

DATA = ROOT.parent / "shared/data/physionet2012"
OUTCOME = "In-hospital_death"


def load_split(seed: int = 0) -> tuple[Cohort, Cohort]:
    """(2,000 training members, ~2,000 non-members) of set-a, seeded."""
    cohort = load_cohort(
        DATA / "set-a.csv.gz",
        "physionet2012",
        outcomes_path=DATA / "Outcomes-a.txt",
        enforce_window=False,
        progress=False,
    )
    return cohort.split(0.5, seed)


def lag1_acf(z: np.ndarray) -> np.ndarray:
    """Within-patient lag-1 autocorrelation per variable, as the temporal audit defines it."""
    return correlation_from_sums(auto_sums(demeaned(z), 1).sum(axis=0))


def within_sd(z: np.ndarray) -> np.ndarray:
    """Pooled within-patient sd per variable of audit features ``z [N, T, V]`` (NaN: missing):
    how far a patient's values scatter about the patient's own mean."""
    dev = demeaned(z)
    count = np.sum(~np.isnan(z), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(np.nansum(dev**2, axis=(0, 1)) / np.sum(np.maximum(count - 1, 0), axis=0))


def between_stay_correlation(z: np.ndarray) -> np.ndarray:
    """``[V, V]`` correlation across stays of each variable's stay mean (audit features
    ``z [N, T, V]``; pairs that fewer than 100 stays have both of are NaN): how variables
    move together from one patient to the next (sicker patients: higher BUN and lower GCS)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the mean of a never-measured one
        means = np.nanmean(z, axis=1)
    return pd.DataFrame(means).corr(min_periods=100).to_numpy()


class RealStays(NamedTuple):
    """The real side of every comparison, converted once per benchmark run: the members and
    non-members, the members' grid and both sides' audit stay features."""

    train: Cohort
    test: Cohort
    train_grid: GridCohort
    f_train: StayFeatures
    f_test: StayFeatures


def real_stays(train: Cohort, test: Cohort) -> RealStays:
    grid = to_grid(train)
    f_test = stay_features(to_grid(test), test.schema)
    return RealStays(train, test, grid, stay_features(grid, train.schema), f_test)


def quality(real: RealStays, synth: Cohort, seed: int = 0) -> dict[str, float]:
    """The issue's quality figures, computed with the audits' own representations."""
    train, test = real.train, real.test
    schema = train.schema
    grids = {"train": real.train_grid, "synth": to_grid(synth)}
    feats = {"train": real.f_train, "test": real.f_test}
    feats["synth"] = stay_features(grids["synth"], schema)
    out: dict[str, float] = {}

    rate_gap = np.abs(grids["synth"].mask.mean(axis=(0, 1)) - grids["train"].mask.mean(axis=(0, 1)))
    rate_gap *= 100
    out["obs_rate_gap_max_pp"] = float(rate_gap.max())
    out["obs_rate_gap_mean_pp"] = float(rate_gap.mean())
    out["obs_rate_worst"] = grids["train"].variables[int(rate_gap.argmax())]

    vitals = [i for i, v in enumerate(schema.variables) if v.group == "vital"]
    acf_r, acf_s = (lag1_acf(feats[k].z) for k in ("train", "synth"))
    acf_gap = np.abs(acf_r - acf_s)[vitals]
    out["acf1_gap_vitals_max"] = float(np.nanmax(acf_gap))
    out["acf1_gap_vitals_mean"] = float(np.nanmean(acf_gap))
    out["acf1_worst"] = schema.variables[vitals[int(np.nanargmax(acf_gap))]].name
    real_sd, synth_sd = within_sd(feats["train"].z), within_sd(feats["synth"].z)
    spread = real_sd > 0  # binary variables (MechVent: 1 whenever charted) have none
    log_ratio = np.where(spread, np.log(np.where(spread, synth_sd / real_sd, 1.0)), np.nan)
    out["within_sd_ratio_median"] = float(np.exp(np.nanmedian(log_ratio)))
    worst = int(np.nanargmax(np.abs(log_ratio)))
    out["within_sd_ratio_worst"] = float(np.exp(log_ratio[worst]))
    out["within_sd_worst"] = schema.variable_names[worst]
    between = [between_stay_correlation(feats[k].z) for k in ("train", "synth")]
    pairs = np.triu(np.ones_like(between[0], dtype=bool), k=1)
    out["between_stay_corr_gap_mean"] = float(np.nanmean(np.abs(between[0] - between[1])[pairs]))

    params = load_policy(None).parameters
    marginal = marginal_audit(
        grids["train"], grids["synth"], feats["train"].z, feats["synth"].z, schema, params
    ).tables["marginal"]
    out["marginal_mean_distance"] = float(marginal["value"].mean())
    judged = marginal["passed"].dropna().astype(bool)
    out["marginal_share_failing"] = float((~judged).mean())

    out["discriminator_auroc"] = discriminator_auroc(
        feats["train"].filled(), feats["synth"].filled(), seed
    )[0]
    outcomes = schema.outcome_names
    row = tstr_row(real, synth, feats["synth"], seed)
    out["trtr_auroc"] = float(row["trtr"])
    out["tstr_auroc"] = float(row["tstr"])
    out["tstr_over_trtr"] = float(row["tstr"] / row["trtr"])
    out["tstr_calibration_slope"] = calibration_slope(
        feats["synth"].without(outcomes), synth.statics[OUTCOME].to_numpy(dtype=float),
        feats["test"].without(outcomes), test.statics[OUTCOME].to_numpy(dtype=float), seed,
    )  # fmt: skip
    out["mortality_real"] = float(row["real_rate"])
    out["mortality_synth"] = float(row["synthetic_rate"])
    return out


def tstr_row(real: RealStays, synth: Cohort, f_synth: StayFeatures, seed: int) -> pd.Series:
    """The audit's TSTR/TRTR row for in-hospital death (``f_synth``: ``synth``'s features)."""
    outcomes = real.train.schema.outcome_names
    table = tstr_table(
        real.f_train.without(outcomes), real.train.statics.reindex(columns=outcomes),
        f_synth.without(outcomes), synth.statics.reindex(columns=outcomes),
        real.f_test.without(outcomes), real.test.statics.reindex(columns=outcomes),
        [OUTCOME], seed,
    )  # fmt: skip
    return table.set_index("outcome").loc[OUTCOME]


def tstr_over_draws(
    model: SequenceSynthesizer, real: RealStays, n: int, draws: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """TSTR AUROC and worst observation-rate gap (pp, against the members) of ``draws`` fresh
    synthetic samples of ``n`` stays each (seeds ``seed + 100 + d``): one sample's TSTR varies
    by about ±0.012 at 2,000 stays, from the sampled outcomes and the classifier's fit, and its
    worst rate gap by a few tenths of a point (arterial lines: some patients have one, others
    not), so a single draw says little about the model."""
    tstr, gaps = [], []
    real_rates = real.train_grid.mask.mean(axis=(0, 1))
    for d in range(draws):
        synth = model.sample(n, seed=seed + 100 + d)
        grid = to_grid(synth)
        gaps.append(float(np.abs(grid.mask.mean(axis=(0, 1)) - real_rates).max() * 100))
        f_synth = stay_features(grid, real.train.schema)
        tstr.append(float(tstr_row(real, synth, f_synth, seed)["tstr"]))
    return np.array(tstr), np.array(gaps)


def calibration_slope(
    x_synth: np.ndarray, y_synth: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, seed: int
) -> float:
    """Slope of the real outcome on the logit of the audit's classifier trained on synthetic
    stays (1 = its risks are calibrated on real patients, < 1 = over-confident)."""
    labelled = ~np.isnan(y_synth)
    keep = _informative_columns(x_synth[labelled])
    model = classifier(seed).fit(x_synth[labelled][:, keep], y_synth[labelled])
    p = np.clip(model.predict_proba(x_test[:, keep])[:, 1], 1e-6, 1 - 1e-6)
    logit = np.log(p / (1 - p)).reshape(-1, 1)
    return float(LogisticRegression(C=1e6).fit(logit, y_test).coef_[0, 0])


def run_one(real: RealStays, epsilon: float, args: argparse.Namespace) -> dict:
    train = real.train
    kwargs = {"epochs": args.epochs} if args.epochs else {}
    for key in ("batch_size", "hidden", "n_blocks", "learning_rate", "threads"):
        if getattr(args, key):
            kwargs[key] = getattr(args, key)
    synth_model = SequenceSynthesizer(
        train.schema, epsilon=epsilon, seed=args.seed, dp=not args.no_dp_unsafe, **kwargs
    )
    t0 = time.perf_counter()

    def progress(epoch: int, total: int, loss: float, eps: float | None) -> None:
        if args.verbose:
            print(f"  epoch {epoch}/{total} loss {loss:.3f} eps {eps:.2f} "
                  f"{time.perf_counter() - t0:.0f}s", flush=True)  # fmt: skip

    synth_model.fit(train, progress=progress)
    fit_s = time.perf_counter() - t0
    if args.save:
        synth_model.save(args.save.with_name(f"{args.save.stem}_eps{epsilon:g}.pt"))
    t0 = time.perf_counter()
    synth = synth_model.sample(args.n, seed=args.seed + 1)
    sample_s = time.perf_counter() - t0
    report = synth_model.privacy_report()
    row = {
        "target_eps": epsilon,
        "achieved_eps": report["epsilon"],
        "delta": report["delta"],
        "noise_multiplier": report["noise_multiplier"],
        "epochs": report["epochs"],
        "train_s": fit_s,
        "sample_s": sample_s,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    }
    # schema rules kept while sampling: the share of bounded cells the model drew outside
    for name, tally in synth.provenance["rules_kept_while_sampling"]["variables"].items():
        row[f"rule_redrawn_pct_{name}"] = 100 * tally["redrawn_share"]
    row.update(quality(real, synth, seed=args.seed))
    if args.tstr_draws > 1:
        tstr, gaps = tstr_over_draws(synth_model, real, args.n, args.tstr_draws, args.seed)
        row["obs_rate_gap_max_pp_mean_of_draws"] = float(gaps.mean())
        row["obs_rate_gap_max_pp_worst_of_draws"] = float(gaps.max())
        row["tstr_auroc_mean_of_draws"] = float(tstr.mean())
        row["tstr_auroc_sd_of_draws"] = float(tstr.std(ddof=1))
        row["tstr_mean_over_trtr"] = float(tstr.mean() / row["trtr_auroc"])
    for n in args.tstr_n or []:
        tstr, _ = tstr_over_draws(synth_model, real, n, max(args.tstr_draws, 1), args.seed)
        row[f"tstr_auroc_mean_at_n{n}"] = float(tstr.mean())
    if args.details:
        print(details(train, synth), flush=True)
    return row


def details(train: Cohort, synth: Cohort) -> str:
    """Per-variable observation rate, lag-1 autocorrelation, mean, sd and within-stay sd, real
    members vs synthetic."""
    schema = train.schema
    grids = [to_grid(c) for c in (train, synth)]
    rates = [g.mask.mean(axis=(0, 1)) * 100 for g in grids]
    zs = [stay_features(g, schema).z for g in grids]
    acfs = [lag1_acf(z) for z in zs]
    means = [np.nanmean(z, axis=(0, 1)) for z in zs]
    stds = [np.nanstd(z, axis=(0, 1)) for z in zs]
    within = [within_sd(z) for z in zs]
    lines = [f"{'variable':12s} {'rate r':>7s} {'rate s':>7s} {'acf r':>6s} {'acf s':>6s} "
             f"{'mean r':>7s} {'mean s':>7s} {'sd r':>6s} {'sd s':>6s} {'wsd r':>6s} "
             f"{'wsd s':>6s}"]  # fmt: skip
    for j, v in enumerate(schema.variable_names):
        lines.append(
            f"{v:12s} {rates[0][j]:7.2f} {rates[1][j]:7.2f} {acfs[0][j]:6.2f} {acfs[1][j]:6.2f} "
            f"{means[0][j]:7.2f} {means[1][j]:7.2f} {stds[0][j]:6.2f} {stds[1][j]:6.2f} "
            f"{within[0][j]:6.2f} {within[1][j]:6.2f}"
        )
    lines.append("mean z of the per-stay mean, died - survived (real, synthetic):")
    for v in ("GCS", "BUN", "Urine", "Lactate", "HCO3", "HR", "Creatinine", "RespRate"):
        j = schema.variable_names.index(v)
        diffs = []
        for c, z in zip((train, synth), zs, strict=True):
            died = c.statics[OUTCOME].to_numpy() == 1
            with np.errstate(all="ignore"):
                per_stay = np.nanmean(z[:, :, j], axis=1)
            diffs.append(np.nanmean(per_stay[died]) - np.nanmean(per_stay[~died]))
        lines.append(f"  {v:12s} {diffs[0]:7.2f} {diffs[1]:7.2f}")
    for name in [*schema.static_names, *schema.outcome_names]:
        a, b = train.statics[name], synth.statics[name]
        lines.append(f"{name:12s} mean {a.mean():8.2f} {b.mean():8.2f}  missing "
                     f"{a.isna().mean():.2f} {b.isna().mean():.2f}")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epsilon", type=float, action="append", help="repeatable; default 1 4 10")
    parser.add_argument("--epochs", type=int, default=None, help="default: the generator's")
    parser.add_argument("--n", type=int, default=2000, help="synthetic stays to sample")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=None, help="default: the generator's")
    parser.add_argument("--hidden", type=int, default=None, help="default: the generator's")
    parser.add_argument("--n-blocks", type=int, default=None, help="default: the generator's")
    parser.add_argument("--learning-rate", type=float, default=None, help="default: generator's")
    parser.add_argument("--save", type=Path, default=None, help="save the trained model here")
    parser.add_argument("--no-dp-unsafe", action="store_true", help="reference run without DP")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: 1)")
    parser.add_argument("--verbose", action="store_true", help="print every epoch")
    parser.add_argument("--details", action="store_true", help="per-variable rates and ACF")
    parser.add_argument(
        "--tstr-draws", type=int, default=5,
        help="fresh synthetic samples of --n stays whose TSTR mean and sd are reported (default 5)",
    )  # fmt: skip
    parser.add_argument(
        "--tstr-n", type=int, action="append",
        help="repeatable: also the TSTR mean with this many synthetic training stays",
    )  # fmt: skip
    args = parser.parse_args()
    if not (DATA / "set-a.csv.gz").is_file():
        sys.exit(f"PhysioNet 2012 set-a not found under {DATA}")
    warnings.filterwarnings("ignore")
    train, test = load_split(args.seed)
    print(f"train {train.n_patients} stays, test (non-members) {test.n_patients} stays", flush=True)
    real = real_stays(train, test)
    rows = []
    for eps in args.epsilon or [1.0, 4.0, 10.0]:
        rows.append(run_one(real, eps, args))
        print(_format(rows[-1:]), flush=True)
    print()
    print(_format(rows))


def _format(rows: list[dict]) -> str:
    keys = list(rows[0])
    lines = []
    for k in keys:
        cells = [f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k]) for r in rows]
        lines.append(f"{k:24s} " + " ".join(f"{c:>12s}" for c in cells))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
