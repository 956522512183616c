"""The generative model of a whole stay: one torch module, trained jointly (one privacy account).

p(stay) = p(statics) · Π_t p(mask_t | past, statics) p(values_t | mask_t, past, statics)
          · p(outcomes | statics, stay summary)

- Statics: autoregressive over the schema's statics and then a hidden severity score (module
  :mod:`severity`: how abnormal the stay is overall, which the series are conditioned on), each
  a small MLP head over the earlier fields giving a softmax over that field's classes (bins +
  "missing").
- Series: a causal dilated convolution stack (kernel 2; parallel over time in training, cheap
  per-sample gradients under opacus) reads the history features of :mod:`features` and the
  statics. At each step it predicts which variables are measured (Bernoulli per variable given
  the history: a within-step dependency between masks was tried and dropped — under DP noise it
  made sampled measurement rates drift from the real ones) and their values: for numeric
  variables a mixture of Gaussians whose means blend the last value, the patient's running
  level and a predicted target; Bernoulli for binary; softmax for categorical. Values also see
  the co-measured variables just before them in the schema order (DiasABP sees SysABP). Each
  output sums three paths: the shared network, a per-variable model of the variable's own
  history and a direct linear effect of the statics.
- Outcomes: generated last, by a multinomial logistic model over the statics and a whole-stay
  summary, so a synthetic death goes with a stay that looks like one (a compact, DP-friendly
  way to learn how outcome and trajectory relate).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from clinsynth.generator.encoding import Encoding
from clinsynth.generator.features import (
    CORE,
    EVER,
    GLOBAL,
    LEVEL,
    LOCF,
    PER_VARIABLE,
    PREV,
    SHARE,
    SUMMARY_PER_VARIABLE,
)
from clinsynth.generator.layers import PerVariableLinear, StrictlyLowerLinear

LOG_SIGMA_MIN, LOG_SIGMA_MAX = -3.5, 1.5  # σ from 0.03 to 4.5 standardised units
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
# The mask NLL averaged over the grid has a per-patient gradient ~4x below its clip norm; a
# weight of 4 brings it up to it (more signal for the same DP noise).
MASK_WEIGHT = 4.0
MADE_BAND = 8  # a variable's within-step dependencies: the 8 before it in the schema


@dataclass(frozen=True)
class ModelConfig:
    """Architecture sizes (all public choices, none derived from data)."""

    hidden: int = 64
    n_blocks: int = 4
    n_mix: int = 3
    static_hidden: int = 32

    def to_dict(self) -> dict:
        return asdict(self)


class CausalBlock(nn.Module):
    """Residual block: a dilated causal convolution (kernel 2) then a pointwise linear map.

    The convolution is written as a linear map of ``[h_t, h_{t-d}]`` (zeros before the start):
    identical maths to ``Conv1d(kernel_size=2, dilation=d)``, but opacus computes its per-patient
    gradients with one batched matmul instead of an unfold, which is several times faster.
    """

    def __init__(self, hidden: int, dilation: int) -> None:
        super().__init__()
        self.dilation = dilation
        self.conv = nn.Linear(2 * hidden, hidden)
        self.out = nn.Linear(hidden, hidden)
        nn.init.normal_(self.out.weight, std=0.3 / math.sqrt(hidden))
        nn.init.zeros_(self.out.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """``h [B, T, H]`` → same shape; output at t sees inputs at t and t - dilation only."""
        past = F.pad(h, (0, 0, self.dilation, 0))[:, : h.shape[1]]
        return h + self.out(F.gelu(self.conv(torch.cat([h, past], dim=-1))))

    def step(self, h_t: torch.Tensor, buffer: torch.Tensor, pos: int) -> torch.Tensor:
        """One step of :meth:`forward`; ``buffer [B, pad+T, H]`` holds this block's past inputs."""
        buffer[:, pos] = h_t
        z = self.conv(torch.cat([h_t, buffer[:, pos - self.dilation]], dim=-1))
        return h_t + self.out(F.gelu(z))


