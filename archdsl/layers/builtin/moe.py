"""`moe`: the torch-free half of the layer, its parameters and analytic cost.

The module is :class:`archdsl.nn.layers.moe.MoE` (imported by build only).
"""

from __future__ import annotations

from pydantic import Field

from archdsl.costing.value import Cost, CostContext
from archdsl.layers.base import InvalidParams, LayerContract, LayerParams
from archdsl.layers.builtin.mlp import swiglu_hidden
from archdsl.layers.registry import register_layer
from archdsl.spec.model import ModelSettings


class MoEParams(LayerParams):
    experts: int = Field(8, description="routed experts (count)")
    top_k: int = Field(2, description="experts each token is sent to (count); at most experts")
    hidden: int | None = Field(
        None, description="hidden width of each expert (channels); default 8/3 * d_model rounded up to a multiple of 64"
    )

    def resolve(self, model: ModelSettings) -> MoEParams:
        if self.experts < 1:
            raise InvalidParams("experts", f"experts={self.experts} must be at least 1")
        if not 1 <= self.top_k <= self.experts:
            raise InvalidParams(
                "top_k", f"top_k={self.top_k} must be between 1 and experts={self.experts}; allowed: 1..{self.experts}"
            )
        hidden = self.hidden if self.hidden is not None else swiglu_hidden(model.d_model)
        if hidden < 1:
            raise InvalidParams("hidden", f"hidden={hidden} must be at least 1 channel")
        return self.model_copy(update={"hidden": hidden})


def cost(params: MoEParams, model: ModelSettings, ctx: CostContext) -> Cost:
    p = params.resolve(model)
    d, E, k, h = model.d_model, p.experts, p.top_k, p.hidden
    # Counting the Linear layers: the router d x E, and per expert gate+up d x 2h and down h x d.
    expert = 3 * d * h
    n_params = d * E + E * expert
    # 2 FLOPs per weight per token (Kaplan et al. 2020), counting only what a token runs:
    # the router and its top_k experts (as Mixtral's "active parameters").
    matmul = 2.0 * (d * E + k * expert)
    # Saved for backward per token: x (d) for the router, and per assignment the gathered row
    # (d), gate/up output (2h), silu(gate) (h), the product fed to down (h), the expert output
    # (d) and its routing weight (1), all in the activations' dtype; routing in float32: the
    # probabilities (E), the top-k of them and their sum (k + 1); int64 indices: the top-k
    # experts, their sort order and its inverse (3k).
    per_token = (d + k * (2 * d + 4 * h + 1)) * ctx.act_bytes + 4 * (E + k + 1) + 8 * 3 * k
    activation = ctx.seq_len * per_token
    return Cost(
        params=n_params,
        matmul_flops=matmul,
        activation_bytes=float(activation),
        state_bytes=0.0,
        decode_flops=matmul,
    )


LAYER = register_layer(
    LayerContract(
        name="moe",
        description="top-k routed SwiGLU experts with a load-balancing loss in .aux_loss (Mixtral)",
        Params=MoEParams,
        cost=cost,
        module="archdsl.nn.layers.moe:MoE",
    )
)
