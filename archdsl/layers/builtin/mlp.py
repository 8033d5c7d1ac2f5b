"""`mlp`: the torch-free half of the layer, its parameters and analytic cost.

The module is :class:`archdsl.nn.layers.mlp.MLP` (imported by build only).
"""

from __future__ import annotations

from pydantic import Field

from archdsl.costing.value import Cost, CostContext
from archdsl.layers.base import InvalidParams, LayerContract, LayerParams
from archdsl.layers.registry import register_layer
from archdsl.spec.model import ModelSettings


class MLPParams(LayerParams):
    hidden: int | None = Field(
        None, description="hidden width (channels); default 8/3 * d_model rounded up to a multiple of 64"
    )

    def resolve(self, model: ModelSettings) -> MLPParams:
        hidden = self.hidden if self.hidden is not None else swiglu_hidden(model.d_model)
        if hidden < 1:
            raise InvalidParams("hidden", f"hidden={hidden} must be at least 1 channel")
        return self.model_copy(update={"hidden": hidden})


def cost(params: MLPParams, model: ModelSettings, ctx: CostContext) -> Cost:
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


def swiglu_hidden(d_model: int) -> int:
    """8/3 * d_model rounded up to a multiple of 64: the SwiGLU width that keeps the parameter
    count of a 4*d ReLU MLP (Shazeer 2020), rounded for matrix-unit friendly shapes."""
    return -(-8 * d_model // (3 * 64)) * 64


LAYER = register_layer(
    LayerContract(
        name="mlp",
        description="SwiGLU feed-forward down(silu(gate(x)) * up(x)), no biases (HF Llama)",
        Params=MLPParams,
        cost=cost,
        module="archdsl.nn.layers.mlp:MLP",
    )
)
