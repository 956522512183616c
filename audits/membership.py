"""Membership inference: could an attacker holding the synthetic data tell who was in training?

Two attack families, each scored on equal-size, seeded sets of training members and held-out
non-members (AUROC and TPR at FPR 1% / 10%):

- distance (DCR): a record close to some synthetic record is guessed to be a member;
- density, DOMIAS-style (van Breugel et al., 2023): a member is where the synthetic density is
  high *relative to* the population density. Both densities are Gaussian KDEs on a PCA of the
  stay representation fitted on synthetic + reference data (what an attacker has). The reference
  is the half of the non-members not used for scoring, or a cohort the user supplies.

Averages hide the patients most at risk, so attack success is also reported on the most outlying
real records (largest mean distance to their k nearest real neighbours).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import gaussian_kde
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors

from audits.policy import Parameters
from audits.result import FamilyOutput, Measurement
from audits.stats import attack_metrics, auroc_null_allowance, tpr_allowance

PCA_DIMS = 8
OUTLIER_K = 5


def scoring_sets(
    n_train: int, n_holdout: int, seed: int, has_reference: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(member rows, non-member rows, reference rows of the holdout), equal-size and seeded."""
    rng = np.random.default_rng(seed)
    hold = rng.permutation(n_holdout)
    if has_reference:
        scoring, reference = hold, np.array([], dtype=int)
    else:
        half = n_holdout // 2
        scoring, reference = hold[:half], hold[half:]
    n = min(n_train, len(scoring))
    members = np.sort(rng.choice(n_train, size=n, replace=False))
    return members, np.sort(scoring[:n]), np.sort(reference)


def dcr_scores(records: np.ndarray, synthetic: np.ndarray) -> np.ndarray:
    """Minus the distance to the closest synthetic record (higher = more likely a member)."""
    nn = NearestNeighbors(n_neighbors=1).fit(synthetic)
    return -nn.kneighbors(records)[0][:, 0]


def domias_scores(
    records: np.ndarray, synthetic: np.ndarray, reference: np.ndarray, seed: int
) -> np.ndarray:
    """log p_synthetic(x) - log p_reference(x) on a PCA of the representation."""
    both = np.vstack([synthetic, reference])
    dims = max(1, min(PCA_DIMS, len(reference) - 2, len(synthetic) - 2, both.shape[1]))
    pca = PCA(n_components=dims, random_state=seed).fit(both)
    project = pca.transform
    # a tiny jitter keeps the KDE covariance invertible when a cohort has duplicate rows
    jitter = np.random.default_rng(seed).normal(0.0, 1e-6, size=(len(both), dims))
    syn = project(synthetic) + jitter[: len(synthetic)]
    ref = project(reference) + jitter[len(synthetic) :]
    x = project(records).T
    return gaussian_kde(syn.T).logpdf(x) - gaussian_kde(ref.T).logpdf(x)


def outlier_scores(records: np.ndarray, real_pool: np.ndarray) -> np.ndarray:
    """Mean distance to the k nearest *other* real records: large = rare presentation."""
    k = min(OUTLIER_K, len(real_pool) - 1)
    nn = NearestNeighbors(n_neighbors=k + 1).fit(real_pool)
    dist = nn.kneighbors(records)[0]
    return dist[:, 1:].mean(axis=1)  # the first neighbour is the record itself


def _downsample_roc(roc: tuple[np.ndarray, np.ndarray], points: int = 200) -> dict:
    fpr, tpr = roc
    grid = np.linspace(0, 1, points)
    return {"fpr": grid, "tpr": np.interp(grid, fpr, tpr)}


def membership_audit(
    train: np.ndarray,
    holdout: np.ndarray,
    synthetic: np.ndarray,
    params: Parameters,
    seed: int = 0,
    reference: np.ndarray | None = None,
) -> FamilyOutput:
    """Run both attack families on filled stay features (rows = patients)."""
    members, nonmembers, ref_rows = scoring_sets(
        len(train), len(holdout), seed, reference is not None
    )
    ref = reference if reference is not None else holdout[ref_rows]
    records = np.vstack([train[members], holdout[nonmembers]])
    is_member = np.r_[np.ones(len(members), bool), np.zeros(len(nonmembers), bool)]
    n_pos, n_neg = len(members), len(nonmembers)
    alpha = params.noise_alpha

    attacks = {
        "dcr": dcr_scores(records, synthetic),
        "domias": domias_scores(records, synthetic, ref, seed),
    }
    out = FamilyOutput()
    results = {}
    for name, scores in attacks.items():
        m = attack_metrics(scores, is_member)
        results[name] = m
        out.plots[f"roc_{name}"] = _downsample_roc(m["roc"])
        sizes = f"{n_pos} members vs {n_neg} non-members"
        out.measurements += [
            Measurement(
                f"membership_{name}_auroc",
                m["auroc"],
                f"AUROC {m['auroc']:.3f} on {sizes}",
                noise=auroc_null_allowance(n_pos, n_neg, alpha),
            ),
            Measurement(
                f"membership_{name}_tpr_at_fpr01",
                m["tpr_at_fpr01"],
                f"TPR {m['tpr_at_fpr01']:.3f} at FPR 1% ({sizes})",
                noise=tpr_allowance(0.01, n_pos, n_neg, alpha),
            ),
            Measurement(
                f"membership_{name}_tpr_at_fpr10",
                m["tpr_at_fpr10"],
                f"TPR {m['tpr_at_fpr10']:.3f} at FPR 10% ({sizes})",
                noise=tpr_allowance(0.10, n_pos, n_neg, alpha),
            ),
        ]

    # vulnerable records: the most outlying of the scored real records
    pool = np.vstack([train, holdout])
    outlying = outlier_scores(records, pool)
    n_vul = min(
        len(records),
        max(params.min_vulnerable, math.ceil(params.vulnerable_fraction * len(records))),
    )
    top = np.argsort(-outlying, kind="stable")[:n_vul]
    v_pos, v_neg = int(is_member[top].sum()), int((~is_member[top]).sum())
    vul = {name: attack_metrics(s[top], is_member[top]) for name, s in attacks.items()}
    vul_auc = {k: v["auroc"] for k, v in vul.items()}
    finite = [a for a in vul_auc.values() if not math.isnan(a)]
    best = max(finite) if finite else math.nan
    out.measurements.append(
        Measurement(
            "membership_vulnerable_auroc",
            best,
            f"best attack AUROC {best:.3f} on the {n_vul} most outlying scored records "
            f"({v_pos} members, {v_neg} non-members): "
            + ", ".join(f"{k} {a:.3f}" for k, a in vul_auc.items()),
            noise=auroc_null_allowance(v_pos, v_neg, alpha, tests=len(attacks)),
            applicable=bool(finite),
        )
    )
    out.summary = {
        "n_members_scored": n_pos,
        "n_nonmembers_scored": n_neg,
        "n_reference": len(ref),
        "reference": "user-supplied" if reference is not None else "half of the holdout",
        "attacks": {
            name: {k: v for k, v in m.items() if k != "roc"} for name, m in results.items()
        },
        "vulnerable": {
            "n": n_vul,
            "members": v_pos,
            "non_members": v_neg,
            "attacks": {
                name: {k: v for k, v in m.items() if k != "roc"} for name, m in vul.items()
            },
        },
    }
    out.plots["dcr_members"] = -attacks["dcr"][is_member]
    out.plots["dcr_nonmembers"] = -attacks["dcr"][~is_member]
    return out
