"""The verdict form that goes with the sheets (CSV and Excel) and reading it back, strictly.

One row per sheet code. The Excel version restricts the verdict (and, in blinded mode, the
real/synthetic guess) to a dropdown, so typos are caught while the clinician types; the reader
still checks everything, because a CSV can say anything.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.worksheet.datavalidation import DataValidation

from clinsynth.errors import ClinsynthError
from clinsynth.io import atomic_path
from clinsynth.review.sheets import GUESSES, VERDICTS

GUESS_COLUMN = "real_or_synthetic"


def form_columns(blinded: bool) -> list[str]:
    return ["code", "verdict", *([GUESS_COLUMN] if blinded else []), "comment"]


def blank_form(codes: list[str], blinded: bool) -> pd.DataFrame:
    return pd.DataFrame({c: codes if c == "code" else "" for c in form_columns(blinded)})


def write_form_csv(codes: list[str], path: Path, blinded: bool) -> None:
    with atomic_path(path) as tmp:
        blank_form(codes, blinded).to_csv(tmp, index=False)


def write_form_xlsx(codes: list[str], path: Path, blinded: bool) -> None:
    """Excel form with dropdowns; column widths and a frozen header for printing/filling."""
    wb = Workbook()
    ws = wb.active
    ws.title = "review"
    columns = form_columns(blinded)
    ws.append(columns)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for code in codes:
        ws.append([code] + [None] * (len(columns) - 1))
    last = len(codes) + 1
    choices = {"verdict": VERDICTS, GUESS_COLUMN: GUESSES}
    for idx, name in enumerate(columns):
        letter = chr(ord("A") + idx)
        ws.column_dimensions[letter].width = {"code": 10, "comment": 70}.get(name, 20)
        if name in choices:
            dv = DataValidation(
                type="list",
                formula1='"' + ",".join(choices[name]) + '"',
                allow_blank=True,
                showErrorMessage=True,
                errorTitle="Not a valid choice",
                error=f"Choose one of: {', '.join(choices[name])}",
            )
            ws.add_data_validation(dv)
            dv.add(f"{letter}2:{letter}{last}")
    for row in ws.iter_rows(min_row=2, min_col=len(columns), max_col=len(columns)):
        row[0].alignment = Alignment(wrap_text=True)
    ws.freeze_panes = "A2"
    info = wb.create_sheet("instructions")
    for line in [
        "One row per sheet code. Verdict: plausible / implausible / unsure.",
        *(
            [f"{GUESS_COLUMN}: do you think the sheet shows a real or a synthetic patient?"]
            if blinded
            else []
        ),
        "Comment: anything that made you doubt the stay (optional).",
    ]:
        info.append([line])
    with atomic_path(path) as tmp:
        wb.save(tmp)


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise ClinsynthError(f"The review form {path} does not exist.")
    try:
        if path.suffix.lower() in (".xlsx", ".xlsm"):
            table = pd.read_excel(path, sheet_name=0, dtype=str, engine="openpyxl")
            return table.fillna("")
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # any parser failure means the same thing to the user
        raise ClinsynthError(
            f"Cannot read the review form {path} ({type(exc).__name__}: {exc}). Give the "
            "review_form.csv or review_form.xlsx written by `clinsynth review-sheet`."
        ) from None


def _bad_values(form: pd.DataFrame, column: str, allowed: tuple[str, ...]) -> list[str]:
    bad = form.loc[~form[column].isin(allowed), ["code", column]]
    return [f"{c}: '{v}'" if v else f"{c}: (blank)" for c, v in bad.itertuples(index=False)]


def read_form(path: str | Path, codes: list[str], blinded: bool) -> pd.DataFrame:
    """The filled form as ``code, verdict[, real_or_synthetic], comment``, fully checked.

    Refuses missing columns, duplicate or unknown codes, codes without a row, and blank or unknown
    verdicts/guesses, naming the offending sheet codes so the analyst can fix the form.
    """
    path = Path(path)
    form = _read_table(path)
    form.columns = [str(c).strip().lower() for c in form.columns]
    needed = [c for c in form_columns(blinded) if c != "comment"]
    missing_cols = [c for c in needed if c not in form.columns]
    if missing_cols:
        raise ClinsynthError(
            f"The review form {path} lacks the column(s) {', '.join(missing_cols)} (found: "
            f"{', '.join(form.columns) or 'none'}). Use the form written with the sheets."
        )
    if "comment" not in form.columns:
        form["comment"] = ""
    form = form[form_columns(blinded)].astype(str).apply(lambda s: s.str.strip())
    form = form[(form != "").any(axis=1)]  # blank spreadsheet rows
    for col in needed[1:]:
        form[col] = form[col].str.lower()
    problems = []
    dup = sorted(form.loc[form["code"].duplicated(), "code"].unique())
    if dup:
        problems.append(f"codes listed more than once: {', '.join(dup)}")
    unknown = sorted(set(form["code"]) - set(codes))
    if unknown:
        problems.append(f"codes that are not on the sheets: {', '.join(unknown)}")
    absent = [c for c in codes if c not in set(form["code"])]
    if absent:
        problems.append(f"sheet codes with no row: {', '.join(absent)}")
    bad = _bad_values(form, "verdict", VERDICTS)
    if bad:
        problems.append(
            f"verdicts must be one of {'/'.join(VERDICTS)} (use 'unsure' if undecided); "
            f"got {'; '.join(bad)}"
        )
    if blinded:
        bad = _bad_values(form, GUESS_COLUMN, GUESSES)
        if bad:
            problems.append(f"{GUESS_COLUMN} must be real or synthetic; got {'; '.join(bad)}")
    if problems:
        raise ClinsynthError(
            f"The review form {path} cannot be scored: " + "; ".join(problems) + "."
        )
    return form.reset_index(drop=True)
