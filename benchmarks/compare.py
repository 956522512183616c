"""Peer comparison: clinsynth vs SDV's PARSynthesizer on real PhysioNet 2012 stays, one table.

Rows (choose with ``--rows``):

- ``eps1``, ``eps4``, ``eps10``: clinsynth's DP SequenceSynthesizer at ε = 1, 4, 10;
- ``nodp``: the same model trained without DP (what the privacy costs);
- ``par``: SDV PARSynthesizer (not differentially private);
- ``ceiling``: real held-out patients used as the "synthetic" set (best fidelity reachable with
  no leak: they are not training members);
- ``floor``: the ceiling's patients with every static, outcome and variable trajectory shuffled
  across patients independently (marginals and each variable's own course kept, every joint
  relationship destroyed).

Data: the stays are loaded with ``enforce_window=False``, then a seeded split takes 2,000 training
members and 2,000 non-members; the non-members are halved into the audit holdout (the same for
every row) and the ceiling/floor source, so the ceiling's "synthetic" set never overlaps the
holdout. Every engine row samples as many patients as the ceiling has.

Each row runs in its own subprocess so its peak resident memory (``ru_maxrss`` read right after
sampling) is its own; the split is prepared once and handed over as pickles in a private temporary
folder that is deleted at the end (real data never lands in the repo). Only aggregates reach
``RESULTS.md``.

PAR cost, measured on this machine (2 shared cores, busy with other jobs, 1 torch thread;
PhysioNet 2012, 37 variables x 48 hourly steps) with ``--probe-par N``: 0.9-1.25 s per epoch on
200 stays, 2.9 s on 500, plus 13 s / 29 s of preprocessing; cost is linear in patients (PAR's
full-batch loss loops over every patient and variable in Python), so ~10-12 s per epoch and
~2 min of preprocessing at 2,000 stays. SDV's default 128 epochs is the default here
(``--par-epochs``): estimated ~21-25 min idle, measured 1 h 48 min (50.5 s per epoch) with the
2 cores shared by two other jobs, in the run recorded in ``RESULTS.md``. Sampling costs ~0.45 s
per patient (~8 min for 1,000; measured 500 s for 999 under load): PAR re-runs its GRU over the
whole prefix at every step. ``set-a`` loads as 3,997 usable stays, so the non-members
are 1,997 (998 holdout + 999 reference) when 2,000 are requested.

Never run in tests (hours of CPU). Run it with:
    .venv/bin/python benchmarks/compare.py                  # all rows, writes benchmarks/RESULTS.md
    .venv/bin/python benchmarks/compare.py --rows eps4,par,ceiling --par-epochs 64
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from clinsynth.cohort import Cohort  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "physionet2012"
DEFAULT_OUT = REPO / "benchmarks" / "RESULTS.md"
DEFAULT_PAR_EPOCHS = 128
INF = math.inf


@dataclass(frozen=True)
class RowSpec:
    """One line of the comparison: an engine with options, or a reference set of real patients."""

    label: str
    engine: str | None = None  # None = reference row (no training)
    options: dict[str, Any] = field(default_factory=dict)


ROWS: dict[str, RowSpec] = {
    "eps1": RowSpec("clinsynth ε=1", "clinsynth", {"epsilon": 1.0}),
    "eps4": RowSpec("clinsynth ε=4", "clinsynth", {"epsilon": 4.0}),
    "eps10": RowSpec("clinsynth ε=10", "clinsynth", {"epsilon": 10.0}),
    "nodp": RowSpec("clinsynth no DP", "clinsynth", {"dp": False}),
    "par": RowSpec("SDV PAR (no DP)", "par"),
    "ceiling": RowSpec("real held-out (ceiling)"),
    "floor": RowSpec("per-variable shuffle (floor)"),
}


# --- the table (pure: unit-tested on stub rows) ---------------------------------------------


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    value = float(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.3f}"


def _mark(check: dict[str, Any]) -> str:
    if check.get("passed") is None:
        return "n/a"
    if check["passed"]:
        return "✓"
    return "✗" if check.get("required", True) else "⚠"


def _check_cell(check: dict[str, Any] | None) -> str:
    if check is None:
        return "—"
    if check.get("passed") is None:
        return "n/a"
    return f"{_fmt(check.get('value'))} {_mark(check)}"


def _threshold_cell(checks: list[dict[str, Any]]) -> str:
    """The policy threshold, or the one actually applied when the audit widened it for noise."""
    if not checks:
        return "—"
    rel = "≤" if checks[0].get("direction") == "max" else "≥"
    applied = sorted(
        {round(float(c["threshold"]), 6) for c in checks if _finite(c.get("threshold"))}
    )
    policy = next(
        (c["policy_threshold"] for c in checks if _finite(c.get("policy_threshold"))), None
    )
    if policy is None:
        return f"{rel} {_fmt(applied[0])}" if len(applied) == 1 else "—"
    if not applied or applied == [round(float(policy), 6)]:
        return f"{rel} {_fmt(policy)}"
    if len(applied) == 1:
        return f"{rel} {_fmt(applied[0])} (policy {_fmt(policy)})"
    return f"{rel} {_fmt(policy)} (widened per row)"


def _verdict(row: dict[str, Any]) -> str:
    if row.get("error"):
        return f"error: {str(row['error']).splitlines()[0][:60]}"
    if row.get("passed") is None:
        return "—"
    return "**PASS**" if row["passed"] else "**FAIL**"


def _seconds(value: Any) -> str:
    return "—" if value is None else f"{float(value):.1f}"


def build_table(rows: list[dict[str, Any]]) -> str:
    """One markdown table: a column per benchmark row, a line per cost figure and audit check.

    Each row dict has ``label`` and optionally ``train_s``, ``sample_s``, ``peak_rss_mb``,
    ``epochs``, ``epsilon``, ``checks`` (dicts with name, family, value, threshold/
    policy_threshold, direction, passed, required), ``passed`` and ``error``. Check cells are
    "value ✓" (pass), "value ✗" (required check failed), "value ⚠" (advisory check failed),
    "n/a" (could not be measured) or "—" (not run). Transposed on purpose: ~25 checks read far
    better as lines than as columns.
    """
    if not rows:
        return "_no rows_\n"
    header = ["family", "measure", "threshold", *[str(r["label"]) for r in rows]]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * 3 + ["---:"] * len(rows)) + "|",
    ]

    def add(family: str, measure: str, threshold: str, cells: list[str]) -> None:
        lines.append("| " + " | ".join([family, measure, threshold, *cells]) + " |")

    add("cost", "ε (privacy budget)", "", [_epsilon_cell(r) for r in rows])
    add("cost", "epochs", "", [_fmt_int(r.get("epochs")) for r in rows])
    add("cost", "training time (s)", "", [_seconds(r.get("train_s")) for r in rows])
    add("cost", "sampling time (s)", "", [_seconds(r.get("sample_s")) for r in rows])
    add("cost", "peak memory (MB)", "", [_fmt_int(r.get("peak_rss_mb")) for r in rows])

    by_row = [{c["name"]: c for c in r.get("checks") or []} for r in rows]
    names: list[str] = []
    families: dict[str, str] = {}
    for r in rows:
        for c in r.get("checks") or []:
            if c["name"] not in families:
                names.append(c["name"])
                families[c["name"]] = c.get("family", "")
    family_order = list(dict.fromkeys(families[n] for n in names))
    names.sort(key=lambda n: family_order.index(families[n]))  # stable: keeps suite order
    for name in names:
        present = [m[name] for m in by_row if name in m]
        add(
            families[name],
            f"`{name}`",
            _threshold_cell(present),
            [_check_cell(m.get(name)) for m in by_row],
        )
    add("verdict", "audit (required checks)", "", [_verdict(r) for r in rows])
    return "\n".join(lines) + "\n"


def _fmt_int(value: Any) -> str:
    return "—" if value is None else f"{float(value):,.0f}"


def _epsilon_cell(row: dict[str, Any]) -> str:
    if "epsilon" not in row:
        return "—"
    eps = row["epsilon"]
    if eps is None or (isinstance(eps, float) and math.isinf(eps)):
        return "∞ (no DP)"
    return _fmt(eps)


def goal_lines(rows: list[dict[str, Any]], ours: str = "eps4", baseline: str = "par") -> list[str]:
    """The issue's goals for our engine at ε = 4, judged from the rows (pure)."""
    named = {r.get("row"): r for r in rows}
    if ours not in named or baseline not in named:
        return [f"- goals not evaluated: needs rows `{ours}` and `{baseline}`"]
    a, b = named[ours], named[baseline]
    checks_a = {c["name"]: c for c in a.get("checks") or []}
    checks_b = {c["name"]: c for c in b.get("checks") or []}
    out = []
    for family in ("temporal", "utility"):
        names = [n for n, c in checks_a.items() if c.get("family") == family and n in checks_b]
        better = [n for n in names if _better(checks_a[n], checks_b[n])]
        ok = bool(names) and len(better) == len(names)
        out.append(
            f"- {'✓' if ok else '✗'} better than PAR on {family}: {len(better)}/{len(names)} "
            f"figures ({', '.join(f'`{n}`' for n in names if n not in better) or 'all better'})"
        )
    mia = [c for c in checks_a.values() if c.get("family") == "membership" and "auroc" in c["name"]]
    worst = max(
        (abs(float(c["value"]) - 0.5) for c in mia if _finite(c.get("value"))), default=None
    )
    ok = worst is not None and worst <= 0.05
    out.append(
        f"- {'✓' if ok else '✗'} membership-inference AUROC within 0.05 of 0.5: "
        f"largest |AUROC − 0.5| = {_fmt(worst)}"
    )
    ta, tb = a.get("train_s"), b.get("train_s")
    if ta and tb:
        ratio = float(tb) / float(ta)
        out.append(f"- {'✓' if ratio >= 5 else '✗'} ≥ 5× less training time than PAR: {ratio:.1f}×")
    else:
        out.append("- ✗ ≥ 5× less training time than PAR: not measured")
    return out


