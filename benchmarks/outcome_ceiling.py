"""Where the TSTR gap comes from: the synthetic series, or how the outcome is drawn (benchmark).

TSTR (train on synthetic, test on real) for in-hospital death mixes two losses: synthetic series
that differ from real ones, and synthetic labels drawn from the generator's outcome model (a DP
logistic head over a whole-stay summary) instead of from reality. This benchmark separates them
for a trained model (``generate_physionet.py --save FILE``, same ``--seed``):

- ``head_auroc``: the outcome model's own AUROC on the real non-members;
- ``tstr_real_stays``: the audit's classifier trained on the *real* training stays relabelled by
  the outcome model (labels drawn exactly as sampling draws them, calibrated to the released
  death rate) and tested on the non-members -- the TSTR that perfect synthetic series would get
  with this outcome model;
- ``tstr_synthetic``: the same classifier trained on synthetic stays (the benchmark's TSTR);
- ``series_cost`` = ``tstr_real_stays - tstr_synthetic``.

``--refits R`` repeats everything with the outcome heads re-fitted under R fresh DP noise draws
(the same privacy cost each; only to average that draw out, not a release). Each figure is a
mean over ``--draws`` label draws / synthetic samples of 2,000 stays.

``--associations K`` also prints, for the saved heads, each audit feature's own AUROC for death
on three sides: real stays with their labels, real stays relabelled by the heads, synthetic
stays with theirs. The K features whose synthetic AUROC is furthest from the relabelled one
are where the synthetic series lose (or invent) a tie with the outcome.

Usage::

    .venv/bin/python benchmarks/generate_physionet.py --epsilon 4 --seed 0 --save /tmp/s0.pt
    .venv/bin/python benchmarks/outcome_ceiling.py /tmp/s0.pt --seed 0 --refits 4
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from generate_physionet import OUTCOME, load_split  # noqa: E402

from audits.features import StayFeatures, stay_features  # noqa: E402
from audits.utility import tstr_table  # noqa: E402
from clinsynth.cohort import Cohort  # noqa: E402
from clinsynth.generator import SequenceSynthesizer, outcome_head  # noqa: E402
from clinsynth.generator.sampling import sample_fields  # noqa: E402
from clinsynth.grid import to_grid  # noqa: E402


def relabelled(synth: SequenceSynthesizer, tensors: tuple, seed: int) -> np.ndarray:
    """Death labels drawn by the outcome model for real stays (as ``sample`` draws them)."""
    enc = synth.encoding
    codes = tensors[3].cpu().numpy().copy()
    outcomes = range(enc.n_static, len(enc.statics))
    gen = torch.Generator().manual_seed(seed)
    sample_fields(synth.model_, enc, codes, outcomes, gen, tensors[6], synth.outcome_rates_)
    labels = enc.decode_statics(codes, np.random.default_rng(seed))
    return labels[:, enc.decoded_names.index(OUTCOME)]


def head_auroc(synth: SequenceSynthesizer, tensors: tuple, y: np.ndarray) -> float:
    """AUROC of the outcome head's death logit (class 1 vs class 0) on real stays."""
    k = [f.name for f in synth.encoding.statics].index(OUTCOME)
    with torch.no_grad():
        logits = synth.model_.fields.logits(k, tensors[2], tensors[6])
    return float(roc_auc_score(y, (logits[:, 1] - logits[:, 0]).cpu().numpy()))


def one_draw(
    synth: SequenceSynthesizer, train_t: tuple, seed: int
) -> tuple[np.ndarray, Cohort, np.ndarray]:
    """Draw ``seed``: the real training stays relabelled by the outcome heads, and a synthetic
    sample of 2,000 stays with its audit features."""
    labels = relabelled(synth, train_t, seed)
    cohort = synth.sample(2000, seed=seed + 1000)
    f_syn = stay_features(to_grid(cohort), synth.schema, include_outcomes=False).values
    return labels, cohort, f_syn


def figures(
    synth: SequenceSynthesizer,
    tensors: tuple[tuple, tuple],
    features: tuple[np.ndarray, np.ndarray],
    y_test: np.ndarray,
    draws: int,
    seed: int,
) -> dict[str, float]:
    """The four figures of the module docstring for the model's current outcome heads.

    One call of the audit's ``tstr_table`` per draw: its "train on real" side is given the
    relabelled real training stays, its "train on synthetic" side a fresh synthetic sample.
    """
    (train_t, test_t), (f_train, f_test) = tensors, features
    test_frame = pd.DataFrame({OUTCOME: y_test})
    real, syn = [], []
    for d in range(draws):
        labels, cohort, f_syn = one_draw(synth, train_t, seed + d)
        relabel = pd.DataFrame({OUTCOME: labels})
        row = tstr_table(
            f_train, relabel, f_syn, cohort.statics, f_test, test_frame, [OUTCOME], 0
        ).iloc[0]
        real.append(row["trtr"])
        syn.append(row["tstr"])
    return {
        "head_auroc": head_auroc(synth, test_t, y_test),
        "tstr_real_stays": float(np.mean(real)),
        "tstr_synthetic": float(np.mean(syn)),
        "series_cost": float(np.mean(real) - np.mean(syn)),
    }


