"""`mamba`: the torch-free half of the layer, its parameters and analytic cost.

The module is :class:`archdsl.nn.layers.mamba.Mamba` (imported by build only).
"""

from __future__ import annotations

import math

from pydantic import Field

from archdsl.costing.value import Cost, CostContext
from archdsl.layers.base import LayerContract, LayerParams
from archdsl.layers.registry import register_layer
from archdsl.spec.model import ModelSettings

# Tokens per sub-chunk of the selective scan: the sequence is padded to whole sub-chunks and
# blocks divide them. Defined here, beside the cost formula that pads to it; the kernel
# (nn/layers/selective_scan.py) imports it.
SUB = 16


class MambaParams(LayerParams):
    state: int = Field(16, ge=1, le=1024, description="SSM state size per channel (N; HF state_size)")
    expand: int = Field(2, ge=1, le=16, description="inner width as a multiple of d_model")
    conv: int = Field(4, ge=1, le=64, description="kernel of the causal depthwise conv on x")
    dt_rank: int | None = Field(None, ge=1, description="rank of the dt projection (default ceil(d_model / 16))")
    chunk: int = Field(
        16, ge=1, le=4096, description="tokens between the states kept for backward (speed and memory only)"
    )

    def resolve(self, model: ModelSettings) -> MambaParams:
        if self.dt_rank is None:
            return self.model_copy(update={"dt_rank": math.ceil(model.d_model / 16)})
        return self


def cost(params: MambaParams, model: ModelSettings, ctx: CostContext) -> Cost:
    p = params.resolve(model)
    d, N, R, K = model.d_model, p.state, p.dt_rank, p.conv
    E = p.expand * d
    # in_proj, conv weight and bias, x_proj, dt_proj weight and bias, A_log, D, out_proj
    n_params = d * 2 * E + E * K + E + E * (R + 2 * N) + R * E + E + E * N + E + E * d
    matmul = 2 * d * 2 * E + 2 * E * (R + 2 * N) + 2 * R * E + 2 * E * d
    T = ctx.seq_len
    sub = min(SUB, p.chunk, T)
    Tp = -(-T // sub) * sub  # padded to whole sub-chunks
    chunk = max(sub, p.chunk // sub * sub)
    n = -(-Tp // chunk)
    # the conv's multiply-adds (2 K per channel), dt x per channel (1, before padding) and the
    # scan over the padded tokens (see scan_flops_per_token)
    scan = scan_flops_per_token(E, N) * Tp / T + E + 2 * K * E
    # one step: the products, the conv, and per state element the decay exp(dt A) (a multiply,
    # an exp), the input dt x B, the update (a multiply-add) and the read-out (a multiply-add)
    decode = matmul + 2 * K * E + 7 * E * N
    state = (E * (K - 1) + E * N) * ctx.state_bytes
    # Kept for backward, elements per token, counted from the autograd graph (the test checks
    # it): input and in_proj output (d + 2E; the conv reads its slice of it); the conv's
    # pre-activation and output (2E); x_proj output, of which dt's low rank, B and C are views
    # (R + 2N); dt_proj output and dt (2E); skip sum, silu(z), gated output (3E); the scan's
    # own copies: dt x (E) or, when T is padded, padded dt x, dt, B and C (2E + 2N per padded
    # token); the state entering each of its n chunks (n E N per sequence: the scan
    # recomputes the rest in backward); A and exp(A_log) (2 E N, once per call). Float32
    # copies of narrower inputs are counted at act_bytes too.
    scan_inputs = E if Tp == T else (Tp / T) * (2 * E + 2 * N)
    per_token = d + 2 * E + 2 * E + R + 2 * N + 2 * E + 3 * E + scan_inputs
    per_token += (n + 2) * E * N / T
    return Cost(
        params=n_params,
        matmul_flops=float(matmul),
        scan_flops=float(scan),
        activation_bytes=float(per_token * T * ctx.act_bytes),
        state_bytes=float(state),
        decode_flops=float(decode),
    )


def scan_flops_per_token(E: int, N: int) -> float:
    """Forward FLOPs per (padded) token of :func:`selective_scan_chunked`, a sequential scan:
    per state element (E N of them) the product dt A, its floor and its exp (3), the input
    (dt x) B (1), the update a h + u (a multiply-add, 2) and the read-out against C (a
    multiply-add, 2). Work on the weights once per call (A transposed and scaled) is not
    counted. Compare the 9 B L D N estimate of state-spaces/mamba issue #110: dt x is formed
    once per channel here, not per state element.
    """
    return 8.0 * E * N


LAYER = register_layer(
    LayerContract(
        name="mamba",
        description="Mamba-1 mixer (HF MambaMixer, Jamba): conv, selective scan with a decay per channel and state",
        Params=MambaParams,
        cost=cost,
        module="archdsl.nn.layers.mamba:Mamba",
    )
)
