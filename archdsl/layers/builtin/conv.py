"""`conv`: the torch-free half of the layer, its parameters and analytic cost.

The module is :class:`archdsl.nn.layers.conv.ShortConv` (imported by build only).
"""

from __future__ import annotations

from pydantic import Field

from archdsl.costing.value import Cost, CostContext
from archdsl.layers.base import InvalidParams, LayerContract, LayerParams
from archdsl.layers.registry import register_layer
from archdsl.spec.model import ModelSettings


class ConvParams(LayerParams):
    kernel: int = Field(3, description="taps of the causal depthwise convolution (tokens it reaches back, plus one)")

    def resolve(self, model: ModelSettings) -> ConvParams:
        if self.kernel < 1:
            raise InvalidParams("kernel", f"kernel={self.kernel} must be at least 1 tap; LFM2 uses 3")
        return self


def cost(params: ConvParams, model: ModelSettings, ctx: CostContext) -> Cost:
    d, k = model.d_model, params.resolve(model).kernel
    # Counting the Linear layers (in_proj d x 3d, out_proj d x d) and the depthwise taps (d x k).
    linear = 3 * d * d + d * d
    # 2 FLOPs per weight per token (Kaplan et al. 2020).
    matmul = 2.0 * linear
    # Depthwise convolution: k multiply-adds per channel per token, as torch.utils.flop_counter
    # counts conv1d. The gates B*x' and C*y are elementwise and not counted.
    scan = 2.0 * k * d
    # Saved for backward per token: x (d) for in_proj, its output (3d: B, C, x' for the
    # gates), the padded convolution input (d), the convolution output (d, for the C gate)
    # and out_proj's input (d): 7d elements; and per sequence the convolution's k - 1 rows of
    # zero padding, kept with its input.
    activation = (ctx.seq_len * 7 * d + (k - 1) * d) * ctx.act_bytes
    return Cost(
        params=linear + d * k,
        matmul_flops=matmul,
        scan_flops=scan,
        activation_bytes=float(activation),
        state_bytes=float((k - 1) * d * ctx.state_bytes),
        decode_flops=matmul + scan,
    )


LAYER = register_layer(
    LayerContract(
        name="conv",
        description="gated short causal depthwise convolution, out(C * conv(B * x)) (LFM2)",
        Params=ConvParams,
        cost=cost,
        module="archdsl.nn.layers.conv:ShortConv",
    )
)