def _auroc(feature: np.ndarray, y: np.ndarray) -> float:
    """AUROC of one feature for the labels ``y`` over the stays that have it (NaN if < 50)."""
    ok = ~np.isnan(feature) & ~np.isnan(y)
    if ok.sum() < 50 or len(np.unique(y[ok])) < 2 or np.ptp(feature[ok]) == 0:
        return float("nan")
    return float(roc_auc_score(y[ok], feature[ok]))


def associations(
    synth: SequenceSynthesizer,
    train_t: tuple,
    f_train: StayFeatures,
    y_train: np.ndarray,
    draws: int,
    seed: int,
) -> pd.DataFrame:
    """Per audit feature: its AUROC for death on real stays (``real``), on the same stays
    relabelled by the outcome heads (``relabelled``, mean over draws) and on synthetic stays
    with their own labels (``synthetic``, mean over draws of 2,000 stays)."""
    columns = range(f_train.values.shape[1])
    by_heads, by_synthetic = [], []
    for d in range(draws):
        labels, cohort, f_syn = one_draw(synth, train_t, seed + d)
        by_heads.append([_auroc(f_train.values[:, j], labels) for j in columns])
        y_syn = cohort.statics[OUTCOME].to_numpy(dtype=float)
        by_synthetic.append([_auroc(f_syn[:, j], y_syn) for j in columns])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a feature NaN in every draw
        return pd.DataFrame(
            {
                "real": [_auroc(f_train.values[:, j], y_train) for j in columns],
                "relabelled": np.nanmean(by_heads, axis=0),
                "synthetic": np.nanmean(by_synthetic, axis=0),
            },
            index=f_train.names,
        )


def main() -> None:
    warnings.filterwarnings("ignore")
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", type=Path, help="a model saved by generate_physionet.py --save")
    p.add_argument("--seed", type=int, default=0, help="the split seed the model was trained on")
    p.add_argument("--draws", type=int, default=3, help="label draws / samples per figure")
    p.add_argument("--refits", type=int, default=0, help="outcome heads re-fitted R times")
    p.add_argument(
        "--associations", type=int, default=0, metavar="K",
        help="print the K features whose tie with death the synthetic stays change most",
    )  # fmt: skip
    args = p.parse_args()
    torch.set_num_threads(1)
    train, test = load_split(args.seed)
    synth = SequenceSynthesizer.load(args.model)
    train_t, test_t = synth._tensors(train), synth._tensors(test)
    train_features = stay_features(to_grid(train), synth.schema, include_outcomes=False)
    f_train = train_features.values
    f_test = stay_features(to_grid(test), synth.schema, include_outcomes=False).values
    y_test = test.statics[OUTCOME].to_numpy(dtype=float)
    data = (train_t, test_t), (f_train, f_test)
    if args.associations:
        y_train = train.statics[OUTCOME].to_numpy(dtype=float)
        table = associations(synth, train_t, train_features, y_train, args.draws, args.seed)
        strength = (table - 0.5).abs().mean()
        print("mean |AUROC - 0.5| over features: " + ", ".join(
            f"{side} {value:.3f}" for side, value in strength.items()
        ))  # fmt: skip
        gap = (table["synthetic"] - table["relabelled"]).abs()
        print(table.loc[gap.sort_values(ascending=False).index[: args.associations]].round(3))
    rows = {"saved heads": figures(synth, *data, y_test, args.draws, args.seed)}
    sigma = outcome_head.outcome_sigma(synth.epsilon) if synth.dp else 0.0
    for r in range(args.refits):
        gen = torch.Generator().manual_seed(10_000 + r)
        outcome_head.fit_outcome_heads(
            synth.model_, synth.encoding, train_t[2], train_t[3], train_t[6], sigma, gen
        )
        rows[f"refit {r}"] = figures(synth, *data, y_test, args.draws, args.seed + 100 * r)
    names = list(next(iter(rows.values())))
    print(f"{'':14s}" + "".join(f"{n:>17s}" for n in names))
    for label, row in rows.items():
        print(f"{label:14s}" + "".join(f"{row[n]:17.3f}" for n in names))
    if args.refits:
        refits = [row for label, row in rows.items() if label.startswith("refit")]
        mean = {n: np.mean([row[n] for row in refits]) for n in names}
        print(f"{'refit mean':14s}" + "".join(f"{mean[n]:17.3f}" for n in names))


if __name__ == "__main__":
    main()
