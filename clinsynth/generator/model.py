"""The generative model of a whole stay: one torch module, trained jointly (one privacy account).

p(stay) = p(statics, outcome) · Π_t p(mask_t | past, statics) · p(values_t | mask_t, past, statics)

- Statics + outcome: autoregressive over the schema's statics then outcomes, each a small MLP
  head over the earlier fields giving a softmax over that field's classes (bins + "missing").
- Series: a causal dilated Conv1d stack (kernel 2; cheap per-sample gradients under opacus,
  parallel over time in training) reads the history features of :mod:`features` plus the statics.
  At each step it predicts which variables are measured (Bernoulli per variable, plus a
  strictly-lower-triangular term so variables measured together come out together) and their
  values (a mixture of Gaussians whose means are linear in the last value and the patient's
  running level plus a network term, for numeric variables;
  Bernoulli for binary, softmax for categorical; values also see the co-measured variables
  earlier in the schema order, e.g. DiasABP sees SysABP).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from clinsynth.generator.encoding import Encoding
from clinsynth.generator.features import GLOBAL, LEVEL, LOCF, PER_VARIABLE
from clinsynth.generator.layers import PerVariableLinear, StrictlyLowerLinear

LOG_SIGMA_MIN, LOG_SIGMA_MAX = -4.0, 1.5
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


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


class StaticsHeads(nn.Module):
    """p(field_k | fields_<k) for every static and outcome, as softmaxes over classes."""

    def __init__(self, encoding: Encoding, hidden: int) -> None:
        super().__init__()
        self.offsets = encoding.cond_offsets()
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(1 + off, hidden), nn.GELU(), nn.Linear(hidden, f.n_classes))
            for off, f in zip(self.offsets, encoding.statics, strict=True)
        )

    def logits(self, k: int, cond: torch.Tensor) -> torch.Tensor:
        ones = torch.ones(cond.shape[0], 1, dtype=cond.dtype, device=cond.device)
        return self.heads[k](torch.cat([ones, cond[:, : self.offsets[k]]], dim=1))

    def nll(self, codes: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Per-patient negative log-likelihood ``[B]`` (teacher forced on the real codes)."""
        total = torch.zeros(codes.shape[0], device=codes.device)
        for k in range(len(self.heads)):
            total = total + F.cross_entropy(self.logits(k, cond), codes[:, k], reduction="none")
        return total


