"""`ssm`: the torch-free half of the layer, its parameters and analytic cost.

The module is :class:`archdsl.nn.layers.ssm.SSM` (imported by build only).
"""

from __future__ import annotations

from pydantic import Field

from archdsl.costing.value import Cost, CostContext
from archdsl.layers.base import InvalidParams, LayerContract, LayerParams, divisors
from archdsl.layers.registry import register_layer
from archdsl.spec.model import ModelSettings

# Above this many chunks the chunk-to-chunk pass runs as a loop over chunks: the decay matrix
# costs (chunks + 1)^2 per head and state element, which would grow quadratically with length.
# Defined here, beside the cost formula that depends on it; the kernel (nn/layers/ssd.py) imports it.
MAX_MATRIX_CHUNKS = 256


class SSMParams(LayerParams):
    state: int = Field(128, ge=1, le=1024, description="SSM state size per head (N; HF state_size)")
    expand: int = Field(2, ge=1, le=16, description="inner width as a multiple of d_model")
    head_dim: int = Field(64, ge=1, description="channels per head (P); heads = expand * d_model / head_dim")
    groups: int = Field(1, ge=1, description="groups of heads sharing B and C (HF n_groups)")
    conv: int = Field(4, ge=1, le=64, description="kernel of the causal depthwise conv on x, B, C")
    chunk: int = Field(256, ge=1, le=4096, description="tokens per chunk of the SSD algorithm (speed only)")

    def resolve(self, model: ModelSettings) -> SSMParams:
        inner = self.expand * model.d_model
        if inner % self.head_dim:
            raise InvalidParams(
                "head_dim",
                f"head_dim={self.head_dim} does not divide the inner width "
                f"expand * d_model = {inner}; choose one of [{divisors(inner, limit=None, upto=256)}]",
            )
        heads = inner // self.head_dim
        if heads % self.groups:
            raise InvalidParams(
                "groups",
                f"groups={self.groups} does not divide the {heads} heads; choose one of [{divisors(heads, limit=None)}]",
            )
        return self


def cost(params: SSMParams, model: ModelSettings, ctx: CostContext) -> Cost:
    p = params.resolve(model)
    d, N, P, G, K = model.d_model, p.state, p.head_dim, p.groups, p.conv
    E = p.expand * d
    H = E // P
    conv_dim = E + 2 * G * N
    proj = E + conv_dim + H
    # in_proj, conv weight and bias, dt_bias, A_log, D, norm weight, out_proj
    n_params = d * proj + conv_dim * K + conv_dim + 3 * H + E + E * d
    matmul = 2 * d * proj + 2 * E * d
    # the SSD's products (see ssd_product_flops), the conv's multiply-adds (2 K per channel)
    # and, per state element and token, the elementwise decay terms where the chunk pass is
    # a loop (n > MAX_MATRIX_CHUNKS: a multiply and an add per chunk)
    T = ctx.seq_len
    n = -(-T // min(p.chunk, T))
    loop = 2 * n * H * P * N if n > MAX_MATRIX_CHUNKS else 0
    scan = (ssd_product_flops(p, d, T) + loop) / T + 2 * K * conv_dim
    # one step: the products, the conv, and per state element the decay, the input
    # (dt x) B, the add, and the read-out h C (a multiply-add): 5 H P N
    decode = matmul + 2 * K * conv_dim + 5 * H * P * N
    state = (conv_dim * (K - 1) + H * P * N) * ctx.state_bytes
    # Kept for backward, counted from the autograd graph of forward (the test checks it
    # within 2%). Per token: input and projection (d + proj); the conv's input padded with
    # K - 1 zeros, its pre-activation and output (3 conv_dim, the padding K - 1 rows more);
    # dt before and after softplus (2H); the gated norm's 1/rms per group (G); skip, gated-norm
    # input, gate, product and norm output (5E). Per token of the n chunks of L = min(chunk, T)
    # (padded to Tp = n L): the decays (4H); x dt, its copy laid out per head, its chunk-end
    # copy and y_in (4E); C B^T (G L) (the (L x L) decay and scores per head are recomputed in
    # backward, not kept); copies of B and C (G N each): padded ones when T is not a multiple
    # of L, and with groups over several chunks the einsums' contiguous copies (4 in all).
    # Per sequence: the chunks' end states and the states passed on ((2n + 1) H P N), the
    # chunk-to-chunk decay matrix ((3H + 1)(n + 1)^2) and A (2H).
    L = min(p.chunk, T)
    bc_copies = 4 if G > 1 and n > 1 else (2 if n * L > T else 0)
    per_token = (
        d
        + proj
        + 2 * conv_dim
        + conv_dim * (T + K - 1) / T
        + 2 * H
        + G
        + 5 * E
        + (n * L / T) * (4 * H + bc_copies * G * N + 4 * E + G * L)
        + ((2 * n + 1) * H * P * N + (3 * H + 1) * (n + 1) ** 2 + 2 * H) / T
    )
    return Cost(
        params=n_params,
        matmul_flops=float(matmul),
        scan_flops=float(scan),
        activation_bytes=float(per_token * T * ctx.act_bytes),
        state_bytes=float(state),
        decode_flops=float(decode),
    )


def ssd_product_flops(p: SSMParams, d_model: int, T: int) -> float:
    """Forward FLOPs of the matrix products of :func:`ssd_chunked` over T tokens: exactly what
    ``torch.utils.flop_counter`` counts for them (the tests check it).

    With chunk L = min(chunk, T), n = ceil(T / L) chunks and Tp = n L padded tokens (after the
    SSD cost analysis of the Mamba-2 paper, section 6.3: quadratic in L within chunks, linear in
    T across them): C B^T 2 Tp L G N; scores X 2 Tp L H P; chunk states B^T X 2 Tp H P N; the
    read-out of the chunks' start states C S 2 Tp H P N; the chunk-to-chunk pass as a
    decay-matrix product 2 (n + 1)^2 H P N (for n <= 256; beyond, n elementwise updates).
    """
    N, P, G = p.state, p.head_dim, p.groups
    H = p.expand * d_model // P
    L = min(p.chunk, T)
    n = -(-T // L)
    Tp = n * L
    chunks = 2 * Tp * L * G * N + 2 * Tp * L * H * P + 4 * Tp * H * P * N
    passing = 2 * (n + 1) ** 2 * H * P * N if n <= MAX_MATRIX_CHUNKS else 0
    return float(chunks + passing)


LAYER = register_layer(
    LayerContract(
        name="ssm",
        description="Mamba-2 mixer (HF Mamba2Mixer): conv, selective state space with scalar decay per head, chunked SSD",
        Params=SSMParams,
        cost=cost,
        module="archdsl.nn.layers.ssm:SSM",
    )
)