def _finite(x: Any) -> bool:
    return x is not None and math.isfinite(float(x))


def _better(ours: dict[str, Any], theirs: dict[str, Any]) -> bool:
    if not (_finite(ours.get("value")) and _finite(theirs.get("value"))):
        return False
    if ours.get("direction") == "min":
        return float(ours["value"]) > float(theirs["value"])
    return float(ours["value"]) < float(theirs["value"])


# --- data ------------------------------------------------------------------------------------


def relabel(cohort: Cohort) -> Cohort:
    """Same patients under fresh IDs P00001...: no real ID leaves a reference row."""
    from clinsynth.engines.par import synthetic_ids

    new = dict(zip(cohort.patient_ids, synthetic_ids(cohort.n_patients), strict=True))
    statics = cohort.statics.rename(index=new)
    obs = cohort.observations.assign(patient_id=cohort.observations["patient_id"].map(new))
    return Cohort(cohort.schema, statics, obs, provenance={"synthetic": True, "reference": True})


def shuffle_per_variable(cohort: Cohort, seed: int) -> Cohort:
    """Floor: each static/outcome column and each variable's whole trajectory is given to a
    random other patient, independently per column, so no joint structure survives."""
    rng = np.random.default_rng(seed)
    ids = np.array(cohort.patient_ids, dtype=object)
    statics = cohort.statics.copy()
    for column in statics.columns:
        statics[column] = statics[column].to_numpy()[rng.permutation(len(ids))]
    parts = []
    for _, group in cohort.observations.groupby("variable", sort=False):
        new_owner = dict(zip(ids, ids[rng.permutation(len(ids))], strict=True))
        parts.append(group.assign(patient_id=group["patient_id"].map(new_owner)))
    obs = pd.concat(parts, ignore_index=True) if parts else cohort.observations.copy()
    obs = obs.sort_values(["patient_id", "hours", "variable"], kind="stable")
    return relabel(Cohort(cohort.schema, statics, obs.reset_index(drop=True)))


