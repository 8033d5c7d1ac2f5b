"""Initialisations shared by the state-space layers (ssm, mamba, gdn)."""

from __future__ import annotations

import math

import torch


def dt_bias_init(n: int, dt_min: float = 1e-3, dt_max: float = 0.1, floor: float = 1e-4) -> torch.Tensor:
    """``softplus^-1(dt)`` (n) for dt log-uniform in [dt_min, dt_max], at least ``floor``: the dt
    bias of Mamba, Mamba-2 and fla, so that ``softplus(bias)`` starts at that dt. One
    ``torch.rand(n)`` draw."""
    dt = torch.exp(torch.rand(n) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)).clamp(min=floor)
    return dt + torch.log(-torch.expm1(-dt))