class FieldHeads(nn.Module):
    """p(field_k | fields_<k [, stay summary]) as a softmax over the field's classes.

    Statics: a small MLP over the earlier statics. Outcomes: a multinomial logistic model over
    the statics, earlier outcomes and the stay summary (linear, so that DP noise spread over its
    few hundred weights stays small).
    """

    def __init__(self, encoding: Encoding, hidden: int, summary_width: int) -> None:
        super().__init__()
        self.offsets = encoding.cond_offsets()
        self.n_static = encoding.n_static
        heads: list[nn.Module] = []
        for k, (off, f) in enumerate(zip(self.offsets, encoding.statics, strict=True)):
            if k < self.n_static:
                heads.append(
                    nn.Sequential(
                        nn.Linear(1 + off, hidden), nn.GELU(), nn.Linear(hidden, f.n_classes)
                    )
                )
            else:
                heads.append(nn.Linear(1 + off + summary_width, f.n_classes))
        self.heads = nn.ModuleList(heads)

    def logits(self, k: int, cond: torch.Tensor, summary: torch.Tensor | None) -> torch.Tensor:
        ones = torch.ones(cond.shape[0], 1, dtype=cond.dtype, device=cond.device)
        parts = [ones, cond[:, : self.offsets[k]]]
        if k >= self.n_static:
            parts.append(summary)
        return self.heads[k](torch.cat(parts, dim=1))

    def nll(
        self, codes: torch.Tensor, cond: torch.Tensor, summary: torch.Tensor, outcomes: bool
    ) -> torch.Tensor:
        """Summed NLL ``[B]`` of the statics (or of the outcomes), teacher forced."""
        ks = range(self.n_static, len(self.heads)) if outcomes else range(self.n_static)
        total = torch.zeros(codes.shape[0], device=codes.device)
        for k in ks:
            logits = self.logits(k, cond, summary)
            total = total + F.cross_entropy(logits, codes[:, k], reduction="none")
        return total


