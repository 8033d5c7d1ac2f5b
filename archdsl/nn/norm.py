"""RMSNorm as Llama and Mamba-2 use it (computed in float32, scaled by a learned weight)."""

from __future__ import annotations

import torch
from torch import nn


class RMSNorm(nn.Module):
    """``weight * x / sqrt(mean(x^2) + eps)``; the parameter is named ``weight`` as in HF."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(dtype)


class GatedRMSNorm(nn.Module):
    """Mamba-2's norm of ``x * silu(gate)`` (HF ``MambaRMSNormGated`` with ``group_size = dim``
    when ``groups`` is 1; with more groups each group is normalised on its own)."""

    def __init__(self, dim: int, eps: float = 1e-5, groups: int = 1):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps
        self.groups = groups

    def forward(self, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x32 = x.float() * nn.functional.silu(gate.float())
        shape = x32.shape
        x32 = x32.view(*shape[:-1], self.groups, shape[-1] // self.groups)
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.view(shape).to(dtype)
