"""PhysioNet/CinC Challenge 2012 → the packed layout of ``schemas/physionet2012.yaml``.

The challenge ships one ``RecordID.txt`` per ICU stay (header ``Time,Parameter,Value``) and
``Outcomes-a.txt``-style files; some mirrors ship the same rows packed into one
``RecordID,Time,Parameter,Value`` CSV. Both become ``OUT/cohort.csv.gz`` (packed rows, in record
order, otherwise untouched: cleaning is the loader's job, where it is counted) and, when outcome
files are found, ``OUT/outcomes.csv`` (their columns concatenated, rows of the imported records
only; the loader uses only the schema's outcome). The gzip stream has a fixed timestamp so the
same input gives the same bytes.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from clinsynth.errors import ClinsynthError
from clinsynth.io import new_directory
from clinsynth.loading.read import check_columns, read_table

HEADER = "RecordID,Time,Parameter,Value"
RECORD_HEADER = "Time,Parameter,Value"
MAIN_NAME = "cohort.csv.gz"
OUTCOMES_NAME = "outcomes.csv"


@dataclass
class ImportSummary:
    """What was converted, for the CLI to report."""

    files: list[Path] = field(default_factory=list)
    n_records: int = 0
    n_rows: int = 0
    outcome_sources: list[Path] = field(default_factory=list)
    n_outcomes: int = 0
    records_without_outcome: int = 0


def _record_files(folder: Path) -> list[Path]:
    files = [p for p in folder.glob("*.txt") if p.stem.isdigit()]
    if not files:
        raise ClinsynthError(
            f"{folder} holds no challenge record files (RecordID.txt, e.g. 132539.txt). Give the "
            "folder of per-stay files (set-a/) or the packed RecordID,Time,Parameter,Value CSV."
        )
    return sorted(files, key=lambda p: int(p.stem))


def _record_rows(path: Path) -> tuple[str, list[str]]:
    """(record id, data lines) of one ``RecordID.txt``; the id comes from its RecordID row."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (UnicodeDecodeError, OSError) as exc:
        raise ClinsynthError(f"Record file {path} could not be read as text ({exc}).") from None
    if not lines or lines[0].replace(" ", "") != RECORD_HEADER:
        found = lines[0][:60] if lines else "an empty file"
        raise ClinsynthError(
            f"Record file {path} should start with the header '{RECORD_HEADER}' but has "
            f"'{found}'. Is this a PhysioNet 2012 challenge folder?"
        )
    rows = [line.strip() for line in lines[1:] if line.strip()]
    record_id = path.stem
    for number, line in enumerate(rows, start=2):
        parts = line.split(",")
        if len(parts) != 3:
            raise ClinsynthError(
                f"Record file {path}, line {number}: expected 3 comma-separated fields "
                f"(Time,Parameter,Value), found {len(parts)}."
            )
        if parts[1] == "RecordID" and parts[2].strip():
            record_id = parts[2].strip().split(".")[0]
    return record_id, rows


def _write_gzip_text(target: Path, chunks: Iterable[str]) -> None:
    with (
        open(target, "wb") as raw,
        gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz,
    ):
        for chunk in chunks:
            gz.write(chunk.encode())


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
        disable=not enabled,
    )


def _convert_folder(folder: Path, target: Path, summary: ImportSummary, progress: bool) -> set:
    files = _record_files(folder)
    ids: set[str] = set()

    def chunks():
        yield HEADER + "\n"
        with _progress(progress) as bar:
            task = bar.add_task("converting records", total=len(files))
            for path in files:
                record_id, rows = _record_rows(path)
                if record_id in ids:
                    raise ClinsynthError(
                        f"Record {record_id} appears twice ({path.name} repeats it): remove the "
                        "duplicate file."
                    )
                ids.add(record_id)
                summary.n_rows += len(rows)
                yield "".join(f"{record_id},{row}\n" for row in rows)
                bar.advance(task)

    _write_gzip_text(target, chunks())
    return ids


def _convert_packed(path: Path, target: Path, summary: ImportSummary) -> set:
    frame = read_table(path, "Packed PhysioNet file")
    check_columns(frame, HEADER.split(","), path, "Packed PhysioNet file")
    frame = frame[HEADER.split(",")]
    summary.n_rows = len(frame)
    _write_gzip_text(target, [frame.to_csv(index=False)])
    return set(frame["RecordID"].dropna().str.strip())


def _outcome_files(source: Path, explicit: Path | None) -> list[Path]:
    if explicit is not None:
        return [explicit]
    folder = source if source.is_dir() else source.parent
    return sorted({*folder.glob("Outcomes*.txt"), *folder.parent.glob("Outcomes*.txt")})


def _convert_outcomes(files: list[Path], target: Path, ids: set, summary: ImportSummary) -> None:
    frames = []
    for path in files:
        frame = read_table(path, "Outcomes file")
        check_columns(frame, ["RecordID"], path, "Outcomes file")
        frames.append(frame)
    outcomes = pd.concat(frames, ignore_index=True)
    outcomes["RecordID"] = outcomes["RecordID"].str.strip()
    repeated = outcomes["RecordID"].duplicated()
    if repeated.any():
        raise ClinsynthError(
            f"The outcome files {', '.join(p.name for p in files)} give {int(repeated.sum())} "
            "record ids more than once; pass the right one with --outcomes."
        )
    # only the imported records' rows: the outcome file pairs with this cohort file
    outcomes = outcomes[outcomes["RecordID"].isin(ids)]
    outcomes.to_csv(target, index=False)
    summary.outcome_sources = files
    summary.n_outcomes = len(outcomes)
    summary.records_without_outcome = len(ids) - len(outcomes)


def import_physionet2012(
    source: str | Path,
    out_dir: str | Path,
    *,
    outcomes: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
) -> ImportSummary:
    """Convert a challenge folder or packed CSV(.gz) into ``out_dir`` (a new folder)."""
    source = Path(source)
    if not source.exists():
        raise ClinsynthError(f"{source} does not exist: give the set-a folder or packed CSV.")
    explicit = Path(outcomes) if outcomes is not None else None
    if explicit is not None and not explicit.is_file():
        raise ClinsynthError(f"Outcomes file {explicit} does not exist.")
    summary = ImportSummary()
    with new_directory(out_dir, force=force) as staging:
        main = staging / MAIN_NAME
        if source.is_dir():
            ids = _convert_folder(source, main, summary, progress)
        else:
            ids = _convert_packed(source, main, summary)
        summary.n_records = len(ids)
        summary.files.append(Path(out_dir) / MAIN_NAME)
        outcome_files = _outcome_files(source, explicit)
        if outcome_files:
            _convert_outcomes(outcome_files, staging / OUTCOMES_NAME, ids, summary)
            summary.files.append(Path(out_dir) / OUTCOMES_NAME)
    return summary
