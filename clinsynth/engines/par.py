"""SDV's PARSynthesizer as a baseline engine: same cohort in, same Cohort out, no privacy at all.

Users ask "why not just SDV?"; this engine lets the same run directory, audits, export gate and
review sheets answer with measurements. It has the estimator surface of ``SequenceSynthesizer``
(``fit`` / ``sample`` / ``privacy_report`` / ``save`` / ``load``) and is clearly labelled **not
differentially private**: PAR sees the training data directly (means, spreads, category sets,
every gradient), so ``privacy_report()`` says ``epsilon = inf``.

How the cohort is handed to PAR (one SDV table, one row per patient and grid step):

- sequence key = a positional id (``0..N-1``): real patient IDs never reach the model file;
  sequence index = the grid step; every patient has all ``n_steps`` rows, so PAR learns and
  samples fixed-length sequences (the step of a sampled row is its position in the sequence);
- context columns = the schema's statics and outcomes (PAR fits a Gaussian copula to them and
  conditions its GRU on them);
- sequence columns = the schema's variables on the grid (``clinsynth.grid.to_grid``: last value
  per step), NaN where unmeasured.

Measurement pattern: PAR gives every continuous column its own autoregressive "missing"
Bernoulli, so NaN *is* the measured indicator and no extra indicator columns are needed (SDV's
default mean-imputation + random re-insertion of NaN, which would destroy the pattern, is not used
by PAR). Binary / categorical variables and statics are passed as string codes with an explicit
``"missing"`` level: deepecho's categorical map puts every float NaN in its own slot (hundreds of
dead one-hot dimensions), strings avoid that.

The schema's public transforms (``log`` / ``log1p``) are applied before fitting and inverted after
sampling, as our own engine does, so the comparison is about the model. On the way back values are
clipped to the hard limits, rounded to the schema's precision (integers to 0 decimals), and each
measured step gets a charting time uniform within the step (whole minutes, one time per patient
and step, shared by the variables measured in it).

Determinism: training runs under ``torch.random.fork_rng`` seeded with ``seed`` (weight init; PAR
trains full-batch so there is no shuffling), the context copula's fit is deterministic; sampling
seeds torch, the copula's random state and the time offsets with the sampling seed. rdt's
missing-value generator for the context columns uses rdt's own fixed seeds (reset before every
``sample``), so the same (fit seed, sample seed) gives the same cohort on the same machine;
torch does not promise bit-identical results across versions or CPU types.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pandas as pd
import torch
from rich.progress import Progress
from torch.optim.optimizer import register_optimizer_step_post_hook

from clinsynth.cohort import CleaningReport, Cohort
from clinsynth.errors import ClinsynthError
from clinsynth.grid import to_grid
from clinsynth.io import atomic_path
from clinsynth.schema import BaseField, Schema, VariableType

TABLE = "stays"
SEQUENCE_KEY = "sequence_id"
SEQUENCE_INDEX = "step"
MISSING = "missing"
DEFAULT_EPOCHS = 128  # PAR's own default; the benchmark states the epochs it actually used
_CONTEXT_PREFIX = "c__"  # statics may share a name with a variable (PhysioNet: Weight)
_VARIABLE_PREFIX = "v__"

ProgressFn = Callable[[int, int, float, float | None], None]
ProgressArg = ProgressFn | bool | None  # the generator's callback, or True for our own bar


def synthetic_ids(n: int) -> list[str]:
    """Fresh IDs that cannot be mistaken for real ones (P00001, P00002...)."""
    return [f"P{i:05d}" for i in range(1, n + 1)]


# --- value coding ---------------------------------------------------------------------------


def _forward(field: BaseField, values: np.ndarray) -> np.ndarray:
    """Schema transform (public) so that PAR's Gaussian fits skewed labs better."""
    if field.transform == "log":
        return np.log(np.maximum(values, 1e-6))
    if field.transform == "log1p":
        return np.log1p(np.maximum(values, 0.0))
    return values