def split_real(
    cohort: Cohort, n_train: int, n_nonmembers: int, seed: int
) -> tuple[Cohort, Cohort, Cohort]:
    """Seeded (train, audit holdout, reference) split; holdout and reference halve the
    non-members so the ceiling's "synthetic" patients are never in the audit's holdout."""
    if n_train + n_nonmembers > cohort.n_patients:
        from clinsynth.errors import ClinsynthError

        raise ClinsynthError(
            f"Asked for {n_train} training + {n_nonmembers} held-out stays but the data has "
            f"only {cohort.n_patients}."
        )
    ids = np.array(sorted(cohort.patient_ids), dtype=object)
    order = np.random.default_rng(seed).permutation(len(ids))
    train = ids[order[:n_train]]
    non = ids[order[n_train : n_train + n_nonmembers]]
    half = len(non) // 2
    return (
        cohort.subset(np.sort(train)),
        cohort.subset(np.sort(non[:half])),
        cohort.subset(np.sort(non[half:])),
    )


def load_split(args: argparse.Namespace) -> tuple[Cohort, Cohort, Cohort]:
    from clinsynth.loader import load_cohort

    data = Path(args.data)
    main, outcomes = data / "set-a.csv.gz", data / "Outcomes-a.txt"
    if not main.is_file():
        from clinsynth.errors import ClinsynthError

        raise ClinsynthError(f"PhysioNet 2012 set-a not found in {data} (need set-a.csv.gz).")
    cohort = load_cohort(
        main,
        args.schema,
        outcomes_path=outcomes if outcomes.is_file() else None,
        enforce_window=False,
        progress=True,
    )
    available = cohort.n_patients - args.n_train
    if 0 < available < args.n_nonmembers:  # set-a loads as 3,997 usable stays, not 4,000
        print(f"note: only {available} non-members left after {args.n_train} training stays")
        args.n_nonmembers = available
    return split_real(cohort, args.n_train, args.n_nonmembers, args.seed)


