"""`gdn`: the torch-free half of the layer, its parameters and analytic cost.

The module is :class:`archdsl.nn.layers.gdn.GatedDeltaNet` (imported by build only).
"""

from __future__ import annotations

from pydantic import Field

from archdsl.costing.value import Cost, CostContext
from archdsl.layers.base import InvalidParams, LayerContract, LayerParams
from archdsl.layers.registry import register_layer
from archdsl.spec.model import ModelSettings


class GDNParams(LayerParams):
    heads: int | None = Field(None, ge=1, description="heads (default d_model // 128, at least 1)")
    head_dim: int | None = Field(None, ge=1, description="query/key width per head (default d_model // heads)")
    expand_v: float = Field(2.0, gt=0.0, description="value width per head as a multiple of head_dim (fla, paper)")
    conv: int = Field(4, ge=1, le=64, description="kernel of the causal depthwise conv on q, k, v")
    chunk: int = Field(64, ge=1, le=1024, description="tokens per chunk of the chunked (WY) algorithm")

    def resolve(self, model: ModelSettings) -> GDNParams:
        heads = self.heads if self.heads is not None else max(1, model.d_model // 128)
        head_dim = self.head_dim
        if head_dim is None:
            if heads > model.d_model:
                raise InvalidParams(
                    "heads",
                    f"heads={heads} exceeds d_model={model.d_model}; "
                    f"choose heads from 1 to {model.d_model} or set head_dim",
                )
            head_dim = model.d_model // heads
        v_head_dim = head_dim * self.expand_v
        if v_head_dim != int(v_head_dim) or v_head_dim < 1:
            raise InvalidParams(
                "expand_v",
                f"head_dim * expand_v = {head_dim} * {self.expand_v} = {v_head_dim} "
                "must be a whole number of at least 1; choose expand_v such as 1.0 or 2.0",
            )
        return self.model_copy(update={"heads": heads, "head_dim": head_dim})

    @property
    def v_head_dim(self) -> int:
        return int(self.head_dim * self.expand_v)


def cost(params: GDNParams, model: ModelSettings, ctx: CostContext) -> Cost:
    p = params.resolve(model)
    D, H, K, V, W = model.d_model, p.heads, p.head_dim, p.v_head_dim, p.conv
    conv_dim = 2 * H * K + H * V
    proj_out = conv_dim + H * V + 2 * H
    # in_proj, conv weight, A_log, dt_bias, norm weight (shared by heads), out_proj
    params_n = D * proj_out + conv_dim * W + 2 * H + V + H * V * D
    matmul = 2 * D * proj_out + 2 * H * V * D
    # Chunk work as implemented, per head, over a sequence padded to n chunks of C = min(chunk, T):
    # per chunk the products k_beta k^T, q k^T and W = T (k_beta exp(gamma)) (2 C^2 K each),
    # U = T (v beta) and scores Delta (2 C^2 V each), and the triangular solve that gives
    # T = (I + A)^-1 against the identity (C columns of C (C - 1) / 2 multiply-adds, unit
    # diagonal); per chunk after the first (which starts from a zero state) W S and q S, and
    # per chunk before the last the state update k^T Delta (2 C K V each).
    T = ctx.seq_len
    C = min(p.chunk, T)
    n = -(-T // C)
    chunk_flops = n * (6 * C * C * K + 4 * C * C * V + C * C * (C - 1)) + 6 * (n - 1) * C * K * V
    scan = 2 * W * conv_dim + H * chunk_flops / T
    # One step: the conv, and per head the decay of S (K V), S^T k, k delta^T, S^T q (3 K V multiply-adds).
    decode = matmul + 2 * W * conv_dim + H * 7 * K * V
    state = (conv_dim * (W - 1) + H * K * V) * ctx.state_bytes
    # Kept for backward (elements), counted from the autograd graph with
    # torch.autograd.graph.saved_tensors_hooks (the test checks it within 2%). Per token: the
    # input and the projection (D + proj_out; the conv reads its slice of it); the conv's
    # pre-activation and output (2 conv_dim); the 1/norm of q and k, the gate pre-activations
    # and the output norm's 1/rms (6 H); the output norm's input, its result, silu(z) and the
    # gated product (4 H V). Per token of the n chunks of C (padded to Tp = n C): the decay
    # matrix, k_beta k^T, its masked product, (I + A)^-1, q k^T and the scores (6 H C); gamma,
    # exp(gamma) and the decays to the chunk end (3 H); k, k_beta, k_beta exp(gamma) and the
    # scaled q (4 H K), over several chunks also w and the decayed q and k (3 H K) and, for an
    # unpadded sequence of several heads, copies of q, k and their products with beta and
    # exp(gamma) reshaped from a transposed layout (4 H K); v beta, u and the output (3 H V);
    # a padded sequence also keeps its padded copies of beta and v (H + H V: unpadded, they are
    # the sigmoid's output and the conv's, kept and counted already). Per chunk after the
    # first: Delta (C H V) and the state entering it (H K V).
    # Per sequence: A's two forms (2 H) and each chunk's total decay (n H). The float32
    # inside is counted at act_bytes too.
    Tp = n * C
    hk = 4 if n == 1 else 7 + (4 if Tp == T and H > 1 else 0)
    per_token = (
        D
        + proj_out
        + 2 * conv_dim
        + 6 * H
        + 4 * H * V
        + (Tp / T) * (6 * H * C + 3 * H + hk * H * K + 3 * H * V + (H + H * V if Tp > T else 0))
        + ((n - 1) * (C * H * V + H * K * V) + 2 * H + n * H) / T
    )
    return Cost(
        params=params_n,
        matmul_flops=float(matmul),
        scan_flops=float(scan),
        activation_bytes=float(per_token * T * ctx.act_bytes),
        state_bytes=float(state),
        decode_flops=float(decode),
    )


LAYER = register_layer(
    LayerContract(
        name="gdn",
        description="Gated DeltaNet linear attention (Qwen3-Next, fla): gated delta rule, chunked WY algorithm",
        Params=GDNParams,
        cost=cost,
        module="archdsl.nn.layers.gdn:GatedDeltaNet",
    )
)
