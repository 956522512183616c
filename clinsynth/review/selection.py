"""Which patients go on the review sheets, under which code, and the key that unblinds them.

Sheet codes (``R-01``...) follow page order; the order of real and synthetic patients is a seeded
shuffle, so the code says nothing about the source. The key (code -> real/synthetic) is the only
link back and is written apart from the sheets; it never holds a real patient ID.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from clinsynth.errors import ClinsynthError
from clinsynth.io import atomic_path

SOURCES = ("synthetic", "real")
KEY_COLUMNS = ["code", "source", "synthetic_id"]


@dataclass(frozen=True)
class ReviewItem:
    """One sheet: its code, where the patient comes from, and the patient's ID in that cohort."""

    code: str
    source: str  # "synthetic" or "real"
    patient_id: str  # synthetic run ID, or the real ID (kept in memory only, never written)


def _pick(ids: list[str], k: int, rng: np.random.Generator) -> list[str]:
    ordered = sorted(ids)
    return [ordered[i] for i in rng.choice(len(ordered), size=k, replace=False)]


def choose_items(
    synthetic_ids: list[str], real_ids: list[str], n: int, include_real: int, seed: int
) -> list[ReviewItem]:
    """``n`` sheets in all, ``include_real`` of them real, in a seeded random order."""
    if n < 1:
        raise ClinsynthError(f"--n must be at least 1 (got {n}).")
    if not 0 <= include_real < n:
        raise ClinsynthError(
            f"--include-real must be between 0 and n - 1 = {n - 1} (got {include_real}): the "
            "sheets must include at least one synthetic patient."
        )
    n_synth = n - include_real
    if n_synth > len(synthetic_ids):
        raise ClinsynthError(
            f"{n_synth} synthetic sheets were requested but only {len(synthetic_ids)} synthetic "
            "patients are available; lower --n."
        )
    if include_real > len(real_ids):
        raise ClinsynthError(
            f"{include_real} real sheets were requested but the run holds out only "
            f"{len(real_ids)} real patients; lower --include-real."
        )
    rng = np.random.default_rng(seed)
    chosen = [("synthetic", pid) for pid in _pick(synthetic_ids, n_synth, rng)]
    chosen += [("real", pid) for pid in _pick(real_ids, include_real, rng)]
    order = rng.permutation(len(chosen))
    width = max(2, len(str(n)))
    return [
        ReviewItem(code=f"R-{page:0{width}d}", source=chosen[i][0], patient_id=chosen[i][1])
        for page, i in enumerate(order, start=1)
    ]


def key_frame(items: list[ReviewItem]) -> pd.DataFrame:
    """The unblinding key: synthetic IDs are the run's own; real patients get no ID at all."""
    return pd.DataFrame(
        {
            "code": [it.code for it in items],
            "source": [it.source for it in items],
            "synthetic_id": [it.patient_id if it.source == "synthetic" else "" for it in items],
        },
        columns=KEY_COLUMNS,
    )


def write_key(items: list[ReviewItem], path: Path) -> None:
    with atomic_path(path) as tmp:
        key_frame(items).to_csv(tmp, index=False)


def read_key(path: str | Path) -> pd.DataFrame:
    """Read a review key back, refusing anything that is not one."""
    path = Path(path)
    if not path.is_file():
        raise ClinsynthError(
            f"The review key {path} does not exist. It is written by `clinsynth review-sheet` "
            "(beside the sheets folder, as FOLDER_key.csv); pass it with --key."
        )
    try:
        key = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ClinsynthError(f"The review key {path} is not a readable CSV ({exc}).") from None
    if list(key.columns[:2]) != KEY_COLUMNS[:2] or not key["source"].isin(SOURCES).all():
        raise ClinsynthError(
            f"{path} is not a review key written by `clinsynth review-sheet` (expected columns "
            f"{', '.join(KEY_COLUMNS)} with source real/synthetic)."
        )
    if key["code"].duplicated().any():
        raise ClinsynthError(f"The review key {path} lists a sheet code twice; was it edited?")
    return key


def default_key_path(sheets_dir: Path) -> Path:
    """``RUN_DIR/review`` -> ``RUN_DIR/review_key.csv``: beside the folder handed over."""
    return sheets_dir.parent / f"{sheets_dir.name}_key.csv"
