"""A review pack for one run: the sheets PDF and the forms in one folder, the key beside it.

The folder (default ``RUN_DIR/review/``) is what the clinician gets; the key (default
``RUN_DIR/review_key.csv``, i.e. ``<folder>_key.csv`` next to the folder) stays with the analyst.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from clinsynth.cohort import Cohort
from clinsynth.errors import ClinsynthError
from clinsynth.io import new_directory, read_json
from clinsynth.review.forms import read_form, write_form_csv, write_form_xlsx
from clinsynth.review.scoring import ReviewScore, score
from clinsynth.review.selection import (
    ReviewItem,
    choose_items,
    default_key_path,
    read_key,
    write_key,
)
from clinsynth.review.sheets import SheetPage, write_pdf
from clinsynth.runs import (
    AUDIT_JSON,
    load_real_split,
    load_synthetic,
    read_manifest,
    schema_from_manifest,
)

PDF_NAME = "review_sheets.pdf"
FORM_CSV = "review_form.csv"
FORM_XLSX = "review_form.xlsx"


@dataclass
class ReviewPack:
    directory: Path
    key: Path
    n_pages: int
    n_real: int

    @property
    def pdf(self) -> Path:
        return self.directory / PDF_NAME

    @property
    def forms(self) -> list[Path]:
        return [self.directory / FORM_CSV, self.directory / FORM_XLSX]


def _flagged_ids(run_dir: Path) -> set[str]:
    """Records the audit found too close to a real patient are not shown either."""
    audit = run_dir / AUDIT_JSON
    if not audit.is_file():
        return set()
    return {str(i) for i in read_json(audit).get("flagged_synthetic_ids", [])}


def displayed(cohort: Cohort, ids: list[str]) -> Cohort:
    """The chosen patients as drawn: within the grid horizon, values at the schema precision.

    Applied to real and synthetic patients alike, so neither stays beyond the horizon nor extra
    decimals give the real ones away.
    """
    schema = cohort.schema
    sub = cohort.subset(ids)
    obs = sub.observations
    obs = obs[(obs["hours"] >= 0) & (obs["hours"] <= schema.grid.horizon_hours)].copy()
    for var in schema.variables:
        if var.precision is not None:
            rows = obs["variable"] == var.name
            obs.loc[rows, "value"] = obs.loc[rows, "value"].round(var.precision)
    return Cohort(schema=schema, statics=sub.statics, observations=obs)


def _pages(items: list[ReviewItem], cohorts: dict[str, Cohort]) -> list[SheetPage]:
    from audits.plausibility import patient_flags

    pages: dict[str, SheetPage] = {}
    for source, cohort in cohorts.items():
        chosen = [it for it in items if it.source == source]
        if not chosen:
            continue
        shown = displayed(cohort, [it.patient_id for it in chosen])
        flags = patient_flags(shown)
        obs = dict(tuple(shown.observations.groupby("patient_id", sort=False)))
        empty = shown.observations.iloc[0:0]
        for it in chosen:
            pages[it.code] = SheetPage(
                code=it.code,
                statics=shown.statics.loc[it.patient_id],
                observations=obs.get(it.patient_id, empty),
                flags=list(flags.get(it.patient_id, [])),
            )
    return [pages[it.code] for it in items]


def make_review_pack(
    run_dir: str | Path,
    n: int = 40,
    include_real: int = 0,
    seed: int = 0,
    out_dir: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
) -> ReviewPack:
    """Write ``n`` sheets (``include_real`` of them real, blinded), the forms and the key."""
    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir is not None else run_dir / "review"
    key_path = default_key_path(out)
    if key_path.exists() and not force:
        raise ClinsynthError(
            f"The review key {key_path} already exists (from an earlier review round). clinsynth "
            "never overwrites it: choose another --out folder, or pass --force."
        )
    manifest = read_manifest(run_dir)
    schema = schema_from_manifest(manifest)
    synthetic = load_synthetic(run_dir, schema)
    flagged = _flagged_ids(run_dir)
    synthetic_ids = [p for p in synthetic.patient_ids if p not in flagged]
    cohorts = {"synthetic": synthetic}
    real_ids: list[str] = []
    if include_real > 0:
        cohorts["real"] = load_real_split(manifest)[1]
        real_ids = cohorts["real"].patient_ids
    items = choose_items(synthetic_ids, real_ids, n, include_real, seed)
    pages = _pages(items, cohorts)
    codes = [it.code for it in items]
    blinded = include_real > 0
    with new_directory(out, force=force) as staging:
        with Progress(
            TextColumn("Drawing review sheets"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            disable=not progress,
            transient=True,
        ) as bar:
            task = bar.add_task("sheets", total=len(pages))
            n_pages = write_pdf(
                pages, schema, staging / PDF_NAME, blinded, advance=lambda: bar.advance(task)
            )
        write_form_csv(codes, staging / FORM_CSV, blinded)
        write_form_xlsx(codes, staging / FORM_XLSX, blinded)
        write_key(items, key_path)
    return ReviewPack(directory=out, key=key_path, n_pages=n_pages, n_real=include_real)


def score_review(
    run_dir: str | Path, form_path: str | Path, key_path: str | Path | None = None
) -> ReviewScore:
    """Score a filled form against its key (default: ``RUN_DIR/review_key.csv``)."""
    run_dir = Path(run_dir)
    read_manifest(run_dir)  # a clear error if RUN_DIR is not a run
    key = read_key(Path(key_path) if key_path is not None else default_key_path(run_dir / "review"))
    blinded = bool((key["source"] == "real").any())
    form = read_form(form_path, list(key["code"]), blinded)
    return score(form, key)
