"""Scoring a filled review form: how often stays looked implausible, and (blinded) whether the
clinician could tell real from synthetic.

Accuracy is tested against the accuracy of guessing *without* looking at the data: with a share
``g`` of "real" guesses and a share ``r`` of real sheets, chance agreement is
``g*r + (1-g)*(1-r)`` (0.5 whenever half the sheets are real). An accuracy whose 95% Wilson
interval contains chance means real and synthetic stays were indistinguishable to this reviewer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
from scipy.stats import binomtest

from clinsynth.review.forms import GUESS_COLUMN


@dataclass
class Rate:
    """k of n, with a 95% Wilson interval."""

    k: int
    n: int
    low: float
    high: float

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else float("nan")

    @classmethod
    def of(cls, k: int, n: int) -> Rate:
        if n == 0:
            return cls(0, 0, float("nan"), float("nan"))
        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        return cls(int(k), int(n), float(ci.low), float(ci.high))


@dataclass
class Distinguishability:
    """Blinded mode only: did the reviewer tell real from synthetic better than chance?"""

    accuracy: Rate
    chance: float
    p_value: float
    real_called_real: Rate  # sensitivity for real sheets
    synthetic_called_synthetic: Rate

    @property
    def verdict(self) -> str:
        if self.accuracy.low <= self.chance <= self.accuracy.high:
            return "indistinguishable: accuracy is consistent with guessing"
        if self.accuracy.low > self.chance:
            return "distinguishable: the reviewer told real from synthetic better than chance"
        return "worse than chance: the reviewer systematically mistook one for the other"


@dataclass
class ReviewScore:
    n_sheets: int
    implausible_synthetic: Rate
    implausible_real: Rate | None
    implausible_overall: Rate
    unsure_synthetic: Rate
    distinguishability: Distinguishability | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score(form: pd.DataFrame, key: pd.DataFrame) -> ReviewScore:
    """Join a checked form (forms.read_form) with the key and compute the rates."""
    merged = form.merge(key[["code", "source"]], on="code", how="inner", validate="one_to_one")
    synth = merged[merged["source"] == "synthetic"]
    real = merged[merged["source"] == "real"]

    def implausible(frame: pd.DataFrame) -> Rate:
        return Rate.of(int((frame["verdict"] == "implausible").sum()), len(frame))

    blinded = len(real) > 0 and GUESS_COLUMN in merged.columns
    dist = None
    if blinded:
        correct = int((merged[GUESS_COLUMN] == merged["source"]).sum())
        n = len(merged)
        guessed_real = float((merged[GUESS_COLUMN] == "real").mean())
        share_real = len(real) / n
        chance = guessed_real * share_real + (1 - guessed_real) * (1 - share_real)
        dist = Distinguishability(
            accuracy=Rate.of(correct, n),
            chance=chance,
            p_value=float(binomtest(correct, n, p=min(max(chance, 1e-9), 1 - 1e-9)).pvalue),
            real_called_real=Rate.of(int((real[GUESS_COLUMN] == "real").sum()), len(real)),
            synthetic_called_synthetic=Rate.of(
                int((synth[GUESS_COLUMN] == "synthetic").sum()), len(synth)
            ),
        )
    return ReviewScore(
        n_sheets=len(merged),
        implausible_synthetic=implausible(synth),
        implausible_real=implausible(real) if len(real) else None,
        implausible_overall=implausible(merged),
        unsure_synthetic=Rate.of(int((synth["verdict"] == "unsure").sum()), len(synth)),
        distinguishability=dist,
    )
