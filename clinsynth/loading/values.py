"""Raw text values → schema-coded floats, one rule at a time, every rejection counted.

Order of the rules for one value: empty → missing (not counted: nothing was there);
a missing sentinel (e.g. ``-1``) → missing (``missing_sentinel``); for continuous/integer
fields, text that is not a number → dropped (``non_numeric``); for binary fields anything but
0/1 (or true/false) and for categorical fields anything not in ``categories`` → missing
(``not_allowed_value``); numbers outside ``hard_limits`` → missing (``outside_hard_limits``,
e.g. blood pressures recorded as 0). Values inside the limits are kept exactly as given (no
rounding). Categorical values become the index of the category; binary values 0/1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from clinsynth.cohort import CleaningReport
from clinsynth.schema import BaseField, VariableType

OK, SENTINEL, NON_NUMERIC, NOT_ALLOWED, OUT_OF_LIMITS = range(5)
RULES = {
    SENTINEL: "missing_sentinel",
    NON_NUMERIC: "non_numeric",
    NOT_ALLOWED: "not_allowed_value",
    OUT_OF_LIMITS: "outside_hard_limits",
}
_TRUE_FALSE = {"true": 1.0, "false": 0.0}


@dataclass
class ValueProblems:
    """What the caller needs to refuse a column or point the analyst at a line."""

    non_numeric: int = 0
    present: int = 0
    first_non_numeric_line: int | None = None

    @property
    def wholly_non_numeric(self) -> bool:
        return self.present > 0 and self.non_numeric == self.present


def _category_codes(uniques: pd.Series, numbers: np.ndarray, categories: list) -> np.ndarray:
    """Index of each raw value in ``categories`` (NaN when absent); text or numeric match."""
    codes = np.full(len(uniques), np.nan)
    text = uniques.str.strip().to_numpy()
    for index, category in reversed(list(enumerate(categories))):
        if isinstance(category, str):
            codes[text == category.strip()] = index
        else:
            codes[numbers == float(category)] = index
    return codes


def _classify(uniques: pd.Series, field: BaseField, sentinels: list[float]):
    """(value, status) for each distinct raw value."""
    stripped = uniques.str.strip()
    numbers = pd.to_numeric(stripped, errors="coerce").to_numpy(dtype=float)
    numbers[~np.isfinite(numbers)] = np.nan
    status = np.full(len(uniques), OK)
    values = numbers.copy()
    if field.type is VariableType.categorical:
        values = _category_codes(uniques, numbers, field.categories or [])
        status[np.isnan(values)] = NOT_ALLOWED
    elif field.type is VariableType.binary:
        words = stripped.str.lower().map(_TRUE_FALSE).to_numpy(dtype=float)
        values = np.where(np.isnan(numbers), words, numbers)
        status[~np.isin(values, (0.0, 1.0))] = NOT_ALLOWED
    else:
        status[np.isnan(numbers)] = NON_NUMERIC
        if field.hard_limits is not None:
            low, high = field.hard_limits
            status[(numbers < low) | (numbers > high)] = OUT_OF_LIMITS
    if sentinels:
        status[np.isin(numbers, sentinels)] = SENTINEL
    values = np.where(status == OK, values, np.nan)
    return values, status


def clean_values(
    raw: pd.Series,
    field: BaseField,
    sentinels: list[float],
    report: CleaningReport,
    lines: np.ndarray | None = None,
) -> tuple[np.ndarray, ValueProblems]:
    """Coded float values (NaN = missing) for ``raw`` text, counting each rule in ``report``."""
    codes, uniques = pd.factorize(raw, use_na_sentinel=True)
    uniques = pd.Series(uniques, dtype=str)
    values, status = _classify(uniques, field, sentinels)
    present = codes >= 0
    row_status = np.append(status, -1)[codes]  # code -1 (empty cell) → status -1
    for code, rule in RULES.items():
        report.add(rule, field.name, int((row_status == code).sum()))
    out = np.append(values, np.nan)[codes]
    bad = row_status == NON_NUMERIC
    problems = ValueProblems(
        non_numeric=int(bad.sum()),
        present=int(((row_status != SENTINEL) & present).sum()),
        first_non_numeric_line=int(lines[bad][0]) if lines is not None and bad.any() else None,
    )
    return out, problems
