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
from pydantic import Field
from torch import nn

from archdsl.cost.value import Cost, CostContext
from archdsl.layers.base import InvalidParams, LayerParams
from archdsl.layers.registry import register_layer
from archdsl.spec.model import ModelSettings


def swiglu_hidden(d_model: int) -> int:
    """8/3 * d_model rounded up to a multiple of 64: the SwiGLU width that keeps the parameter
    count of a 4*d ReLU MLP (Shazeer 2020), rounded for matrix-unit friendly shapes."""
    return -(-8 * d_model // (3 * 64)) * 64


class MLPParams(LayerParams):
    hidden: int | None = Field(
        None, description="hidden width (channels); default 8/3 * d_model rounded up to a multiple of 64"
    )

    def resolve(self, model: ModelSettings) -> MLPParams:
        hidden = self.hidden if self.hidden is not None else swiglu_hidden(model.d_model)
        if hidden < 1:
            raise InvalidParams("hidden", f"hidden={hidden} must be at least 1 channel")
        return self.model_copy(update={"hidden": hidden})


@register_layer
class MLP(nn.Module):
    name = "mlp"
    description = "SwiGLU feed-forward down(silu(gate(x)) * up(x)), no biases (HF Llama)"
    Params = MLPParams

    def __init__(self, params: MLPParams, model: ModelSettings):
        super().__init__()
        self.params = params.resolve(model)
        d, h = model.d_model, self.params.hidden
        self.gate_proj = nn.Linear(d, h, bias=False)
        self.up_proj = nn.Linear(d, h, bias=False)
        self.down_proj = nn.Linear(h, d, bias=False)

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

    @classmethod
    def cost(cls, params: MLPParams, model: ModelSettings, ctx: CostContext) -> Cost:
        h, d = params.resolve(model).hidden, model.d_model
        # Counting the Linear layers: gate and up are d x h, down is h x d.
        n_params = 3 * d * h
        # 2 FLOPs per weight per token (Kaplan et al. 2020); silu and the gate product are
        # elementwise and not counted, as Kaplan et al. leave out nonlinearities.
        matmul = 2.0 * n_params
        # Saved for backward per token: x (d, shared by gate and up), gate output (h, for silu),
        # silu(gate) and up (2h, for the product), the product (h, for down): d + 4h elements.
        activation = ctx.seq_len * (d + 4 * h) * ctx.act_bytes
        return Cost(
            params=n_params,
            matmul_flops=matmul,
            activation_bytes=float(activation),
            state_bytes=0.0,
            decode_flops=matmul,
        )
