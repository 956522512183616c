"""Calibration-in-the-large of measurement rates, lag-1 persistence and within-stay spread
(post-processing).

A model trained under DP-SGD gets the *shape* of a stay right (bursty, state-dependent
measurement; mean-reverting values) but three families of numbers drift: each variable's overall
measurement rate (the mask heads carry little gradient signal per step, and sampling its own
history compounds small errors over 48 steps), how strongly a value follows the previous one
(the lag-1 autocorrelation the temporal audits judge), and how far a patient's values scatter
about their own mean. The last matters most for labs: drawn once or twice a day, their later
values got the spread that the first value needs (where patients differ from each other), so a
synthetic creatinine or BUN had 4-5 times a real one's within-stay variance (PhysioNet 2012,
ε = 4). All three are cheap to release precisely, as one Gaussian mechanism each on a short
per-patient vector whose cost the accountant composes with DP-SGD (:func:`release_targets`),
and :func:`calibrate` then moves one parameter per variable and target — the measurement bias,
the log-odds of the weight on the last value (or on the running level, once the last value
weighs almost nothing), the log-sd of values after the first — until
stays sampled from the model reproduce the released figures. The rates release also carries
the classes of the hidden severity score (module :mod:`severity`), which sampling is
calibrated to; and the score of the stays drawn must spread as the released one does, which
sets how strongly the series follow the score they were drawn for (one factor on all its
effects: :func:`severity.scale_expression`). With a measurement release (module
:mod:`measurement`), :data:`INTENSITY_ROUNDS` rounds first move how the statics and the score
move each variable's measurement rate, then every round moves them with the rest. The rates
release also carries how often a patient had blood drawn, which sets how strongly the labs of
different panels are drawn in the same rounds (module :mod:`draws`). A fourth
release, of how long after a measurement each variable is measured again (module
:mod:`intervals`), moves the weights of the time-since-measured features in every round.
A schema panel's followers are measured with its lead (module :mod:`panels`), so every
measurement step (rates, intervals, intensity) leaves their own weights alone.
Lag-1 and spread are measured on values as a chart holds them (:meth:`Encoding.charted`): real
ones without the training's dequantisation, sampled ones clipped and rounded as exported. In
model space a synthetic GCS went above 15 in a fifth of its draws; measured there, its lag-1
met the release while the exported series, clipped at 15, fell 0.10 short of the real one
(PhysioNet 2012, ε = 4, seed 1: 0.70 in model space, 0.59 exported, real 0.69).
Everything after the releases is post-processing of DP outputs and costs no privacy.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from clinsynth.generator import draws, intervals, measurement, panels, severity
from clinsynth.generator.dp import clip_rows, gaussian_sum, release_epsilon
from clinsynth.generator.effects import regression_inputs
from clinsynth.generator.encoding import Encoding, static_groups
from clinsynth.generator.features import EVER
from clinsynth.generator.model import StayModel
from clinsynth.generator.sampling import RawSample, sample_raw

RATES_CLIP = 3.0  # l2 bound of one patient's rate vector (public; typical ICU stays: ~2)
LAG_CLIP = 1.5  # l2 bound of one patient's lag-1 sums vector (public; simulated stays:
# median 0.7, 90th percentile 1.6)
LAG_Z_CLIP = 6.0  # demeaned values enter the lag-1 sums clipped to ±6 standardised units: wide
# enough for a sedated patient waking up (GCS 3 → 15 is 12 units); at ±3 the released GCS
# lag-1 was 0.585 where the temporal audit, which does not clip, reads 0.69 (PhysioNet 2012)
SPREAD_Z_CLIP = 3.0  # and the spread's squared deviations clipped to ±3
SPREAD_CAP = 4.0  # one variable of one patient counts at most 4 units² (GCS's variance ~5)
SPREAD_CLIP = 6.0  # l2 bound of one patient's within-stay squares vector (public; simulated
# stays: median 3.2, 90th percentile 6.1; PhysioNet 2012: median 5.7, 90th percentile 8.3)
SPREAD_NOISE = 2.0  # the spread release's noise multiplier is twice the other two's: a ratio
# target needs less precision, and at 12/ε it would raise the DP-SGD noise by 15% (3.05 ->
# 3.52 at ε = 4; 3.16 at 24/ε)
INTERVAL_NOISE = 2.0  # and so is the interval release's: at 12/ε it raised the DP-SGD noise
# by a fifth (3.41 -> 4.11 at ε = 4); hazards of a few buckets need less precision than rates
STATIC_NOISE = 8.0 / 3.0  # the statics' histogram release runs at 8/3 of the rates' noise (8 at
# ε = 4): it raises the DP-SGD noise 3.55 -> 3.64 (6 would take it to 3.72), and leaves a group's
# count with noise sd 14 patients (three numeric statics: Age, Height, Weight)
SPREAD_RELIABLE = 4.0  # a spread target is used if its sum is 4 noise sd above zero (variance
# ratio error at most ~1/4, sd ~1/8)
SIGMA_TIMES_EPS = 12.0  # noise multiplier 12/ε per release: 3 at ε = 4 (rate noise ~0.45 pp)
RELIABLE = 10.0  # a lag-1 target is used only if its sums are 10 noise sd above zero
CALIBRATION_STAYS = 3000  # stays sampled per calibration round (a 2-pp target needs the
# Monte Carlo error of a round well below 1 pp: patients differ a lot in how often they are
# measured, e.g. invasive vs non-invasive blood pressure)
CALIBRATION_ROUNDS = 8  # 6 before the interval and draw targets, which settle with the rates
INTENSITY_ROUNDS = 3  # rounds before those that also move the measurement effects
MIN_SPREAD_SHARERS = 3  # blood-drawn variables with a spread target needed to lend their shift
MIN_RATE = 1e-4  # released rates are clipped to [MIN_RATE, 1 - MIN_RATE]
LAG_GAIN = 5.0  # log-odds of the last-value weight per unit of autocorrelation gap (~1/slope)
LAST_WEIGHT_FLOOR = -4.0  # below this log-odds (weight < 2%) the last value carries almost no
# persistence left to take away, and a too-high lag-1 moves the running level's weight instead
# (PhysioNet 2012, ε = 4, seed 2: NIMAP's last-value log-odds at -5.35 and its lag-1 0.45
# against a target of 0.34; the level's weight from -0.04 to -3 took it to 0.41)
EXPRESSION_GAIN = 3.0  # log factor per unit log spread ratio: the realised score's spread moves
# by about a third of the log factor (PhysioNet 2012, ε = 4: factor 1 / 2 / 3 gave sd 0.66 /
# 0.80 / 0.94, real 0.80), the rest of it is the noise of the drawn values
MAX_EXPRESSION_STEP = float(np.log(2.0))  # no round more than doubles or halves it
MAX_STEP = 3.0  # no single round moves a bias by more than this (log-odds)
POLISH_ROUNDS = 3  # rate and lag-1 rounds after the joint ones: there the interval and intensity
# steps also move the rates, the Robbins-Monro weights have decayed to 1/7, and the worst
# variable ended 1.7-2.1 pp off its target (PhysioNet 2012, ε = 4: Urine, Temp); three of these
# took seed 1's to 0.4 pp and seed 2's to 1.1 pp. Lag-1 moves little in them (worst gap 0.069 ->
# 0.067, 0.087 -> 0.083): what is left is out of the model's reach (Weight's noisy target 0.98
# against 0.91, NIMAP's spent last-value weight), but they cost no extra sample
POLISH_STAYS_FACTOR = 2  # the polish rounds sample twice as many stays: each step chases the
# Monte Carlo error of the rate it measured (3,000 stays: ~0.5 pp for arterial-line variables,
# which some patients have and others not; seed 2's polished with 6,000: 1.41 -> 1.01 pp)
POLISH_WEIGHT = 0.5  # of the log-odds step: a full one overshoots where a variable's measurement
# feeds back on itself (RespRate +1.21 -> -2.87 pp), half of it converges


def release_sigma(epsilon: float) -> float:
    """Noise multiplier of the rates and lag-1 releases for a total budget ε (the spread
    release's is :data:`SPREAD_NOISE` times it)."""
    return SIGMA_TIMES_EPS / release_epsilon(epsilon)


def spread_sigma(sigma: float) -> float:
    """Noise multiplier of the spread release when the other two run at ``sigma``: the one
    place it is derived, so the release and its accounting cannot disagree."""
    return SPREAD_NOISE * sigma


def interval_sigma(sigma: float) -> float:
    """Noise multiplier of the interval release when the rates and lag-1 run at ``sigma``."""
    return INTERVAL_NOISE * sigma


def static_clip(encoding: Encoding) -> float:
    """l2 bound of one patient's row in the statics' release: one one-hot group per binned
    static, so the exact norm of every row (public: the schema's field count)."""
    return float(np.sqrt(len(binned_statics(encoding))))


def static_sigma(sigma: float) -> float:
    """Noise multiplier of the statics' histogram release when the rates run at ``sigma``."""
    return STATIC_NOISE * sigma


def mechanisms(sigma: float) -> tuple[tuple[float, float, int], ...]:
    """The five releases (rates and lag-1 at ``sigma``, spread, intervals and the statics'
    histograms at their own) as accountant entries ``(noise multiplier, sampling rate,
    steps)``."""
    return (
        (sigma, 1.0, 2),
        (spread_sigma(sigma), 1.0, 1),
        (interval_sigma(sigma), 1.0, 1),
        (static_sigma(sigma), 1.0, 1),
    )


@dataclass
class Targets:
    """Released calibration targets, per variable (NaN lag-1 target: not calibrated)."""

    rates: np.ndarray  # [V] share of measured grid cells
    lag1: np.ndarray  # [V] pooled within-patient lag-1 autocorrelation (numeric variables)
    rate_noise_sd: float  # noise sd on each released rate
    outcome_rates: list[np.ndarray]  # per outcome field: class probabilities
    severity_rates: np.ndarray | None = None  # of the severity score's classes (module severity)
    spread: np.ndarray | None = None  # [V] mean within_squares (NaN: not calibrated)
    intensity: np.ndarray | None = None  # [C, V] mean measurement products (module measurement)
    intensity_centre: np.ndarray | None = None  # [C] the inputs' centre those products use
    intervals: np.ndarray | None = None  # [V, B] mean interval bucket shares (module intervals)
    interval_noise_sd: float = 0.0  # noise sd on each of them
    draw_share: float | None = None  # mean share of steps with a blood draw (module draws)
    # per static field before the outcomes: shares of the groups of bins of the numeric ones
    # (static_groups), None for the others and for the severity score (release_static_rates)
    static_rates: list[np.ndarray | None] | None = None

    def to_dict(self) -> dict:
        return {
            "rates": self.rates.tolist(),
            "lag1": _nan_to_none(self.lag1),
            "rate_noise_sd": self.rate_noise_sd,
            "outcome_rates": [r.tolist() for r in self.outcome_rates],
            "severity_rates": None if self.severity_rates is None else self.severity_rates.tolist(),
            "spread": None if self.spread is None else _nan_to_none(self.spread),
            "intensity": None if self.intensity is None else self.intensity.tolist(),
            "intensity_centre": (
                None if self.intensity_centre is None else self.intensity_centre.tolist()
            ),
            "intervals": None if self.intervals is None else self.intervals.tolist(),
            "interval_noise_sd": self.interval_noise_sd,
            "draw_share": self.draw_share,
            "static_rates": (
                None
                if self.static_rates is None
                else [None if r is None else r.tolist() for r in self.static_rates]
            ),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Targets:
        lag1 = _none_to_nan(d["lag1"])
        outcomes = [np.asarray(r, dtype=np.float64) for r in d["outcome_rates"]]
        rates = np.asarray(d["rates"], dtype=np.float64)
        severity = d.get("severity_rates")
        severity = None if severity is None else np.asarray(severity, dtype=np.float64)
        spread = d.get("spread")  # models saved before this release have none
        spread = None if spread is None else _none_to_nan(spread)
        extra = (_array_or_none(d.get(k)) for k in ("intensity", "intensity_centre"))
        return cls(
            rates, lag1, float(d["rate_noise_sd"]), outcomes, severity, spread, *extra,
            intervals=_array_or_none(d.get("intervals")),  # models before this release: none
            interval_noise_sd=float(d.get("interval_noise_sd", 0.0)),
            draw_share=d.get("draw_share"),
            static_rates=(  # models before this release: none
                None
                if d.get("static_rates") is None
                else [_array_or_none(r) for r in d["static_rates"]]
            ),
        )  # fmt: skip


def _array_or_none(values: list | None) -> np.ndarray | None:
    return None if values is None else np.asarray(values, dtype=np.float64)


def _nan_to_none(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(r) else float(r) for r in values]


def _none_to_nan(values: list[float | None]) -> np.ndarray:
    return np.array([np.nan if r is None else r for r in values], dtype=np.float64)


def _demeaned(
    x: np.ndarray, m: np.ndarray, clip: float, scale: np.ndarray | None = None
) -> np.ndarray:
    """Values minus the patient's own mean of each variable, divided by the variable's
    within-stay ``scale [V]`` (1 if none), clipped to ±``clip`` (0 where not measured):
    ``[N, T, V]``."""
    seen = m > 0
    count = seen.sum(axis=1, keepdims=True)
    mean = np.where(seen, x, 0.0).sum(axis=1, keepdims=True) / np.maximum(count, 1)
    dev = np.where(seen, x - mean, 0.0)
    if scale is not None:
        dev = dev / scale
    return np.clip(dev, -clip, clip)


def lag1_sums(x: np.ndarray, m: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
    """Per patient, per variable: (Σ a·b, Σ a², Σ b²) / (T - 1) over adjacent measured steps,
    with a, b the patient-demeaned values in units of ``scale`` (:func:`within_stay_scales`),
    clipped to ±:data:`LAG_Z_CLIP`: ``[N, V, 3]``."""
    seen = m > 0
    zc = _demeaned(x, m, LAG_Z_CLIP, scale)
    pair = seen[:, :-1] & seen[:, 1:]
    a, b = np.where(pair, zc[:, :-1], 0.0), np.where(pair, zc[:, 1:], 0.0)
    sums = np.stack([(a * b).sum(1), (a * a).sum(1), (b * b).sum(1)], axis=-1)
    return sums / max(x.shape[1] - 1, 1)


def within_squares(
    x: np.ndarray, m: np.ndarray, rates: np.ndarray, scale: np.ndarray | None = None
) -> np.ndarray:
    """Per patient, per variable: the squared deviations of its values about the patient's own
    mean (in units of ``scale``, clipped to ±:data:`SPREAD_Z_CLIP`), summed and divided by the
    variable's expected measurements per stay (``T * rates``), capped at :data:`SPREAD_CAP`:
    ``[N, V]``.

    Their mean over patients is about the pooled within-stay variance the temporal audits see
    (times Σ(n - 1) / Σn over patients, which the calibrated rates make about the same for real
    and synthetic stays), on a scale where a lab measured twice a day weighs as much as an
    hourly vital; it needs no released denominator."""
    per_stay = x.shape[1] * np.clip(rates, MIN_RATE, 1.0)
    squares = (_demeaned(x, m, SPREAD_Z_CLIP, scale) ** 2).sum(axis=1)
    return np.minimum(squares / per_stay, SPREAD_CAP)


def within_stay_scales(encoding: Encoding, idx: list[int]) -> np.ndarray:
    """The within-stay statistics' unit ``[len(idx)]``: the schema's ``within_stay_sd`` in
    standardised units, 1 where it gives none.

    The releases' noise is fixed by their clip, so a variable that barely moves within a stay
    (weight: a couple of kg against a normal range ±25 kg wide) has lag-1 and spread sums far
    below it and gets no target at all; measured in its own within-stay unit it gets one. The
    unit is public, and the sampled stays are measured in it too: lag-1 is a ratio and the
    spread's log ratio compares like with like, so the unit moves a target only through the
    clips both sides share, and decides how much signal stands above the noise.

    A unit above 1 has the opposite trade. GCS (its 2-point normal range makes waking from
    sedation a jump of ten units) gets a lag-1 target below the temporal audit's pooled lag-1,
    because the per-patient clip weights down the patients whose big, lasting jumps make it
    persistent (PhysioNet 2012, three splits: 0.62-0.66 against 0.69-0.72); in a unit of 2
    points the bias shrinks to 0.02 but the release's noise sd grows from 0.03 to 0.07, and one
    ε = 4 run drew a target 0.11 low. So GCS has no unit.
    """
    scales = encoding.within_stay_scales or (1.0,) * encoding.n_variables
    return np.asarray(scales, dtype=np.float64)[idx]


def lag1_from_sums(sums: np.ndarray) -> np.ndarray:
    """Pooled autocorrelation ``[V]`` from summed ``[V, 3]`` lag-1 sums (NaN where undefined)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        den = np.sqrt(np.clip(sums[:, 1], 0, None) * np.clip(sums[:, 2], 0, None))
        return np.where(den > 0, np.clip(sums[:, 0] / den, -1, 1), np.nan)


def release_targets(
    x: np.ndarray,
    m: np.ndarray,
    codes: np.ndarray,
    encoding: Encoding,
    gen: torch.Generator,
    sigma: float,
) -> Targets:
    """The four Gaussian releases, from model-space values and masks ``[N, T, V]`` and the
    static/outcome class ``codes [N, S]``.

    Rates: each patient's share of measured steps per variable (a vector in [0, 1]^V), its
    share of steps with a blood draw (:func:`draws.draw_share`, when the schema has two or more
    blood-drawn variables) and the one-hot class of each outcome field and of the severity
    score, clipped to
    :data:`RATES_CLIP`. Lag-1: each patient's :func:`lag1_sums` of the numeric variables,
    clipped to :data:`LAG_CLIP`. Spread: each patient's :func:`within_squares` of the numeric
    variables (scaled by the rates just released), clipped to :data:`SPREAD_CLIP`. Intervals:
    :func:`intervals.release` (at ``INTERVAL_NOISE * sigma``). Sums get
    noise of sd ``sigma * clip`` (spread: ``SPREAD_NOISE * sigma * clip``) and are divided by
    N (public). ``sigma = 0``: exact (no DP only).
    """
    rated = [encoding.severity_index, *range(encoding.n_static, len(encoding.statics))]
    rated_codes = [(codes[:, k], encoding.statics[k].n_classes) for k in rated]
    n, v = m.shape[0], m.shape[2]
    one_hot = [np.eye(k)[codes] for codes, k in rated_codes]
    blood = np.array(encoding.drawn_from_blood, dtype=bool)
    drawn = blood.sum() >= 2  # rounds of blood draws only mean something across panels
    share = [draws.draw_share(m, blood)[:, None]] if drawn else []
    rows = np.concatenate([m.mean(axis=1).astype(np.float64), *share, *one_hot], axis=1)
    released = gaussian_sum(rows, RATES_CLIP, sigma, gen) / n
    rate_sd = sigma * RATES_CLIP / max(n, 1)
    draw_share = float(np.clip(released[v], MIN_RATE, 1.0)) if drawn else None
    rates, pos, class_rates = released[:v], v + len(share), []
    for field, (_, k) in zip(rated, rated_codes, strict=True):
        shares = released[pos : pos + k]
        if field == encoding.severity_index:  # most of its bins are empty: noise is no class
            shares = shares - rate_sd
        probs = np.clip(shares, MIN_RATE, None)
        class_rates.append(probs / probs.sum())
        pos += k
    idx = encoding.indices("gauss")
    xs, ms = encoding.charted(x, m)[..., idx].astype(np.float64), m[..., idx]
    lag1 = np.full(v, np.nan)
    unit = within_stay_scales(encoding, idx)
    lag1[idx] = _release_lag1(xs, ms, gen, sigma, unit)
    rates = np.clip(rates, MIN_RATE, 1 - MIN_RATE)
    spread = np.full(v, np.nan)
    spread[idx] = _release_spread(xs, ms, rates[idx], gen, sigma, unit)
    gaps, gap_sd = intervals.release(m, gen, interval_sigma(sigma))
    static_rates = release_static_rates(codes, encoding, gen, static_sigma(sigma))
    return Targets(
        rates,
        lag1,
        rate_sd,
        class_rates[1:],
        class_rates[0],
        spread,
        intervals=gaps,
        interval_noise_sd=gap_sd,
        draw_share=draw_share,
        static_rates=static_rates,
    )


def binned_statics(encoding: Encoding) -> list[int]:
    """The static fields (before the outcomes) whose classes are bins of a number, but for
    the severity score (released with the rates)."""
    return [
        k
        for k in range(encoding.n_static)
        if encoding.statics[k].kind == "numeric" and k != encoding.severity_index
    ]


def release_static_rates(
    codes: np.ndarray, encoding: Encoding, gen: torch.Generator, sigma: float
) -> list[np.ndarray | None]:
    """Released shares of each binned static's groups of bins (:func:`static_groups`; age,
    height, weight), None for the other fields.

    Their heads are 41-way softmaxes that start flat and get DP-SGD's noise on every logit:
    trained, they still gave each empty bin about 1% (PhysioNet 2012, ε = 4: 41% of the
    heights outside 150-200 cm against 4% real, 6% above 240 cm). Each patient's one-hot
    groups of these fields have norm √(fields) exactly, the clip, so nothing is clipped; each
    group's count gets noise of sd ``sigma`` × clip, one sd is taken off (as for the severity
    score's mostly empty bins) and what is left is normalised. Groups of bins, not bins: at
    the cohort window's low end (500 stays) a bin's count is about its noise, a group's
    several times it; within a group the heads' own shape is kept. Sampling shifts the heads'
    logits group by group to these shares (``sampling.calibration_shift``).
    """
    fields = binned_statics(encoding)
    out: list[np.ndarray | None] = [None] * encoding.n_static
    if not fields:
        return out
    maps = [static_groups(encoding.statics[k].n_classes) for k in fields]
    sizes = [int(g.max()) + 1 for g in maps]
    rows = np.concatenate(
        [np.eye(c)[g[codes[:, k]]] for k, g, c in zip(fields, maps, sizes, strict=True)], axis=1
    )
    clip = static_clip(encoding)
    counts = gaussian_sum(rows, clip, sigma, gen)
    pos = 0
    for k, c in zip(fields, sizes, strict=True):
        shares = np.clip(counts[pos : pos + c] - sigma * clip, 0.0, None)
        pos += c
        if shares.sum() > 0:
            shares = np.clip(shares / shares.sum(), MIN_RATE, None)
            out[k] = shares / shares.sum()
    return out


def _release_lag1(
    x: np.ndarray, m: np.ndarray, gen: torch.Generator, sigma: float, unit: np.ndarray
) -> np.ndarray:
    """Released pooled lag-1 autocorrelation of the numeric variables ``x, m [N, T, V]`` (NaN
    where the noisy sums are too close to zero to trust)."""
    sums = lag1_sums(x, m, unit).reshape(len(x), -1)
    total = gaussian_sum(sums, LAG_CLIP, sigma, gen).reshape(x.shape[2], 3)
    reliable = np.minimum(total[:, 1], total[:, 2]) >= RELIABLE * sigma * LAG_CLIP
    return np.where(reliable, lag1_from_sums(total), np.nan)


def _release_spread(
    x: np.ndarray,
    m: np.ndarray,
    rates: np.ndarray,
    gen: torch.Generator,
    sigma: float,
    unit: np.ndarray,
) -> np.ndarray:
    """Released mean :func:`within_squares` of the numeric variables ``x, m [N, T, V]``, scaled
    by their just released ``rates`` (post-processing, as :func:`calibrate` scales sampled
    stays); NaN where too close to zero to trust."""
    noise = spread_sigma(sigma)
    sums = gaussian_sum(within_squares(x, m, rates, unit), SPREAD_CLIP, noise, gen)
    return np.where(sums >= SPREAD_RELIABLE * noise * SPREAD_CLIP, sums / len(x), np.nan)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, MIN_RATE, 1 - MIN_RATE)
    return np.log(p / (1 - p))


@torch.no_grad()
def calibrate(
    model: StayModel,
    encoding: Encoding,
    targets: Targets,
    seed: int,
    n: int = CALIBRATION_STAYS,
    rounds: int = CALIBRATION_ROUNDS,
) -> dict[str, list[float]]:
    """Move each variable's measurement bias, last-value-weight bias and later values' log-sd
    towards ``targets``.

    Each round samples ``n`` stays (fixed seeds: deterministic), compares each variable's share
    of measured cells, its lag-1 autocorrelation and its within-stay variance with the targets,
    and moves the parameters by the log-odds difference (rates), :data:`LAG_GAIN` times the gap
    (lag-1) or half the log ratio (spread, a variance), with step sizes 1, 1, 1, 1/2, 1/3, ...
    (Robbins-Monro: later rounds average out the Monte Carlo noise of earlier ones instead of
    chasing it). The spread moves the weight from "measured before" into every mixture
    component's log-sd, so the first value keeps the spread between patients. A blood-drawn
    variable whose spread target was too noisy to release (a lab drawn a few times in few
    stays: the hepatic panel, BUN) takes the median shift of those that have one: its later
    values have the same cause of excess spread, and left alone they scattered like different
    patients' (PhysioNet 2012, ε = 4: BUN's within-stay sd 1.46 times the real one, 1.20 with
    the median shift). With a released
    severity distribution, the score's effects on the value targets are scaled, by
    :data:`EXPRESSION_GAIN` times the log ratio of the released to the drawn stays' score sd.
    A variable whose last value already weighs almost nothing (log-odds at most
    :data:`LAST_WEIGHT_FLOOR`) but still follows itself too closely lowers the weight of its
    running level instead: its persistence then comes from the level and from co-measured
    variables (NIMAP follows NISysABP and NIDiasABP within the step), not from the last value.
    A bias shift moves every state alike, so the pattern the model learned is kept. A schema
    panel's followers (module :mod:`panels`) are measured with their lead, so their own
    measurement weights get no rate, interval or intensity step. Then
    :data:`POLISH_ROUNDS` rounds move the measurement biases and the last-value (or level)
    weights alone, by :data:`POLISH_WEIGHT` of the step, on :data:`POLISH_STAYS_FACTOR` times
    as many stays. Lag-1 and spread are measured in each variable's within-stay unit
    (:func:`within_stay_scales`), as released. Returns the worst absolute gaps measured in
    each round (rates in percentage points, spread and the score's spread as |log ratio|), the
    last one after the final update; ``rate_polish_pp``, ``lag1_polish`` and
    ``spread_polish_log_ratio``: the rates', lag-1's and spread's after each polish round (the
    lag step moves the spread too; it is measured there, not corrected).
    """
    mask_bias = model.mask_head.bias
    k = model.config.n_mix
    value_bias = model.value_head.bias.view(model.n_vars, model.n_params)
    persistence, level_weight = value_bias[:, 3 * k], value_bias[:, 3 * k + 1]  # views
    later_log_sd = model.value_local.weight[:, 2 * k : 3 * k, EVER]  # [V, K], a view
    no_target = np.full(len(targets.rates), np.nan)
    spread_target = no_target if targets.spread is None else targets.spread
    numeric = encoding.indices("gauss")
    unit = within_stay_scales(encoding, numeric)
    gaps: dict[str, list[float]] = {"rate_pp": [], "lag1": [], "spread_log_ratio": []}
    if targets.intervals is not None:
        gaps["interval_hazard_log_odds"] = []
    blood = np.array(encoding.drawn_from_blood, dtype=bool)
    if targets.draw_share is not None:
        gaps["draw_share_ratio"] = []
        coupling = float(model.draw_coupling)
    scored = targets.severity_rates is not None
    if scored:
        gaps["severity_spread_log_ratio"] = []
    # the measurement effects move first, in rounds of their own (they shift every rate)
    first = 0 if targets.intensity is None else INTENSITY_ROUNDS
    if first:
        gaps["intensity"] = []
    blood_numeric = blood & np.isin(np.arange(len(blood)), numeric)
    # a panel's followers are measured with its lead (module panels): their own measurement
    # weights do not act, so the rate, interval and intensity steps leave them be (their gaps
    # are still measured and reported)
    plan = panels.plan_if_any(encoding.mask_source, targets.rates)
    followers = [] if plan is None else plan.followers
    spread_sharers = blood_numeric & ~np.isnan(spread_target)
    spread_borrowers = blood_numeric & np.isnan(spread_target)
    if spread_sharers.sum() < MIN_SPREAD_SHARERS:
        spread_borrowers[:] = False
    sd_total = np.zeros(len(targets.rates))  # log-sd shift applied so far, per variable

    def draw(stays: int, draw_seed: int) -> RawSample:  # as the synthesizer samples and exports
        raw = sample_raw(
            model, encoding, stays, draw_seed, severity_rates=targets.severity_rates,
            static_rates=targets.static_rates, measurement_rates=targets.rates,
        )  # fmt: skip
        return replace(raw, x=encoding.charted(raw.x, raw.m))

    def move_rates(rate: np.ndarray, weight: float) -> None:
        step = _rate_step(targets.rates, rate, n * encoding.n_steps)
        step[followers] = 0.0
        mask_bias.add_(_as(np.clip(step, -MAX_STEP, MAX_STEP) * weight, mask_bias))

    for i in range(first + rounds + 1):
        raw = draw(n, seed + i)
        rate = raw.m.mean(axis=(0, 1))
        lag_gap = _lag_gap(raw, numeric, unit, targets.lag1)
        gaps["rate_pp"].append(float(np.abs(rate - targets.rates).max() * 100))
        gaps["lag1"].append(float(np.abs(lag_gap).max()))
        log_ratio = _spread_log_ratio(raw, numeric, targets.rates, unit, spread_target)
        gaps["spread_log_ratio"].append(float(np.abs(log_ratio).max()))
        if scored:  # the score of the stays drawn, against the released scores of real ones
            realised = severity.codes_spread(raw.codes[:, encoding.severity_index])
            score_log_ratio = np.log(
                severity.class_spread(targets.severity_rates) / max(realised, 1e-6)
            )
            gaps["severity_spread_log_ratio"].append(float(abs(score_log_ratio)))
        if targets.intensity is not None:
            # the inputs the series were drawn from: those the measurement weights act on
            z = regression_inputs(encoding, encoding.static_condition(raw.drawn))
            got = measurement.sampled(z, raw.m, targets.intensity_centre, targets.rates)
            intensity_gap = targets.intensity - got
            gaps["intensity"].append(float(np.abs(intensity_gap).max()))
        if targets.intervals is not None:
            hazard_step = intervals.calibration_step(
                targets.intervals, targets.interval_noise_sd, intervals.sampled(raw.m)
            )
            gaps["interval_hazard_log_odds"].append(float(np.abs(hazard_step).max()))
        if targets.draw_share is not None:
            sampled_share = float(draws.draw_share(raw.m, blood).mean())
            gaps["draw_share_ratio"].append(sampled_share / targets.draw_share)
        if i == first + rounds:
            break
        weight = 1.0 / max(1, i - first - 1)  # 1, 1, 1, 1/2, 1/3, ... after the first rounds
        if first:
            intensity_gap[:, followers] = 0.0
            measurement.calibrate_step(model, encoding, z, intensity_gap, weight)
        move_rates(rate, weight)
        if targets.intervals is not None:
            hazard_step = np.clip(hazard_step, -MAX_STEP, MAX_STEP) * weight
            hazard_step[followers] = 0.0
            intervals.apply_step(model.mask_local.weight, hazard_step)
        if targets.draw_share is not None:
            coupling = draws.calibration_step(coupling, targets.draw_share, sampled_share, weight)
            model.draw_coupling.fill_(coupling)
        _lag_step(persistence, level_weight, lag_gap, weight)
        # the mean structure carries part of the variance: half its log ratio under-shoots
        sd_step = np.clip(-0.5 * log_ratio, -MAX_STEP, MAX_STEP) * weight
        if spread_borrowers.any():
            shared = float(np.median((sd_total + sd_step)[spread_sharers]))
            sd_step[spread_borrowers] = shared - sd_total[spread_borrowers]
        sd_total += sd_step
        later_log_sd += _as(sd_step, later_log_sd).unsqueeze(1)
        if scored:
            log_factor = EXPRESSION_GAIN * score_log_ratio * weight
            log_factor = float(np.clip(log_factor, -MAX_EXPRESSION_STEP, MAX_EXPRESSION_STEP))
            severity.scale_expression(model, encoding, float(np.exp(log_factor)), raw.drawn)
    gaps["rate_polish_pp"], gaps["lag1_polish"], gaps["spread_polish_log_ratio"] = [], [], []
    for j in range(POLISH_ROUNDS):  # rates and lag-1, from the last joint round's sample on
        move_rates(rate, POLISH_WEIGHT)
        _lag_step(persistence, level_weight, lag_gap, POLISH_WEIGHT)
        raw = draw(POLISH_STAYS_FACTOR * n, seed + first + rounds + 1 + j)
        rate = raw.m.mean(axis=(0, 1))
        lag_gap = _lag_gap(raw, numeric, unit, targets.lag1)
        gaps["rate_polish_pp"].append(float(np.abs(rate - targets.rates).max() * 100))
        gaps["lag1_polish"].append(float(np.abs(lag_gap).max()))
        # the lag step moves the within-stay variance too: measured, not corrected
        log_ratio = _spread_log_ratio(raw, numeric, targets.rates, unit, spread_target)
        gaps["spread_polish_log_ratio"].append(float(np.abs(log_ratio).max()))
    return gaps


def _lag_gap(raw: RawSample, idx: list[int], unit: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Lag-1 ``target`` minus sampled stays' :func:`_lag1` ``[V]`` (0 where either is
    missing)."""
    lag1 = _lag1(raw.x, raw.m, idx, unit)
    return np.where(~np.isnan(target) & ~np.isnan(lag1), target - lag1, 0.0)


def _spread_log_ratio(
    raw: RawSample,
    idx: list[int],
    rates: np.ndarray,
    unit: np.ndarray,
    target: np.ndarray,
) -> np.ndarray:
    """Log ratio ``[V]`` of sampled stays' :func:`_spread` to its ``target`` (0 where either
    is missing or zero)."""
    spread = _spread(raw.x, raw.m, idx, rates, unit)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_ratio = np.log(spread / target)
    return np.where(np.isfinite(log_ratio), log_ratio, 0.0)


def _lag_step(
    persistence: torch.Tensor, level_weight: torch.Tensor, lag_gap: np.ndarray, weight: float
) -> None:
    """Move the last-value weights' biases by :data:`LAG_GAIN` times the lag-1 gap (in place);
    a variable whose last value is spent (:data:`LAST_WEIGHT_FLOOR`) and still follows itself
    too closely moves its running level's weight instead."""
    lag_step = np.clip(LAG_GAIN * lag_gap, -MAX_STEP, MAX_STEP) * weight
    spent = (persistence.detach().cpu().numpy() <= LAST_WEIGHT_FLOOR) & (lag_step < 0)
    persistence += _as(np.where(spent, 0.0, lag_step), persistence)
    level_weight += _as(np.where(spent, lag_step, 0.0), level_weight)


def _rate_step(target: np.ndarray, rate: np.ndarray, cells: int) -> np.ndarray:
    """Log-odds step of the measurement biases from sampled ``rate`` to ``target`` (``cells``
    grid cells per variable sampled): rates near 0 or 1 move slowly in log-odds, so the full
    step under-shoots, never over; a rate never sampled counts as half a cell."""
    return _logit(target) - _logit(np.clip(rate, 0.5 / cells, 1.0))


def _lag1(x: np.ndarray, m: np.ndarray, idx: list[int], unit: np.ndarray) -> np.ndarray:
    """Lag-1 autocorrelation ``[V]`` of sampled stays (numeric variables ``idx`` in their
    within-stay ``unit``), with the release's per-patient clipping (which weights patients, so
    the two sides must share it)."""
    sums = lag1_sums(x[..., idx].astype(np.float64), m[..., idx], unit)
    rows = clip_rows(sums.reshape(len(x), -1), LAG_CLIP).reshape(sums.shape)
    out = np.full(x.shape[2], np.nan)
    out[idx] = lag1_from_sums(rows.sum(axis=0))
    return out


def _spread(
    x: np.ndarray, m: np.ndarray, idx: list[int], rates: np.ndarray, unit: np.ndarray
) -> np.ndarray:
    """Mean :func:`within_squares` ``[V]`` of sampled stays (numeric variables ``idx`` in their
    within-stay ``unit``), scaled by the released ``rates`` and clipped per patient as in the
    release."""
    rows = within_squares(x[..., idx].astype(np.float64), m[..., idx], rates[idx], unit)
    rows = clip_rows(rows, SPREAD_CLIP)
    out = np.full(x.shape[2], np.nan)
    out[idx] = rows.mean(axis=0)
    return out


def _as(step: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(step, dtype=like.dtype, device=like.device)
