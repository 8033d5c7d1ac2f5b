"""`rglru`: the torch-free half of the layer, its parameters and analytic cost.

The module is :class:`archdsl.nn.layers.rglru.RGLRU` (imported by build only).
"""

from __future__ import annotations

from pydantic import Field

from archdsl.costing.value import Cost, CostContext
from archdsl.layers.base import InvalidParams, LayerContract, LayerParams, divisors
from archdsl.layers.registry import register_layer
from archdsl.spec.model import ModelSettings


class RGLRUParams(LayerParams):
    width: int | None = Field(None, ge=1, description="width of the recurrence (default d_model)")
    heads: int | None = Field(
        None,
        ge=1,
        description="blocks of the block-diagonal gates (default: the largest "
        "divisor of width up to max(1, d_model // 128))",
    )
    conv: int = Field(4, ge=1, le=64, description="kernel of the causal depthwise conv before the RG-LRU")
    c: float = Field(8.0, gt=0.0, description="fixed scale of the gate exponent: log a_t = -c softplus(a) r_t")

    def resolve(self, model: ModelSettings) -> RGLRUParams:
        width = self.width if self.width is not None else model.d_model
        heads = self.heads
        if heads is None:
            heads = max(h for h in range(1, max(1, model.d_model // 128) + 1) if width % h == 0)
        elif width % heads:
            raise InvalidParams(
                "heads",
                f"heads={heads} must divide width={width}; choose one of {divisors(width, limit=None, upto=64)}",
            )
        return self.model_copy(update={"width": width, "heads": heads})


def cost(params: RGLRUParams, model: ModelSettings, ctx: CostContext) -> Cost:
    p = params.resolve(model)
    D, W, H, K = model.d_model, p.width, p.heads, p.conv
    # linear_y, linear_x, linear_out (with biases), conv (with bias), two gates, recurrent_param
    params_n = 3 * D * W + 2 * W + D + (K + 1) * W + 2 * (W * W // H + W) + W
    matmul = 2 * 3 * D * W + 2 * 2 * W * W // H  # the block-diagonal gates are matrix products
    # Conv: K multiply-adds per channel. Scan as implemented: h0 into the first step (a
    # multiply-add), then the doubling pass with step s updates positions s .. T-1 with a
    # multiply-add on u and a multiply on a (3 W (T - s) for s = 1, 2, 4, ... < T).
    T = ctx.seq_len
    updated = sum(T - s for s in (2**i for i in range(T.bit_length())) if s < T)
    scan = 2 * K * W + (2 * W + 3 * W * updated) / T
    decode = matmul + 2 * K * W + 2 * W
    state = W * K * ctx.state_bytes  # conv window (K - 1) and h (1) per channel
    # Kept for backward (elements), counted from the autograd graph (the test checks it within
    # 2%). Per token: input x (D); linear_y out and gelu out (2W); linear_x out, conv out (2W);
    # gate pre-activations and sigmoids (4W); log_a, 1 - a^2, the multiplier, a, u, h, h * y
    # (7W, float32 counted once); with several heads the block-diagonal gates' einsums copy
    # their input (2W). Per sequence: the conv's K - 1 padding rows and the scan's initial
    # state and its decay ((K + 1) W).
    per_token = D + 13 * W + (2 * W if H > 1 and T > 1 else 0)
    per_sequence = (K + 1) * W
    return Cost(
        params=params_n,
        matmul_flops=float(matmul),
        scan_flops=float(scan),
        activation_bytes=float((per_token * T + per_sequence) * ctx.act_bytes),
        state_bytes=float(state),
        decode_flops=float(decode),
    )


LAYER = register_layer(
    LayerContract(
        name="rglru",
        description="Griffin / RecurrentGemma recurrent block: gated MLP branch times conv + RG-LRU",
        Params=RGLRUParams,
        cost=cost,
        module="archdsl.nn.layers.rglru:RGLRU",
    )
)
