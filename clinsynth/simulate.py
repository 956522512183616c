"""Seeded mechanistic ICU simulator: the bundled sample data, with no real patient behind it.

Why mechanistic rather than fitted: the sample file ships with the project, so nothing in it may
come from real records. Every patient is driven by explicit physiology rules instead:

- a latent **severity** trajectory (baseline + drift + slow AR(1) wander) that raises HR, lactate,
  creatinine, lowers MAP, GCS, urine output, P/F ratio and platelets, and sets the death risk;
- a **circadian** rhythm (clock time of admission is latent, never written) and AR(1)
  autocorrelated noise per variable, plus white measurement noise;
- coupled blood pressures (MAP ≈ (SBP + 2·DBP)/3), Henderson–Hasselbalch pH from HCO3 and PaCO2,
  SaO2 from PaO2 via a Hill oxygen-dissociation curve, PaO2 = P/F ratio × FiO2;
- **ventilation** episodes (MechVent rows, raised FiO2, sedated GCS, lower PaCO2);
- realistic **schedules**: near-hourly vitals with jitter and gaps, invasive vs cuff pressure by
  ICU type/ventilation, lab panels every 4–24 h, blood gases for arterial-line patients, rare
  labs (troponin I, cholesterol) in few patients, early deaths and discharges ending the stay.

``simulate_cohort`` returns the *clean* cohort (all values inside the schema's hard limits, at
its precision). ``write_sample`` writes it in the ``icu_sim`` layout and adds a few deliberate
export artefacts (-1 sentinels, impossible zeros, exact duplicate rows) as extra rows, so loading
the file and cleaning it gives back exactly the clean cohort, and the cleaning report has
something to say.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from clinsynth.cohort import OBS_COLUMNS, Cohort
from clinsynth.io import atomic_path
from clinsynth.schema import Schema, load_schema

SCHEMA_NAME = "icu_sim"
HORIZON = 48.0
N_HOURS = 49  # latent processes are simulated on whole hours 0..48 and interpolated between
TIME_DECIMALS = 2  # observation times are written as decimal hours with 0.01 h resolution

# ICU type coding: index into the schema's categories [1, 2, 3, 4].
CCU, CSRU, MICU, SICU = 0, 1, 2, 3
ICU_PROBS = np.array([0.15, 0.21, 0.35, 0.29])
ICU_SEVERITY_SHIFT = np.array([0.0, -0.7, 0.35, 0.05])  # cardiac surgery is elective, low risk
ART_LINE_PROB = np.array([0.35, 0.98, 0.5, 0.75])
# Mortality intercept: calibrated by hand (not fitted to any data) so ~14% of patients die.
MORTALITY_INTERCEPT = -2.9
# Deliberate artefacts per 1,000 patients (at least one of each kind in any file).
ARTEFACTS_PER_1000 = {"sentinel": 12, "zero": 20, "duplicate": 15}
ZERO_ARTEFACT_VARIABLES = ["HR", "SysABP", "DiasABP", "NISysABP", "Temp", "RespRate", "Weight"]
SENTINEL_ARTEFACT_VARIABLES = ["HR", "Temp", "Urine", "Glucose", "GCS", "Height"]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _ar1(rng: np.random.Generator, n: int, rho: float, sd: float) -> np.ndarray:
    """Stationary AR(1) paths on the hourly latent grid: slow wander, not white noise."""
    out = np.empty((n, N_HOURS))
    out[:, 0] = rng.normal(0.0, sd, n)
    innov = rng.normal(0.0, sd * np.sqrt(1 - rho**2), (n, N_HOURS - 1))
    for h in range(1, N_HOURS):
        out[:, h] = rho * out[:, h - 1] + innov[:, h - 1]
    return out


def _interp(hourly: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Linear interpolation of per-patient hourly paths ``hourly[N, 49]`` at times ``t[N, K]``."""
    tc = np.clip(np.nan_to_num(t), 0.0, HORIZON)
    lo = np.minimum(np.floor(tc).astype(int), N_HOURS - 2)
    w = tc - lo
    a = np.take_along_axis(hourly, lo, axis=1)
    b = np.take_along_axis(hourly, lo + 1, axis=1)
    return (1 - w) * a + w * b