def _inverse(field: BaseField, values: np.ndarray) -> np.ndarray:
    if field.transform == "log":
        return np.exp(values)
    if field.transform == "log1p":
        return np.expm1(values)
    return values


def encode_column(field: BaseField, values: np.ndarray) -> np.ndarray | pd.Series:
    """Cohort coding -> PAR column: floats (NaN kept) or string codes with a missing level."""
    if field.is_numeric_code:
        codes = pd.Series(values, dtype="float64")
        return codes.map(lambda c: MISSING if pd.isna(c) else str(round(c))).to_numpy(object)
    return _forward(field, np.asarray(values, dtype=np.float64))


def decode_column(field: BaseField, column: pd.Series) -> np.ndarray:
    """PAR column -> cohort coding: clipped to hard limits, rounded to the schema's precision."""
    if field.is_numeric_code:
        text = column.astype(object).where(column.notna(), MISSING).astype(str)
        return pd.to_numeric(text.where(text != MISSING), errors="coerce").to_numpy(np.float64)
    values = _inverse(field, pd.to_numeric(column, errors="coerce").to_numpy(np.float64))
    if field.hard_limits is not None:
        values = np.clip(values, *field.hard_limits)
    decimals = 0 if field.type is VariableType.integer else field.precision
    return np.round(values, decimals) if decimals is not None else values


# --- the engine -----------------------------------------------------------------------------


