"""What the sampler's use of the schema buys, on one trained model (never run by the tests).

Samples the same trained model (a file from ``generate_physionet.py --save``) three ways, with
the same seed, and prints the generator benchmark's quality figures and every audit check:

- ``model``: the model's own draws (no rules, no panels, no blood-draw coupling);
- ``rules``: the schema's cross-variable rules kept while sampling (module constraints);
- ``rules+panels``: and each schema panel measured as one event (module panels);
- ``rules+panels+draws``: and the blood-drawn variables' uniforms tied by the model's
  calibrated draw coupling (module draws) — what ``sample`` does.

Caveat: calibration is run once, for what ``sample`` does. A panel's followers are measured with
their lead there, so calibration leaves their own measurement weights alone; in ``model`` and
``rules`` those followers are measured by their own, uncalibrated heads, and their rates and
intervals are DP-SGD's as trained. Those two rows therefore show less than what calibration
alone would give them.

The real split is the benchmark's (2,000 members / 2,000 non-members of set-a, by ``--seed``);
the non-members are both the test set of the quality figures and the audits' holdout.

Usage::

    .venv/bin/python benchmarks/sampling_variants.py /tmp/x/s0_eps4.pt --seed 0
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from generate_physionet import load_split, quality, real_stays  # noqa: E402

from audits import run_audits  # noqa: E402
from clinsynth.generator import SequenceSynthesizer  # noqa: E402
from clinsynth.generator.encoding import Encoding  # noqa: E402
from clinsynth.schema import load_schema  # noqa: E402

VARIANTS = ("model", "rules", "rules+panels", "rules+panels+draws")


def variant_encoding(encoding: Encoding, variant: str) -> Encoding:
    if variant == "model":
        return dataclasses.replace(encoding, bounds=(), mask_source=None, drawn_from_blood=())
    if variant == "rules":
        return dataclasses.replace(encoding, mask_source=None, drawn_from_blood=())
    if variant == "rules+panels":
        return dataclasses.replace(encoding, drawn_from_blood=())
    return encoding


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument(
        "--seed", type=int, default=0, help="the split seed the model was trained on"
    )
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=VARIANTS)
    args = parser.parse_args()
    train, test = load_split(args.seed)
    real = real_stays(train, test)
    synth_model = SequenceSynthesizer.load(args.model)
    # a model saved before the schema had panels samples with today's schema (same variables)
    schema = load_schema(synth_model.schema.name)
    full = Encoding.from_schema(schema)
    rows: dict[str, dict] = {}
    for variant in args.variants:
        synth_model.encoding = variant_encoding(full, variant)
        t0 = time.perf_counter()
        synth = synth_model.sample(args.n, seed=args.seed + 1)
        row: dict = {"sample_s": time.perf_counter() - t0}
        row.update(quality(real, synth, seed=args.seed))
        audit = run_audits(train, test, synth, seed=0)
        for check in audit.checks:
            mark = "" if check.passed is None else (" ok" if check.passed else " FAIL")
            row[check.name] = f"{check.value:.3f}{mark}"
        rows[variant] = row
        print(f"{variant}: done in {time.perf_counter() - t0:.0f} s", flush=True)
    keys = list(next(iter(rows.values())))
    print(f"{'':34s} " + " ".join(f"{v:>14s}" for v in rows))
    for k in keys:
        cells = [r.get(k, "") for r in rows.values()]
        cells = [f"{c:.3f}" if isinstance(c, float) else str(c) for c in cells]
        print(f"{k:34s} " + " ".join(f"{c:>14s}" for c in cells))


if __name__ == "__main__":
    main()