@dataclass
class _Patients:
    """Per-patient latent parameters (arrays of length N); ``col`` broadcasts against [N, K]."""

    icu: np.ndarray
    age: np.ndarray
    male: np.ndarray
    height: np.ndarray
    weight: np.ndarray
    s0: np.ndarray
    slope: np.ndarray
    death: np.ndarray
    stay_end: np.ndarray
    clock0: np.ndarray
    art: np.ndarray
    vent_start: np.ndarray
    vent_end: np.ndarray
    sedation: np.ndarray
    o2: np.ndarray
    infection: np.ndarray
    cr0: np.ndarray
    z: dict[str, np.ndarray]
    ar: dict[str, np.ndarray]
    severity: np.ndarray  # [N, 49]

    @property
    def n(self) -> int:
        return len(self.icu)

    @staticmethod
    def col(x: np.ndarray) -> np.ndarray:
        return x[:, None]


def _draw_patients(rng: np.random.Generator, n: int) -> _Patients:
    """Statics, severity course, outcome, stay length and care pathway of each patient."""
    icu = rng.choice(4, size=n, p=ICU_PROBS)
    age = np.clip(np.round(rng.normal(64, 17, n) + 4 * (icu == CSRU)), 18, 90)
    male = (rng.random(n) < np.where(icu == CSRU, 0.68, 0.54)).astype(float)
    height = np.where(male == 1, rng.normal(176, 7.5, n), rng.normal(162, 7, n))
    bmi = np.exp(rng.normal(np.log(27.5), 0.2, n))
    weight = np.clip(bmi * (height / 100) ** 2, 38, 220)

    s0 = rng.normal(0, 1, n) + ICU_SEVERITY_SHIFT[icu] + 0.012 * (age - 64)
    slope = rng.normal(0, 0.7, n)
    s_end = s0 + slope
    death = rng.random(n) < _sigmoid(MORTALITY_INTERCEPT + 1.5 * s_end + 0.03 * (age - 64))

    # Some deaths happen inside the 48 h window and some well patients leave early.
    early_death = death & (rng.random(n) < 0.3)
    t_death = rng.uniform(18, 47.5, n)
    early_discharge = ~death & (s_end < -0.5) & (rng.random(n) < 0.15)
    t_discharge = rng.uniform(24, 46, n)
    stay_end = np.where(early_death, t_death, np.where(early_discharge, t_discharge, HORIZON))
    death_ramp_start = np.where(early_death, t_death - 12, np.inf)

    hours = np.arange(N_HOURS)[None, :]
    ramp = np.clip((hours - death_ramp_start[:, None]) / 12, 0, 1)
    severity = (
        s0[:, None] + slope[:, None] * hours / HORIZON + 1.5 * ramp + _ar1(rng, n, 0.95, 0.25)
    )

    vent_p = np.select(
        [icu == CSRU, icu == MICU, icu == SICU], [0.9, _sigmoid(0.9 * s0 - 0.2), 0.55]
    )
    vent_p = np.where(icu == CCU, _sigmoid(s0 - 1.5), vent_p)
    vent = rng.random(n) < vent_p
    vent_start = np.where(rng.random(n) < 0.75, 0.0, rng.uniform(1, 30, n))
    whole_stay = rng.random(n) < _sigmoid(s_end)
    duration = np.where(
        icu == CSRU, rng.uniform(3, 14, n), np.where(whole_stay, 99.0, rng.uniform(6, 40, n))
    )
    vent_start = np.where(vent, vent_start, np.inf)
    vent_end = np.where(vent, vent_start + duration, np.inf)
    art = rng.random(n) < np.where(vent, np.maximum(ART_LINE_PROB[icu], 0.85), ART_LINE_PROB[icu])

    z_names = ["hr", "sbp", "dbp", "temp", "rr", "urine", "pf", "paco2", "lact", "hco3", "na",
               "glu", "mg", "hct", "plt", "wbc", "liver", "alp", "bili", "alb", "bun", "k", "chol",
               "fio2"]  # fmt: skip
    z = {name: rng.normal(0, 1, n) for name in z_names}
    # (autocorrelation per hour, stationary SD) of each variable's slow wander
    ar_spec = {"hr": (0.8, 5), "sbp": (0.8, 7), "dbp": (0.8, 4), "temp": (0.9, 0.25),
               "rr": (0.7, 2), "urine": (0.6, 0.35), "pf": (0.85, 0.12), "paco2": (0.8, 3),
               "lact": (0.8, 0.15), "hco3": (0.9, 1.2), "na": (0.9, 1.0),
               "glu": (0.7, 0.15)}  # fmt: skip
    ar = {name: _ar1(rng, n, rho, sd) for name, (rho, sd) in ar_spec.items()}
    return _Patients(
        icu=icu,
        age=age,
        male=male,
        height=height,
        weight=weight,
        s0=s0,
        slope=slope,
        death=death.astype(float),
        stay_end=stay_end,
        clock0=rng.uniform(0, 24, n),
        art=art,
        vent_start=vent_start,
        vent_end=vent_end,
        sedation=rng.uniform(4, 11, n),
        o2=rng.random(n) < 0.25,
        infection=rng.random(n) < 0.35,
        cr0=np.exp(rng.normal(0.006 * (age - 64), 0.45, n)),
        z=z,
        ar=ar,
        severity=severity,
    )


