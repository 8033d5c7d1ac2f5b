"""Initialisations follow their sources' ranges on both sides: HF MambaMixer's dt_proj weight is
uniform in +-dt_rank^-0.5, HF Mixtral's experts (nn.Linear's default) in +-fan_in^-0.5."""

from __future__ import annotations

import torch

from archdsl.nn.layers.mamba import Mamba, MambaParams
from archdsl.nn.layers.moe import MoE, MoEParams
from archdsl.spec.model import ModelSettings


def assert_fills_symmetric_range(w: torch.Tensor, bound: float) -> None:
    """Inside +-bound and reaching within 10% of both ends (hundreds of draws: never by chance)."""
    assert w.numel() >= 256
    assert w.min() >= -bound and w.max() <= bound
    assert w.min() < -0.9 * bound and w.max() > 0.9 * bound


def test_mamba_dt_proj_weight_is_uniform_in_rank_to_minus_half():
    layer = Mamba(MambaParams(), ModelSettings(d_model=64))  # dt_rank = ceil(64 / 16) = 4
    assert_fills_symmetric_range(layer.dt_proj.weight, 4**-0.5)


def test_moe_experts_are_uniform_in_fan_in_to_minus_half():
    layer = MoE(MoEParams(experts=4, top_k=2, hidden=48), ModelSettings(d_model=32))
    assert_fills_symmetric_range(layer.experts.gate_up_proj, 32**-0.5)
    assert_fills_symmetric_range(layer.experts.down_proj, 48**-0.5)
