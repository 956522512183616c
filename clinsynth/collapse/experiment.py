"""The iterative-retraining experiment: train → sample → retrain on the sample, G generations.

Two arms share generation 0 (a model trained on real stays):

- ``synthetic``: generation g trains only on generation g-1's sample;
- ``mixed``: generation g trains on ``1 - real_fraction`` of generation g-1's sample plus a
  ``real_fraction`` of fresh real stays from a pool disjoint from the generation-0 training
  stays and from the held-out stays (drawn without replacement; reused only when exhausted).

Every training set goes through the same lineage accounting as a training load: samples are
stamped with a marker whose depth is one more than their training data's deepest generation,
and ``clinsynth.lineage.enforce_allowance`` is called with the arm's explicit allowance (1 for
the synthetic arm, ``1 - real_fraction`` for the mixed one), so the recorded depth is the one
the loader would record. Samples stay in memory: nothing synthetic is written to disk.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from clinsynth.cohort import Cohort
from clinsynth.collapse.measures import RealReference, measure
from clinsynth.errors import ClinsynthError
from clinsynth.lineage import (
    MARKERS_KEY,
    Registry,
    cohort_markers,
    detect_lineage,
    enforce_allowance,
    lineage_id,
    make_marker,
    stamp,
)

ARMS = ("synthetic", "mixed")
MIN_SPLIT = 10  # patients in each of held-out, initial training set and pool

Progress = Callable[[int, int, str], None]  # (models done, models in total, what now)


@dataclass(frozen=True)
class CollapseConfig:
    """Experiment settings; model settings are deliberately small (minutes, not hours)."""

    generations: int = 5
    real_fraction: float = 0.3
    holdout_fraction: float = 0.2
    tail: float = 0.05
    epsilon: float = 4.0
    dp: bool = True
    epochs: int = 20
    batch_size: int = 200
    hidden: int = 64
    n_blocks: int = 4
    n_mix: int = 3
    seed: int = 0

    def check(self) -> None:
        if self.generations < 1:
            raise ClinsynthError(f"--generations must be at least 1, got {self.generations}.")
        if not 0.0 < self.real_fraction < 1.0:
            raise ClinsynthError(
                f"--real-fraction must be between 0 and 1 (exclusive), got {self.real_fraction}."
            )
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ClinsynthError(f"--holdout must be in (0, 1), got {self.holdout_fraction}.")
        if not 0.0 < self.tail < 0.5:
            raise ClinsynthError(f"--tail must be in (0, 0.5), got {self.tail}.")

    def synthesizer(self, schema, seed: int):
        from clinsynth.generator import SequenceSynthesizer

        return SequenceSynthesizer(
            schema, epsilon=self.epsilon, dp=self.dp, epochs=self.epochs,
            batch_size=self.batch_size, hidden=self.hidden, n_blocks=self.n_blocks,
            n_mix=self.n_mix, seed=seed,
        )  # fmt: skip


@dataclass
class CollapseResult:
    """One row per (arm, generation) in ``table``; per-variable measures in ``variables``."""

    config: CollapseConfig
    table: pd.DataFrame
    variables: pd.DataFrame
    sizes: dict[str, int]
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"config": asdict(self.config), "sizes": self.sizes, "timings": self.timings}


def split_real(real: Cohort, config: CollapseConfig) -> tuple[Cohort, Cohort, Cohort]:
    """(held-out, generation-0 training set, fresh pool): three disjoint sets of real stays."""
    rest, holdout = real.split(config.holdout_fraction, config.seed)
    pool, initial = rest.split(0.5, config.seed + 1)
    if min(holdout.n_patients, initial.n_patients, pool.n_patients) < MIN_SPLIT:
        raise ClinsynthError(
            f"The real cohort ({real.n_patients} patients) is too small to split into held-out, "
            f"training and fresh-pool sets of at least {MIN_SPLIT} patients each."
        )
    return holdout, initial, pool


def _rekeyed(cohort: Cohort, prefix: str) -> Cohort:
    """The same patients under ``prefix``-ed ids (markers follow), so sets can be combined."""
    mapping = {pid: f"{prefix}{pid}" for pid in cohort.patient_ids}
    markers = {mapping[p]: m for p, m in cohort_markers(cohort).items()}
    obs = cohort.observations.assign(patient_id=cohort.observations["patient_id"].map(mapping))
    return Cohort(
        schema=cohort.schema,
        statics=cohort.statics.rename(index=mapping),
        observations=obs,
        provenance={MARKERS_KEY: markers},
    )


def combine(parts: list[tuple[str, Cohort]]) -> Cohort:
    """Concatenate cohorts (ids prefixed per part), keeping every patient's lineage marker."""
    keyed = [_rekeyed(c, prefix) for prefix, c in parts]
    markers = {p: m for c in keyed for p, m in cohort_markers(c).items()}
    return Cohort(
        schema=keyed[0].schema,
        statics=pd.concat([c.statics for c in keyed]),
        observations=pd.concat([c.observations for c in keyed], ignore_index=True),
        provenance={MARKERS_KEY: markers},
    )