class _Physiology:
    """True (noise-free apart from the latent AR paths) state of every patient at times t[N, K]."""

    def __init__(self, p: _Patients, t: np.ndarray):
        c = _Patients.col
        self.p, self.t = p, t
        self.sev = _interp(p.severity, t)
        self.sp = np.maximum(self.sev, 0)
        self.circ = np.sin(2 * np.pi * (t + c(p.clock0) - 10) / 24)  # peaks mid-afternoon
        self.vent = (t >= c(p.vent_start)) & (t < c(p.vent_end))
        self.icu = c(p.icu)

    def ar(self, name: str) -> np.ndarray:
        return _interp(self.p.ar[name], self.t)

    def z(self, name: str) -> np.ndarray:
        return _Patients.col(self.p.z[name])

    def hr(self) -> np.ndarray:
        return 82 + 9 * self.z("hr") + 9 * self.sev + 4 * self.circ + self.ar("hr")

    def sbp(self) -> np.ndarray:
        age = _Patients.col(self.p.age)
        base = 122 + 12 * self.z("sbp") - 11 * self.sev + 3 * self.circ + 0.15 * (age - 64)
        return np.clip(base + self.ar("sbp"), 55, 230)

    def dbp(self, sbp: np.ndarray) -> np.ndarray:
        dbp = 0.45 * sbp + 8 + 6 * self.z("dbp") + self.ar("dbp")
        return np.clip(dbp, 22, sbp - 18)

    def temp(self) -> np.ndarray:
        fever = 0.45 * self.sp * _Patients.col(self.p.infection)
        rewarm = np.where(self.icu == CSRU, -1.6 * np.exp(-self.t / 3), 0.0)
        return 37.0 + 0.3 * self.z("temp") + fever + 0.25 * self.circ + rewarm + self.ar("temp")

    def resp_rate(self) -> np.ndarray:
        spont = 17 * np.exp(0.15 * self.z("rr") + 0.12 * self.sev) + self.ar("rr")
        set_rate = 14 + 2 * self.z("rr") + 2 * self.sp + 0.3 * self.ar("rr")
        return np.where(self.vent, set_rate, spont)

    def gcs(self) -> np.ndarray:
        sedated = self.vent * _Patients.col(self.p.sedation)
        return 15 - 2.5 * self.sp - sedated

    def urine(self) -> np.ndarray:
        age = _Patients.col(self.p.age)
        log_mean = np.log(85) - 0.5 * self.sev - 0.004 * (age - 64) + 0.35 * self.z("urine")
        return np.exp(log_mean + self.ar("urine"))

    def fio2(self) -> np.ndarray:
        on_vent = 0.4 + 0.12 * self.sp + 0.05 * self.z("fio2")
        on_o2 = np.clip(0.35 + 0.1 * self.sp + 0.04 * self.z("fio2"), 0.24, 0.8)
        o2 = _Patients.col(self.p.o2)
        return np.where(self.vent, np.clip(on_vent, 0.3, 1.0), np.where(o2, on_o2, 0.21))

    def pao2(self) -> np.ndarray:
        pf = 420 * np.exp(-0.3 * self.sev + 0.15 * self.z("pf") + self.ar("pf"))
        return pf * self.fio2()

    def paco2(self) -> np.ndarray:
        """Ventilator-set when ventilated; otherwise respiratory compensation of the metabolic
        state (expected PaCO2 falls ~1.2 mmHg per mmol/L of HCO3 lost)."""
        noise = 4 * self.z("paco2") + self.ar("paco2")
        spont = 40 + 1.2 * (self.hco3() - 24) + 1.5 * self.sp
        return np.where(self.vent, 37 + 1.5 * self.sev, spont) + noise

    def lactate(self) -> np.ndarray:
        shock = 0.15 * self.sev + 0.3 * self.sp  # clearance keeps lactate low in the well
        return np.exp(np.log(1.2) + shock + 0.25 * self.z("lact") + self.ar("lact"))

    def creatinine(self) -> np.ndarray:
        p = self.p
        drift = 0.3 * _Patients.col(np.maximum(p.slope, 0)) * self.t / HORIZON
        return _Patients.col(p.cr0) * np.exp(0.25 * self.sp + drift)

    def hco3(self) -> np.ndarray:
        renal = np.log(self.creatinine() / _Patients.col(self.p.cr0))
        return 25 - 1.6 * (self.lactate() - 1) - 3 * renal + 2.5 * self.z("hco3") + self.ar("hco3")