# --- one row (runs in a subprocess) ------------------------------------------------------------


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def run_row(name: str, config: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Train/sample (or build the reference set), then the full audit suite; aggregates only."""
    import audits

    if config.get("threads"):
        import torch

        torch.set_num_threads(int(config["threads"]))
    spec = ROWS[name]
    with open(workdir / "split.pkl", "rb") as fh:
        train, holdout, reference = pickle.load(fh)
    result: dict[str, Any] = {"row": name, "label": spec.label, "n_train": train.n_patients}
    n_synthetic = reference.n_patients
    if spec.engine is None:
        synthetic = (
            relabel(reference)
            if name == "ceiling"
            else shuffle_per_variable(reference, config["seed"])
        )
    else:
        from clinsynth.engines import make_engine

        epochs = config["par_epochs"] if spec.engine == "par" else config.get("clinsynth_epochs")
        options = dict(spec.options)
        if spec.engine == "par" and config.get("threads"):
            options["threads"] = int(config["threads"])  # PAR pins 1 thread unless told
        engine = make_engine(
            spec.engine, train.schema, seed=config["seed"], epochs=epochs, **options
        )
        base = _peak_rss_mb()
        started = time.perf_counter()
        with _training_bar(spec.label) as progress:
            engine.fit(train, progress=progress)
        result["train_s"] = time.perf_counter() - started
        print(f"sampling {n_synthetic} patients...", flush=True)
        started = time.perf_counter()
        synthetic = engine.sample(n_synthetic, seed=config["seed"] + 1)
        result["sample_s"] = time.perf_counter() - started
        result["peak_rss_mb"] = _peak_rss_mb()
        result["base_rss_mb"] = base
        report = engine.privacy_report()
        result["epsilon"] = report.get("epsilon")
        result["epochs"] = report.get("epochs", epochs)
    result["n_synthetic"] = synthetic.n_patients
    started = time.perf_counter()
    audit = audits.run_audits(train, holdout, synthetic, policy=config.get("policy"))
    result["audit_s"] = time.perf_counter() - started
    result["checks"] = [_check_dict(c) for c in audit.checks]
    result["passed"] = bool(audit.passed)
    return result


@contextmanager
def _training_bar(label: str) -> Iterator[Callable[[int, int, float, float | None], None]]:
    """A rich bar driven by the engines' shared ``progress(done, total, loss, eps)`` callback."""
    from rich.progress import Progress

    with Progress() as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int, loss: float, eps: float | None) -> None:
            spent = "" if eps is None else f", ε spent {eps:.2f}"
            bar.update(
                task, completed=done, total=total, description=f"{label}: loss {loss:.3f}{spent}"
            )

        yield update


