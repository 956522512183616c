"""``generate_run``: load → seeded split → DP fit on members only → sample → write a run directory.

The library call behind ``clinsynth generate`` and ``clinsynth run``. The run directory (layout in
DESIGN.md) is built in a hidden staging folder and moved into place only when complete; an
existing non-empty directory is refused before any work starts. Real patient IDs never enter it:
the audit re-derives members and non-members from the input file named (and hashed) in the
manifest plus the recorded split seed.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from clinsynth.engines import DEFAULT_ENGINE, make_engine
from clinsynth.errors import ClinsynthError
from clinsynth.generator.synthesizer import DEFAULTS
from clinsynth.io import new_directory, sha256_file
from clinsynth.lineage.accounting import run_section, stamp_run_output
from clinsynth.provenance import environment, package_versions, utc_now
from clinsynth.runs import MODEL_FILE, SYNTHETIC_DIR, hash_files, write_manifest
from clinsynth.schema import Schema, load_schema

DP_WARNING = (
    "TRAINING WITHOUT DIFFERENTIAL PRIVACY (--no-dp-unsafe). The model can memorise and reproduce "
    "real patients; the run is recorded with epsilon = infinity and `clinsynth export` will refuse "
    "it. Use this only for experiments on data you are allowed to see."
)
PAR_WARNING = (
    "The 'par' engine (SDV PARSynthesizer) is a baseline WITHOUT differential privacy: the run "
    "is recorded with epsilon = infinity and `clinsynth export` refuses it unless --allow-non-dp."
)


def generate_run(
    data_path: str | Path,
    schema: Schema | str | Path,
    out_dir: str | Path,
    *,
    outcomes_path: str | Path | None = None,
    subsample: int | None = None,
    epsilon: float = DEFAULTS["epsilon"],
    delta: float | None = None,
    n: int | None = None,
    seed: int = 0,
    holdout_fraction: float = 0.2,
    dp: bool = True,
    epochs: int | None = None,
    batch_size: int | None = None,
    progress: bool = True,
    command: str | None = None,
    console: Console | None = None,
    allow_synthetic_fraction: float = 0.0,
    engine: str = DEFAULT_ENGINE,
) -> Path:
    """Train a DP generator on the training part of ``data_path`` and write ``out_dir``.

    ``n`` defaults to the number of training patients. Returns the run directory.
    ``allow_synthetic_fraction``: the largest share of clinsynth-made patients the loader lets
    into the training data (default 0: refused); the share and the run's generation depth are
    recorded in the manifest's ``lineage`` section and the output is stamped with its marker.
    """
    from clinsynth.loader import load_cohort
    from clinsynth.writer import write_cohort

    start = time.perf_counter()
    schema = schema if isinstance(schema, Schema) else load_schema(schema)
    if not 0.0 <= holdout_fraction < 1.0:
        raise ClinsynthError(
            f"The holdout fraction must be in [0, 1), got {holdout_fraction}. The audits need "
            "real non-members: keep the default 0.2 unless you know why not."
        )
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n <= 0):
        raise ClinsynthError(f"--n must be a positive number of synthetic stays, got {n!r}.")
    options = {"batch_size": batch_size}
    synth = make_engine(
        engine,
        schema,
        seed=seed,
        epochs=epochs,
        epsilon=epsilon,
        delta=delta,
        dp=dp,
        **{k: v for k, v in options.items() if v is not None},
    )  # validates every parameter before any data is read
    console = console or Console(stderr=True)
    if not dp:
        console.print(f"[bold red]WARNING: {DP_WARNING}[/bold red]")
    elif engine != DEFAULT_ENGINE:
        console.print(f"[bold red]WARNING: {PAR_WARNING}[/bold red]")
    timings: dict[str, float] = {}
    with new_directory(out_dir) as staging:
        t0 = time.perf_counter()
        cohort = load_cohort(
            data_path, schema, outcomes_path=outcomes_path, subsample=subsample, seed=seed,
            progress=progress, allow_synthetic_fraction=allow_synthetic_fraction,
        )  # fmt: skip
        train, holdout = cohort.split(holdout_fraction, seed)
        timings["load_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        with _training_bar(progress, synth.epochs, console) as update:
            synth.fit(train, progress=update)
        timings["train_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        n_synth = n if n is not None else train.n_patients
        synthetic = synth.sample(n_synth, seed=seed)
        timings["sample_s"] = time.perf_counter() - t0

        # lineage (clinsynth.lineage): depth = deepest input generation + 1; the output carries
        # the run's marker. Keyed on input + configuration (not time): same bytes for same run.
        data_hash = sha256_file(data_path)
        config = {
            "engine": engine,
            **synth.get_params(),
            "n_synthetic": n_synth,
            "holdout_fraction": holdout_fraction,
        }
        lineage = run_section(cohort, train, allow_synthetic_fraction, _digest(data_hash, config))
        synthetic = stamp_run_output(synthetic, lineage)

        t0 = time.perf_counter()
        write_cohort(synthetic, staging / SYNTHETIC_DIR)
        synth.save(staging / MODEL_FILE)
        timings["write_s"] = time.perf_counter() - t0
        timings["total_s"] = time.perf_counter() - start

        inputs = {
            "data": {"path": str(Path(data_path).resolve()), "sha256": data_hash},
            "outcomes": (
                {"path": str(Path(outcomes_path).resolve()), "sha256": sha256_file(outcomes_path)}
                if outcomes_path is not None
                else None
            ),
            "schema_name": schema.name,
            "schema_fingerprint": schema.fingerprint(),
            "schema": schema.model_dump(mode="json"),
            "subsample": subsample,
            "subsample_seed": seed,
            "holdout": {"fraction": holdout_fraction, "seed": seed},
            "n_patients": {
                "loaded": cohort.n_patients,
                "train": train.n_patients,
                "holdout": holdout.n_patients,
            },
            "cleaning": cohort.report.to_dict(),
        }
        created = utc_now()
        manifest: dict[str, Any] = {
            "clinsynth_run": _run_id(created, data_hash, config),
            "created": created,
            "command": command or _describe_call(data_path, schema.name, out_dir, config),
            "input": inputs,
            "config": config,
            "seeds": {"subsample": seed, "split": seed, "training": seed, "sampling": seed},
            "privacy": json_safe(synth.privacy_report()),
            "rules_kept_while_sampling": synthetic.provenance.get("rules_kept_while_sampling"),
            "lineage": lineage,
            "versions": {**package_versions(), **environment()},
            "timings": {k: round(v, 3) for k, v in timings.items()},
            "files": hash_files(staging),
        }
        write_manifest(staging, manifest)
    return Path(out_dir)


def json_safe(report: dict[str, Any]) -> dict[str, Any]:
    """ε = ∞ (no DP) is written as the string "infinity": JSON has no infinity."""
    return {
        k: ("infinity" if isinstance(v, float) and math.isinf(v) else v) for k, v in report.items()
    }


def _digest(data_hash: str, config: dict) -> str:
    return hashlib.sha256((data_hash + json.dumps(config, sort_keys=True)).encode()).hexdigest()


def _run_id(created: str, data_hash: str, config: dict) -> str:
    stamp = created.replace("-", "").replace(":", "").split("+")[0]
    return f"{stamp}-{_digest(data_hash, config)[:8]}"


def _describe_call(data_path, schema_name: str, out_dir, config: dict) -> str:
    return (
        f"generate_run({str(data_path)!r}, schema={schema_name!r}, out_dir={str(out_dir)!r}, "
        f"epsilon={config['epsilon']}, seed={config['seed']})"
    )


@contextmanager
def _training_bar(enabled: bool, epochs: int, console: Console) -> Iterator[Any]:
    """A rich bar showing epoch, loss and ε spent so far; yields the fit progress callback."""
    if not enabled:
        yield None
        return
    columns = (
        TextColumn("training"),
        BarColumn(),
        TextColumn("epoch {task.completed}/{task.total}"),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("ε spent {task.fields[eps]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("training", total=epochs, loss="-", eps="-")

        def update(epoch: int, total: int, loss: float, eps: float | None) -> None:
            shown = "∞ (no DP)" if eps is None else f"{eps:.2f}"
            bar.update(task, completed=epoch, loss=f"{loss:.2f}", eps=shown)

        yield update