def _vital_times(rng: np.random.Generator, p: _Patients) -> tuple[np.ndarray, np.ndarray]:
    """Near-hourly charting rounds with jitter, extra readings when unstable, and gaps."""
    n = p.n
    offset = rng.uniform(0.05, 1.0, n)[:, None]
    k = np.arange(48)[None, :]
    main = offset + k + rng.normal(0, 0.05, (n, 48))
    extra_p = np.clip(0.1 + 0.1 * p.s0, 0.02, 0.4)[:, None]
    half = main + 0.5 + rng.normal(0, 0.05, (n, 48))
    half = np.where(rng.random((n, 48)) < extra_p, half, np.nan)
    times = np.concatenate([main, half], axis=1)
    is_main = np.concatenate([np.ones((n, 48), bool), np.zeros((n, 48), bool)], axis=1)
    # off-unit gaps (imaging, theatre) and the odd missed round
    gap_start = rng.uniform(2, 44, (n, 2))
    gap_len = np.where(rng.random((n, 2)) < 0.5, rng.uniform(1.5, 4, (n, 2)), 0.0)
    in_gap = np.zeros(times.shape, bool)
    for g in range(2):
        in_gap |= (times >= gap_start[:, g : g + 1]) & (
            times < gap_start[:, g : g + 1] + gap_len[:, g : g + 1]
        )
    missed = rng.random(times.shape) < 0.04
    times = np.where(in_gap | missed, np.nan, times)
    return _clip_to_stay(times, p), is_main


def _renewal_times(
    rng: np.random.Generator,
    p: _Patients,
    first: tuple[float, float],
    gap: tuple[float, float],
    max_events: int,
    speedup: np.ndarray | None = None,
) -> np.ndarray:
    """Irregular draw times: a first draw, then gaps in ``gap`` hours (shorter when ``speedup``)."""
    n = p.n
    gaps = rng.uniform(*gap, (n, max_events - 1))
    if speedup is not None:
        gaps = gaps / speedup[:, None]
    start = rng.uniform(*first, (n, 1))
    times = np.concatenate([start, start + np.cumsum(gaps, axis=1)], axis=1)
    return _clip_to_stay(times, p)


def _clip_to_stay(times: np.ndarray, p: _Patients) -> np.ndarray:
    times = np.round(times, TIME_DECIMALS)
    ok = (times > 0) & (times <= p.stay_end[:, None]) & (times <= HORIZON)
    return np.where(ok, times, np.nan)


class _Recorder:
    """Collects (patient, time, variable, value) measurements; NaN times/values mean 'not taken'."""

    def __init__(self, schema: Schema, rng: np.random.Generator):
        self.schema, self.rng = schema, rng
        self.parts: list[pd.DataFrame] = []

    def add(
        self,
        name: str,
        times: np.ndarray,
        values: np.ndarray | float,
        prob: float | np.ndarray = 1.0,
    ) -> None:
        """Record ``values`` (clipped into the variable's hard limits, rounded) where taken."""
        var = self.schema.variable(name)
        values = np.broadcast_to(values, times.shape).astype(float)
        taken = ~np.isnan(times) & ~np.isnan(values) & (self.rng.random(times.shape) < prob)
        rows, _ = np.nonzero(taken)
        vals = values[taken]
        if var.hard_limits is not None:
            vals = np.clip(vals, *var.hard_limits)
        vals = np.round(vals, var.precision if var.precision is not None else 6)
        self.parts.append(
            pd.DataFrame({"row": rows, "hours": times[taken], "variable": name, "value": vals})
        )

    def noise(self, shape: tuple[int, ...], sd: float) -> np.ndarray:
        return self.rng.normal(0.0, sd, shape)

    def frame(self) -> pd.DataFrame:
        obs = pd.concat(self.parts, ignore_index=True)
        return obs.drop_duplicates(["row", "hours", "variable"], keep="first")


