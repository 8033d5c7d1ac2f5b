"""``mamba``: the Mamba-1 mixer (Gu & Dao 2023) as Jamba uses it, Hugging Face's ``MambaMixer``
parameter for parameter.

One input projection gives x and the gate z; a causal depthwise conv with bias and SiLU over x;
``x_proj`` gives a low-rank dt and the input-dependent B and C; ``dt_proj`` lifts dt to every
channel (softplus of it plus its bias); the selective scan with a decay ``exp(dt A)`` per channel
and state index (see :mod:`archdsl.nn.layers.selective_scan`); a skip ``D * x``; the gate
``* silu(z)``; an output projection.

``forward`` runs the blocked scan of :func:`~archdsl.nn.layers.selective_scan.selective_scan_chunked`
(states kept every ``chunk`` tokens for backward); ``reference=True`` the loop over time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from archdsl.layers.builtin.mamba import MambaParams
from archdsl.nn.layers.causal_conv import causal_conv_silu, causal_conv_silu_from, conv_step
from archdsl.nn.layers.gate import silu_gate
from archdsl.nn.layers.init import dt_bias_init
from archdsl.nn.layers.selective_scan import selective_scan_chunked, selective_scan_reference
from archdsl.nn.layers.state import check_batch
from archdsl.nn.linear import Linear
from archdsl.spec.model import ModelSettings


@dataclass
class MambaState:
    conv: torch.Tensor  # (B, E, conv - 1): the last inputs of the conv
    ssm: torch.Tensor  # (B, E, N): the state of each channel


class Mamba(nn.Module):
    def __init__(self, params: MambaParams, model: ModelSettings):
        super().__init__()
        p = params.resolve(model)
        self.p = p
        D, N, R = model.d_model, p.state, p.dt_rank
        E = self.inner = p.expand * D
        self.in_proj = Linear(D, 2 * E, bias=False)  # x | z
        self.conv1d = nn.Conv1d(E, E, p.conv, groups=E, padding=p.conv - 1)
        self.x_proj = Linear(E, R + 2 * N, bias=False)  # dt (low rank) | B | C
        self.dt_proj = Linear(R, E, bias=True)
        # HF's init_mamba_weights: A = 1 .. N per channel (S4D-real), D = 1, dt_proj weight
        # uniform in +-R^-0.5, its bias softplus^-1 of dt log-uniform in [1e-3, 1e-1] (floor 1e-4)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(E, 1))
        self.D = nn.Parameter(torch.ones(E))
        self.out_proj = Linear(E, D, bias=False)
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
        y = (y + xc * self.D.to(xc.dtype)) * silu_gate(z)
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