class PARBaseline:
    """SDV ``PARSynthesizer`` behind clinsynth's estimator surface (no differential privacy)."""

    engine_name = "par"

    def __init__(
        self,
        schema: Schema,
        epochs: int = DEFAULT_EPOCHS,
        seed: int = 0,
        sample_size: int = 1,
        verbose: bool = False,
        threads: int | None = 1,
    ) -> None:
        if epochs < 1:
            raise ClinsynthError(f"PAR needs at least one training epoch (got {epochs}).")
        self.schema = schema
        self.epochs = int(epochs)
        self.seed = int(seed)
        self.sample_size = int(sample_size)
        self.verbose = verbose
        # PAR's network is a 32-unit GRU: its cost is Python loops, and extra intra-op threads
        # only add contention (17 ms per tiny matmul seen on a busy 2-core machine). None keeps
        # torch's setting.
        self.threads = threads
        self.ignored_options: list[str] = []  # DP-only options a registry caller passed in
        self.n_train: int | None = None
        self.fit_seconds: float | None = None
        self._synth: Any = None

    # column names in the SDV table
    def _context_columns(self) -> list[tuple[str, BaseField]]:
        fields = [*self.schema.statics, *self.schema.outcomes]
        return [(_CONTEXT_PREFIX + f.name, f) for f in fields]

    def _sequence_columns(self) -> list[tuple[str, BaseField]]:
        return [(_VARIABLE_PREFIX + v.name, v) for v in self.schema.variables]

    def metadata_dict(self) -> dict:
        """SDV metadata built from the schema alone (public): no statistic of the data."""
        columns: dict[str, dict] = {
            SEQUENCE_KEY: {"sdtype": "id"},
            SEQUENCE_INDEX: {"sdtype": "numerical"},
        }
        for name, field in [*self._context_columns(), *self._sequence_columns()]:
            columns[name] = {"sdtype": "categorical" if field.is_numeric_code else "numerical"}
        return {
            "tables": {
                TABLE: {
                    "columns": columns,
                    "sequence_key": SEQUENCE_KEY,
                    "sequence_index": SEQUENCE_INDEX,
                }
            }
        }

    def to_table(self, cohort: Cohort) -> pd.DataFrame:
        """One row per (patient, grid step); positional sequence ids replace the real ones."""
        grid = to_grid(cohort)
        n, t, _ = grid.values.shape
        table: dict[str, Any] = {
            SEQUENCE_KEY: np.repeat(np.arange(n), t).astype(str),
            SEQUENCE_INDEX: np.tile(np.arange(t), n),
        }
        for (name, field), column in zip(self._context_columns(), grid.statics.T, strict=True):
            table[name] = encode_column(field, np.repeat(column, t))
        for k, (name, field) in enumerate(self._sequence_columns()):
            table[name] = encode_column(field, grid.values[:, :, k].reshape(-1))
        return pd.DataFrame(table)

    def fit(self, cohort: Cohort, progress: ProgressArg = None) -> PARBaseline:
        """Train PAR on the cohort's grid view (one full-batch optimizer step per epoch)."""
        from sdv.metadata import Metadata
        from sdv.sequential import PARSynthesizer

        if cohort.schema.fingerprint() != self.schema.fingerprint():
            raise ClinsynthError(
                "The cohort was loaded with a different schema than the PAR engine was built "
                "with; load the data and build the engine with the same schema."
            )
        if cohort.n_patients < 2:
            raise ClinsynthError("PAR needs at least two patients to learn from.")
        table = self.to_table(cohort)
        started = time.perf_counter()
        with _quiet_sdv():
            synth = PARSynthesizer(
                Metadata.load_from_dict(self.metadata_dict()),
                context_columns=[name for name, _ in self._context_columns()],
                epochs=self.epochs,
                sample_size=self.sample_size,
                cuda=False,
                verbose=self.verbose,
                enforce_min_max_values=True,
                enforce_rounding=False,
            )
            with (
                _seeded(self.seed),
                _torch_threads(self.threads),
                _epoch_progress(progress, self.epochs, synth),
            ):
                synth.fit({TABLE: table})
        self._synth = synth
        self.n_train = cohort.n_patients
        self.fit_seconds = time.perf_counter() - started
        return self

    def sample(self, n: int, seed: int | None = None) -> Cohort:
        """``n`` synthetic patients with fresh IDs, in the cohort data model."""
        if self._synth is None:
            raise ClinsynthError("The PAR engine must be fitted (or loaded) before sampling.")
        if n < 1:
            raise ClinsynthError(f"Cannot sample {n} patients; ask for at least one.")
        seed = self.seed if seed is None else int(seed)
        n_steps = self.schema.grid.n_steps
        context = self._synth._context_synthesizer
        with _quiet_sdv(), _seeded(seed), _torch_threads(self.threads):
            # private SDV API: without it the context copula always samples from SDV's fixed seed
            context.reset_sampling()
            context._set_random_state(seed)
            table = self._synth.sample_sequences(n, sequence_length=n_steps)[TABLE]
        if len(table) != n * n_steps:
            raise RuntimeError(f"PAR returned {len(table)} rows, expected {n} x {n_steps}")
        return self.from_table(table.reset_index(drop=True), n, np.random.default_rng(seed))

    def from_table(self, table: pd.DataFrame, n: int, rng: np.random.Generator) -> Cohort:
        """PAR's sampled rows (fixed length, in sequence order) -> Cohort."""
        schema, n_steps = self.schema, self.schema.grid.n_steps
        ids = np.array(synthetic_ids(n), dtype=object)
        first = table.iloc[::n_steps]
        statics = pd.DataFrame(
            {f.name: decode_column(f, first[name]) for name, f in self._context_columns()},
            index=pd.Index(ids, name="patient_id"),
        )
        step_h = schema.grid.step_hours
        minutes = np.floor(rng.uniform(0.0, step_h * 60.0, size=n * n_steps))
        hours = np.tile(np.arange(n_steps), n) * step_h + minutes / 60.0  # stays in its step
        patient = np.repeat(ids, n_steps)
        parts = []
        for name, var in self._sequence_columns():
            values = decode_column(var, table[name])
            seen = ~np.isnan(values)
            parts.append(
                pd.DataFrame(
                    {
                        "patient_id": patient[seen],
                        "hours": hours[seen],
                        "variable": var.name,
                        "value": values[seen],
                    }
                )
            )
        obs = pd.concat(parts, ignore_index=True)
        obs = obs.sort_values(["patient_id", "hours", "variable"], kind="stable")
        return Cohort(
            schema=schema,
            statics=statics,
            observations=obs.reset_index(drop=True),
            report=CleaningReport(),
            provenance={"engine": self.engine_name, "synthetic": True, "n_patients": n},
        )

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters, for the run manifest (scikit-learn style)."""
        return {
            "epochs": self.epochs,
            "seed": self.seed,
            "sample_size": self.sample_size,
            "ignored_options": list(self.ignored_options),
        }

    def privacy_report(self) -> dict[str, Any]:
        """Same keys as the DP engine's report, stating plainly that there is no guarantee."""
        return {
            "engine": self.engine_name,
            "dp": False,  # the key SequenceSynthesizer's report uses
            "differentially_private": False,
            "epsilon": math.inf,
            "delta": None,
            "accountant": None,
            "noise_multiplier": None,
            "max_grad_norm": None,
            "sample_rate": 1.0,  # PAR trains full-batch: every patient in every step
            "epochs": self.epochs,
            "steps": self.epochs,
            "n_train": self.n_train,
            "public_vs_dp": {
                "public": ["schema (variable list, types, hard limits, transforms, grid)"],
                "dp": [],
                "not_private": [
                    "everything PAR and its context copula learn: means/spreads and category "
                    "sets of every column, context marginals and correlations, GRU weights"
                ],
            },
            "ignored_options": list(self.ignored_options),
            "note": "SDV PARSynthesizer baseline: NOT differentially private (epsilon = inf). "
            "For comparison only; do not share its output as private data.",
        }

    def save(self, path: str | Path) -> Path:
        """One cloudpickle file (SDV's own format is cloudpickle too) holding engine + model."""
        path = Path(path)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            cloudpickle.dump(self, fh)
        return path

    @classmethod
    def load(cls, path: str | Path) -> PARBaseline:
        """Load a saved engine. Pickle runs code: only load files this tool wrote."""
        path = Path(path)
        if not path.is_file():
            raise ClinsynthError(f"No saved PAR model at {path}.")
        try:
            with open(path, "rb") as fh, _quiet_sdv():
                engine = cloudpickle.load(fh)
        except Exception as exc:
            raise ClinsynthError(f"{path} is not a saved PAR model ({exc}).") from None
        if not isinstance(engine, cls):
            raise ClinsynthError(f"{path} holds a {type(engine).__name__}, not a PAR model.")
        return engine