def _record_vitals(rec: _Recorder, p: _Patients, rng: np.random.Generator) -> None:
    times, is_main = _vital_times(rng, p)
    ph = _Physiology(p, times)
    shape = times.shape
    main_times = np.where(is_main, times, np.nan)
    c = _Patients.col

    rec.add("HR", times, ph.hr() + rec.noise(shape, 2), 0.97)

    sbp = ph.sbp() + rec.noise(shape, 3)
    dbp = ph.dbp(sbp) + rec.noise(shape, 2)
    mean_ap = np.clip((sbp + 2 * dbp) / 3 + rec.noise(shape, 2), dbp + 1, sbp - 1)
    art_taken = np.where(c(p.art) & (rng.random(shape) < 0.95), times, np.nan)
    rec.add("SysABP", art_taken, sbp)
    rec.add("DiasABP", art_taken, dbp)
    rec.add("MAP", art_taken, mean_ap)

    # Cuff pressures: routine without an arterial line, an occasional check with one.
    cuff_p = np.where(c(p.art), 0.06, 0.9)
    cuff_times = np.where(rng.random(shape) < cuff_p, times, np.nan)
    ni_sbp = np.round(sbp + 3 + rec.noise(shape, 5))
    ni_dbp = np.round(np.minimum(dbp + rec.noise(shape, 4), ni_sbp - 15))
    rec.add("NISysABP", cuff_times, ni_sbp)
    rec.add("NIDiasABP", cuff_times, ni_dbp)
    rec.add("NIMAP", cuff_times, (ni_sbp + 2 * ni_dbp) / 3)  # monitor-computed, hence 2 decimals

    rec.add("Temp", times, np.clip(ph.temp() + rec.noise(shape, 0.1), 32, 41.8), 0.4)
    rr_charted = rng.random(p.n) < np.where(p.icu == MICU, 0.5, 0.25)
    rr = np.clip(ph.resp_rate() + rec.noise(shape, 1), 6, 50)
    rec.add("RespRate", np.where(c(rr_charted), times, np.nan), rr, 0.9)
    gcs = np.clip(np.round(ph.gcs() + rec.noise(shape, 0.8)), 3, 15)
    rec.add("GCS", main_times, gcs, 0.28)

    anuric = rng.random(shape) < _sigmoid(2 * ph.sev - 5)
    urine = np.where(anuric, 0.0, np.clip(ph.urine() * np.exp(rec.noise(shape, 0.3)), 0, 1500))
    rec.add("Urine", main_times, urine, 0.75)

    weighed = rng.random(p.n) < 0.55
    fluid = 0.03 * ph.sp * times
    weight = c(p.weight) + fluid + rec.noise(shape, 0.4)
    rec.add("Weight", np.where(c(weighed), main_times, np.nan), weight, 0.4)

    rec.add("MechVent", np.where(ph.vent, main_times, np.nan), 1.0, 0.35)
    fio2 = np.round(ph.fio2() * 20) / 20  # set in 5% steps on the ventilator / mask
    on_o2 = ph.vent | c(p.o2)
    rec.add("FiO2", np.where(on_o2, main_times, np.nan), fio2, np.where(ph.vent, 0.3, 0.08))