class StayModel(nn.Module):
    """Field heads + causal series network; ``forward`` returns the per-patient objective."""

    def __init__(self, encoding: Encoding, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        v, k, h = encoding.n_variables, config.n_mix, config.hidden
        cats = [var.n_categories for var in encoding.variables if var.kind == "categorical"]
        self.n_params = p = max(3 * k + 2, *cats, 1)
        self.n_vars = v
        self.n_steps = encoding.n_steps
        self.cat_index = encoding.indices("categorical")
        self.cat_sizes = cats
        kinds = [var.kind for var in encoding.variables]
        self.register_buffer("is_gauss", torch.tensor([x == "gauss" for x in kinds]).float())
        self.register_buffer("is_binary", torch.tensor([x == "binary" for x in kinds]).float())
        scale, shift = encoding.input_maps()
        self.register_buffer("value_scale", torch.tensor(scale))
        self.register_buffer("value_shift", torch.tensor(shift))
        # how strongly the blood-drawn variables' measurement decisions share one draw factor
        # (0: only panels share; set by calibration to the released clustering: module draws)
        self.register_buffer("draw_coupling", torch.tensor(0.0))

        self.fields = FieldHeads(encoding, config.static_hidden, v * SUMMARY_PER_VARIABLE)
        self.n_static = encoding.n_static
        self.n_outcomes = len(encoding.statics) - encoding.n_static
        self.static_width = c = encoding.static_cond_width

        self.in_proj = nn.Linear(v * CORE + GLOBAL, h)
        self.cond_proj = nn.Linear(c, h)
        self.blocks = nn.ModuleList(CausalBlock(h, 2**i) for i in range(config.n_blocks))

        self.mask_head = nn.Linear(h, v)
        self.mask_local = PerVariableLinear(v, PER_VARIABLE, 1)
        self.mask_cond = nn.Linear(c, v, bias=False)
        self.value_head = nn.Linear(h, v * p)
        self.value_local = PerVariableLinear(v, PER_VARIABLE, p)
        self.value_cond = nn.Linear(c, v * p, bias=False)
        self.value_made = StrictlyLowerLinear(v, band=MADE_BAND)
        with torch.no_grad():  # public priors (no data): unit-width value components, and
            # measurement is patient-specific and bursty: rare before a variable's first
            # measurement, likely after one (a prior the data then moves)
            for layer in (self.mask_head, self.value_head, self.mask_cond, self.value_cond):
                nn.init.normal_(layer.weight, std=0.1 / math.sqrt(layer.in_features))
            self.mask_head.bias.fill_(-4.0)
            nn.init.zeros_(self.mask_local.weight)
            self.mask_local.weight[:, 0, [PREV, EVER, SHARE]] = 2.0
            nn.init.zeros_(self.value_local.weight)

    @property
    def max_dilation(self) -> int:
        return 2 ** (self.config.n_blocks - 1)

    def clipping_groups(self) -> list[str]:
        """Group of every parameter (in ``parameters()`` order) for per-group clipping."""
        groups = []
        for name, _ in self.named_parameters():
            top = name.split(".")[0]
            if top == "fields":
                k = int(name.split(".")[2])
                groups.append("statics" if k < self.n_static else "outcomes")
            elif top.startswith("mask_"):
                groups.append("mask")
            elif top.startswith("value_"):
                groups.append("values")
            else:
                groups.append("network")
        return groups

    # ---------------------------------------------------------------- shared pieces
    def _series_input(
        self, per_var: torch.Tensor, glob: torch.Tensor, cond: torch.Tensor
    ) -> torch.Tensor:
        """First hidden layer: history features plus the statics (broadcast over time)."""
        h = self.in_proj(torch.cat([per_var[..., :CORE].flatten(start_dim=-2), glob], dim=-1))
        c = self.cond_proj(cond)
        return h + (c.unsqueeze(1) if h.dim() == 3 else c)

    def _outputs(
        self, hidden: torch.Tensor, per_var: torch.Tensor, cond: torch.Tensor
    ) -> torch.Tensor:
        """Hidden state → per-variable raw outputs ``[..., V, 1 + P]`` (before MADE terms)."""
        a = F.gelu(hidden)
        mask_c, value_c = self.mask_cond(cond), self.value_cond(cond)
        if a.dim() == 3:  # [B, T, H]: the statics act on every step
            mask_c, value_c = mask_c.unsqueeze(1), value_c.unsqueeze(1)
        mask = self.mask_head(a) + mask_c + self.mask_local(per_var)[..., 0]
        value = (self.value_head(a) + value_c).unflatten(-1, (self.n_vars, self.n_params))
        return torch.cat([mask.unsqueeze(-1), value + self.value_local(per_var)], dim=-1)

    def mixture(self, params: torch.Tensor, per_var: torch.Tensor, shift: torch.Tensor):
        """(log weights, means, log sigmas) ``[..., V, K]`` of the numeric value mixtures.

        Component means are a convex blend of the last value, the patient's running level and a
        predicted target: ``a·last + (1-a)·(b·level + (1-b)·target)`` with a, b in (0, 1)
        learned per variable (and history). Mean reversion is built in, so noisy DP weights can
        never make a trajectory drift off or explode; before a first measurement the mean is the
        target. ``shift`` adds the effect of co-measured variables.
        """
        k = self.config.n_mix
        logw = F.log_softmax(params[..., :k], dim=-1)
        ever = per_var[..., EVER]
        a = torch.sigmoid(params[..., 3 * k]) * ever
        b = torch.sigmoid(params[..., 3 * k + 1]) * ever
        base = a * per_var[..., LOCF] + (1 - a) * b * per_var[..., LEVEL] + shift
        pull = (1 - a) * (1 - b)
        mu = base.unsqueeze(-1) + pull.unsqueeze(-1) * params[..., k : 2 * k]
        log_sigma = params[..., 2 * k : 3 * k].clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX)
        return logw, mu, log_sigma

    # ---------------------------------------------------------------- training
    def parallel_outputs(
        self, per_var: torch.Tensor, glob: torch.Tensor, cond: torch.Tensor
    ) -> torch.Tensor:
        """Raw outputs ``[B, T, V, 1 + P]`` for every step at once (teacher forcing)."""
        cond = cond[:, : self.static_width]  # the series sees the statics, not the outcomes
        h = self._series_input(per_var, glob, cond)
        for block in self.blocks:
            h = block(h)
        return self._outputs(h, per_var, cond)

    def forward(
        self,
        per_var: torch.Tensor,
        glob: torch.Tensor,
        cond: torch.Tensor,
        codes: torch.Tensor,
        x: torch.Tensor,
        m: torch.Tensor,
        summary: torch.Tensor,
    ) -> torch.Tensor:
        """Per-patient training objective ``[B]``: each part is a per-term average.

        statics NLL / #statics + outcomes NLL / #outcomes + mask NLL / #grid cells + value NLL /
        #measured cells: every part has a per-patient gradient of the same order whatever the
        stay's length or density, so clipping treats patients and parts alike (a summed value
        NLL has gradients ~100x the others and clipping would then bias the rest to their mode).
        """
        parts = self.nll_parts(per_var, glob, cond, codes, x, m, summary)
        statics, outcomes, mask, values, n_cells = parts
        objective = statics / max(self.n_static, 1) + outcomes / max(self.n_outcomes, 1)
        mask = MASK_WEIGHT * mask / (m.shape[1] * m.shape[2])
        return objective + mask + values / n_cells.clamp(min=1.0)

    def nll_parts(
        self,
        per_var: torch.Tensor,
        glob: torch.Tensor,
        cond: torch.Tensor,
        codes: torch.Tensor,
        x: torch.Tensor,
        m: torch.Tensor,
        summary: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        """Per-patient (statics, outcomes, mask, value NLL, measured cells), each ``[B]``.

        Value terms are computed only on measured cells (about a fifth of the grid), gathered
        flat and summed back per patient.
        """
        out = self.parallel_outputs(per_var, glob, cond)
        mask_logit = out[..., 0]
        mask_nll = F.binary_cross_entropy_with_logits(mask_logit, m, reduction="none").sum((1, 2))

        shift = self.value_made((x * self.value_scale + self.value_shift) * m)
        b, t, v = torch.nonzero(m > 0, as_tuple=True)
        params, xs = out[b, t, v, 1:], x[b, t, v]
        # no `if any()` guards: empty selections keep every layer in the graph, which opacus
        # needs for its per-sample gradients even on an empty Poisson batch
        g = (self.is_gauss[v] > 0).nonzero(as_tuple=True)[0]
        cells = (b[g], t[g], v[g])
        logw, mu, log_sigma = self.mixture(params[g], per_var[cells], shift[cells])
        zscore = (xs[g].unsqueeze(-1) - mu) * torch.exp(-log_sigma)
        log_comp = logw - 0.5 * zscore**2 - log_sigma - HALF_LOG_2PI
        nll = torch.zeros_like(xs).index_add(0, g, -torch.logsumexp(log_comp, dim=-1))
        bi = (self.is_binary[v] > 0).nonzero(as_tuple=True)[0]
        bce = F.binary_cross_entropy_with_logits(params[bi, 0], xs[bi], reduction="none")
        nll = nll.index_add(0, bi, bce)
        for idx, size in zip(self.cat_index, self.cat_sizes, strict=True):
            ci = (v == idx).nonzero(as_tuple=True)[0]
            ce = F.cross_entropy(params[ci, :size], xs[ci].long(), reduction="none")
            nll = nll.index_add(0, ci, ce)
        zeros = torch.zeros(m.shape[0], dtype=nll.dtype, device=nll.device)
        value_nll = zeros.index_add(0, b, nll)
        statics = self.fields.nll(codes, cond, summary, outcomes=False)
        outcomes = self.fields.nll(codes, cond, summary, outcomes=True)
        return statics, outcomes, mask_nll, value_nll, m.sum((1, 2))

    # ---------------------------------------------------------------- sampling
    def new_cache(self, batch: int) -> list[torch.Tensor]:
        pad = self.max_dilation
        return [torch.zeros(batch, pad + self.n_steps, self.config.hidden) for _ in self.blocks]

    def step(
        self, per_var: torch.Tensor, glob: torch.Tensor, cond: torch.Tensor, cache: list, t: int
    ) -> torch.Tensor:
        """Raw outputs ``[B, V, 1 + P]`` at step t, reusing the blocks' past inputs in ``cache``."""
        cond = cond[:, : self.static_width]
        h = self._series_input(per_var, glob, cond)
        for block, buffer in zip(self.blocks, cache, strict=True):
            h = block.step(h, buffer, self.max_dilation + t)
        return self._outputs(h, per_var, cond)
