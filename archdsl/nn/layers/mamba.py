"""``mamba``: the Mamba-1 mixer (Gu & Dao 2023) as Jamba uses it, Hugging Face's ``MambaMixer``
parameter for parameter.

One input projection gives x and the gate z; a causal depthwise conv with bias and SiLU over x;
``x_proj`` gives a low-rank dt and the input-dependent B and C; ``dt_proj`` lifts dt to every
channel (softplus of it plus its bias); the selective scan with a decay ``exp(dt A)`` per channel
and state index (see :mod:`archdsl.layers.selective_scan`); a skip ``D * x``; the gate
``* silu(z)``; an output projection.

``forward`` runs the blocked scan of :func:`~archdsl.layers.selective_scan.selective_scan_chunked`
(states kept every ``chunk`` tokens for backward); ``reference=True`` the loop over time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from archdsl.cost.value import Cost, CostContext
from archdsl.layers.base import LayerParams
from archdsl.layers.causal_conv import causal_conv_silu, causal_conv_silu_from, conv_step
from archdsl.layers.init import dt_bias_init
from archdsl.layers.registry import register_layer
from archdsl.layers.selective_scan import SUB, selective_scan_chunked, selective_scan_reference
from archdsl.layers.state import check_batch
from archdsl.spec.model import ModelSettings


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


@dataclass
class MambaState:
    conv: torch.Tensor  # (B, E, conv - 1): the last inputs of the conv
    ssm: torch.Tensor  # (B, E, N): the state of each channel


@register_layer
class Mamba(nn.Module):
    name = "mamba"
    description = "Mamba-1 mixer (HF MambaMixer, Jamba): conv, selective scan with a decay per channel and state"
    Params = MambaParams

    def __init__(self, params: MambaParams, model: ModelSettings):
        super().__init__()
        p = params.resolve(model)
        self.p = p
        D, N, R = model.d_model, p.state, p.dt_rank
        E = self.inner = p.expand * D
        self.in_proj = nn.Linear(D, 2 * E, bias=False)  # x | z
        self.conv1d = nn.Conv1d(E, E, p.conv, groups=E, padding=p.conv - 1)
        self.x_proj = nn.Linear(E, R + 2 * N, bias=False)  # dt (low rank) | B | C
        self.dt_proj = nn.Linear(R, E, bias=True)
        # HF's init_mamba_weights: A = 1 .. N per channel (S4D-real), D = 1, dt_proj weight
        # uniform in +-R^-0.5, its bias softplus^-1 of dt log-uniform in [1e-3, 1e-1] (floor 1e-4)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(E, 1))
        self.D = nn.Parameter(torch.ones(E))
        self.out_proj = nn.Linear(E, D, bias=False)
        with torch.no_grad():
            self.dt_proj.weight.uniform_(-(R**-0.5), R**-0.5)
            self.dt_proj.bias.copy_(dt_bias_init(E))
            self.conv1d.bias.zero_()

    def _ssm_inputs(self, xc: torch.Tensor):
        """Post-conv x (..., E) -> dt (..., E) after softplus, B, C (..., N), A (E, N)."""
        p = self.p
        dt, B, C = self.x_proj(xc).split([p.dt_rank, p.state, p.state], dim=-1)
        dt = F.softplus(self.dt_proj(dt))
        return dt, B, C, -torch.exp(self.A_log.float())

    def _out(self, y, xc, z, dtype):
        y = (y + xc * self.D.to(xc.dtype)) * F.silu(z)
        return self.out_proj(y.to(dtype))

    def forward(self, x: torch.Tensor, *, reference: bool = False) -> torch.Tensor:
        T = x.shape[1]
        xs, z = self.in_proj(x).chunk(2, dim=-1)  # (B, T, E) each
        if reference:
            xc = F.silu(self.conv1d(xs.transpose(1, 2))[..., :T]).transpose(1, 2)
            dt, B, C, A = self._ssm_inputs(xc)
            y, _ = selective_scan_reference(xc, dt, A, B, C)
        else:
            xc = causal_conv_silu(xs, self.conv1d.weight, self.conv1d.bias)
            dt, B, C, A = self._ssm_inputs(xc)
            y, _ = selective_scan_chunked(xc, dt, A, B, C, chunk=self.p.chunk)
        return self._out(y.to(xc.dtype), xc, z, x.dtype)

    def init_state(self, batch: int, *, max_len: int, device=None, dtype=None) -> MambaState:
        p = self.p
        return MambaState(
            conv=torch.zeros(batch, self.inner, p.conv - 1, device=device, dtype=dtype),
            ssm=torch.zeros(batch, self.inner, p.state, device=device, dtype=dtype),
        )

    def prefill(self, x: torch.Tensor, state: MambaState) -> tuple[torch.Tensor, MambaState]:
        """A whole prompt x (B, T, D) through the chunked scan, from and into ``state``."""
        check_batch("mamba", "prefill", x.shape[0], state.ssm.shape[0])
        xs, z = self.in_proj(x).chunk(2, dim=-1)  # (B, T, E) each
        xc, conv = causal_conv_silu_from(xs, self.conv1d.weight, self.conv1d.bias, state.conv)
        dt, B, C, A = self._ssm_inputs(xc)
        y, final = selective_scan_chunked(xc, dt, A, B, C, chunk=self.p.chunk, initial_state=state.ssm)
        state.conv = conv.to(state.conv.dtype)
        state.ssm = final.to(state.ssm.dtype)
        return self._out(y.to(xc.dtype), xc, z, x.dtype), state

    def step(self, x: torch.Tensor, state: MambaState) -> tuple[torch.Tensor, MambaState]:
        check_batch("mamba", "step", x.shape[0], state.ssm.shape[0])
        xs, z = self.in_proj(x).chunk(2, dim=-1)  # (B, E)
        pre, conv = conv_step(xs, self.conv1d.weight, self.conv1d.bias, state.conv)  # (B, E)
        xc = F.silu(pre).to(x.dtype)
        dt, B, C, A = self._ssm_inputs(xc)
        dt = dt.float()[..., None]  # (B, E, 1)
        h = torch.exp(dt * A) * state.ssm.float() + dt * xc.float()[..., None] * B.float()[:, None, :]
        y = torch.einsum("ben,bn->be", h, C.float())
        # new tensors rather than in-place writes, so a loop of steps stays differentiable
        state.conv = conv
        state.ssm = h.to(state.ssm.dtype)
        return self._out(y.to(xc.dtype), xc, z, x.dtype), state

    @classmethod
    def cost(cls, params: MambaParams, model: ModelSettings, ctx: CostContext) -> Cost:
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
        # it): input and in_proj output (d + 2E); the conv's zero-padded input, pre-activation and
        # output (3E + (K - 1) E / T); x_proj output, of which dt's low rank, B and C are views
        # (R + 2N); dt_proj output and dt (2E); skip sum, silu(z), gated output (3E); the scan's
        # own copies: dt x (E) or, when T is padded, padded dt x, dt, B and C (2E + 2N per padded
        # token); the state entering each of its n chunks (n E N per sequence: the scan
        # recomputes the rest in backward); A and exp(A_log) (2 E N, once per call). Float32
        # copies of narrower inputs are counted at act_bytes too.
        scan_inputs = E if Tp == T else (Tp / T) * (2 * E + 2 * N)
        per_token = d + 2 * E + 3 * E + (K - 1) * E / T + R + 2 * N + 2 * E + 3 * E + scan_inputs
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