def _record_labs(rec: _Recorder, p: _Patients, rng: np.random.Generator) -> None:
    c = _Patients.col
    sick = 1 + 0.4 * np.maximum(p.s0, 0)
    panel = _renewal_times(rng, p, (0.3, 3.0), (8, 28), 6, speedup=sick)
    ph = _Physiology(p, panel)
    shape = panel.shape

    def nz(sd: float) -> np.ndarray:
        return rec.noise(shape, sd)

    cr = ph.creatinine() * np.exp(nz(0.05))
    rec.add("Creatinine", panel, cr, 0.93)
    rec.add("BUN", panel, 18 * cr**0.8 * np.exp(0.3 * ph.z("bun") + nz(0.08)), 0.93)
    k = 4.1 + 0.35 * np.log(cr) + 0.1 * ph.sev + 0.3 * ph.z("k") + nz(0.2)
    rec.add("K", panel, np.clip(k, 2.4, 7.8), 0.93)
    rec.add("Na", panel, np.clip(139 + 3.5 * ph.z("na") + ph.ar("na") + nz(0.8), 118, 165), 0.93)
    rec.add("HCO3", panel, np.clip(ph.hco3() + nz(0.8), 6, 45), 0.93)
    glu = 135 * np.exp(0.08 * ph.sev + 0.25 * ph.z("glu") + ph.ar("glu") + nz(0.08))
    rec.add("Glucose", panel, np.clip(glu, 40, 700), 0.93)
    rec.add("Mg", panel, np.clip(2.0 + 0.2 * ph.z("mg") + 0.1 * np.log(cr) + nz(0.12), 1, 4), 0.9)
    hct = 31 - 1.5 * ph.sev - 2 * (ph.icu == CSRU) + 3.5 * ph.z("hct") - 0.04 * panel
    rec.add("HCT", panel, np.clip(hct + nz(0.8), 17, 52), 0.92)
    plt = 210 * np.exp(0.4 * ph.z("plt") - 0.2 * ph.sp - 0.005 * panel * ph.sp + nz(0.05))
    rec.add("Platelets", panel, np.clip(plt, 8, 900), 0.92)
    wbc = 10.5 * np.exp(0.35 * ph.z("wbc") + 0.15 * ph.sev + nz(0.08))
    rec.add("WBC", panel, np.clip(wbc, 0.4, 60), 0.92)

    lactate_followed = rng.random(p.n) < _sigmoid(-0.3 + 1.2 * p.s0 + 1.0 * p.art)
    lact = np.clip(ph.lactate() * np.exp(nz(0.05)), 0.3, 25)
    rec.add("Lactate", np.where(c(lactate_followed), panel, np.nan), lact, 0.7)

    # Liver panel: in some patients, always at the first draw, occasionally later.
    liver = c(rng.random(p.n) < 0.42)
    first = np.zeros(shape, bool)
    first[:, 0] = True
    liver_times = np.where(liver & (first | (rng.random(shape) < 0.25)), panel, np.nan)
    zl = ph.z("liver")
    rec.add("AST", liver_times, np.clip(35 * np.exp(0.6 * ph.sp + 0.8 * zl + nz(0.1)), 3, 12e3))
    rec.add("ALT", liver_times, np.clip(30 * np.exp(0.5 * ph.sp + 0.7 * zl + nz(0.15)), 3, 9e3))
    rec.add("ALP", liver_times, np.clip(85 * np.exp(0.45 * ph.z("alp") + nz(0.05)), 20, 1500))
    bili = 0.8 * np.exp(0.35 * ph.sp + 0.7 * ph.z("bili") + nz(0.05))
    rec.add("Bilirubin", liver_times, np.clip(bili, 0.1, 40))
    alb = 3.0 - 0.25 * ph.sev + 0.45 * ph.z("alb") + nz(0.1)
    rec.add("Albumin", liver_times, np.clip(alb, 1.0, 5.0), 0.7)

    # Cardiac markers and cholesterol: mostly coronary care, rarely anyone else.
    ccu = p.icu == CCU
    infarct = np.exp(rng.normal(np.where(ccu, np.log(0.3), np.log(0.03)), 1.1, p.n))
    course = 0.5 + 0.5 * np.exp(-np.abs(panel - 12) / 20)
    trop_t = c(rng.random(p.n) < np.where(ccu, 0.6, 0.15))
    rec.add("TroponinT", np.where(trop_t, panel, np.nan), np.clip(c(infarct) * course, 0.01, 25))
    trop_i = c(rng.random(p.n) < np.where(ccu, 0.15, 0.03))
    rec.add(
        "TroponinI", np.where(trop_i, panel, np.nan), np.clip(10 * c(infarct) * course, 0.3, 50)
    )
    chol_taken = c(rng.random(p.n) < np.where(ccu, 0.3, 0.03)) & first
    chol = 165 * np.exp(0.22 * ph.z("chol") - 0.08 * ph.sp)
    rec.add("Cholesterol", np.where(chol_taken, panel, np.nan), np.clip(chol, 40, 400))

    _record_blood_gases(rec, p, rng)


