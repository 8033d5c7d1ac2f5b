"""`ssm`: the torch-free half of the layer, its parameters and analytic cost.

The module is :class:`archdsl.nn.layers.ssm.SSM` (imported by build only).
"""

from __future__ import annotations

from pydantic import Field

from archdsl.costing.value import Cost, CostContext
from archdsl.layers.base import InvalidParams, LayerContract, LayerParams, divisors
from archdsl.layers.registry import register_layer
from archdsl.spec.model import ModelSettings

# Above this many chunk states to pass on, the chunk-to-chunk pass runs as a loop: the decay matrix
# costs (chunks + 1)^2 per head and state element, which would grow quadratically with length.
# Defined here, beside the cost formula that depends on it; the kernel (nn/layers/ssd_masked.py) imports it.
MAX_MATRIX_CHUNKS = 256

# Chunks are at least this long before the balance below may shorten them: shorter chunks make
# products too small to run at matrix-product speed.
MIN_AUTO_CHUNK = 64


def chunk_length(T: int, chunk: int, heads: int, head_dim: int, groups: int, state: int) -> int:
    """Tokens per chunk for a sequence of T: ``min(chunk, T)``, shortened (to a power of two, not
    below MIN_AUTO_CHUNK) where the work within chunks outgrows the work on states.

    Per token, a chunk of L costs ``2 L (G N + H P)`` FLOPs in its (L x L) products and
    ``4 H P N`` in those with the states (a chunk's end state and its start state's read-out),
    which do not depend on L; past ``L = 2 H P N / (G N + H P)`` a longer chunk adds more
    quadratic work (and (L x L) decay masks, elementwise) than it saves on passing states. With
    Mamba-2's state 128 and head_dim 64 that balance is at 128 to 256 tokens, and on a CPU 128
    ran 10-20% faster than 256 at d_model 64 to 256 (benchmarks/README.md).
    """
    L = min(chunk, T)
    balance = 2 * heads * head_dim * state / (groups * state + heads * head_dim)
    cap = MIN_AUTO_CHUNK
    while cap * 2 <= balance:
        cap *= 2
    return min(L, cap)


class SSMParams(LayerParams):
    state: int = Field(128, ge=1, le=1024, description="SSM state size per head (N; HF state_size)")
    expand: int = Field(2, ge=1, le=16, description="inner width as a multiple of d_model")
    head_dim: int = Field(64, ge=1, description="channels per head (P); heads = expand * d_model / head_dim")
    groups: int = Field(1, ge=1, description="groups of heads sharing B and C (HF n_groups)")
    conv: int = Field(4, ge=1, le=64, description="kernel of the causal depthwise conv on x, B, C")
    chunk: int = Field(
        256, ge=1, le=4096, description="at most this many tokens per SSD chunk (speed only; see chunk_length)"
    )

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
    # a loop (more than MAX_MATRIX_CHUNKS states passed: a multiply and an add per chunk)
    T = ctx.seq_len
    L = chunk_length(T, p.chunk, H, P, G, N)
    n = -(-T // L)
    m = n - 1  # chunks that read a state (a forward starts from zeros, so not the first)
    loop = 2 * (m - 1) * H * P * N if m - 1 > MAX_MATRIX_CHUNKS else 0
    scan = (ssd_product_flops(p, d, T) + loop) / T + 2 * K * conv_dim
    # one step: the products, the conv, and per state element the decay, the input
    # (dt x) B, the add, and the read-out h C (a multiply-add): 5 H P N
    decode = matmul + 2 * K * conv_dim + 5 * H * P * N
    state = (conv_dim * (K - 1) + H * P * N) * ctx.state_bytes
    # Kept for backward, counted from the autograd graph of forward (the test checks it
    # within 2%). Per token: input and projection (d + proj; the conv reads its slice of the
    # projection); the conv's pre-activation and output (2 conv_dim); dt before and after
    # softplus (2H); the gated norm's 1/rms per group (G); skip, gated-norm input, gate,
    # product and norm output (5E). Per token of the n chunks of L (see chunk_length), padded
    # to Tp = n L, the SSD's factored form on a CPU (see ssd_chunked; the per-head masks of
    # strong decays and accelerators keep other tensors): the input scale dt exp(m - g), its
    # exp and the output's exp(g - m) (3H), the scaled input Z and the product with the causal
    # C B^T before its scaling (2E), and that matrix (G L); a padded sequence also keeps its
    # padded x and dt (E + H), and its padded B and C, which the products read (as they read
    # copies of them with several groups). Per sequence, A and exp(A_log) (2H) and, with
    # m = n - 1 chunks that pass a state on and read one: per chunk the end state, its scale
    # and the start state's scale (H P N + 2H); the states passed, the start states read and
    # (with more than one) the stacked states and the decay matrix (2 m H P N, or m H P N +
    # (3H + 1) m^2 more; past MAX_MATRIX_CHUNKS the loop that replaces them keeps other tensors,
    # not counted); with groups, copies of Z, B and C for the chunks that pass and read states
    # (with a single such chunk, Z itself and any padded B and C).
    # Counted for one sequence: with several, the products copy slices that one reads as views.
    Tp = n * L
    ssd = Tp * (3 * H + 2 * E + G * L) + 2 * H
    if Tp > T:
        ssd += Tp * (E + H)
    if Tp > T or G > 1:
        ssd += 2 * Tp * G * N
    if m:
        ssd += m * (3 * H * P * N + 2 * H)
        if G > 1 and m == 1:  # the products read Z, and the padded B and C, as they are
            ssd += Tp * E + (2 * Tp * G * N if Tp > T else 0)
        elif G > 1:
            ssd += m * L * (E + 2 * G * N)
        if 2 <= m <= MAX_MATRIX_CHUNKS + 1:
            ssd += m * H * P * N + (3 * H + 1) * m**2
    per_token = d + proj + 2 * conv_dim + 2 * H + G + 5 * E + ssd / T
    return Cost(
        params=n_params,
        matmul_flops=float(matmul),
        scan_flops=float(scan),
        activation_bytes=float(per_token * T * ctx.act_bytes),
        state_bytes=float(state),
        decode_flops=float(decode),
    )


def ssd_product_flops(p: SSMParams, d_model: int, T: int) -> float:
    """Forward FLOPs of the matrix products of :func:`ssd_chunked` over T tokens from a zero
    state, without the final state (the layer's forward): exactly what ``torch.utils.flop_counter``
    counts for them (the tests check it).

    With chunk L (``chunk_length``: at most min(chunk, T)), n = ceil(T / L) chunks and Tp = n L padded tokens (after the
    SSD cost analysis of the Mamba-2 paper, section 6.3: quadratic in L within chunks, linear in
    T across them): C B^T 2 Tp L G N; scores X 2 Tp L H P; the end states B^T X of the first
    n - 1 chunks (the last one's is not read) 2 (n - 1) L H P N; the read-out C S of the start
    states of the last n - 1 chunks (the first starts from zeros) 2 (n - 1) L H P N; passing the
    n - 2 states after the first on, a decay-matrix product 2 (n - 1)^2 H P N (for 1 to 256 of
    them; beyond, elementwise updates).
    """
    N, P, G = p.state, p.head_dim, p.groups
    H = p.expand * d_model // P
    L = chunk_length(T, p.chunk, H, P, G, N)
    n = -(-T // L)
    Tp = n * L
    chunks = 2 * Tp * L * G * N + 2 * Tp * L * H * P + 4 * (n - 1) * L * H * P * N
    passing = 2 * (n - 1) ** 2 * H * P * N if 1 <= n - 2 <= MAX_MATRIX_CHUNKS else 0
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
