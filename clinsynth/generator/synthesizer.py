"""``SequenceSynthesizer``: the estimator-style entry point (fit a cohort, sample synthetic ones).

Parameters are validated up front with plain-language errors. Same cohort + parameters + seed give
byte-identical samples: torch/numpy are seeded from ``seed``, opacus' Poisson sampler and noise
use their own seeded generators, and sampling uses a generator seeded from the sample seed.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clinsynth.cohort import Cohort
from clinsynth.errors import ClinsynthError
from clinsynth.generator import (
    calibration,
    effects,
    intervals,
    measurement,
    outcome_head,
    priors,
    severity,
)
from clinsynth.generator.encoding import Encoding
from clinsynth.generator.features import stay_summary, teacher_forced_features
from clinsynth.generator.model import ModelConfig, StayModel
from clinsynth.generator.sampling import sample_raw, to_cohort
from clinsynth.generator.training import ProgressFn, TrainingConfig, TrainingResult, train
from clinsynth.grid import to_grid
from clinsynth.io import atomic_path
from clinsynth.schema import Schema, load_schema, parse_schema

FORMAT_VERSION = 4  # 2: the hidden severity field; 3: the blood-draw coupling (module draws);
# 4: the saved schema's variables carry within_stay_sd (an older reader would refuse it as
# an unknown schema field rather than say the file is newer)
READABLE_FORMATS = (3, 4)  # a 3 loads as saved: its schema has no within_stay_sd, which
# only calibration (at fit time) reads
DEFAULTS = {
    "epsilon": 4.0,
    "epochs": 60,
    "batch_size": 125,
    "learning_rate": 3e-3,
    "max_grad_norm": 3.2,
    "hidden": 64,
    "n_blocks": 4,
    "n_mix": 3,
}


def release_mechanisms(epsilon: float) -> tuple[tuple[float, float, int], ...]:
    """Every mechanism besides DP-SGD, as accountant entries (noise multiplier, sampling rate,
    steps): the prior, effects and measurement releases, the calibration releases and the
    outcome heads' steps. DP-SGD's noise is solved for what they leave of (ε, δ)."""
    return (
        (priors.release_sigma(epsilon), 1.0, 1),
        (effects.release_sigma(epsilon), 1.0, 1),
        (measurement.release_sigma(epsilon), 1.0, 1),
        *calibration.mechanisms(calibration.release_sigma(epsilon)),
        (outcome_head.outcome_sigma(epsilon), 1.0, outcome_head.STEPS),
    )


class SequenceSynthesizer:
    """DP generative model of whole ICU stays (statics, outcome, measured series) for one schema.

    ``delta`` defaults to 1/(10·N) for N training patients: well below 1/N, the level at which a
    mechanism could leak one whole record with non-negligible probability. ``dp=False`` trains
    without privacy (only for experiments; recorded as ε = ∞).
    """

    def __init__(
        self,
        schema: Schema | str | Path,
        epsilon: float = DEFAULTS["epsilon"],
        delta: float | None = None,
        epochs: int = DEFAULTS["epochs"],
        batch_size: int = DEFAULTS["batch_size"],
        learning_rate: float = DEFAULTS["learning_rate"],
        max_grad_norm: float = DEFAULTS["max_grad_norm"],
        hidden: int = DEFAULTS["hidden"],
        n_blocks: int = DEFAULTS["n_blocks"],
        n_mix: int = DEFAULTS["n_mix"],
        seed: int = 0,
        dp: bool = True,
        device: str | None = None,
        accountant: str = "prv",
        threads: int | None = 1,
    ) -> None:
        self.schema = schema if isinstance(schema, Schema) else load_schema(schema)
        self.epsilon = _positive_float("epsilon", epsilon)
        if delta is not None and not (isinstance(delta, int | float) and 0 < delta < 1):
            raise ClinsynthError(
                f"delta must be in (0, 1), got {delta!r}; leave it unset for 1/(10·N)."
            )
        self.delta = delta
        self.epochs = _positive_int("epochs", epochs)
        self.batch_size = _positive_int("batch_size", batch_size)
        self.learning_rate = _positive_float("learning_rate", learning_rate)
        self.max_grad_norm = _positive_float("max_grad_norm", max_grad_norm)
        self.model_config = ModelConfig(
            hidden=_positive_int("hidden", hidden),
            n_blocks=_positive_int("n_blocks", n_blocks),
            n_mix=_positive_int("n_mix", n_mix),
        )
        if not isinstance(seed, int | np.integer) or isinstance(seed, bool):
            raise ClinsynthError(f"seed must be an integer, got {seed!r}.")
        self.seed = int(seed)
        self.dp = bool(dp)
        if accountant not in ("prv", "rdp"):
            raise ClinsynthError(f"accountant must be 'prv' or 'rdp', got {accountant!r}.")
        self.accountant = accountant
        self.device = _resolve_device(device)
        self.threads = None if threads is None else _positive_int("threads", threads)
        self.encoding = Encoding.from_schema(self.schema)
        self.model_: StayModel | None = None
        self.training_: TrainingResult | None = None
        self.n_train_: int | None = None
        self.fit_seconds_: float | None = None
        self.outcome_rates_: list[np.ndarray] | None = None  # DP-released, for calibration
        self.targets_: calibration.Targets | None = None  # DP-released, for calibration
        self.calibration_gaps_: dict[str, list[float]] | None = None  # worst gaps per round

    # ---------------------------------------------------------------- parameters
    def get_params(self) -> dict[str, Any]:
        return {
            "schema": self.schema.name,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "max_grad_norm": self.max_grad_norm,
            "hidden": self.model_config.hidden,
            "n_blocks": self.model_config.n_blocks,
            "n_mix": self.model_config.n_mix,
            "seed": self.seed,
            "dp": self.dp,
            "accountant": self.accountant,
        }

    # ---------------------------------------------------------------- fitting
    def fit(self, cohort: Cohort, progress: ProgressFn | None = None) -> SequenceSynthesizer:
        """Train on ``cohort`` (the real training members only) under DP-SGD."""
        if cohort.schema.fingerprint() != self.schema.fingerprint():
            raise ClinsynthError(
                f"The cohort uses schema '{cohort.schema.name}' but the synthesizer was built for "
                f"'{self.schema.name}' (or a different version of it); use one schema for both."
            )
        n = cohort.n_patients
        if n < 2:
            raise ClinsynthError(f"Cannot train on {n} patient(s); the cohort needs at least 2.")
        if not self.dp:
            warnings.warn(
                "Training WITHOUT differential privacy: the model can memorise real patients. "
                "Never share its output.",
                stacklevel=2,
            )
        delta = self.delta if self.delta is not None else 1.0 / (10 * n)
        _seed_everything(self.seed)
        tensors = self._tensors(cohort)
        model = StayModel(self.encoding, self.model_config).to(self.device)
        # one Gaussian release of summary statistics initialises the model (module priors);
        # its privacy cost is composed with the training steps by the same accountant
        x, m, codes = (t.cpu().numpy() for t in (tensors[4], tensors[5], tensors[3]))
        gen = torch.Generator().manual_seed(self.seed + 2)
        sigma = priors.release_sigma(self.epsilon) if self.dp else 0.0
        released = priors.release(x, m, codes, self.encoding, gen, sigma)
        priors.initialise(model, released, self.encoding)
        # four more small releases: measurement, outcome and severity rates, lag-1
        # persistence, within-stay spread, intervals between measurements (the targets the
        # trained model is calibrated to)
        target_sigma = calibration.release_sigma(self.epsilon) if self.dp else 0.0
        self.targets_ = calibration.release_targets(x, m, codes, self.encoding, gen, target_sigma)
        self.outcome_rates_ = self.targets_.outcome_rates  # less noisy than the prior release's
        # and one for how the statics and the hidden severity score move each variable's level
        # (module effects), about the prior release's first-value means
        inputs = effects.regression_inputs(self.encoding, tensors[2].cpu().numpy())
        effects_sigma = effects.release_sigma(self.epsilon) if self.dp else 0.0
        released_effects = effects.release_effects(
            x, m, inputs, self.encoding.indices("gauss"), gen, effects_sigma,
            centre=priors.first_value_means(released, self.encoding),
        )  # fmt: skip
        measured = priors.measured_counts(released)
        effects.initialise(model, self.encoding, released_effects, measured)
        # and one for how they move how often each variable is measured (module measurement),
        # about the effects release's mean inputs; a calibration target
        intensity_sigma = measurement.release_sigma(self.epsilon) if self.dp else 0.0
        centre = released_effects.inputs / n
        rates = self.targets_.rates
        intensity = measurement.release(inputs, m, centre, rates, gen, intensity_sigma)
        self.targets_ = dataclasses.replace(
            self.targets_, intensity=intensity, intensity_centre=centre
        )
        severity.initialise_head(model, self.encoding, self.targets_.severity_rates)
        head_sigma = outcome_head.outcome_sigma(self.epsilon) if self.dp else 0.0
        config = TrainingConfig(
            epochs=self.epochs,
            batch_size=min(self.batch_size, n),
            learning_rate=self.learning_rate,
            max_grad_norm=self.max_grad_norm,
            epsilon=self.epsilon,
            delta=delta,
            dp=self.dp,
            accountant=self.accountant,
            seed=self.seed,
            prior_mechanisms=release_mechanisms(self.epsilon) if self.dp else (),
        )
        start = time.perf_counter()
        with _cpu_threads(self.threads):  # DP-SGD, then the outcome heads, then calibration
            self.training_ = train(model, tensors, config, progress)
            model.eval()
            outcome_head.fit_outcome_heads(
                model, self.encoding, tensors[2], tensors[3], tensors[6], head_sigma, gen
            )
            self.calibration_gaps_ = calibration.calibrate(
                model, self.encoding, self.targets_, self.seed + 3,
                n=min(calibration.CALIBRATION_STAYS, max(500, 2 * n)),
            )  # fmt: skip
        self.fit_seconds_ = time.perf_counter() - start
        self.model_ = model
        self.n_train_ = n
        return self

    def _tensors(self, cohort: Cohort) -> tuple[torch.Tensor, ...]:
        grid = to_grid(cohort)
        values = self.encoding.dequantise(grid.values, np.random.default_rng(self.seed))
        x, m = self.encoding.encode_series(values)
        scores = severity.score(x, m, self.encoding.indices("gauss"))
        codes = self.encoding.encode_statics(grid.statics, scores)
        cond = self.encoding.static_condition(codes)
        xt, mt = torch.from_numpy(x), torch.from_numpy(m)
        scale, shift = (torch.tensor(v) for v in self.encoding.input_maps())
        per_var, glob = teacher_forced_features(xt, mt, scale, shift)
        summary = stay_summary(xt, mt, scale, shift)
        tensors = (per_var, glob, torch.from_numpy(cond), torch.from_numpy(codes), xt, mt, summary)
        return tuple(t.to(self.device) for t in tensors)

    # ---------------------------------------------------------------- sampling
    def sample(self, n: int, seed: int | None = None) -> Cohort:
        """``n`` synthetic stays with fresh IDs (S00001...): a :class:`Cohort` in schema units."""
        model = self._fitted()
        n = _positive_int("n", n)
        seed = self.seed if seed is None else seed
        if not isinstance(seed, int | np.integer):
            raise ClinsynthError(f"seed must be an integer, got {seed!r}.")
        with _cpu_threads(self.threads):
            targets = self.targets_
            raw = sample_raw(
                model, self.encoding, n, int(seed), self.outcome_rates_,
                severity_rates=None if targets is None else targets.severity_rates,
                static_rates=None if targets is None else targets.static_rates,
                measurement_rates=None if targets is None else targets.rates,
            )  # fmt: skip
        provenance = {
            "synthetic": True,
            "generator": "clinsynth.SequenceSynthesizer",
            "sample_seed": int(seed),
            "n_patients": n,
            "privacy": self.privacy_report(),
            "rules_kept_while_sampling": raw.rules,
        }
        return to_cohort(raw, self.encoding, self.schema, int(seed), provenance)

    # ---------------------------------------------------------------- reporting
    def privacy_report(self) -> dict[str, Any]:
        """(ε, δ) achieved and everything needed to re-derive it, plus the public/DP split."""
        result = self._fitted_result()
        return {
            "dp": self.dp,
            "epsilon": result.epsilon if self.dp else math.inf,
            "target_epsilon": self.epsilon if self.dp else math.inf,
            "delta": result.delta,
            "accountant": self.accountant if self.dp else None,
            "noise_multiplier": result.noise_multiplier,
            "max_grad_norm": self.max_grad_norm if self.dp else None,
            "sample_rate": result.sample_rate,
            "expected_batch_size": result.sample_rate * (self.n_train_ or 0),
            "epochs": result.epochs,
            "steps": result.steps,
            "n_train": self.n_train_,
            "unit": "patient (whole stay)",
            "public": [
                "schema: variable list, types, categories, transforms, normal ranges and hard "
                "limits (scaling, static bins, clipping), precision, grid step and horizon",
                "number of training patients N (sets delta = 1/(10 N) by default)",
                "architecture and training hyper-parameters (chosen without looking at the data)",
            ],
            "dp_release": {
                "what": "one Gaussian mechanism on per-patient summary vectors (initialises the "
                "model): per-variable first-hour / not-yet / after-measured measurement "
                "hazards, mean first value, outcome class rates, static missing rates",
                "noise_multiplier": priors.release_sigma(self.epsilon) if self.dp else None,
                "clip_norm": priors.CLIP,
                "composed_with_dp_sgd": True,
            },
            "dp_release_effects": {
                "what": "one Gaussian mechanism: per patient, its statics conditioning inputs "
                "(with its severity score, a public formula of its values: module severity), "
                "their products with each other and with each numeric variable's stay-mean "
                "level; ridge regressions of level on the inputs start the series' dependence "
                "on the statics and the score",
                "noise_multiplier": effects.release_sigma(self.epsilon) if self.dp else None,
                "clip_norm": effects.CLIP,
                "composed_with_dp_sgd": True,
            },
            "dp_release_measurement": {
                "what": "one Gaussian mechanism: per patient, its statics conditioning inputs "
                "(centred on the effects release's mean) times each variable's clipped log "
                "measurement intensity (measurements against the released rates); sampled "
                "stays are calibrated to reproduce these products (how the statics and the "
                "score move how often each variable is measured)",
                "noise_multiplier": measurement.release_sigma(self.epsilon) if self.dp else None,
                "clip_norm": measurement.CLIP,
                "composed_with_dp_sgd": True,
            },
            "dp_outcome_heads": {
                "what": "the outcome heads (logistic model of the outcomes given the statics "
                "and a whole-stay summary) fitted by full-batch gradient descent with "
                "per-patient clipping and Gaussian noise",
                "steps": outcome_head.STEPS if self.dp else outcome_head.NOISE_FREE_STEPS,
                "noise_multiplier": outcome_head.outcome_sigma(self.epsilon) if self.dp else None,
                "clip_norm": outcome_head.CLIP,
                "composed_with_dp_sgd": True,
            },
            "dp_release_calibration": {
                "what": "five Gaussian mechanisms: each patient's share of measured grid cells "
                "per variable with its share of steps with a blood draw and its outcome and "
                "severity-score classes, each patient's "
                "lag-1 sums of demeaned values per numeric variable, each patient's "
                "squared deviations about its own mean per numeric variable, per expected "
                "measurement (the released rates; both in the schema's within_stay_sd where it "
                "gives one, else in standardised units), each patient's shares of its "
                "intervals between measurements per variable in six buckets (1, 2, 3-4, 5-8, "
                "9-16, 17+ h), and each patient's group of bins (four adjacent bins) of each "
                "numeric static; sampled rates, classes, lag-1 autocorrelations, within-stay "
                "variances, interval hazards, blood-draw rounds and the numeric statics' "
                "groups are calibrated to them, and the spread "
                "of the drawn stays' own severity scores to the released classes'; each "
                "schema panel is measured when its member with the highest released rate is, "
                "the others at their released share of it (post-processing)",
                "noise_multiplier": calibration.release_sigma(self.epsilon) if self.dp else None,
                "spread_noise_multiplier": (
                    calibration.spread_sigma(calibration.release_sigma(self.epsilon))
                    if self.dp
                    else None
                ),
                "interval_noise_multiplier": (
                    calibration.interval_sigma(calibration.release_sigma(self.epsilon))
                    if self.dp
                    else None
                ),
                "static_noise_multiplier": (
                    calibration.static_sigma(calibration.release_sigma(self.epsilon))
                    if self.dp
                    else None
                ),
                "clip_norms": {
                    "statics": calibration.static_clip(self.encoding),
                    "rates": calibration.RATES_CLIP,
                    "lag1": calibration.LAG_CLIP,
                    "spread": calibration.SPREAD_CLIP,
                    "intervals": intervals.CLIP,
                },
                "rate_noise_sd": self.targets_.rate_noise_sd if self.targets_ else None,
                "blood_draw_coupling": float(self.model_.draw_coupling),
                "calibration_worst_gaps": self.calibration_gaps_,
                "composed_with_dp_sgd": True,
            },
            "dp_sgd": [
                "everything else the model learns: measurement patterns, value distributions "
                "and dynamics, static distributions, missingness",
            ],
            "budget_split": (
                "all mechanisms are composed by one accountant; the eight releases have fixed "
                "noise multipliers scaled as 1/ε up to ε = 4 and kept at their ε = 4 values "
                "above it, but for the outcome heads' (prior release 16/ε, effects release 16/ε, "
                "measurement release 16/ε, "
                "rates and lag-1 releases 12/ε each, spread and interval releases 24/ε each, "
                "outcome heads 60/ε "
                "per step over 50 steps) and DP-SGD's noise is solved for what remains of (ε, δ)"
            ),
        }

    def _fitted(self) -> StayModel:
        if self.model_ is None:
            raise ClinsynthError("This synthesizer is not trained yet: call fit(cohort) first.")
        return self.model_

    def _fitted_result(self) -> TrainingResult:
        self._fitted()
        assert self.training_ is not None
        return self.training_

    # ---------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """One file: plain dict of parameters, schema, accounting and the weights."""
        model = self._fitted()
        state = {k.removeprefix("_module."): v.cpu() for k, v in model.state_dict().items()}
        result = self._fitted_result()
        payload = {
            "format_version": FORMAT_VERSION,
            "params": {k: v for k, v in self.get_params().items() if k != "schema"},
            "schema": self.schema.model_dump(mode="json"),
            "training": {**result.to_dict(), "losses": result.losses},
            "n_train": self.n_train_,
            "fit_seconds": self.fit_seconds_,
            "outcome_rates": [r.tolist() for r in self.outcome_rates_ or []],
            "calibration_targets": None if self.targets_ is None else self.targets_.to_dict(),
            "calibration_gaps": self.calibration_gaps_,
            "state_dict": state,
        }
        path = Path(path)
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> SequenceSynthesizer:
        path = Path(path)
        if not path.is_file():
            raise ClinsynthError(f"Model file {path} does not exist.")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ClinsynthError(f"{path} is not a clinsynth model file ({exc}).") from None
        if not isinstance(payload, dict) or "format_version" not in payload:
            raise ClinsynthError(f"{path} is not a clinsynth model file.")
        if payload["format_version"] not in READABLE_FORMATS:
            raise ClinsynthError(
                f"{path} was saved by another version of clinsynth (model format "
                f"{payload['format_version']}, this version reads "
                f"{' and '.join(map(str, READABLE_FORMATS))}): "
                "train it again with this version."
            )
        params = dict(payload["params"])
        params["delta"] = params.get("delta")
        schema = parse_schema(payload["schema"], str(path))
        synth = cls(schema, device=device, **params)
        model = StayModel(synth.encoding, synth.model_config)
        model.load_state_dict(payload["state_dict"])
        synth.model_ = model.to(synth.device).eval()
        tr = payload["training"]
        synth.training_ = TrainingResult(
            epsilon=tr["epsilon"],
            delta=tr["delta"],
            noise_multiplier=tr["noise_multiplier"],
            sample_rate=tr["sample_rate"],
            steps=tr["steps"],
            epochs=tr["epochs"],
            losses=list(tr["losses"]),
        )
        synth.n_train_ = payload["n_train"]
        synth.fit_seconds_ = payload["fit_seconds"]
        synth.outcome_rates_ = [np.asarray(r) for r in payload.get("outcome_rates", [])] or None
        targets = payload.get("calibration_targets")
        synth.targets_ = None if targets is None else calibration.Targets.from_dict(targets)
        synth.calibration_gaps_ = payload.get("calibration_gaps")
        return synth


@contextmanager
def _cpu_threads(threads: int | None) -> Iterator[None]:
    """Run torch on ``threads`` CPU threads (None: torch's default), restoring it afterwards.

    The default for this generator is ONE thread: its matrices are small, and on a shared
    machine several OpenMP threads spin-waiting on them were measured 5-10x slower than one.
    """
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


def _resolve_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise ClinsynthError(f"Unknown device {device!r}: {exc}") from None


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise ClinsynthError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def _positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ClinsynthError(f"{name} must be a positive number, got {value!r}.")
    if math.isinf(value) and name == "epsilon":
        raise ClinsynthError("epsilon must be finite; to train without privacy use dp=False.")
    return float(value)
