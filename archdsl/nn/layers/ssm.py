"""``ssm``: the Mamba-2 mixer (Dao & Gu 2024), Hugging Face's ``Mamba2Mixer`` parameter for parameter.

One input projection gives the gate z, the conv input (x, B, C) and one dt per head; a causal
depthwise conv with bias and SiLU runs over x, B and C; the SSD scan (see
:mod:`archdsl.layers.ssd`) with a scalar decay ``exp(dt * A)`` per head; a skip ``D * x``; a
gated RMSNorm ``norm(y * silu(z))``; an output projection. The projection rows are laid out
``[z | x | B | C | dt]`` as in HF and mamba_ssm, so their weights load with ``load_state_dict``.

``forward`` runs the chunked SSD algorithm; ``reference=True`` the loop over time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from archdsl.cost.value import Cost, CostContext
from archdsl.layers.base import InvalidParams, LayerParams, divisors
from archdsl.layers.causal_conv import causal_conv_silu, causal_conv_silu_from, conv_step
from archdsl.layers.init import dt_bias_init
from archdsl.layers.registry import register_layer
from archdsl.layers.ssd import MAX_MATRIX_CHUNKS, ssd_chunked, ssd_reference
from archdsl.layers.state import check_batch
from archdsl.nn.norm import GatedRMSNorm
from archdsl.spec.model import ModelSettings


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


@dataclass
class SSMState:
    conv: torch.Tensor  # (B, conv_dim, conv - 1): the last inputs of the conv
    ssm: torch.Tensor  # (B, H, P, N): the state of each head


@register_layer
class SSM(nn.Module):
    name = "ssm"
    description = "Mamba-2 mixer (HF Mamba2Mixer): conv, selective state space with scalar decay per head, chunked SSD"
    Params = SSMParams

    def __init__(self, params: SSMParams, model: ModelSettings):
        super().__init__()
        p = params.resolve(model)
        self.p = p
        D = model.d_model
        self.inner = p.expand * D
        self.heads = self.inner // p.head_dim
        self.conv_dim = self.inner + 2 * p.groups * p.state
        self.in_proj = nn.Linear(D, self.inner + self.conv_dim + self.heads, bias=False)  # z | x B C | dt
        self.conv1d = nn.Conv1d(self.conv_dim, self.conv_dim, p.conv, groups=self.conv_dim, padding=p.conv - 1)
        H = self.heads
        # HF's init_mamba2_weights: dt log-uniform in [1e-3, 1e-1] (floor 1e-4) stored as
        # softplus^-1(dt); A = 1 .. H (S4D-real); D = 1; HF also zeroes the conv bias
        self.dt_bias = nn.Parameter(dt_bias_init(H))
        self.A_log = nn.Parameter(torch.log(torch.arange(1, H + 1, dtype=torch.float32)))
        self.D = nn.Parameter(torch.ones(H))
        self.norm = GatedRMSNorm(self.inner, eps=model.norm_eps, groups=p.groups)
        self.out_proj = nn.Linear(self.inner, D, bias=False)
        nn.init.zeros_(self.conv1d.bias)

    def _split(self, proj: torch.Tensor):
        return proj.split([self.inner, self.conv_dim, self.heads], dim=-1)  # z, xBC, dt

    def _ssm_inputs(self, xBC: torch.Tensor, dt: torch.Tensor):
        """Post-conv (..., conv_dim) and raw dt (..., H) -> x (..., H, P), B, C (..., G, N), dt, A."""
        p = self.p
        x, B, C = xBC.split([self.inner, p.groups * p.state, p.groups * p.state], dim=-1)
        dt = F.softplus(dt + self.dt_bias.to(dt.dtype))  # HF's time_step_limit (0, inf) is no clamp
        A = -torch.exp(self.A_log.float())
        return (
            x.unflatten(-1, (self.heads, p.head_dim)),
            B.unflatten(-1, (p.groups, p.state)),
            C.unflatten(-1, (p.groups, p.state)),
            dt,
            A,
        )

    def _out(self, y: torch.Tensor, x: torch.Tensor, z: torch.Tensor, dtype) -> torch.Tensor:
        y = y + x * self.D.to(x.dtype)[:, None]  # (..., H, P)
        return self.out_proj(self.norm(y.flatten(-2), z).to(dtype))

    def forward(self, x: torch.Tensor, *, reference: bool = False) -> torch.Tensor:
        T = x.shape[1]
        z, xBC, dt = self._split(self.in_proj(x))
        if reference:
            xBC = F.silu(self.conv1d(xBC.transpose(1, 2))[..., :T]).transpose(1, 2)  # (B, T, conv_dim)
            xs, B, C, dt, A = self._ssm_inputs(xBC, dt)
            y, _ = ssd_reference(xs, dt, A, B, C)
        else:
            xs, B, C, dt, A = self._ssm_inputs(causal_conv_silu(xBC, self.conv1d.weight, self.conv1d.bias), dt)
            y, _ = ssd_chunked(xs, dt, A, B, C, chunk=self.p.chunk)  # (B, T, H, P)
        return self._out(y.to(xs.dtype), xs, z, x.dtype)

    def init_state(self, batch: int, *, max_len: int, device=None, dtype=None) -> SSMState:
        p = self.p
        return SSMState(
            conv=torch.zeros(batch, self.conv_dim, p.conv - 1, device=device, dtype=dtype),
            ssm=torch.zeros(batch, self.heads, p.head_dim, p.state, device=device, dtype=dtype),
        )

    def prefill(self, x: torch.Tensor, state: SSMState) -> tuple[torch.Tensor, SSMState]:
        """A whole prompt x (B, T, D) through the chunked SSD, from and into ``state``."""
        check_batch("ssm", "prefill", x.shape[0], state.ssm.shape[0])
        z, xBC, dt = self._split(self.in_proj(x))
        xBC, conv = causal_conv_silu_from(xBC, self.conv1d.weight, self.conv1d.bias, state.conv)  # (B, T, conv_dim)
        xs, B, C, dt, A = self._ssm_inputs(xBC, dt)
        y, final = ssd_chunked(xs, dt, A, B, C, chunk=self.p.chunk, initial_state=state.ssm)  # (B, T, H, P)
        state.conv = conv.to(state.conv.dtype)
        state.ssm = final.to(state.ssm.dtype)
        return self._out(y.to(xs.dtype), xs, z, x.dtype), state

    def step(self, x: torch.Tensor, state: SSMState) -> tuple[torch.Tensor, SSMState]:
        check_batch("ssm", "step", x.shape[0], state.ssm.shape[0])
        z, xBC, dt = self._split(self.in_proj(x))  # (B, ·)
        pre, conv = conv_step(xBC, self.conv1d.weight, self.conv1d.bias, state.conv)  # (B, conv_dim)
        xBC = F.silu(pre).to(x.dtype)
        xs, B, C, dt, A = self._ssm_inputs(xBC, dt)
        hg = self.heads // self.p.groups
        B, C = B.float().repeat_interleave(hg, 1), C.float().repeat_interleave(hg, 1)  # (B, H, N)
        dt = dt.float()
        h = state.ssm.float() * torch.exp(dt * A)[..., None, None]
        h = h + (dt[..., None] * xs.float())[..., None] * B[:, :, None, :]  # (B, H, P, N)
        y = torch.einsum("bhpn,bhn->bhp", h, C)
        # new tensors rather than in-place writes, so a loop of steps stays differentiable
        state.conv = conv
        state.ssm = h.to(state.ssm.dtype)
        return self._out(y.to(xs.dtype), xs, z, x.dtype), state

    @classmethod
    def cost(cls, params: SSMParams, model: ModelSettings, ctx: CostContext) -> Cost:
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
