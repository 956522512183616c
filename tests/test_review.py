"""Review sheets, forms, key and scoring on fabricated runs (no model is trained)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fake_runs import make_run, rename
from openpyxl import load_workbook
from typer.testing import CliRunner

import clinsynth.review.sheets as sheets_mod
from clinsynth.cli import app
from clinsynth.cohort import Cohort
from clinsynth.errors import ClinsynthError
from clinsynth.review import make_review_pack, score_review
from clinsynth.review.forms import GUESS_COLUMN, read_form
from clinsynth.review.pack import displayed
from clinsynth.review.scoring import score
from clinsynth.review.selection import read_key
from clinsynth.simulate import simulate_cohort, write_sample

runner = CliRunner()
N_REAL = 500  # the loader's minimum cohort size: load_real_split re-loads the real input


def pdf_pages(path: Path) -> int:
    return len(re.findall(rb"/Type\s*/Page\b", path.read_bytes()))


@pytest.fixture(scope="module")
def real_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("real") / "real.csv.gz"
    write_sample(path, N_REAL, seed=3)
    return path


def synthetic_cohort(n: int = 25) -> Cohort:
    c = simulate_cohort(n, 11)
    return rename(c, {p: p.replace("P", "S") for p in c.patient_ids})


@pytest.fixture
def run(tmp_path: Path, real_file: Path) -> Path:
    return make_run(tmp_path, synthetic_cohort(), flagged=("S0004",), real_data=real_file)


def fill(form: pd.DataFrame, key: pd.DataFrame, guess_right: int) -> pd.DataFrame:
    """Verdict: synthetic 'implausible', real 'plausible'; guesses right on the first k rows."""
    source = form["code"].map(key.set_index("code")["source"])
    form["verdict"] = np.where(source == "synthetic", "implausible", "plausible")
    if GUESS_COLUMN in form:
        wrong = source.map({"real": "synthetic", "synthetic": "real"})
        form[GUESS_COLUMN] = np.where(np.arange(len(form)) < guess_right, source, wrong)
    return form


def test_blinded_pack_pages_key_and_forms(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    texts: list[list[str]] = []
    draw = sheets_mod.draw_page

    def spy(page, schema, blinded):
        fig = draw(page, schema, blinded)
        texts.append([t.get_text() for t in fig.texts])
        return fig

    monkeypatch.setattr(sheets_mod, "draw_page", spy)
    pack = make_review_pack(run, n=8, include_real=3, seed=1, progress=False)

    assert pack.n_pages == 8 and pdf_pages(pack.pdf) == 8
    assert pack.key == run / "review_key.csv" and pack.key.parent != pack.directory
    assert sorted(p.name for p in pack.directory.iterdir()) == [
        "review_form.csv",
        "review_form.xlsx",
        "review_sheets.pdf",
    ]
    key = read_key(pack.key)
    form = pd.read_csv(pack.directory / "review_form.csv", dtype=str)
    codes = [f"R-{i:02d}" for i in range(1, 9)]
    assert list(key["code"]) == list(form["code"]) == codes
    assert list(form.columns) == ["code", "verdict", GUESS_COLUMN, "comment"]
    assert (key["source"] == "real").sum() == 3
    assert set(key.loc[key["source"] == "real", "synthetic_id"].fillna("")) == {""}
    assert "S0004" not in set(key["synthetic_id"])  # flagged by the audit: never shown

    # sheets carry their code and never an ID; real IDs appear in no written file
    assert [page[0] for page in texts] == [f"Sheet {c}" for c in codes]
    written = "".join(" ".join(page) for page in texts) + pack.key.read_text()
    assert not re.search(r"\bP0\d{3}\b", written)

    ws = load_workbook(pack.directory / "review_form.xlsx")["review"]
    assert [c.value for c in ws[1]] == list(form.columns)
    formulas = {dv.formula1 for dv in ws.data_validations.dataValidation}
    assert '"plausible,implausible,unsure"' in formulas and '"real,synthetic"' in formulas


def test_same_seed_same_pack_other_seed_other_order(run: Path, tmp_path: Path) -> None:
    a = make_review_pack(run, n=3, include_real=1, seed=5, out_dir=tmp_path / "a", progress=False)
    b = make_review_pack(run, n=3, include_real=1, seed=5, out_dir=tmp_path / "b", progress=False)
    c = make_review_pack(run, n=3, include_real=1, seed=6, out_dir=tmp_path / "c", progress=False)
    assert a.key == tmp_path / "a_key.csv"
    assert a.key.read_text() == b.key.read_text()
    assert a.pdf.read_bytes() == b.pdf.read_bytes()
    assert a.key.read_text() != c.key.read_text()


def test_refuses_overwrite_and_impossible_requests(run: Path) -> None:
    make_review_pack(run, n=2, progress=False)
    with pytest.raises(ClinsynthError, match="already exists"):
        make_review_pack(run, n=2, progress=False)
    make_review_pack(run, n=3, force=True, progress=False)
    assert pdf_pages(run / "review" / "review_sheets.pdf") == 3
    with pytest.raises(ClinsynthError, match="include-real"):
        make_review_pack(run, n=3, include_real=3, out_dir=run / "x", progress=False)
    with pytest.raises(ClinsynthError, match="only 24 synthetic"):
        make_review_pack(run, n=30, out_dir=run / "y", progress=False)


def test_real_patients_shown_within_horizon_only() -> None:
    c = simulate_cohort(2, 1)
    late = pd.DataFrame(
        {"patient_id": ["P0001"], "hours": [70.0], "variable": ["HR"], "value": [80.0]}
    )
    c = Cohort(
        schema=c.schema,
        statics=c.statics,
        observations=pd.concat([c.observations, late], ignore_index=True),
    )
    shown = displayed(c, ["P0001"])
    assert shown.observations["hours"].max() <= c.schema.grid.horizon_hours
    assert len(shown.observations) == (c.observations["patient_id"] == "P0001").sum() - 1


def test_score_filled_blinded_form(run: Path) -> None:
    pack = make_review_pack(run, n=10, include_real=4, seed=2, progress=False)
    key = read_key(pack.key)
    form = fill(pd.read_csv(pack.directory / "review_form.csv", dtype=str), key, guess_right=7)
    filled = pack.directory / "filled.csv"
    form.to_csv(filled, index=False)

    result = score_review(run, filled)
    assert result.implausible_synthetic.value == 1.0
    assert result.implausible_real.value == 0.0
    assert result.implausible_overall.k == 6
    dist = result.distinguishability
    assert (dist.accuracy.k, dist.accuracy.n) == (7, 10)
    # Wilson interval by its closed form
    p, n, z = 0.7, 10, 1.959964
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert dist.accuracy.low == pytest.approx(centre - half, abs=1e-4)
    assert dist.accuracy.high == pytest.approx(centre + half, abs=1e-4)
    assert dist.verdict.startswith("indistinguishable")

    out = runner.invoke(app, ["review-score", str(run), str(filled)])
    assert out.exit_code == 0, out.output
    assert "70%" in out.output and "indistinguishable" in out.output


def test_score_xlsx_perfect_reviewer(run: Path) -> None:
    pack = make_review_pack(run, n=6, include_real=3, seed=4, progress=False)
    key = read_key(pack.key)
    wb = load_workbook(pack.directory / "review_form.xlsx")
    ws = wb["review"]
    source = dict(zip(key["code"], key["source"], strict=True))
    for row in ws.iter_rows(min_row=2):
        row[1].value = "Plausible "  # case and spaces are forgiven
        row[2].value = source[row[0].value]
    filled = pack.directory / "filled.xlsx"
    wb.save(filled)
    result = score_review(run, filled, key_path=pack.key)
    assert result.implausible_overall.k == 0
    assert result.distinguishability.accuracy.value == 1.0
    assert result.distinguishability.verdict.startswith("distinguishable")


def test_unblinded_form_scores_implausibility_only(run: Path) -> None:
    pack = make_review_pack(run, n=5, progress=False)
    form = pd.read_csv(pack.directory / "review_form.csv", dtype=str)
    assert GUESS_COLUMN not in form
    form["verdict"] = ["implausible", "plausible", "unsure", "plausible", "plausible"]
    filled = pack.directory / "filled.csv"
    form.to_csv(filled, index=False)
    result = score_review(run, filled)
    assert (result.implausible_synthetic.k, result.implausible_synthetic.n) == (1, 5)
    assert result.unsure_synthetic.k == 1
    assert result.distinguishability is None and result.implausible_real is None


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: f.iloc[1:], "no row: R-01"),
        (lambda f: pd.concat([f, f.iloc[[0]]]), "more than once: R-01"),
        (lambda f: f.assign(verdict=["maybe", *f["verdict"][1:]]), "R-01: 'maybe'"),
        (lambda f: f.assign(verdict=["", *f["verdict"][1:]]), "R-01: (blank)"),
        (lambda f: f.assign(code=["R-99", *f["code"][1:]]), "not on the sheets: R-99"),
        (lambda f: f.drop(columns=["verdict"]), "lacks the column"),
        (lambda f: f.assign(**{GUESS_COLUMN: ["dunno", *f[GUESS_COLUMN][1:]]}), "'dunno'"),
    ],
)
def test_bad_forms_refused(tmp_path: Path, damage, message: str) -> None:
    codes = ["R-01", "R-02", "R-03"]
    key = pd.DataFrame({"code": codes, "source": ["real", "synthetic", "synthetic"]})
    good = pd.DataFrame(
        {
            "code": codes,
            "verdict": ["plausible", "implausible", "unsure"],
            GUESS_COLUMN: ["real", "synthetic", "real"],
            "comment": ["", "odd HR", ""],
        }
    )
    assert score(read_form(_save(good, tmp_path / "good.csv"), codes, True), key).n_sheets == 3
    bad = _save(damage(good), tmp_path / "bad.csv")
    with pytest.raises(ClinsynthError, match=re.escape(message)):
        read_form(bad, codes, blinded=True)


def test_cli_sheet_and_bad_form(run: Path) -> None:
    out = runner.invoke(app, ["review-sheet", str(run), "--n", "3", "--include-real", "1"])
    assert out.exit_code == 0, out.output
    assert "review_key.csv" in out.output
    bad = run / "review" / "review_form.csv"  # returned blank: no verdicts
    out = runner.invoke(app, ["review-score", str(run), str(bad)])
    assert out.exit_code == 2
    assert "cannot be scored" in out.output and "Traceback" not in out.output


def _save(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path