class _Pool:
    """Fresh real stays, handed out without replacement in a seeded order (wrapping around)."""

    def __init__(self, cohort: Cohort, seed: int) -> None:
        self.cohort = cohort
        self.order = list(np.random.default_rng(seed).permutation(cohort.patient_ids))
        self.next = 0

    def draw(self, n: int) -> Cohort:
        ids = [self.order[(self.next + i) % len(self.order)] for i in range(n)]
        self.next += n
        return self.cohort.subset(sorted(set(ids)))


def _account(train: Cohort, allowed: float, what: str) -> int:
    """The loader's lineage check on a training set; returns the depth of the model trained."""
    report = detect_lineage(train, registry=Registry(path=Path(os.devnull)), use_fingerprints=False)
    enforce_allowance(report, allowed, what)
    return report.next_depth


def run_collapse(
    real: Cohort, config: CollapseConfig | None = None, progress: Progress | None = None
) -> CollapseResult:
    """Run both arms for ``config.generations`` generations (see module docstring)."""
    config = config or CollapseConfig()
    config.check()
    holdout, initial, pool_cohort = split_real(real, config)
    ref = RealReference.build(holdout, initial, config.tail)
    n_train = initial.n_patients
    n_real = math.ceil(config.real_fraction * n_train)
    allowed = {"synthetic": 1.0, "mixed": (n_train - n_real) / n_train}
    rows, variables, timings = [], [], {}
    total = 1 + len(ARMS) * config.generations
    done = 0

    def say(message: str) -> None:
        if progress is not None:
            progress(done, total, message)

    def step(arm: str, generation: int, train: Cohort, seed: int) -> Cohort:
        nonlocal done
        what = f"generation {generation} training set ({arm} arm)"
        depth = _account(train, allowed.get(arm, 0.0) if generation else 0.0, what)
        say(f"{arm} arm, generation {generation}: training on {train.n_patients} stays")
        t0 = time.perf_counter()
        model = config.synthesizer(real.schema, seed).fit(train)
        fit_s = time.perf_counter() - t0
        sample = model.sample(n_train, seed=seed)
        sample = stamp(sample, make_marker(lineage_id(f"collapse-{arm}-g{generation}"), depth))
        say(f"{arm} arm, generation {generation}: measuring")
        summary, per_var = measure(ref, sample, seed)
        synthetic_share = len(cohort_markers(train)) / train.n_patients
        arms = ARMS if generation == 0 else (arm,)
        for a in arms:
            rows.append({"arm": a, "generation": generation, "depth": depth,
                         "train_synthetic_fraction": round(synthetic_share, 4),
                         "train_patients": train.n_patients, **summary,
                         "fit_seconds": round(fit_s, 1)})  # fmt: skip
            variables.append(per_var.assign(arm=a, generation=generation))
        timings[f"{arm}_g{generation}_s"] = round(time.perf_counter() - t0, 1)
        done += 1
        say(f"{arm} arm, generation {generation}: done")
        return sample

    base = step("both", 0, initial, config.seed)
    current = dict.fromkeys(ARMS, base)
    pool = _Pool(pool_cohort, config.seed + 2)
    for generation in range(1, config.generations + 1):
        for k, arm in enumerate(ARMS):
            seed = config.seed + 1000 * generation + k
            previous = current[arm]
            if arm == "synthetic":
                train = previous
            else:
                kept = previous.subset(previous.patient_ids[: n_train - n_real])
                train = combine([("s:", kept), ("r:", pool.draw(n_real))])
            current[arm] = step(arm, generation, train, seed)
    table = pd.DataFrame(rows).sort_values(["arm", "generation"], kind="stable")
    per_variable = pd.concat(variables, ignore_index=True)
    per_variable = per_variable[
        ["arm", "generation", "variable", "tail_coverage", "variance_ratio"]
    ]
    sizes = {
        "real_patients": real.n_patients,
        "holdout": holdout.n_patients,
        "generation0_train": n_train,
        "fresh_pool": pool_cohort.n_patients,
        "fresh_real_per_generation": n_real,
    }
    return CollapseResult(config, table.reset_index(drop=True), per_variable, sizes, timings)
