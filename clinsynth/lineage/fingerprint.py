"""Content fingerprints of synthetic patients: recognise clinsynth output whose marker was stripped.

A patient's fingerprint is the SHA-256 of a canonical text of its record *without its id*: the
schema's statics (not outcomes, which often travel in a separate file) followed by its
observations as ``minute|variable|value`` lines, sorted. Values are written exactly as the writer
writes them (the field's precision, category labels), times are rounded to the minute, so the
fingerprint of a cohort equals the fingerprint of the same cohort written and loaded again, in any
row order and under any new ids. Plain ``hashlib`` text hashing (not pandas' internal hashing)
keeps fingerprints stable across library versions: the registry outlives installs.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from clinsynth.cohort import Cohort
from clinsynth.writer import format_values

FINGERPRINT_HEX = 32  # 128 bits: collisions between distinct patients are not a practical concern


def _observation_lines(cohort: Cohort) -> pd.DataFrame:
    """One ``minute|variable|value`` line per observation, in a canonical order per patient."""
    obs = cohort.observations
    text = np.empty(len(obs), dtype=object)
    for name, index in obs.groupby("variable", sort=False).indices.items():
        text[index] = format_values(obs["value"].to_numpy()[index], cohort.schema.variable(name))
    minutes = np.round(obs["hours"].to_numpy(dtype=float) * 60).astype(np.int64)
    variable = obs["variable"].astype(str).to_numpy(dtype=object)
    # integer sort keys (codes of sorted uniques) are much faster than sorting the strings
    keys = [pd.factorize(k, sort=True)[0] for k in (text, variable)]
    patient = pd.factorize(obs["patient_id"].to_numpy(dtype=object), sort=True)[0]
    order = np.lexsort((keys[0], keys[1], minutes, patient))
    lines = pd.Series(minutes[order]).astype(str) + "|" + variable[order] + "|" + text[order]
    return pd.DataFrame(
        {"patient_id": obs["patient_id"].to_numpy()[order], "line": lines.to_numpy()}
    )


def _static_lines(cohort: Cohort) -> pd.Series:
    parts = []
    for field in cohort.schema.statics:
        values = cohort.statics[field.name].to_numpy() if field.name in cohort.statics else None
        if values is None:
            values = np.full(cohort.n_patients, np.nan)
        parts.append(field.name + "=" + pd.Series(format_values(values, field), dtype=object))
    if not parts:
        return pd.Series("", index=cohort.statics.index, dtype=object)
    joined = parts[0]
    for part in parts[1:]:
        joined = joined + ";" + part
    joined.index = cohort.statics.index
    return joined


def patient_fingerprints(cohort: Cohort) -> dict[str, str]:
    """Patient id → fingerprint (hex) for every patient of ``cohort`` (see module docstring)."""
    statics = _static_lines(cohort)
    obs = _observation_lines(cohort)
    series = obs.groupby("patient_id", sort=False)["line"].agg("\n".join)
    out = {}
    for pid in cohort.patient_ids:
        text = f"{statics[pid]}\n{series.get(pid, '')}"
        out[pid] = hashlib.sha256(text.encode()).hexdigest()[:FINGERPRINT_HEX]
    return out