def _check_dict(check: Any) -> dict[str, Any]:
    keys = ("name", "family", "value", "threshold", "policy_threshold", "direction", "passed",
            "required")  # fmt: skip
    out = {k: getattr(check, k, None) for k in keys}
    for k in ("value", "threshold", "policy_threshold"):
        if out[k] is not None:
            out[k] = float(out[k])
    return out


def _json_default(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    return str(x)


def _worker(name: str, workdir: Path) -> int:
    config = json.loads((workdir / "config.json").read_text())
    try:
        result = run_row(name, config, workdir)
    except Exception as exc:  # one broken row must not lose the others
        import traceback

        traceback.print_exc()
        result = {"row": name, "label": ROWS[name].label, "error": f"{type(exc).__name__}: {exc}"}
    text = json.dumps(result, default=_json_default, allow_nan=True)
    (workdir / f"{name}.json").write_text(text)
    return 0


# --- driver ----------------------------------------------------------------------------------


def probe_par(args: argparse.Namespace) -> None:
    """Time PAR for 1 and 3 epochs on a small slice: (t3 - t1) / 2 = seconds per epoch."""
    from clinsynth.engines.par import PARBaseline

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    train, _, _ = load_split(args)
    part = train.subset(train.patient_ids[: args.probe_par])
    times = {}
    for epochs in (1, 3):
        started = time.perf_counter()
        PARBaseline(part.schema, epochs=epochs, seed=args.seed).fit(part)
        times[epochs] = time.perf_counter() - started
    per_epoch = (times[3] - times[1]) / 2
    print(
        f"PAR on {part.n_patients} stays: 1 epoch {times[1]:.1f} s, 3 epochs {times[3]:.1f} s "
        f"=> {per_epoch:.2f} s/epoch, ~{times[1] - per_epoch:.1f} s preprocessing; "
        f"at {args.n_train} stays ~{per_epoch * args.n_train / part.n_patients:.1f} s/epoch"
    )


def render(rows: list[dict[str, Any]], args: argparse.Namespace, command: str) -> str:
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    par = next((r for r in rows if r.get("row") == "par" and r.get("train_s")), None)
    par_line = (
        f"SDV PAR: {par['epochs']} epochs, {par['train_s'] / par['epochs']:.1f} s per epoch "
        "(fit time incl. preprocessing / epochs)."
        if par
        else f"SDV PAR: {args.par_epochs} epochs requested."
    )
    return "\n".join(
        [
            "# Benchmark: clinsynth vs SDV PARSynthesizer",
            "",
            f"- Date: {date}",
            f"- Command: `{command}`",
            f"- Machine: {platform.platform()}, {os.cpu_count()} CPUs visible, torch threads "
            f"{args.threads or 'torch default (PAR: 1, its fastest)'}",
            f"- Data: PhysioNet 2012 set-a, schema `{args.schema}`, seeded split (seed "
            f"{args.seed}): {args.n_train} training stays, {args.n_nonmembers} non-members halved "
            "into the audit holdout (same for every row) and the ceiling/floor source.",
            f"- Audit policy: {args.policy or 'default'}; every row audited with "
            "`audits.run_audits(train, holdout, synthetic)`.",
            f"- {par_line}",
            "- Peak memory: the row's own process high-water mark (`ru_maxrss`) after sampling, "
            "including the loaded split and libraries.",
            "- ✓ pass, ✗ required check failed, ⚠ advisory check failed, n/a not measurable.",
            "- Rows finished: "
            + "; ".join(f"{r['label']} {r.get('finished', '?')}" for r in rows)
            + (
                f" (rows kept in and reused from `{args.rows_dir}` when run with the same "
                "settings and committed code)"
                if args.rows_dir
                else ""
            ),
            "",
            build_table(rows),
            "## Goals for clinsynth at ε = 4 (issue 7)",
            "",
            *goal_lines(rows),
            "",
        ]
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma list of {', '.join(ROWS)}")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="folder with set-a.csv.gz")
    p.add_argument("--schema", default="physionet2012")
    p.add_argument("--n-train", type=int, default=2000)
    p.add_argument("--n-nonmembers", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--par-epochs", type=int, default=DEFAULT_PAR_EPOCHS)
    p.add_argument("--clinsynth-epochs", type=int, default=None, help="default: engine's own")
    p.add_argument("--policy", default=None, help="audit policy name or YAML path")
    p.add_argument(
        "--threads", type=int, default=None, help="torch threads in every row (PAR default: 1)"
    )
    p.add_argument("--out", default=str(DEFAULT_OUT))
    p.add_argument(
        "--rows-dir",
        default=None,
        help="keep each row's aggregate JSON here and reuse rows already there that were run "
        "with the same settings (so a slow row such as PAR need not be re-run); default: none",
    )
    p.add_argument(
        "--probe-par",
        type=int,
        default=None,
        metavar="N",
        help="only time PAR per epoch on N training stays and exit",
    )
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


SPLIT_KEYS = ("data", "schema", "n_train", "n_nonmembers")
ENGINE_FILES = {"clinsynth": "clinsynth/generator", "par": "clinsynth/engines"}


def _code_version(name: str) -> str:
    """Git hash of the engine's source (and the audits) a row was computed with."""
    spec = ROWS[name]
    paths = ["audits"] + ([ENGINE_FILES[spec.engine]] if spec.engine else [])
    done = subprocess.run(
        ["git", "-C", str(REPO), "log", "-1", "--format=%H", "--", *paths],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", *paths],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    return done.stdout.strip() + ("+uncommitted" if dirty else "")


def _kept_row(rows_dir: str | None, name: str, settings: dict[str, Any]) -> dict | None:
    """A previously kept row run with the same settings and the same committed code, if any."""
    if not rows_dir:
        return None
    path = Path(rows_dir) / f"{name}.json"
    if not path.is_file():
        return None
    row = json.loads(path.read_text())
    version = _code_version(name)
    same_code = row.get("code") == version and not version.endswith("+uncommitted")
    return row if row.get("settings") == settings and same_code else None


def _keep_row(rows_dir: str, name: str, row: dict[str, Any]) -> None:
    from clinsynth.io import write_text_atomic

    row["code"] = _code_version(name)
    Path(rows_dir).mkdir(parents=True, exist_ok=True)
    write_text_atomic(Path(rows_dir) / f"{name}.json", json.dumps(row, default=_json_default))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return _worker(args.worker, Path(args.workdir))
    if args.probe_par:
        probe_par(args)
        return 0
    names = [n.strip() for n in args.rows.split(",") if n.strip()]
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        print(f"unknown rows {unknown}; choose from {', '.join(ROWS)}", file=sys.stderr)
        return 2
    command = " ".join(shlex.quote(a) for a in ["benchmarks/compare.py", *sys.argv[1:]])
    rows = []
    with tempfile.TemporaryDirectory(prefix="clinsynth-bench-") as tmp:  # mode 0700
        workdir = Path(tmp)
        with open(workdir / "split.pkl", "wb") as fh:
            pickle.dump(load_split(args), fh)
        keys = ("seed", "par_epochs", "clinsynth_epochs", "policy", "threads")
        config = {k: getattr(args, k) for k in keys}
        (workdir / "config.json").write_text(json.dumps(config))
        settings = {**config, **{k: getattr(args, k) for k in SPLIT_KEYS}}
        for i, name in enumerate(names, 1):
            kept = _kept_row(args.rows_dir, name, settings)
            if kept is not None:
                print(f"[{i}/{len(names)}] {ROWS[name].label}: reused ({kept['finished']})")
                rows.append(kept)
                continue
            print(f"[{i}/{len(names)}] {ROWS[name].label}", flush=True)
            script = str(Path(__file__).resolve())
            cmd = [sys.executable, script, "--worker", name, "--workdir", str(workdir)]
            subprocess.run(cmd, check=False)
            out = workdir / f"{name}.json"
            if out.is_file():
                row = json.loads(out.read_text())
                row["finished"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
                row["settings"] = settings
                if args.rows_dir and "error" not in row:
                    _keep_row(args.rows_dir, name, row)
                rows.append(row)
            else:
                rows.append({"row": name, "label": ROWS[name].label, "error": "worker crashed"})
    text = render(rows, args, command)
    from clinsynth.io import write_text_atomic

    write_text_atomic(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