def _record_blood_gases(rec: _Recorder, p: _Patients, rng: np.random.Generator) -> None:
    """Arterial gases: arterial-line patients, more often while ventilated."""
    c = _Patients.col
    gases = c(p.art | (rng.random(p.n) < 0.08))
    vented = np.isfinite(p.vent_start)
    times = _renewal_times(rng, p, (0.2, 2.5), (3, 12), 12, speedup=1 + 0.8 * vented)
    times = np.where(gases, times, np.nan)
    ph = _Physiology(p, times)
    shape = times.shape
    pao2 = np.clip(ph.pao2() * np.exp(rec.noise(shape, 0.05)), 35, 600)
    paco2 = np.clip(ph.paco2() + rec.noise(shape, 1.5), 18, 110)
    hco3 = np.clip(ph.hco3(), 6, 45)
    # Henderson–Hasselbalch; SaO2 from a Hill oxygen-dissociation curve (P50 26.8, n 2.7).
    ph_value = 6.1 + np.log10(hco3 / (0.0307 * paco2)) + rec.noise(shape, 0.015)
    sao2 = 100 * pao2**2.7 / (pao2**2.7 + 26.8**2.7) + rec.noise(shape, 0.5)
    rec.add("PaO2", times, pao2, 0.97)
    rec.add("PaCO2", times, paco2, 0.97)
    rec.add("pH", times, np.clip(ph_value, 6.8, 7.7), 0.97)
    rec.add("SaO2", times, np.clip(sao2, 60, 100), 0.4)
    hct = 31 - 1.5 * ph.sev + 3.5 * ph.z("hct") + rec.noise(shape, 1)
    rec.add("HCT", times, np.clip(hct, 17, 52), 0.3)
    lactate = ph.lactate() * np.exp(rec.noise(shape, 0.05))
    rec.add("Lactate", times, np.clip(lactate, 0.3, 25), 0.2)


def _statics_frame(
    schema: Schema, p: _Patients, ids: list[str], rng: np.random.Generator
) -> pd.DataFrame:
    """Statics + outcome table in cohort coding (categorical = index), with realistic gaps."""
    n = p.n
    height = np.where(rng.random(n) < 0.45, np.nan, np.round(p.height, 1))
    weight = np.where(rng.random(n) < 0.07, np.nan, np.round(p.weight, 1))
    statics = pd.DataFrame(
        {
            "Age": p.age,
            "Gender": p.male,
            "Height": height,
            "ICUType": p.icu.astype(float),
            "Weight": weight,
            "In-hospital_death": p.death,
        },
        index=pd.Index(ids, name="patient_id"),
    )
    return statics[[*schema.static_names, *schema.outcome_names]]


def simulate_cohort(n_patients: int, seed: int) -> Cohort:
    """Simulate ``n_patients`` clean ICU stays (schema ``icu_sim``), reproducibly from ``seed``."""
    if n_patients < 1:
        raise ValueError("n_patients must be at least 1")
    schema = load_schema(SCHEMA_NAME)
    rng = np.random.default_rng(seed)
    p = _draw_patients(rng, n_patients)
    width = max(4, len(str(n_patients)))
    ids = [f"P{i + 1:0{width}d}" for i in range(n_patients)]
    statics = _statics_frame(schema, p, ids, rng)

    rec = _Recorder(schema, rng)
    _record_vitals(rec, p, rng)
    _record_labs(rec, p, rng)
    obs = rec.frame()
    obs.insert(0, "patient_id", np.asarray(ids, dtype=object)[obs.pop("row").to_numpy()])
    obs = obs.sort_values(OBS_COLUMNS[:3], kind="stable").reset_index(drop=True)
    return Cohort(
        schema=schema,
        statics=statics,
        observations=obs,
        provenance={"source": "clinsynth.simulate", "n_patients": n_patients, "seed": seed},
    )


# ----------------------------------------------------------------------------- sample file


def _file_rows(cohort: Cohort) -> pd.DataFrame:
    """The cohort as rows of the icu_sim layout: statics/outcome rows at hours 0, then series."""
    schema = cohort.schema
    statics = cohort.statics.copy()
    for name in schema.static_names + schema.outcome_names:
        field = schema.field(name)
        if field.categories:  # file holds the category value, the cohort its index
            codes = statics[name]
            values = np.asarray(field.categories, dtype=float)
            statics[name] = np.where(codes.isna(), np.nan, values[codes.fillna(0).astype(int)])
    long = statics.reset_index().melt(id_vars="patient_id", var_name="variable", value_name="value")
    long = long.dropna(subset=["value"])
    long.insert(1, "hours", 0.0)
    return pd.concat([long, cohort.observations], ignore_index=True)[OBS_COLUMNS]