# --- helpers --------------------------------------------------------------------------------


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch and numpy's legacy global RNG without leaking the state to the caller."""
    np_state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            np.random.set_state(np_state)


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` intra-op threads, then give the caller its own setting back."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def _quiet_sdv() -> Iterator[None]:
    """SDV/deepecho warn about things that are expected here (e.g. constant step diffs)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=FutureWarning)
        warnings.simplefilter("ignore", category=UserWarning)
        warnings.simplefilter("ignore", category=RuntimeWarning)
        yield


@contextmanager
def _epoch_progress(progress: ProgressArg, epochs: int, synth: Any) -> Iterator[None]:
    """Report once per epoch: PAR takes exactly one (full-batch) optimizer step per epoch.

    ``progress`` is the generator's callback ``(epoch_done, n_epochs, loss, epsilon=None)``, or
    True for a rich bar of our own.
    """
    if not progress:
        yield
        return
    bar = Progress(transient=True) if progress is True else None
    task = bar.add_task("PAR (SDV) training", total=epochs) if bar is not None else None
    done = 0

    def hook(*_: Any) -> None:
        nonlocal done
        done += 1
        losses = getattr(getattr(synth, "_model", None), "loss_values", None)
        loss = float(losses["Loss"].iloc[-1]) if losses is not None and len(losses) else math.nan
        if bar is not None:
            bar.update(task, completed=done, description=f"PAR (SDV) training, loss {loss:.3f}")
        else:
            progress(done, epochs, loss, None)

    handle = register_optimizer_step_post_hook(hook)
    try:
        if bar is not None:
            with bar:
                yield
        else:
            yield
    finally:
        handle.remove()
