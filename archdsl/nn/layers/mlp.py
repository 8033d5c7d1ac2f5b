"""`mlp`: the SwiGLU feed-forward of Llama, ``down(silu(gate(x)) * up(x))``, no biases.

Weights are named and shaped as Hugging Face ``LlamaMLP`` (``gate_proj``, ``up_proj``,
``down_proj``). It mixes channels only, so generation needs no state.

    >>> from archdsl.spec.model import ModelSettings
    >>> MLP(MLPParams(), ModelSettings(d_model=512)).params.hidden
    1408
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archdsl.layers.builtin.mlp import MLPParams
from archdsl.nn.linear import Linear
from archdsl.spec.model import ModelSettings


class MLP(nn.Module):
    def __init__(self, params: MLPParams, model: ModelSettings):
        super().__init__()
        self.params = params.resolve(model)
        d, h = model.d_model, self.params.hidden
        self.gate_proj = Linear(d, h, bias=False)
        self.up_proj = Linear(d, h, bias=False)
        self.down_proj = Linear(h, d, bias=False)

    def forward(self, x: torch.Tensor, *, reference: bool = False) -> torch.Tensor:
        # Every token is independent, so the fast path is already the plain computation; the
        # reference is the same expression (tests compare it with HF's LlamaMLP instead).
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))  # (B, T, D)

    def init_state(self, batch: int, *, max_len: int, device, dtype) -> None:
        return None

    def step(self, x: torch.Tensor, state: None) -> tuple[torch.Tensor, None]:
        return self.forward(x), state  # (B, D) -> (B, D): Linear works on any leading shape

    def prefill(self, x: torch.Tensor, state: None) -> tuple[torch.Tensor, None]:
        return self.forward(x), state  # no state: the prompt is just the sequence forward