def _artefacts(rows: pd.DataFrame, n_patients: int, seed: int) -> tuple[pd.DataFrame, dict]:
    """A few export glitches, as extra rows so that cleaning restores the clean cohort."""
    rng = np.random.default_rng([seed, 0xA27E])
    counts = {
        kind: max(1, round(rate * n_patients / 1000)) for kind, rate in ARTEFACTS_PER_1000.items()
    }
    series = rows[rows["hours"] > 0]
    extra = []
    for kind, names, value in [
        ("sentinel", SENTINEL_ARTEFACT_VARIABLES, -1.0),
        ("zero", ZERO_ARTEFACT_VARIABLES, 0.0),
    ]:
        # candidates: just after a random existing row, never shadowing a real value (or height)
        picks = series.iloc[rng.permutation(len(series))[: 20 * counts[kind] + 20]]
        near = rows[rows["patient_id"].isin(picks["patient_id"])]
        taken = set(zip(near["patient_id"], near["hours"], near["variable"], strict=True))
        taken |= {(r["patient_id"], r["hours"], r["variable"]) for r in extra}
        made = 0
        for pid, hours in zip(picks["patient_id"], picks["hours"], strict=True):
            if made == counts[kind]:
                break
            variable = str(rng.choice(names))
            hours = 0.0 if variable == "Height" else round(hours + 0.01, TIME_DECIMALS)
            if (pid, hours, variable) in taken:
                continue
            taken.add((pid, hours, variable))
            extra.append({"patient_id": pid, "hours": hours, "variable": variable, "value": value})
            made += 1
        counts[kind] = made  # a tiny cohort may offer fewer free slots than asked for
    counts["duplicate"] = min(counts["duplicate"], len(series))
    dup = series.iloc[np.sort(rng.choice(len(series), counts["duplicate"], replace=False))]
    glitches = pd.concat([pd.DataFrame(extra, columns=OBS_COLUMNS), dup], ignore_index=True)
    return glitches, counts


def sample_rows(cohort: Cohort, seed: int) -> tuple[pd.DataFrame, dict]:
    """Rows of the sample file (icu_sim layout, with artefacts), sorted; and artefact counts."""
    rows = _file_rows(cohort)
    glitches, counts = _artefacts(rows, cohort.n_patients, seed)
    rows = pd.concat([rows, glitches], ignore_index=True)
    schema = cohort.schema
    order = {n: i for i, n in enumerate([*schema.static_names, *schema.outcome_names])}
    offset = len(order)
    order |= {n: offset + i for i, n in enumerate(schema.variable_names) if n not in order}
    rows["_order"] = rows["variable"].map(order)
    rows = rows.sort_values(["patient_id", "hours", "_order"], kind="stable")
    return rows.drop(columns="_order").reset_index(drop=True), counts


def _format_values(rows: pd.DataFrame, schema: Schema) -> pd.Series:
    """Fixed decimals per field (the schema's precision) so the bytes never depend on repr()."""
    out = pd.Series("", index=rows.index, dtype=object)
    precision = {n: schema.field(n).precision or 0 for n in rows["variable"].unique()}
    for prec in sorted(set(precision.values())):
        names = [n for n, p in precision.items() if p == prec]
        mask = rows["variable"].isin(names) & (rows["value"] >= 0)
        out[mask] = rows.loc[mask, "value"].map(f"{{:.{prec}f}}".format)
    out[rows["value"] < 0] = rows.loc[rows["value"] < 0, "value"].map("{:.0f}".format)
    return out


def write_sample(path: str | Path, n_patients: int, seed: int) -> dict:
    """Simulate and write the sample CSV (gzip, byte-for-byte reproducible); return a summary."""
    cohort = simulate_cohort(n_patients, seed)
    rows, counts = sample_rows(cohort, seed)
    text = pd.DataFrame(
        {
            "patient_id": rows["patient_id"],
            "hours": rows["hours"].map(f"{{:.{TIME_DECIMALS}f}}".format),
            "variable": rows["variable"],
            "value": _format_values(rows, cohort.schema),
        }
    ).to_csv(index=False, lineterminator="\n")
    with atomic_path(path) as tmp:
        # filename="" and mtime=0 keep the gzip header free of names and times
        with open(tmp, "wb") as raw, gzip.GzipFile("", "wb", 6, raw, mtime=0) as gz:
            gz.write(text.encode("utf-8"))
        tmp.chmod(0o644)  # a shared sample file, not a private one (mkstemp makes it 0600)
    return {
        "path": str(path),
        "n_patients": n_patients,
        "seed": seed,
        "rows": len(rows),
        "mortality": float(cohort.statics["In-hospital_death"].mean()),
        "artefacts": counts,
    }