class StayModel(nn.Module):
    """Statics heads + causal series network; ``forward`` returns per-patient NLL ``[B]``."""

    def __init__(self, encoding: Encoding, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        v, k, h = encoding.n_variables, config.n_mix, config.hidden
        cats = [var.n_categories for var in encoding.variables if var.kind == "categorical"]
        self.n_params = max(3 * k, *cats, 1)
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

        self.statics = StaticsHeads(encoding, config.static_hidden)
        self.in_proj = nn.Linear(v * PER_VARIABLE + GLOBAL, h)
        self.cond_proj = nn.Linear(encoding.cond_width, h)
        self.blocks = nn.ModuleList(CausalBlock(h, 2**i) for i in range(config.n_blocks))
        self.head = nn.Linear(h, v * (1 + self.n_params))
        nn.init.normal_(self.head.weight, std=0.1 / math.sqrt(h))
        with torch.no_grad():  # a public prior: sparse measurement, unit-width components
            self.head.bias.view(v, 1 + self.n_params)[:, 0] = -2.0
            self.head.bias.view(v, 1 + self.n_params)[:, 1 + 2 * k : 1 + 3 * k] = math.log(0.3)
        self.local = PerVariableLinear(v, PER_VARIABLE, 1 + self.n_params)
        nn.init.zeros_(self.local.weight)
        with torch.no_grad():  # numeric means start halfway between last value and level
            for i in range(v):
                if kinds[i] == "gauss":
                    self.local.weight[i, 1 + k : 1 + 2 * k, LOCF] = 0.5
                    self.local.weight[i, 1 + k : 1 + 2 * k, LEVEL] = 0.5
        self.mask_made = StrictlyLowerLinear(v)
        self.value_made = StrictlyLowerLinear(v)

    @property
    def max_dilation(self) -> int:
        return 2 ** (self.config.n_blocks - 1)

    # ---------------------------------------------------------------- shared pieces
    def _series_input(
        self, per_var: torch.Tensor, glob: torch.Tensor, cond: torch.Tensor
    ) -> torch.Tensor:
        """First hidden layer: history features plus the statics (broadcast over time)."""
        h = self.in_proj(torch.cat([per_var.flatten(start_dim=-2), glob], dim=-1))
        c = self.cond_proj(cond)
        return h + (c.unsqueeze(1) if h.dim() == 3 else c)

    def _outputs(self, hidden: torch.Tensor, per_var: torch.Tensor) -> torch.Tensor:
        """Hidden state → per-variable raw outputs ``[..., V, 1 + P]`` (before MADE terms)."""
        glob = self.head(F.gelu(hidden)).unflatten(-1, (self.n_vars, 1 + self.n_params))
        return glob + self.local(per_var)

    def mixture(self, params: torch.Tensor, shift: torch.Tensor):
        """(log weights, means, log sigmas) ``[..., V, K]`` of the numeric value mixtures."""
        k = self.config.n_mix
        logw = F.log_softmax(params[..., :k], dim=-1)
        mu = params[..., k : 2 * k] + shift.unsqueeze(-1)
        log_sigma = params[..., 2 * k : 3 * k].clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX)
        return logw, mu, log_sigma

    # ---------------------------------------------------------------- training
    def parallel_outputs(
        self, per_var: torch.Tensor, glob: torch.Tensor, cond: torch.Tensor
    ) -> torch.Tensor:
        """Raw outputs ``[B, T, V, 1 + P]`` for every step at once (teacher forcing)."""
        h = self._series_input(per_var, glob, cond)
        for block in self.blocks:
            h = block(h)
        return self._outputs(h, per_var)

    def forward(
        self,
        per_var: torch.Tensor,
        glob: torch.Tensor,
        cond: torch.Tensor,
        codes: torch.Tensor,
        x: torch.Tensor,
        m: torch.Tensor,
    ) -> torch.Tensor:
        """Per-patient NLL ``[B]``: statics + (series NLL summed over variables, mean over time).

        Value terms are computed only on measured cells (about a fifth of the grid), gathered
        flat and summed back per patient.
        """
        out = self.parallel_outputs(per_var, glob, cond)
        mask_logit = out[..., 0] + self.mask_made(m)
        mask_nll = F.binary_cross_entropy_with_logits(mask_logit, m, reduction="none").sum((1, 2))

        shift = self.value_made((x * self.value_scale + self.value_shift) * m)
        b, t, v = torch.nonzero(m > 0, as_tuple=True)
        params, xs = out[b, t, v, 1:], x[b, t, v]
        # no `if any()` guards: empty selections keep every layer in the graph, which opacus
        # needs for its per-sample gradients even on an empty Poisson batch
        g = (self.is_gauss[v] > 0).nonzero(as_tuple=True)[0]
        logw, mu, log_sigma = self.mixture(params[g], shift[b[g], t[g], v[g]])
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
        value_nll = torch.zeros(m.shape[0], dtype=nll.dtype, device=nll.device).index_add(0, b, nll)
        series = (mask_nll + value_nll) / m.shape[1]
        return self.statics.nll(codes, cond) + series

    # ---------------------------------------------------------------- sampling
    def new_cache(self, batch: int) -> list[torch.Tensor]:
        pad = self.max_dilation
        return [torch.zeros(batch, pad + self.n_steps, self.config.hidden) for _ in self.blocks]

    def step(
        self, per_var: torch.Tensor, glob: torch.Tensor, cond: torch.Tensor, cache: list, t: int
    ) -> torch.Tensor:
        """Raw outputs ``[B, V, 1 + P]`` at step t, reusing the blocks' past inputs in ``cache``."""
        h = self._series_input(per_var, glob, cond)
        for block, buffer in zip(self.blocks, cache, strict=True):
            h = block.step(h, buffer, self.max_dilation + t)
        return self._outputs(h, per_var)
