"""DP sequence generator: ``SequenceSynthesizer`` (fit on real stays, sample synthetic ones).

Modules, one job each:

- ``encoding``: schema-only scaling of values, static/outcome classes (no data statistics);
- ``features``: what the model sees of a stay's past at each grid step (train = sample path);
- ``layers``: per-variable and within-step (MADE) linear layers with opacus grad samplers;
- ``model``: the torch module (statics heads, causal conv series model, outcome heads);
- ``priors``: one DP release of summary statistics that initialises the model;
- ``severity``: the hidden severity score (a public formula of a stay's values) the series are
  drawn given;
- ``effects``: one DP release of how the statics and that score move each variable's level,
  which starts the series' dependence on them;
- ``dp``: opacus plumbing with per-group clipping; ``training``: the DP-SGD loop;
- ``outcome_head``: the outcome model, fitted on its own by full-batch DP gradient descent;
- ``calibration``: two small DP releases (measurement rates and outcome rates; lag-1 sums) and
  the post-processing that calibrates the trained model to them;
- ``sampling``: ancestral sampling and decoding to a ``Cohort``;
- ``synthesizer``: the estimator API (validation, fit, sample, save/load, privacy report).
"""

from clinsynth.generator.synthesizer import SequenceSynthesizer

__all__ = ["SequenceSynthesizer"]
