"""Reading a CSV(.gz) into strings, with one-paragraph errors for every way a file can be wrong.

Everything is read as text: numbers, times and categories are parsed later by rules that can
count what they reject, instead of pandas silently turning a stray word into NaN.
"""

from __future__ import annotations

import difflib
import gzip
import zipfile
from pathlib import Path

import pandas as pd

from clinsynth.errors import ClinsynthError


def read_table(path: str | Path, what: str = "Data file") -> pd.DataFrame:
    """Read ``path`` (CSV, optionally gzip-compressed) with every column as ``str``/NaN."""
    path = Path(path)
    if not path.exists():
        raise ClinsynthError(
            f"{what} {path} does not exist. Check the path (and the current folder)."
        )
    if not path.is_file():
        raise ClinsynthError(f"{what} {path} is a folder, not a file. Give the path of a CSV file.")
    if path.stat().st_size == 0:
        raise ClinsynthError(f"{what} {path} is empty (0 bytes). Export the data again.")
    if zipfile.is_zipfile(path):
        raise ClinsynthError(
            f"{what} {path} is a ZIP archive or a spreadsheet (.xlsx), not a CSV file. "
            "Unpack it or save the sheet as CSV (comma-separated), then try again."
        )
    try:
        frame = pd.read_csv(path, dtype=str, skipinitialspace=True, compression="infer")
    except pd.errors.EmptyDataError:
        raise ClinsynthError(f"{what} {path} is empty (no header line). Export it again.") from None
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError, OSError) as exc:
        raise ClinsynthError(
            f"{what} {path} could not be read as CSV text ({type(exc).__name__}: {exc}). "
            "clinsynth reads comma-separated text files, optionally gzip-compressed (.csv.gz); "
            "if this is a spreadsheet or a database dump, export it as CSV first."
        ) from None
    except pd.errors.ParserError as exc:
        raise ClinsynthError(
            f"{what} {path} is not a well-formed CSV file ({exc}). Check that every line has "
            "the same number of comma-separated fields as the header."
        ) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise ClinsynthError(
            f"{what} {path} has a header ({', '.join(frame.columns[:8])}) but no data rows."
        )
    return frame


def _separator_hint(columns: list[str]) -> str:
    if len(columns) == 1:
        for sep, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "vertical bars")):
            if sep in columns[0]:
                return (
                    f" The header looks separated by {name}, not commas: save the file as "
                    "comma-separated CSV."
                )
    return ""


def check_columns(
    frame: pd.DataFrame, expected: list[str], path: str | Path, what: str = "Data file"
) -> None:
    """Refuse a file whose header lacks expected columns, naming close matches (renames)."""
    found = list(frame.columns)
    missing = [c for c in expected if c not in found]
    if not missing:
        return
    hints = []
    for name in missing:
        close = difflib.get_close_matches(name, found, n=1, cutoff=0.6)
        close = close or [c for c in found if c.lower() == name.lower()]
        if close:
            hints.append(f"'{name}' → did you mean '{close[0]}'?")
    hint = (" " + " ".join(hints)) if hints else ""
    raise ClinsynthError(
        f"{what} {path} lacks the column(s) {', '.join(repr(m) for m in missing)} that the "
        f"schema expects. Expected: {', '.join(expected)}; found: {', '.join(found[:30])}"
        f"{' …' if len(found) > 30 else ''}.{hint}{_separator_hint(found)} Rename the columns in "
        "the file, or fix the layout section of the schema (or pick the right --schema)."
    )
