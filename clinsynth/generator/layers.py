"""Two small linear layers opacus does not know, each with its per-sample gradient rule.

- :class:`PerVariableLinear`: one tiny linear model per variable (its own last value, mask,
  time since measured → its own outputs). Far fewer parameters than a dense layer, so far less
  DP noise for the same signal.
- :class:`StrictlyLowerLinear`: a MADE-style linear map whose output ``v`` only sees inputs
  ``u < v``; it models dependencies *within* a time step (SysABP/DiasABP/MAP measured and moving
  together, lab panels drawn together) while sampling stays a cheap loop over variables.

Registering the grad samplers lets opacus clip per patient exactly as for its built-in layers.
"""

from __future__ import annotations

import math

import torch
from opacus.grad_sample import register_grad_sampler
from torch import nn


class PerVariableLinear(nn.Module):
    """``[..., V, I] → [..., V, O]`` with an independent ``O×I`` weight per variable."""

    def __init__(self, n_variables: int, in_features: int, out_features: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(n_variables, out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(n_variables, out_features))
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("...vi,voi->...vo", x, self.weight) + self.bias


class StrictlyLowerLinear(nn.Module):
    """``[..., V] → [..., V]``; output ``v`` depends only on inputs ``v - band <= u < v``.

    No bias. The band keeps the dependencies local in the schema's order, where related
    variables sit together (SysABP/DiasABP/MAP, the blood gases, a chemistry panel), and keeps
    the number of weights (each one taking DP noise) small.
    """

    def __init__(self, n: int, band: int | None = None) -> None:
        super().__init__()
        self.band = n if band is None else band
        self.weight = nn.Parameter(torch.zeros(n, n))

    def restrict(self, w: torch.Tensor) -> torch.Tensor:
        """Zero outside the band below the diagonal (a function: opacus forbids buffers)."""
        return torch.triu(torch.tril(w, diagonal=-1), diagonal=-self.band)

    @property
    def masked_weight(self) -> torch.Tensor:
        """Row v = weights of output v."""
        return self.restrict(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.masked_weight.T


@register_grad_sampler(PerVariableLinear)
def _per_variable_grad_sample(
    layer: PerVariableLinear, activations: list[torch.Tensor], backprops: torch.Tensor
) -> dict[nn.Parameter, torch.Tensor]:
    a = activations[0].to(backprops.dtype)
    n, v = a.shape[0], a.shape[-2]
    if n == 0:  # an empty Poisson batch
        return {p: torch.zeros_like(p).unsqueeze(0) for p in (layer.weight, layer.bias)}
    a = a.reshape(n, -1, v, a.shape[-1])
    g = backprops.reshape(n, -1, v, backprops.shape[-1])
    return {
        layer.weight: torch.einsum("ntvo,ntvi->nvoi", g, a),
        layer.bias: g.sum(dim=1),
    }


@register_grad_sampler(StrictlyLowerLinear)
def _strictly_lower_grad_sample(
    layer: StrictlyLowerLinear, activations: list[torch.Tensor], backprops: torch.Tensor
) -> dict[nn.Parameter, torch.Tensor]:
    a = activations[0].to(backprops.dtype)
    n = a.shape[0]
    if n == 0:  # an empty Poisson batch
        return {layer.weight: torch.zeros_like(layer.weight).unsqueeze(0)}
    a = a.reshape(n, -1, a.shape[-1])
    g = backprops.reshape(n, -1, backprops.shape[-1])
    return {layer.weight: layer.restrict(torch.einsum("nto,nti->noi", g, a))}
